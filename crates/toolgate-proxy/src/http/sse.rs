//! Server-Sent Events: writing events to a client, and reading an upstream's event stream
//! incrementally (any of CR, LF, CRLF ends a line; `data:` lines join with `\n`; comments
//! and unknown fields are skipped; an event over the size cap is discarded, not buffered).

use std::convert::Infallible;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

/// The one SSE response: the events `rx` yields, as they come, with a keep-alive comment
/// after every `keepalive` of silence (axum's `Sse`). The stream ends when every sender is
/// gone; when the client goes away, the receiver is dropped, which its producer sees.
pub fn response(rx: mpsc::Receiver<Event>, keepalive: Duration) -> Response {
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    let keep_alive = KeepAlive::new().interval(keepalive).text("keep-alive");
    let mut response = Sse::new(events).keep_alive(keep_alive).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    // Proxies that buffer responses (nginx) would hold the events back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A `message` event carrying one JSON-RPC message.
pub fn message(json: &str) -> Event {
    named("message", json)
}

/// An event named `event` (the legacy transport's `endpoint`, the admin API's transitions).
pub fn named(event: &str, data: &str) -> Event {
    Event::default().event(event).data(data)
}

/// One event read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Incremental event-stream parser.
#[derive(Debug)]
pub struct EventParser {
    max_event_bytes: usize,
    line: Vec<u8>,
    last_was_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
    oversized: bool,
    /// The last event id seen, for `Last-Event-ID` on reconnection.
    pub last_event_id: Option<String>,
    /// A `retry:` the server asked for, in milliseconds.
    pub retry_ms: Option<u64>,
}

impl EventParser {
    pub fn new(max_event_bytes: usize) -> EventParser {
        EventParser {
            max_event_bytes,
            line: Vec::new(),
            last_was_cr: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id: None,
            oversized: false,
            last_event_id: None,
            retry_ms: None,
        }
    }

    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<ReadEvent> {
        let mut events = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.last_was_cr => self.last_was_cr = false,
                b'\n' | b'\r' => {
                    self.last_was_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.end_line(&line) {
                        events.push(event);
                    }
                }
                _ => {
                    self.last_was_cr = false;
                    if self.line.len() + self.data.len() <= self.max_event_bytes {
                        self.line.push(b);
                    } else {
                        self.oversized = true;
                    }
                }
            }
        }
        events
    }

    fn end_line(&mut self, line: &[u8]) -> Option<ReadEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max_event_bytes {
                    self.oversized = true;
                    self.data.clear();
                }
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "retry" => self.retry_ms = value.trim().parse().ok(),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<ReadEvent> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::replace(&mut self.has_data, false);
        let id = self.id.take();
        if id.is_some() {
            self.last_event_id = id.clone();
        }
        if std::mem::replace(&mut self.oversized, false) {
            tracing::warn!(
                limit = self.max_event_bytes,
                "dropped an over-long event from the upstream"
            );
            return None;
        }
        if !has_data {
            return None;
        }
        Some(ReadEvent {
            event: if event.is_empty() {
                "message".to_string()
            } else {
                event
            },
            data,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_split_events_with_any_line_ending() {
        let mut p = EventParser::new(1024);
        let mut events = p.feed(b": hello\r\nevent: endpoint\r\ndata: /message?x=1\r\n\r");
        events.extend(p.feed(b"\nid: 7\ndata: {\"a\":\ndata: 1}\n\n"));
        events.extend(p.feed(b"data: x\r\rretry: 300\n"));
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].event, "endpoint");
        assert_eq!(events[0].data, "/message?x=1");
        assert_eq!(events[1].event, "message");
        assert_eq!(events[1].data, "{\"a\":\n1}");
        assert_eq!(events[1].id.as_deref(), Some("7"));
        assert_eq!(p.last_event_id.as_deref(), Some("7"));
        assert_eq!(events[2].data, "x");
        assert_eq!(p.retry_ms, Some(300));
    }

    #[test]
    fn over_long_events_are_dropped_and_parsing_goes_on() {
        let mut p = EventParser::new(8);
        let events = p.feed(b"data: 0123456789abcdef\n\ndata: ok\n\n");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "ok");
    }

    #[tokio::test]
    async fn writes_one_event_per_message_and_keeps_idle_streams_alive() {
        let (tx, rx) = mpsc::channel(4);
        let response = response(rx, Duration::from_millis(20));
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        // The body is read while events come, as a client does: keep-alives are written
        // only while it waits.
        let reading = tokio::spawn(axum::body::to_bytes(response.into_body(), 1 << 16));
        tx.send(message(r#"{"a":1}"#)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        tx.send(named("endpoint", "/message?sessionId=x"))
            .await
            .unwrap();
        drop(tx);
        let body = reading.await.unwrap().unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.starts_with("event: message\ndata: {\"a\":1}\n\n"),
            "{text}"
        );
        assert!(text.contains(": keep-alive\n\n"), "{text}");
        assert!(
            text.ends_with("event: endpoint\ndata: /message?sessionId=x\n\n"),
            "{text}"
        );
    }
}
