//! The console's routes on the admin listener: signing in and out, the pages, the live
//! event stream and the embedded assets.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::html::{esc, page, respond};
use super::logins::clear_cookie;
use super::pages::{self, live::LiveFilter};
use super::{assets, Console};
use crate::admin::auth::{admit_origin, AdminRefusal, WRONG_TOKEN_DELAY};
use crate::admin::AdminApp;
use crate::http::sse;

pub(crate) fn routes(router: Router<Arc<AdminApp>>) -> Router<Arc<AdminApp>> {
    router
        .route("/", get(overview))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/live", get(live))
        .route("/tools", get(tools))
        .route("/tools/{server}/{tool}", get(tool))
        .route("/approvals", get(approvals))
        .route("/policy", get(policy))
        .route("/counters", get(counters))
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

async fn overview(
    State(app): State<Arc<AdminApp>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(token) = query.get("token") {
        return start_login(&app, &headers, token).await;
    }
    let (console, csrf) = match signed_in(&app, &headers) {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let pending = app
        .approvals
        .store()
        .list(toolgate_state::ListFilter::default())
        .await
        .ok()
        .map(|p| p.len());
    let body = pages::overview::render(&console, app.gateway.clock.now_ms(), pending).await;
    respond(
        StatusCode::OK,
        page(
            "/",
            "Overview",
            &csrf,
            &format!("<div data-refresh=\"10\">{body}</div>"),
        ),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(app): State<Arc<AdminApp>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    start_login(&app, &headers, &form.token).await
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

async fn live(
    State(app): State<Arc<AdminApp>>,
    headers: HeaderMap,
    Query(filter): Query<LiveFilter>,
) -> Response {
    let (console, csrf) = match signed_in(&app, &headers) {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let body = pages::live::render(&console, &filter);
    respond(StatusCode::OK, page("/live", "Live", &csrf, &body))
}

async fn tools(State(app): State<Arc<AdminApp>>, headers: HeaderMap) -> Response {
    let (console, csrf) = match signed_in(&app, &headers) {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let body = pages::tools::render_list(&console, app.gateway.clock.now_ms());
    respond(StatusCode::OK, page("/tools", "Tools", &csrf, &body))
}

async fn tool(
    State(app): State<Arc<AdminApp>>,
    headers: HeaderMap,
    Path((server, tool)): Path<(String, String)>,
) -> Response {
    let (console, csrf) = match signed_in(&app, &headers) {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let server = if server == "-" { String::new() } else { server };
    match pages::tools::render_tool(&console, &server, &tool, app.gateway.clock.now_ms()).await {
        Some(body) => respond(StatusCode::OK, page("/tools", &tool, &csrf, &body)),
        None => respond(
            StatusCode::NOT_FOUND,
            page(
                "/tools",
                "No such tool",
                &csrf,
                "<p>No server has listed a tool of that name. <a href=\"/tools\">Every tool</a></p>",
            ),
        ),
    }
}

async fn approvals(State(app): State<Arc<AdminApp>>, headers: HeaderMap) -> Response {
    let (console, csrf) = match signed_in(&app, &headers) {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let body = pages::approvals::render(&app.approvals, &console.directory).await;
    respond(
        StatusCode::OK,
        page("/approvals", "Approvals", &csrf, &body),
    )
}

async fn policy(State(app): State<Arc<AdminApp>>, headers: HeaderMap) -> Response {
    let (console, csrf) = match signed_in(&app, &headers) {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let body = pages::policy::render(&console).await;
    respond(StatusCode::OK, page("/policy", "Policy", &csrf, &body))
}

async fn counters(State(app): State<Arc<AdminApp>>, headers: HeaderMap) -> Response {
    let (console, csrf) = match signed_in(&app, &headers) {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let body = pages::counters::render(&console, app.gateway.clock.now_ms()).await;
    respond(StatusCode::OK, page("/counters", "Counters", &csrf, &body))
}

/// `GET /console/events`: each decision the filter keeps, as a `decision` event, as it is
/// made; `lagged` when this stream fell behind and missed some.
async fn events(
    State(app): State<Arc<AdminApp>>,
    headers: HeaderMap,
    Query(filter): Query<LiveFilter>,
) -> Response {
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
