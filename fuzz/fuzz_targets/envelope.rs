//! Fuzzes the message core: framing, the strict and lenient envelope readers, the strict JSON
//! reader used for tools/call params, and id canonicalisation. None may panic or hang.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use toolgate_proxy::envelope::{id_key, Envelope, Strictness};
use toolgate_proxy::framing::{Frame, LineReader};
use toolgate_proxy::strict_json::parse_strict;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let lines = runtime().block_on(async {
        let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(7, data), 4096);
        let mut lines = Vec::new();
        while let Ok(Some(frame)) = reader.next_frame().await {
            if let Frame::Line(line) = frame {
                lines.push(line);
            }
        }
        lines
    });
    for line in &lines {
        for strictness in [Strictness::Strict, Strictness::Lenient] {
            if let Ok(envelope) = Envelope::parse(line, strictness) {
                let _ = envelope.kind();
                if let Some(id) = envelope.id {
                    let _ = id_key(id);
                }
                if let Some(params) = envelope.params {
                    let _ = parse_strict(params.get());
                }
            }
        }
        let _ = parse_strict(line);
    }
});
