//! The console's routes on the admin listener: signing in and out, the pages, the live
//! event stream and the embedded assets.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{broadcast, mpsc};

use super::html::{esc, page, respond};
use super::logins::clear_cookie;
use super::pages::{self, live::LiveFilter};
use super::{assets, Console};
use crate::admin::auth::{admit_origin, AdminRefusal, WRONG_TOKEN_DELAY};
use crate::admin::AdminApp;
use crate::http::sse;

pub(crate) fn routes(router: Router<Arc<AdminApp>>) -> Router<Arc<AdminApp>> {
    // One handler for every page: each route of its own would be its own instance of
    // axum's handler machinery in the binary.
    let pages = [
        "/",
        "/live",
        "/tools",
        "/tools/{server}/{tool}",
        "/approvals",
        "/policy",
        "/counters",
    ];
    let router = pages
        .into_iter()
        .fold(router, |router, path| router.route(path, get(show_page)));
    router
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/console/events", get(events))
        .route("/assets/{file}", get(asset))
        // Browsers ask for it on every page; there is none.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}

/// A signed-in request's CSRF token, or the response to give instead (the sign-in page).
fn signed_in(app: &AdminApp, headers: &HeaderMap) -> Result<(Arc<Console>, String), Box<Response>> {
    if let Err(refusal) = admit_origin(headers) {
        return Err(Box::new(refused_page(&refusal)));
    }
    let Some(console) = app.console.clone() else {
        return Err(Box::new(respond(
            StatusCode::NOT_FOUND,
            "<p>The console is off.</p>".into(),
        )));
    };
    match console.logins.check(headers) {
        Some(csrf) => Ok((console, csrf)),
        None => Err(Box::new(sign_in_page(StatusCode::UNAUTHORIZED, None))),
    }
}

fn refused_page(refusal: &AdminRefusal) -> Response {
    tracing::info!(reason = refusal.message(), "console refused a request");
    respond(
        refusal.status(),
        format!("<p>{}</p>", esc(refusal.message())),
    )
}

fn sign_in_page(status: StatusCode, error: Option<&str>) -> Response {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\">{}</p>", esc(e))
    });
    respond(
        status,
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Sign in · toolgate</title><link rel=\"stylesheet\" href=\"/assets/console.css\">\
             </head><body class=\"signin\"><main><h1>toolgate</h1>{error}\
             <form method=\"post\" action=\"/login\"><label>Admin token \
             <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus></label>\
             <button type=\"submit\">Sign in</button></form>\
             <p class=\"muted\">The admin token is in the file the gateway named when it started \
             (<code>admin.token</code> in its state directory by default), or in \
             <code>TOOLGATE_ADMIN_TOKEN</code>.</p></main></body></html>\n"
        ),
    )
}

/// Signs in when the token is right: a cookie, and back to `/` (so the token leaves the
/// address bar).
async fn start_login(app: &AdminApp, headers: &HeaderMap, token: &str) -> Response {
    if let Err(refusal) = admit_origin(headers) {
        return refused_page(&refusal);
    }
    let Some(console) = &app.console else {
        return respond(StatusCode::NOT_FOUND, "<p>The console is off.</p>".into());
    };
    if !app.options.token.matches(token.trim()) {
        tracing::info!("console: a sign-in with a wrong token");
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token."),
        );
    }
    let Some(login) = console.logins.start() else {
        return sign_in_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("No randomness is available to make a session."),
        );
    };
    let mut response = redirect("/");
    if let Ok(cookie) = HeaderValue::from_str(&login.set_cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn redirect(to: &'static str) -> Response {
    let mut response = respond(StatusCode::SEE_OTHER, String::new());
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    response
}

/// Every page: the sign-in (`/?token=`), or the page at the path, signed in and framed.
async fn show_page(
    State(app): State<Arc<AdminApp>>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path();
    if let ("/", Some(token)) = (path, query.get("token")) {
        return start_login(&app, &headers, token).await;
    }
    let (console, csrf) = match signed_in(&app, &headers) {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let now_ms = app.gateway.clock.now_ms();
    let (active, title, body) = match path {
        "/" => {
            let pending = app
                .approvals
                .store()
                .list(toolgate_state::ListFilter::default())
                .await
                .ok()
                .map(|p| p.len());
            let body = pages::overview::render(&console, now_ms, pending).await;
            (
                "/",
                "Overview".to_string(),
                format!("<div data-refresh=\"10\">{body}</div>"),
            )
        }
        "/live" => {
            let filter = LiveFilter::from_query(&query);
            (
                "/live",
                "Live".to_string(),
                pages::live::render(&console, &filter),
            )
        }
        "/tools" => (
            "/tools",
            "Tools".to_string(),
            pages::tools::render_list(&console, now_ms),
        ),
        "/approvals" => {
            let body = pages::approvals::render(&app.approvals, &console.directory).await;
            ("/approvals", "Approvals".to_string(), body)
        }
        "/policy" => (
            "/policy",
            "Policy".to_string(),
            pages::policy::render(&console).await,
        ),
        "/counters" => {
            let body = pages::counters::render(&console, now_ms).await;
            ("/counters", "Counters".to_string(), body)
        }
        other => {
            let found = match tool_of_path(other) {
                Some((server, tool)) => pages::tools::render_tool(&console, &server, &tool, now_ms)
                    .await
                    .map(|body| (tool, body)),
                None => None,
            };
            match found {
                Some((tool, body)) => ("/tools", tool, body),
                None => {
                    let missing = "<p>No server has listed a tool of that name. \
                                   <a href=\"/tools\">Every tool</a></p>";
                    let html = page("/tools", "No such tool", &csrf, missing);
                    return respond(StatusCode::NOT_FOUND, html);
                }
            }
        }
    };
    respond(StatusCode::OK, page(active, &title, &csrf, &body))
}

/// The server and tool a tool page's path names (`/tools/<server>/<tool>`, each
/// percent-encoded; `-` is the server of a gateway of one server).
fn tool_of_path(path: &str) -> Option<(String, String)> {
    let (server, tool) = path.strip_prefix("/tools/")?.split_once('/')?;
    let server = percent_decode(server)?;
    let server = if server == "-" { String::new() } else { server };
    Some((server, percent_decode(tool)?))
}

/// `%XX` escapes decoded; `None` when one is malformed or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `POST /login` with `token=…` (the sign-in form).
async fn login(State(app): State<Arc<AdminApp>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    start_login(&app, &headers, &token).await
}

async fn logout(State(app): State<Arc<AdminApp>>, headers: HeaderMap) -> Response {
    if let Err(refusal) = admit_origin(&headers) {
        return refused_page(&refusal);
    }
    if let Some(console) = &app.console {
        console.logins.end(&headers);
    }
    let mut response = sign_in_page(StatusCode::OK, None);
    if let Ok(cookie) = HeaderValue::from_str(&clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /console/events`: each decision the filter keeps, as a `decision` event, as it is
/// made; `lagged` when this stream fell behind and missed some.
async fn events(
    State(app): State<Arc<AdminApp>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let filter = LiveFilter::from_query(&query);
    let (console, _) = match signed_in(&app, &headers) {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let (tx, rx) = mpsc::channel(64);
    let decisions = console.data.feed.subscribe();
    tokio::spawn(stream_decisions(decisions, filter, tx));
    sse::response(rx, app.options.keepalive)
}

async fn stream_decisions(
    mut decisions: broadcast::Receiver<Arc<super::feed::LiveDecision>>,
    filter: LiveFilter,
    tx: mpsc::Sender<axum::response::sse::Event>,
) {
    loop {
        let event = tokio::select! {
            next = decisions.recv() => match next {
                Ok(decision) if filter.keeps(&decision) => {
                    let data = serde_json::to_string(&*decision).unwrap_or_default();
                    sse::named("decision", &data)
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    sse::named("lagged", &format!("{{\"missed\":{missed}}}"))
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tx.closed() => return,
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    match assets::get(&file) {
        Some((body, content_type)) => {
            let mut response =
                super::html::with_type(StatusCode::OK, body.to_string(), content_type);
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=300"),
            );
            response
        }
        None => respond(StatusCode::NOT_FOUND, "<p>No such file.</p>".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_pages_path_names_its_server_and_tool() {
        assert_eq!(
            tool_of_path("/tools/-/read%20it"),
            Some((String::new(), "read it".to_string()))
        );
        assert_eq!(
            tool_of_path("/tools/files/a%2Fb%C3%A9"),
            Some(("files".to_string(), "a/bé".to_string()))
        );
        assert_eq!(tool_of_path("/tools/files/%zz"), None);
        assert_eq!(tool_of_path("/tools/files/%C3"), None);
        assert_eq!(tool_of_path("/tools/files/%4"), None);
        assert_eq!(tool_of_path("/live"), None);
    }
}
