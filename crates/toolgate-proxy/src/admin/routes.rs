//! The admin API's routes and the one place its failures become HTTP statuses.

use axum::response::sse::Event;
use std::collections::HashSet;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use toolgate_state::{ApprovalError, ListFilter, StoreError, Verdict};

use super::auth::{admit_bearer, admit_origin, AdminRefusal};
use super::AdminApp;
use crate::approvals::{check_verdict, is_approval_id, record_json, Transition};
use crate::http::sse;

/// Longest `by` a client may give (it is stored as `admin-api:<by>`).
const MAX_BY_CHARS: usize = 64;
/// Most records one list returns.
const MAX_LIMIT: usize = 1_000;

pub(super) fn router(app: Arc<AdminApp>) -> Router {
    let router = match app.console {
        Some(_) => crate::console::routes::routes(Router::new()),
        None => Router::new(),
    };
    router
        .route("/v1/approvals", get(list))
        .route("/v1/approvals/events", get(events))
        .route("/v1/approvals/{id}", get(show))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/deny", post(deny))
        .route("/metrics", get(metrics))
        .fallback(
            |State(app): State<Arc<AdminApp>>, headers: HeaderMap| async move {
                match refused(&app, &headers, false).await {
                    Some(refusal) => refusal,
                    None => error(
                        StatusCode::NOT_FOUND,
                        "Not found: the admin API is under /v1/approvals",
                    ),
                }
            },
        )
        .with_state(app)
}

/// Whether a request may use the API: from this machine, with the admin token, or from the
/// console signed in (and, for a request that changes something, with its CSRF token).
fn admit(app: &AdminApp, headers: &HeaderMap, changes: bool) -> Result<(), AdminRefusal> {
    admit_origin(headers)?;
    let bearer = admit_bearer(headers, &app.options.token);
    let has_bearer = headers.contains_key(header::AUTHORIZATION);
    match &app.console {
        Some(console) if bearer.is_err() && !has_bearer => {
            let signed_in = if changes {
                console.logins.check_with_csrf(headers)
            } else {
                console.logins.check(headers).is_some()
            };
            match signed_in {
                true => Ok(()),
                false => bearer,
            }
        }
        _ => bearer,
    }
}

/// The answer to a request that may not use the API (a wrong token's, late); `None` when
/// it may.
async fn refused(app: &AdminApp, headers: &HeaderMap, changes: bool) -> Option<Response> {
    let refusal = admit(app, headers, changes).err()?;
    if refusal == AdminRefusal::WrongToken {
        tokio::time::sleep(super::auth::WRONG_TOKEN_DELAY).await;
    }
    tracing::info!(reason = refusal.message(), "admin API refused a request");
    let mut response = error(refusal.status(), refusal.message());
    if refusal.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"toolgate-admin\""),
        );
    }
    Some(response)
}

#[derive(Deserialize)]
struct ListQuery {
    all: Option<String>,
    limit: Option<usize>,
}

/// The gateway's metrics, behind the admin token like everything here.
async fn metrics(State(app): State<Arc<AdminApp>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&app, &headers, false).await {
        return refusal;
    }
    match &app.options.metrics {
        Some(metrics) => {
            let exposition = crate::metrics::Exposition {
                metrics: Arc::clone(metrics),
                approvals: Some(Arc::clone(&app.approvals)),
            };
            exposition.response().await
        }
        None => error(StatusCode::NOT_FOUND, "Not found: metrics are off"),
    }
}

async fn list(
    State(app): State<Arc<AdminApp>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Some(refusal) = refused(&app, &headers, false).await {
        return refusal;
    }
    let all = match query.all.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => return error(StatusCode::BAD_REQUEST, "all must be true or false"),
    };
    let filter = ListFilter {
        all,
        limit: query.limit.unwrap_or(100).clamp(1, MAX_LIMIT),
    };
    match app.approvals.store().list(filter).await {
        Ok(records) => {
            let items: Vec<Value> = records.iter().map(|r| record_json(r, false)).collect();
            ok(json!({ "approvals": items }))
        }
        Err(e) => store_failure(e),
    }
}

async fn show(
    State(app): State<Arc<AdminApp>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refusal) = refused(&app, &headers, false).await {
        return refusal;
    }
    if !is_approval_id(&id) {
        return not_found();
    }
    match app.approvals.store().get(&id).await {
        Ok(Some(record)) => ok(record_json(&record, true)),
        Ok(None) => not_found(),
        Err(e) => store_failure(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    note: Option<String>,
    by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DenyBody {
    reason: String,
    by: Option<String>,
}

async fn approve(
    State(app): State<Arc<AdminApp>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(refusal) = refused(&app, &headers, true).await {
        return refusal;
    }
    let parsed: ApproveBody = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad body: {e}")),
        }
    };
    decide(&app, &id, Verdict::Approve { note: parsed.note }, parsed.by).await
}

async fn deny(
    State(app): State<Arc<AdminApp>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(refusal) = refused(&app, &headers, true).await {
        return refusal;
    }
    let parsed: DenyBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("bad body (expected {{\"reason\": \"…\"}}): {e}"),
            )
        }
    };
    decide(
        &app,
        &id,
        Verdict::Deny {
            reason: parsed.reason,
        },
        parsed.by,
    )
    .await
}

async fn decide(app: &AdminApp, id: &str, verdict: Verdict, by: Option<String>) -> Response {
    if !is_approval_id(id) {
        return not_found();
    }
    if let Err(why) = check_verdict(&verdict) {
        return error(StatusCode::BAD_REQUEST, &why);
    }
    let by = match by {
        None => "admin-api".to_string(),
        Some(b) if valid_by(&b) => format!("admin-api:{b}"),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "by must be 1 to 64 letters, digits or . _ - @",
            )
        }
    };
    match app.gateway.decide_approval(id, &verdict, &by).await {
        Ok(record) => ok(record_json(&record, false)),
        Err(e) => store_failure(e),
    }
}

fn valid_by(text: &str) -> bool {
    !text.is_empty()
        && text.chars().count() <= MAX_BY_CHARS
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || "._-@".contains(c))
}

/// `GET /v1/approvals/events`: what is pending now, then each new request (from any process
/// sharing the store) and this process's other transitions.
async fn events(State(app): State<Arc<AdminApp>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&app, &headers, false).await {
        return refusal;
    }
    let (tx, rx) = mpsc::channel::<Event>(64);
    let transitions = app.approvals.subscribe();
    tokio::spawn(stream_events(Arc::clone(&app), transitions, tx));
    sse::response(rx, app.options.keepalive)
}

async fn stream_events(
    app: Arc<AdminApp>,
    mut transitions: broadcast::Receiver<crate::approvals::ApprovalEvent>,
    tx: mpsc::Sender<Event>,
) {
    let mut seen: HashSet<String> = HashSet::new();
    // What is pending now goes first, before anything that happens later.
    if !send_new_pending(&app, &tx, &mut seen).await {
        return;
    }
    let mut poll = tokio::time::interval(app.options.poll_interval);
    poll.tick().await;
    loop {
        let sent = tokio::select! {
            event = transitions.recv() => match event {
                Ok(event) => {
                    let first_sight = seen.insert(event.record.id.clone());
                    if event.transition == Transition::Requested && !first_sight {
                        true
                    } else {
                        let data = record_json(&event.record, false).to_string();
                        tx.send(sse::named(event.transition.as_str(), &data)).await.is_ok()
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => false,
            },
            _ = poll.tick() => send_new_pending(&app, &tx, &mut seen).await,
            _ = tx.closed() => false,
        };
        if !sent {
            return;
        }
    }
}

/// Sends `requested` for pending records not sent yet (made by other processes, or pending
/// before the stream opened).
async fn send_new_pending(
    app: &AdminApp,
    tx: &mpsc::Sender<Event>,
    seen: &mut HashSet<String>,
) -> bool {
    let pending = match app.approvals.store().list(ListFilter::default()).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "admin event stream: listing approvals failed");
            return !tx.is_closed();
        }
    };
    if seen.len() > 10_000 {
        // Forget ids that are no longer pending; they will not be announced again.
        let live: HashSet<&str> = pending.iter().map(|r| r.id.as_str()).collect();
        seen.retain(|id| live.contains(id.as_str()));
    }
    for record in pending.iter().rev() {
        if seen.insert(record.id.clone()) {
            let data = record_json(record, false).to_string();
            if tx
                .send(sse::named(Transition::Requested.as_str(), &data))
                .await
                .is_err()
            {
                return false;
            }
        }
    }
    !tx.is_closed()
}

fn ok(body: Value) -> Response {
    respond(StatusCode::OK, body)
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such approval request")
}

fn store_failure(e: ApprovalError) -> Response {
    match e {
        ApprovalError::NotFound(_) => not_found(),
        ApprovalError::Conflict { id, state } => respond(
            StatusCode::CONFLICT,
            json!({"error": format!("approval request {id} is {state}"), "state": state.as_str()}),
        ),
        ApprovalError::Store(StoreError::Unavailable(m)) => {
            tracing::warn!(error = %m, "admin API: approval store unavailable");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the approval store is unavailable",
            )
        }
        ApprovalError::Store(StoreError::Backend(m)) => {
            tracing::error!(error = %m, "admin API: approval store error");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the approval store failed",
            )
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    respond(status, json!({ "error": message }))
}

fn respond(status: StatusCode, body: Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
