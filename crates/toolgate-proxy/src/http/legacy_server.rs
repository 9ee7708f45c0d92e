//! Legacy HTTP+SSE (protocol 2024-11-05) for old clients: `GET /sse` opens a session and its
//! event stream, whose first event names `/message?sessionId=…`; client messages are POSTed
//! there and every answer — results, denials, errors — travels on the event stream.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::listener::App;
use super::reply::{self, HttpError};
use super::sessions::Endpoint;
use super::sse;
use super::streamable_server::{read_body, stream_to_client, unparsable};
use crate::message::ClientFrame;

#[derive(Deserialize)]
pub(crate) struct SessionQuery {
    #[serde(rename = "sessionId", alias = "session_id")]
    session_id: Option<String>,
}

pub(crate) async fn open(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let result = async {
        let admitted = app.admit(&headers).await?;
        let hs = app.open_session(admitted.identity.clone(), Endpoint::Legacy)?;
        admitted.apply(&hs.session);
        let endpoint = sse::named("endpoint", &format!("/message?sessionId={}", hs.id));
        Ok(stream_to_client(&app, hs, Some(endpoint)))
    }
    .await;
    result.unwrap_or_else(HttpError::into_response)
}

pub(crate) async fn message(
    State(app): State<Arc<App>>,
    Query(query): Query<SessionQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let admitted = app.admit(&headers).await?;
        let id = query.session_id.ok_or(HttpError::SessionRequired)?;
        let hs = app.session_for(&id, &admitted.identity, &Endpoint::Legacy)?;
        admitted.apply(&hs.session);
        let frame = ClientFrame::read(read_body(&app, body).await?);
        if let Some(error) = unparsable(&frame) {
            return Err(error);
        }
        let _busy = hs.busy();
        app.gateway.from_client_frame(&hs.session, frame).await;
        Ok(reply::accepted())
    }
    .await;
    result.unwrap_or_else(HttpError::into_response)
}
