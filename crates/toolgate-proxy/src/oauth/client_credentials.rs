//! The token toolgate sends to an HTTP upstream (`upstream_auth`): fetched from the
//! authorization server by client credentials, kept, and fetched again before it expires —
//! when a fifth of its life (at most a minute, at least a second) is left — so a request
//! never carries a token about to lapse. One fetch at a time; requests wait for it.

use std::time::{Duration, Instant};

use serde::Deserialize;
use toolgate_policy::ir::UpstreamAuth;

use super::discovery::{read_json, FETCH_TIMEOUT};

/// Lifetime assumed for a token whose answer gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

pub struct ClientCredentials {
    settings: UpstreamAuth,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<Held>>,
}

struct Held {
    token: String,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.settings.token_url)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Reads the client's credentials through `env` now (an unset variable is an error at
    /// start).
    pub fn new(
        settings: UpstreamAuth,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ClientCredentials, String> {
        let read = |name: &str| {
            env(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("upstream_auth names {name}, which is not set"))
        };
        let client_id = read(&settings.client_id_env)?;
        let client_secret = read(&settings.client_secret_env)?;
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the token client: {e}"))?;
        Ok(ClientCredentials {
            settings,
            client_id,
            client_secret,
            http,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// A token that is good for a while yet.
    pub async fn bearer(&self) -> Result<String, String> {
        let mut held = self.token.lock().await;
        if let Some(h) = held.as_ref().filter(|h| Instant::now() < h.refresh_at) {
            return Ok(h.token.clone());
        }
        let fetched = self.fetch().await?;
        let token = fetched.token.clone();
        *held = Some(fetched);
        Ok(token)
    }

    async fn fetch(&self) -> Result<Held, String> {
        let scope = self.settings.scopes.join(" ");
        let mut form = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if let Some(resource) = &self.settings.resource {
            form.push(("resource", resource));
        }
        let started = Instant::now();
        let response = self
            .http
            .post(&self.settings.token_url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("the token endpoint could not be reached: {e}"))?;
        let answer: TokenAnswer = read_json(response)
            .await
            .map_err(|e| format!("the token endpoint {e}"))?;
        let lifetime = answer
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let margin = (lifetime / 5).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tracing::info!(
            expires_in = lifetime.as_secs(),
            "fetched an upstream access token"
        );
        Ok(Held {
            token: answer.access_token,
            refresh_at: started + lifetime.saturating_sub(margin),
        })
    }
}
