#![allow(clippy::unwrap_used)]
use super::*;
use crate::envelope::{EnvelopeError, Kind};

#[test]
fn a_client_message_is_read_once_and_its_id_replaced_in_place() {
    let m = ClientMessage::read(
        "{\"jsonrpc\":\"2.0\",\n\"id\": \"a\",\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}\n"
            .to_string(),
    )
    .unwrap();
    assert_eq!(m.kind(), Kind::Request);
    assert_eq!(m.method(), Some("tools/call"));
    assert_eq!(m.params(), Some("{\"name\":\"x\"}"));
    assert!(!m.text().contains('\n'));
    let m = m.into_request().unwrap();
    assert_eq!(m.key, "\"a\"");
    assert_eq!(
        m.with_id("7"),
        "{\"jsonrpc\":\"2.0\", \"id\": 7,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}"
    );
}

#[test]
fn refused_messages_keep_their_id_for_the_answer() {
    let e = ClientMessage::read(r#"{"jsonrpc":"2.0","id":4,"method":"ping","Method":"x"}"#.into())
        .unwrap_err();
    assert!(matches!(e.error, EnvelopeError::Invalid(_)));
    assert_eq!(e.id.unwrap().get(), "4");
    let e = ClientMessage::read(r#"{"jsonrpc":"2.0","method":"ping","x":1}"#.into()).unwrap_err();
    assert_eq!(e.kind, Some(Kind::Notification));
    assert!(ClientMessage::read("{bad".into()).unwrap_err().id.is_none());
}

#[test]
fn frames_are_single_messages_or_batches() {
    assert!(matches!(
        ClientFrame::read(" \n".into()),
        ClientFrame::Empty
    ));
    let ClientFrame::Batch(Ok(items)) = ClientFrame::read(
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"x","y":1}]"#.into(),
    ) else {
        panic!("not a batch")
    };
    assert!(items[0].is_ok() && items[1].is_err());
    assert!(matches!(
        ClientFrame::read("[1,".into()),
        ClientFrame::Batch(Err(_))
    ));
}

#[test]
fn progress_tokens_are_canonical_and_read_only_when_present() {
    let m = |params: &str| {
        ClientMessage::read(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#
        ))
        .unwrap()
    };
    assert_eq!(m(r#"{"name":"x"}"#).progress_token(), None);
    assert_eq!(
        m(r#"{"name":"x","_meta":{"progressToken":1.0}}"#).progress_token(),
        Some("1".into())
    );
    assert_eq!(
        m(r#"{"name":"x","_meta":{"progress\u0054oken":"t"}}"#).progress_token(),
        Some("\"t\"".into())
    );
}

#[test]
fn server_messages_are_read_leniently_and_routed() {
    let m = ServerMessage::read(
        r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no"},"x":1}"#.into(),
    )
    .unwrap();
    assert_eq!(m.kind(), Some(Kind::Response));
    assert!(m.answers("3") && !m.answers("4"));
    assert_eq!(m.error_code(), Some(-32601));
    assert_eq!(
        m.with_id("\"c\""),
        r#"{"jsonrpc":"2.0","id":"c","error":{"code":-32601,"message":"no"},"x":1}"#
    );
    let note = ServerMessage::read(
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}"#.into(),
    )
    .unwrap();
    assert_eq!(ToClient::relay(note).route, Route::Progress("\"t\"".into()));
    assert!(ServerMessage::read("starting up...".into()).is_none());
}
