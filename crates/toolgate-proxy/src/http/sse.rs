//! Server-Sent Events: writing events to a client, and reading an upstream's event stream
//! incrementally (any of CR, LF, CRLF ends a line; `data:` lines join with `\n`; comments
//! and unknown fields are skipped; an event over the size cap is discarded, not buffered).

use bytes::Bytes;

/// One `message` event carrying a JSON-RPC message, on one `data:` line. Messages leave the
/// pipeline on one line already (`message.rs`); should one not, its line breaks (whitespace,
/// in JSON) become spaces, so an event can never be split.
pub fn message_event(data: &str, id: Option<&str>) -> Bytes {
    let data: std::borrow::Cow<'_, str> = if data.contains(['\n', '\r']) {
        data.replace(['\n', '\r'], " ").into()
    } else {
        data.into()
    };
    let mut out = String::with_capacity(data.len() + 48);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("event: message\ndata: ");
    out.push_str(&data);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// A named event with free text (the legacy transport's `endpoint` event).
pub fn named_event(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// A comment line: keeps idle connections (and the proxies between) open.
pub fn keepalive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

/// One event read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
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
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
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

    fn end_line(&mut self, line: &[u8]) -> Option<Event> {
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

    fn dispatch(&mut self) -> Option<Event> {
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
        Some(Event {
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

    #[test]
    fn writes_one_line_per_message() {
        let e = message_event("{\n \"a\": 1\n}", Some("3"));
        assert_eq!(&e[..], b"id: 3\nevent: message\ndata: {  \"a\": 1 }\n\n");
    }
}
