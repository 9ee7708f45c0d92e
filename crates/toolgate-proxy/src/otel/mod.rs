//! OpenTelemetry traces (docs/OBSERVABILITY.md): a span per `tools/call`, named and described
//! by the OpenTelemetry MCP conventions, exported over OTLP/HTTP to the collector the
//! standard variables name. A caller's `traceparent` (in `params._meta`) is continued, and the
//! call goes on to the server with toolgate's span as its parent.
//!
//! Exporting never holds up a call: finished spans go into a bounded queue that a task
//! drains in batches; when the queue is full a span is dropped and counted
//! (`toolgate_spans_dropped_total`), as is every span of a batch the collector refused.

mod config;
mod encode;
mod inject;
mod traceparent;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

pub use config::{OtelConfig, Protocol, Root, Sampler};
pub use encode::{AttributeValue, FinishedSpan};
pub(crate) use inject::with_traceparent;
pub use traceparent::SpanContext;

use crate::metrics::Metrics;

/// Spans waiting to be exported before new ones are dropped.
const QUEUE_SPANS: usize = 4096;
/// Spans sent in one request at most.
const MAX_BATCH: usize = 512;
/// How long a span may wait for its batch to fill.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// How long the collector has to take a batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts and finishes the spans of calls, and hands the finished ones to the exporter.
pub struct Tracer {
    sampler: Sampler,
    queue: mpsc::Sender<FinishedSpan>,
    /// Wakes the exporter early, when a full batch is waiting (otherwise it wakes once per
    /// [`BATCH_DELAY`]: a span never wakes it on its own).
    full_batch: Arc<tokio::sync::Notify>,
    dropped: Arc<AtomicU64>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("sampler", &self.sampler)
            .finish_non_exhaustive()
    }
}

/// A call's span while the call is in flight.
#[derive(Debug, Clone)]
pub struct CallSpan {
    pub context: SpanContext,
    pub parent: Option<[u8; 8]>,
    pub start_unix_nanos: u64,
    /// The client's request id, as its text (a string id without its quotes).
    pub request_id: String,
}

impl Tracer {
    /// The tracer and its exporter task (which must run on a Tokio runtime).
    pub fn start(config: OtelConfig, metrics: Option<Arc<Metrics>>) -> Result<Arc<Tracer>, String> {
        let (queue, spans) = mpsc::channel(QUEUE_SPANS);
        let dropped = Arc::new(AtomicU64::new(0));
        let full_batch = Arc::new(tokio::sync::Notify::new());
        let exporter = Exporter::new(&config, Arc::clone(&dropped), metrics.clone())?;
        tokio::spawn(exporter.run(spans, Arc::clone(&full_batch)));
        Ok(Arc::new(Tracer {
            sampler: config.sampler,
            queue,
            full_batch,
            dropped,
            metrics,
        }))
    }

    /// A call starts: its span (continuing `traceparent` when it is a valid one), or none
    /// when the trace is not sampled.
    pub fn start_call(&self, traceparent: Option<&str>, request_id: &str) -> Option<CallSpan> {
        let parent = traceparent.and_then(SpanContext::parse);
        let trace_id = match parent {
            Some(p) => p.trace_id,
            None => random_bytes(),
        };
        let sampled = match self.sampler {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::Ratio(ratio) => by_ratio(&trace_id, ratio),
            Sampler::ParentBased(root) => match (parent, root) {
                (Some(p), _) => p.sampled,
                (None, Root::AlwaysOn) => true,
                (None, Root::AlwaysOff) => false,
                (None, Root::Ratio(ratio)) => by_ratio(&trace_id, ratio),
            },
        };
        sampled.then(|| CallSpan {
            context: SpanContext {
                trace_id,
                span_id: random_bytes(),
                sampled: true,
            },
            parent: parent.map(|p| p.span_id),
            start_unix_nanos: unix_nanos(),
            // A string id without its quotes; a number as its digits.
            request_id: match request_id.starts_with('"') {
                true => serde_json::from_str(request_id).unwrap_or_else(|_| request_id.to_string()),
                false => request_id.to_string(),
            },
        })
    }

    /// Hands a finished span to the exporter; a full queue drops it (counted). Its name and
    /// text attributes are cut to [`MAX_VALUE_BYTES`] first: many come from the client (a
    /// tool's or prompt's name, a resource URI, a request id), and the queue is bounded in
    /// spans, not bytes.
    pub fn finish(&self, mut span: FinishedSpan) {
        bound_text(&mut span);
        if self.queue.try_send(span).is_err() {
            count_dropped(&self.dropped, self.metrics.as_deref(), 1);
        }
        if QUEUE_SPANS - self.queue.capacity() >= MAX_BATCH {
            self.full_batch.notify_one();
        }
    }

    /// Spans dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Longest span name or text attribute kept, in bytes (cut at a character boundary).
pub const MAX_VALUE_BYTES: usize = 256;

fn bound_text(span: &mut FinishedSpan) {
    fn cut(text: &mut String) {
        if text.len() > MAX_VALUE_BYTES {
            let mut end = MAX_VALUE_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
    }
    cut(&mut span.name);
    for (_, value) in &mut span.attributes {
        if let AttributeValue::Str(text) = value {
            cut(text);
        }
    }
    if let Some(error) = &mut span.error {
        cut(error);
    }
}

fn count_dropped(dropped: &AtomicU64, metrics: Option<&Metrics>, spans: u64) {
    let before = dropped.fetch_add(spans, Ordering::Relaxed);
    if let Some(metrics) = metrics {
        metrics.spans_dropped(spans);
    }
    // The first drop is worth a line; the rest are in the counter.
    if before == 0 {
        tracing::warn!("trace spans are being dropped (the collector is slow or unreachable); see toolgate_spans_dropped_total");
    }
}

/// The W3C sampler by ratio: the trace id's last 8 bytes against the ratio's share of them,
/// so every service that samples by ratio keeps the same traces.
fn by_ratio(trace_id: &[u8; 16], ratio: f64) -> bool {
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let value = u64::from_be_bytes(low) >> 1;
    (value as f64) < ratio * (u64::MAX >> 1) as f64
}

/// Trace and span ids: unique, not secret (they travel in plain `traceparent` headers), so
/// they come from a per-thread generator seeded once from the operating system, not from a
/// system call per id.
fn random_bytes<const N: usize>() -> [u8; N] {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new({
            let mut seed = [0u8; 8];
            let _ = getrandom::fill(&mut seed);
            u64::from_le_bytes(seed) | 1
        });
    }
    let mut bytes = [0u8; N];
    STATE.with(|state| {
        // An all-zero id is invalid: draw again (practically never).
        while bytes.iter().all(|b| *b == 0) {
            for chunk in bytes.chunks_mut(8) {
                // SplitMix64.
                let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
                state.set(z);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
            }
        }
    });
    bytes
}

pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Sends batches of finished spans to the collector.
struct Exporter {
    http: reqwest::Client,
    endpoint: String,
    protocol: Protocol,
    resource: Vec<(String, String)>,
    dropped: Arc<AtomicU64>,
    metrics: Option<Arc<Metrics>>,
}

impl Exporter {
    fn new(
        config: &OtelConfig,
        dropped: Arc<AtomicU64>,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Exporter, String> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                format!("OTEL_EXPORTER_OTLP_HEADERS: {name:?} is not a header name")
            })?;
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                format!("OTEL_EXPORTER_OTLP_HEADERS: the value of {name} is not a header value")
            })?;
            headers.insert(name, value);
        }
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the OTLP client: {e}"))?;
        let mut resource = vec![
            ("service.name".to_string(), config.service_name.clone()),
            (
                "service.version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ];
        resource.extend(
            config
                .resource
                .iter()
                .filter(|(k, _)| k != "service.name" && k != "service.version")
                .cloned(),
        );
        Ok(Exporter {
            http,
            endpoint: config.endpoint.clone(),
            protocol: config.protocol,
            resource,
            dropped,
            metrics,
        })
    }

    /// Sends what the queue holds once per [`BATCH_DELAY`], or as soon as a full batch waits:
    /// never woken per span, which would cost a task switch for every call.
    async fn run(
        self,
        mut spans: mpsc::Receiver<FinishedSpan>,
        full_batch: Arc<tokio::sync::Notify>,
    ) {
        let mut tick = tokio::time::interval(BATCH_DELAY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = full_batch.notified() => {}
            }
            loop {
                let mut batch = Vec::new();
                let mut closed = false;
                while batch.len() < MAX_BATCH {
                    match spans.try_recv() {
                        Ok(span) => batch.push(span),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                let full = batch.len() == MAX_BATCH;
                if !batch.is_empty() {
                    self.export(batch).await;
                }
                if closed {
                    return;
                }
                if !full {
                    break;
                }
            }
        }
    }

    async fn export(&self, batch: Vec<FinishedSpan>) {
        let resource = encode::Resource {
            attributes: &self.resource,
        };
        let (body, content_type) = match self.protocol {
            Protocol::Protobuf => (
                encode::protobuf(&resource, &batch),
                "application/x-protobuf",
            ),
            Protocol::Json => (encode::json(&resource, &batch), "application/json"),
        };
        let sent = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => format!("the collector answered {}", response.status()),
            Err(e) => format!("{e}"),
        };
        tracing::debug!(spans = batch.len(), %failure, "a batch of trace spans was not exported");
        count_dropped(&self.dropped, self.metrics.as_deref(), batch.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_in_a_span_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_VALUE_BYTES); // two bytes each
        let mut span = FinishedSpan {
            context: SpanContext {
                trace_id: [1; 16],
                span_id: [2; 8],
                sampled: true,
            },
            parent: None,
            name: format!("prompts/get {long}"),
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: vec![
                ("mcp.resource.uri", AttributeValue::Str(long.clone())),
                ("n", AttributeValue::Int(7)),
                ("short", AttributeValue::Str("kept".into())),
            ],
            error: Some(long.clone()),
        };
        bound_text(&mut span);
        assert!(span.name.len() <= MAX_VALUE_BYTES && span.name.starts_with("prompts/get é"));
        let AttributeValue::Str(uri) = &span.attributes[0].1 else {
            panic!("a text attribute")
        };
        assert_eq!(uri.len(), MAX_VALUE_BYTES);
        assert_eq!(span.attributes[2].1, AttributeValue::Str("kept".into()));
        assert_eq!(span.error.as_deref().map(str::len), Some(MAX_VALUE_BYTES));
    }

    #[test]
    fn ratio_sampling_keeps_about_its_share_and_the_ends_are_exact() {
        let ids: Vec<[u8; 16]> = (0..4000).map(|_| random_bytes()).collect();
        let kept = ids.iter().filter(|id| by_ratio(id, 0.25)).count();
        assert!((800..1200).contains(&kept), "{kept}");
        assert!(ids.iter().all(|id| by_ratio(id, 1.0)));
        assert!(!ids.iter().any(|id| by_ratio(id, 0.0)));
    }
}
