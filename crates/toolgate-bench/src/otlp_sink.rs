//! A collector stand-in for the traced scenario: an HTTP/1.1 server on 127.0.0.1 that takes
//! OTLP export requests (any POST), answers 200, and counts them, so the scenario can show
//! that spans were in fact exported while it was measured.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;

pub struct OtlpSink {
    pub url: String,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl OtlpSink {
    /// Binds a free port and serves on threads of its own until the process ends.
    pub fn start() -> anyhow::Result<OtlpSink> {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind the OTLP sink")?;
        let url = format!("http://{}", listener.local_addr()?);
        let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (r, b) = (Arc::clone(&requests), Arc::clone(&bytes));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, b) = (Arc::clone(&r), Arc::clone(&b));
                std::thread::spawn(move || serve(stream, &r, &b));
            }
        });
        Ok(OtlpSink {
            url,
            requests,
            bytes,
        })
    }

    /// Export requests and body bytes taken so far.
    pub fn received(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// Serves one keep-alive connection: each request's headers, its body by Content-Length,
/// then an empty 200.
fn serve(stream: TcpStream, requests: &AtomicU64, bytes: &AtomicU64) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" && !first {
                break;
            }
            first = false;
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(length as u64, Ordering::Relaxed);
        let answer =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}
