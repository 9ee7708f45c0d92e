//! The HTTP listener as an OAuth 2.1 resource server (docs/AUTH.md): access tokens from the
//! policy's `oauth.issuer`, for its `oauth.resource`, checked here.
//!
//! A JWT is verified against the issuer's published keys (its JWKS, found through its
//! metadata), with `iss`, `aud`, `exp` and `nbf` checked; only asymmetric algorithms are
//! accepted (`none` cannot even be read, and an HS* token would be signed with a secret the
//! issuer shares, not its key). Keys are kept and fetched again when a token names one the
//! cache does not have — at most once per [`MIN_REFRESH`], so a flood of made-up `kid`s cannot
//! make toolgate hammer the issuer. An opaque token is introspected (RFC 7662) when the
//! policy gives credentials for it, and a positive answer kept for a short while.
//!
//! An accepted token is remembered (under its SHA-256, never itself) for up to a minute and
//! never past its `exp`, so a session's requests do not each pay for a signature check or a
//! round trip to the issuer. Tokens are never logged.

mod client_credentials;
mod discovery;
mod ring_jws;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use toolgate_policy::ir::OAuthSettings;
use toolgate_policy::Caller;

pub use client_credentials::ClientCredentials;
use discovery::{fetch_json, fetch_metadata, read_json, IssuerMetadata, FETCH_TIMEOUT};

/// The least time between two fetches of the issuer's keys.
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
/// Keys older than this are fetched again on the next token (a key the issuer withdrew stops
/// working within this time).
const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// How long an accepted token is taken as good without checking it again (never past its
/// `exp`): a session's every request carries the token, and checking an RSA signature or
/// asking the issuer each time would cost more than the request.
const ACCEPTED_FOR: Duration = Duration::from_secs(60);
/// Accepted tokens remembered at most.
const MAX_ACCEPTED: usize = 10_000;

/// The algorithms a token may be signed with: the issuer's own (asymmetric) keys only.
const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Not a token of this issuer for this resource, or not valid now: `401`.
    Invalid(String),
    /// A valid token without every required scope: `403` (the client may step up).
    InsufficientScope(Vec<String>),
    /// The issuer could not be reached to check it: `503`.
    Unavailable(String),
}

impl TokenRefusal {
    /// What the audit log and the log say (never the token).
    pub fn reason(&self) -> String {
        match self {
            TokenRefusal::Invalid(why) => why.clone(),
            TokenRefusal::InsufficientScope(missing) => {
                format!(
                    "the token lacks the required scope(s) {}",
                    missing.join(" ")
                )
            }
            TokenRefusal::Unavailable(why) => format!("the issuer could not be reached: {why}"),
        }
    }
}

pub struct OAuthVerifier {
    settings: OAuthSettings,
    http: reqwest::Client,
    /// Introspection's client id and secret, read from the environment at start.
    introspection: Option<(String, String)>,
    keys: Mutex<Keys>,
    /// One fetch of the issuer at a time; tokens that need it wait for it.
    fetching: tokio::sync::Mutex<()>,
    /// Tokens accepted lately, by their SHA-256, with the caller and until when.
    accepted: Mutex<HashMap<TokenHash, (Arc<Caller>, Instant)>>,
}

/// A token's SHA-256: what introspection results are kept under.
type TokenHash = [u8; 32];

#[derive(Default)]
struct Keys {
    metadata: Option<IssuerMetadata>,
    jwks: Option<Arc<JwkSet>>,
    fetched: Option<Instant>,
    last_attempt: Option<Instant>,
}

impl std::fmt::Debug for OAuthVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthVerifier")
            .field("issuer", &self.settings.issuer)
            .field("resource", &self.settings.resource)
            .finish_non_exhaustive()
    }
}

impl OAuthVerifier {
    /// A verifier for the policy's `oauth`; the introspection credentials are read through
    /// `env` now (an unset variable is an error at start, not at the first token).
    pub fn new(
        settings: OAuthSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OAuthVerifier, String> {
        let introspection = match &settings.introspection {
            None => None,
            Some(names) => {
                let read = |name: &str| {
                    env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                        format!("oauth.introspection names {name}, which is not set")
                    })
                };
                Some((read(&names.client_id_env)?, read(&names.client_secret_env)?))
            }
        };
        crate::tls::install_crypto_provider();
        ring_jws::install();
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            // The issuer's documents are fetched where the policy says, not where a redirect
            // would take the request.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the OAuth client: {e}"))?;
        Ok(OAuthVerifier {
            settings,
            http,
            introspection,
            keys: Mutex::new(Keys::default()),
            fetching: tokio::sync::Mutex::new(()),
            accepted: Mutex::new(HashMap::new()),
        })
    }

    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// Checks a bearer token: the caller it names, with its scopes and claims.
    pub async fn verify(&self, token: &str) -> Result<Caller, TokenRefusal> {
        let hash: TokenHash = Sha256::digest(token.as_bytes()).into();
        let caller = match self.remembered(&hash) {
            Some(caller) => caller,
            None => {
                let (caller, expires) = if token.split('.').count() == 3 {
                    self.verify_jwt(token).await?
                } else if self.introspection.is_some() {
                    self.introspect(token).await?
                } else {
                    return Err(TokenRefusal::Invalid(
                        "the token is not a JWT, and the policy configures no introspection for opaque tokens"
                            .into(),
                    ));
                };
                self.remember(hash, &caller, expires);
                caller
            }
        };
        let missing: Vec<String> = self
            .settings
            .required_scopes
            .iter()
            .filter(|s| !caller.scopes.contains(s))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(caller)
        } else {
            Err(TokenRefusal::InsufficientScope(missing))
        }
    }

    /// A token accepted lately, while it is remembered.
    fn remembered(&self, hash: &TokenHash) -> Option<Caller> {
        let accepted = self.accepted.lock();
        let (caller, until) = accepted.get(hash)?;
        (Instant::now() < *until).then(|| Caller::clone(caller))
    }

    fn remember(&self, hash: TokenHash, caller: &Caller, expires: Option<u64>) {
        let now = now_seconds();
        let keep = expires.map_or(ACCEPTED_FOR, |exp| {
            ACCEPTED_FOR.min(Duration::from_secs(exp.saturating_sub(now)))
        });
        let mut accepted = self.accepted.lock();
        if accepted.len() >= MAX_ACCEPTED {
            let now = Instant::now();
            accepted.retain(|_, (_, until)| *until > now);
            if accepted.len() >= MAX_ACCEPTED {
                accepted.clear();
            }
        }
        accepted.insert(hash, (Arc::new(caller.clone()), Instant::now() + keep));
    }

    /// A JWT's caller, and its `exp`.
    async fn verify_jwt(&self, token: &str) -> Result<(Caller, Option<u64>), TokenRefusal> {
        let invalid = |why: String| TokenRefusal::Invalid(why);
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            invalid(format!(
                "the token's header cannot be read ({e}); alg none is never accepted"
            ))
        })?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(invalid(format!(
                "tokens signed with {:?} are refused: only the issuer's asymmetric keys (RS*, PS*, ES256, ES384, EdDSA) are accepted",
                header.alg
            )));
        }
        let jwk = self.key_for(header.kid.as_deref()).await?;
        if let Some(alg) = &jwk.common.key_algorithm {
            if format!("{alg:?}") != format!("{:?}", header.alg) {
                return Err(invalid(format!(
                    "the token says {:?} but its key is for {alg:?}",
                    header.alg
                )));
            }
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| invalid(format!("the issuer's key cannot be used: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.resource]);
        validation.leeway = self.settings.leeway_seconds;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| invalid(format!("the token was refused: {}", jwt_error(&e))))?;
        let expires = data.claims.get("exp").and_then(Value::as_u64);
        Ok((self.caller_from(data.claims)?, expires))
    }

    /// The key a token names: from the cache, or fetched again when it is not there (or the
    /// cache is old), at most once per [`MIN_REFRESH`].
    async fn key_for(&self, kid: Option<&str>) -> Result<Jwk, TokenRefusal> {
        if let Some(jwk) = self.cached_key(kid, false) {
            return Ok(jwk);
        }
        let _fetching = self.fetching.lock().await;
        // Another token may have fetched them meanwhile.
        if let Some(jwk) = self.cached_key(kid, false) {
            return Ok(jwk);
        }
        let may_fetch = self
            .keys
            .lock()
            .last_attempt
            .is_none_or(|at| at.elapsed() >= MIN_REFRESH);
        if may_fetch {
            self.keys.lock().last_attempt = Some(Instant::now());
            if let Err(why) = self.fetch_keys().await {
                tracing::warn!(issuer = %self.settings.issuer, %why, "cannot fetch the issuer's keys");
                if self.keys.lock().jwks.is_none() {
                    return Err(TokenRefusal::Unavailable(why));
                }
            }
        }
        self.cached_key(kid, true).ok_or_else(|| {
            TokenRefusal::Invalid(match kid {
                Some(kid) => format!(
                    "the token is signed with a key the issuer does not publish (kid {kid:?})"
                ),
                None => {
                    "the token names no key (kid) and the issuer publishes more than one".into()
                }
            })
        })
    }

    /// The cached key for `kid` (without one: the only key), unless the keys are too old
    /// to use without looking again (`stale_ok` takes them anyway).
    fn cached_key(&self, kid: Option<&str>, stale_ok: bool) -> Option<Jwk> {
        let keys = self.keys.lock();
        let fresh = keys.fetched.is_some_and(|at| at.elapsed() < KEYS_MAX_AGE);
        if !fresh && !stale_ok {
            return None;
        }
        let jwks = keys.jwks.as_ref()?;
        match kid {
            Some(kid) => jwks.find(kid).cloned(),
            None if jwks.keys.len() == 1 => jwks.keys.first().cloned(),
            None => None,
        }
    }

    async fn metadata(&self) -> Result<IssuerMetadata, String> {
        if let Some(metadata) = self.keys.lock().metadata.clone() {
            return Ok(metadata);
        }
        let metadata = fetch_metadata(&self.http, &self.settings.issuer).await?;
        self.keys.lock().metadata = Some(metadata.clone());
        Ok(metadata)
    }

    async fn fetch_keys(&self) -> Result<(), String> {
        let metadata = self.metadata().await?;
        let uri = metadata
            .jwks_uri
            .ok_or("the issuer's metadata has no jwks_uri")?;
        let jwks: JwkSet = fetch_json(&self.http, &uri)
            .await
            .map_err(|e| format!("{uri}: {e}"))?;
        tracing::info!(issuer = %self.settings.issuer, keys = jwks.keys.len(), "fetched the issuer's signing keys");
        let mut keys = self.keys.lock();
        keys.jwks = Some(Arc::new(jwks));
        keys.fetched = Some(Instant::now());
        Ok(())
    }

    /// RFC 7662 introspection of an opaque token: its caller, and its `exp`.
    async fn introspect(&self, token: &str) -> Result<(Caller, Option<u64>), TokenRefusal> {
        let Some((client_id, secret)) = &self.introspection else {
            return Err(TokenRefusal::Invalid("no introspection configured".into()));
        };
        let metadata = self.metadata().await.map_err(TokenRefusal::Unavailable)?;
        let endpoint = metadata.introspection_endpoint.ok_or_else(|| {
            TokenRefusal::Unavailable("the issuer's metadata has no introspection_endpoint".into())
        })?;
        let response = self
            .http
            .post(&endpoint)
            .basic_auth(client_id, Some(secret))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| TokenRefusal::Unavailable(e.to_string()))?;
        let answer: Map<String, Value> = read_json(response)
            .await
            .map_err(|e| TokenRefusal::Unavailable(format!("introspection {e}")))?;
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err(TokenRefusal::Invalid(
                "the issuer says the token is not active".into(),
            ));
        }
        if let Some(iss) = answer.get("iss").and_then(Value::as_str) {
            if iss.trim_end_matches('/') != self.settings.issuer.trim_end_matches('/') {
                return Err(TokenRefusal::Invalid(format!(
                    "the token is from the issuer {iss:?}"
                )));
            }
        }
        if let Some(aud) = answer.get("aud") {
            if !audience_contains(aud, &self.settings.resource) {
                return Err(TokenRefusal::Invalid(
                    "the token is for another resource (aud)".into(),
                ));
            }
        }
        let now = now_seconds();
        let expires = answer.get("exp").and_then(Value::as_u64);
        if expires.is_some_and(|exp| exp + self.settings.leeway_seconds <= now) {
            return Err(TokenRefusal::Invalid("the token has expired".into()));
        }
        Ok((self.caller_from(answer)?, expires))
    }

    /// The caller a token's claims describe: its name from `identity_claim` (for the default,
    /// `sub`, a token without one — a client's own, as introspection describes it — is named
    /// by its `client_id`), its scopes from `scope` (space-separated, RFC 9068) or `scp`.
    fn caller_from(&self, claims: Map<String, Value>) -> Result<Caller, TokenRefusal> {
        let claim = &self.settings.identity_claim;
        let named = match claims.get(claim) {
            None if claim == "sub" => claims.get("client_id"),
            found => found,
        };
        let name = match named {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(TokenRefusal::Invalid(format!(
                    "the token has no {claim:?} claim to name the caller by"
                )))
            }
        };
        let scopes = match claims.get("scope").or_else(|| claims.get("scp")) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Caller {
            name,
            scopes,
            claims,
        })
    }
}

fn audience_contains(aud: &Value, resource: &str) -> bool {
    match aud {
        Value::String(s) => s == resource,
        Value::Array(items) => items.iter().any(|i| i.as_str() == Some(resource)),
        _ => false,
    }
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A JWT error in words a person acting on the audit log can use.
fn jwt_error(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "it has expired".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "it is for another resource (aud)".into(),
        ErrorKind::InvalidIssuer => "it is from another issuer (iss)".into(),
        ErrorKind::InvalidSignature => "its signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("it has no {claim:?} claim"),
        ErrorKind::InvalidAlgorithm => "its algorithm does not match its key".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verifier() -> OAuthVerifier {
        let settings = OAuthSettings {
            issuer: "https://login.example.com".into(),
            resource: "https://tools.example.com/mcp".into(),
            scopes_supported: vec![],
            required_scopes: vec!["tools:call".into()],
            identity_claim: "sub".into(),
            introspection: None,
            leeway_seconds: 30,
        };
        OAuthVerifier::new(settings, &|_| None).expect("a verifier")
    }

    #[test]
    fn scopes_come_from_scope_or_scp_and_the_name_from_the_claim() {
        let v = verifier();
        let claims = |value: Value| value.as_object().cloned().unwrap_or_default();
        let caller = v
            .caller_from(claims(
                json!({"sub": "svc", "scope": "tools:call  payments:write"}),
            ))
            .expect("a caller");
        assert_eq!(caller.name, "svc");
        assert_eq!(caller.scopes, ["tools:call", "payments:write"]);
        let scp = v
            .caller_from(claims(json!({"sub": 7, "scp": ["a"]})))
            .expect("a caller");
        assert_eq!(
            (scp.name.as_str(), scp.scopes.as_slice()),
            ("7", &["a".to_string()][..])
        );
        assert!(v.caller_from(claims(json!({"scope": "a"}))).is_err());
    }

    #[tokio::test]
    async fn tokens_that_cannot_be_the_issuers_are_refused_before_any_fetch() {
        let v = verifier();
        // alg none, an HS256 token, and text that is no JWT: none reaches the network.
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
        let hs256 = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        for token in [none, hs256, "opaque-token"] {
            match v.verify(token).await {
                Err(TokenRefusal::Invalid(_)) => {}
                other => panic!("{token}: {other:?}"),
            }
        }
        assert!(v.keys.lock().last_attempt.is_none());
    }

    #[tokio::test]
    async fn an_accepted_token_is_remembered_but_never_past_its_expiry() {
        let v = verifier();
        let caller = Caller {
            name: "svc".into(),
            scopes: vec!["tools:call".into()],
            ..Default::default()
        };
        let hash = |t: &str| -> TokenHash { Sha256::digest(t.as_bytes()).into() };
        v.remember(hash("fresh"), &caller, Some(now_seconds() + 3600));
        v.remember(
            hash("lapsed"),
            &caller,
            Some(now_seconds().saturating_sub(1)),
        );
        assert_eq!(
            v.verify("fresh").await.map(|c| c.name),
            Ok("svc".to_string())
        );
        // Without the cache, "lapsed" is no JWT and there is no introspection: refused.
        assert!(matches!(
            v.verify("lapsed").await,
            Err(TokenRefusal::Invalid(_))
        ));
        // Scopes are checked on a remembered token too (the policy may have changed them).
        let narrow = Caller {
            scopes: vec![],
            ..caller
        };
        v.remember(hash("narrow"), &narrow, None);
        assert!(matches!(
            v.verify("narrow").await,
            Err(TokenRefusal::InsufficientScope(_))
        ));
    }
}
