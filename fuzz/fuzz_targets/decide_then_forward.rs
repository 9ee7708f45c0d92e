//! "Decide, then forward": arbitrary client lines go through the real pipeline (policy in
//! `lenient_reader::POLICY`, an in-memory store, a recording server side), and every message
//! that reaches the server side is read back the way lenient servers read it (Go's
//! case-folding decoder, pydantic's coercion, JavaScript's doubles). A forwarded message that
//! such a reader takes for a forbidden call is a bypass: the target aborts.
#![no_main]

#[path = "../../crates/toolgate-proxy/tests/lenient_reader/mod.rs"]
mod lenient_reader;

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;
use toolgate_proxy::audit::AuditSink;
use toolgate_proxy::{Gateway, GatewayOptions, Session};
use toolgate_state::{ManualClock, MemoryStore};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

fn gateway() -> &'static Arc<Gateway> {
    static GATEWAY: OnceLock<Arc<Gateway>> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let clock = Arc::new(ManualClock::new(1_767_261_600_000));
        Gateway::new(
            toolgate_policy::compile(lenient_reader::POLICY).expect("the fuzz policy compiles"),
            Arc::new(MemoryStore::new("fuzz", clock.clone())),
            clock,
            AuditSink::disabled("fuzz".into()),
            None,
            GatewayOptions::default(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.lines().take(8).collect();
    let forwarded = runtime().block_on(async {
        let (to_client, _client_rx) = mpsc::channel(1024);
        let (to_server, mut server_rx) = mpsc::channel(1024);
        let session = Arc::new(Session::new("fuzz".into(), None, to_client, to_server));
        for line in &lines {
            gateway().from_client(&session, line.to_string()).await;
        }
        tokio::task::yield_now().await;
        let mut out = Vec::new();
        while let Ok(message) = server_rx.try_recv() {
            out.push(message.text);
        }
        out
    });
    for message in forwarded {
        if let Some(why) = lenient_reader::violation(&message) {
            panic!("forwarded a forbidden call ({why}): {message}");
        }
    }
});
