//! Fuzzes the message core: framing, the strict and lenient envelope readers, the strict JSON
//! reader used for tools/call params, id canonicalisation, and the edge readers (`message.rs`).
//! None may panic or hang, and an id replaced in place must read back as the new id.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use toolgate_proxy::envelope::{id_key, Envelope, Kind, Strictness};
use toolgate_proxy::framing::{Frame, LineReader};
use toolgate_proxy::message::{ClientFrame, ClientMessage, ServerMessage};
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
                    let _ = id_key(id.get());
                }
                if let Some(params) = envelope.params {
                    let _ = parse_strict(params.get());
                }
            }
        }
        let _ = parse_strict(line);
        check_client(line);
        check_server(line);
    }
});

/// A request read at the edge, its id replaced in place, reads back as the same request under
/// the new id.
fn check_client(line: &str) {
    let ClientFrame::One(Ok(message)) = ClientFrame::read(line.to_string()) else {
        return;
    };
    let _ = message.progress_token();
    let _ = message.strict_params();
    let Ok(request) = message.into_request() else {
        return;
    };
    let rewritten = request.with_id("7");
    let again = ClientMessage::read(rewritten)
        .expect("a request with its id replaced still reads")
        .into_request()
        .expect("and is still a request");
    assert_eq!(again.key, "7");
    assert_eq!(again.method, request.method);
    assert_eq!(again.params(), request.params());
}

/// A server message with its id replaced answers the new id exactly when it is a response.
fn check_server(line: &str) {
    let Some(message) = ServerMessage::read(line.to_string()) else {
        return;
    };
    let _ = message.error_code();
    if message.id().is_none() {
        return;
    }
    let again = ServerMessage::read(message.with_id("\"x\"")).expect("still a message");
    assert_eq!(again.kind(), message.kind());
    assert_eq!(again.answers("\"x\""), message.kind() == Some(Kind::Response));
}
