//! The legacy HTTP+SSE client side of a link (protocol 2024-11-05): a GET opens the event
//! stream, whose first `endpoint` event names the URL that client messages are POSTed to;
//! every server message arrives on the stream.

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use tokio::sync::mpsc;

use super::streamable::{read_limited, without_url};
use super::{http_failure, HttpClient, LinkContext, MAX_UPSTREAM_MESSAGE_BYTES};
use crate::http::sse::EventParser;
use crate::message::ToServer;
use crate::wire::ErrorCode;

/// Runs until the stream ends or the link is stopped. `first` is a message that was already
/// taken from the channel (the `initialize` a Streamable HTTP attempt could not deliver).
pub(super) async fn run(
    ctx: &LinkContext,
    http: &HttpClient,
    mut to_server: mpsc::Receiver<ToServer>,
    first: Option<ToServer>,
) -> String {
    let request = http
        .authorized(http.client.get(http.target.url.clone()))
        .await
        .header(ACCEPT, "text/event-stream");
    let response = match request.send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            let status = r.status();
            let body = read_limited(r).await.unwrap_or_default();
            return refuse_all(ctx, &mut to_server, first, &http_failure(status, &body)).await;
        }
        Err(e) => {
            let reason = format!("Cannot reach the upstream server: {}", without_url(&e));
            return refuse_all(ctx, &mut to_server, first, &reason).await;
        }
    };
    let mut parser = EventParser::new(MAX_UPSTREAM_MESSAGE_BYTES);
    let mut stream = response.bytes_stream();
    // The endpoint comes first; messages before it are kept for after.
    let mut early: Vec<String> = Vec::new();
    let endpoint = loop {
        let chunk = tokio::select! {
            c = stream.next() => c,
            _ = ctx.stop.notified() => return "The session ended".to_string(),
        };
        let Some(Ok(chunk)) = chunk else {
            let reason = "The upstream's event stream closed before naming its message endpoint";
            return refuse_all(ctx, &mut to_server, first, reason).await;
        };
        let mut found = None;
        for event in parser.feed(&chunk) {
            match event.event.as_str() {
                "endpoint" if found.is_none() => found = Some(event.data),
                "message" => early.push(event.data),
                _ => {}
            }
        }
        if let Some(found) = found {
            match http.target.url.join(found.trim()) {
                Ok(url) if url.origin() == http.target.url.origin() => break url,
                _ => {
                    let reason = "The upstream named a message endpoint on another origin; refused";
                    return refuse_all(ctx, &mut to_server, first, reason).await;
                }
            }
        }
    };
    for message in early {
        ctx.deliver(message).await;
    }
    let stream_closed = std::sync::Arc::new(tokio::sync::Notify::new());
    let reader = {
        let ctx = ctx.clone();
        let stream_closed = std::sync::Arc::clone(&stream_closed);
        tokio::spawn(async move {
            while let Some(Ok(chunk)) = stream.next().await {
                for event in parser.feed(&chunk) {
                    if event.event == "message" && !event.data.trim().is_empty() {
                        ctx.deliver(event.data).await;
                    }
                }
            }
            stream_closed.notify_one();
        })
    };
    let mut posts = tokio::task::JoinSet::new();
    let mut pending = first;
    let reason = loop {
        let message = match pending.take() {
            Some(m) => Some(m),
            None => tokio::select! {
                m = to_server.recv() => m,
                _ = ctx.stop.notified() => break "The session ended".to_string(),
                _ = stream_closed.notified() => break "The upstream's event stream closed".to_string(),
                Some(_) = posts.join_next(), if !posts.is_empty() => continue,
            },
        };
        let Some(message) = message else {
            break "The client side closed".to_string();
        };
        let out = message;
        let (ctx, http, endpoint) = (ctx.clone(), http.clone(), endpoint.clone());
        posts.spawn(async move {
            let request = http
                .authorized(http.client.post(endpoint))
                .await
                .header(CONTENT_TYPE, "application/json")
                .body(out.text.clone());
            let failure = match request.send().await {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => {
                    let status = r.status();
                    let body = read_limited(r).await.unwrap_or_default();
                    Some(http_failure(status, &body))
                }
                Err(e) => Some(format!(
                    "Cannot reach the upstream server: {}",
                    without_url(&e)
                )),
            };
            if let (Some(message), Some(id)) = (failure, out.request) {
                ctx.fail_request(id, ErrorCode::UpstreamHttp, &message)
                    .await;
            }
        });
    };
    reader.abort();
    posts.abort_all();
    while posts.join_next().await.is_some() {}
    reason
}

/// No connection could be made: answer the request that was waiting and end.
async fn refuse_all(
    ctx: &LinkContext,
    to_server: &mut mpsc::Receiver<ToServer>,
    first: Option<ToServer>,
    reason: &str,
) -> String {
    if let Some(first) = first {
        let out = first;
        if let Some(id) = out.request {
            ctx.fail_request(id, ErrorCode::UpstreamHttp, reason).await;
        }
    }
    to_server.close();
    while let Ok(message) = to_server.try_recv() {
        let out = message;
        if let Some(id) = out.request {
            ctx.fail_request(id, ErrorCode::UpstreamHttp, reason).await;
        }
    }
    reason.to_string()
}
