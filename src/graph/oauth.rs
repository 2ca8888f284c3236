//! Sign-in with the Microsoft identity platform: the device code flow, the authorization code
//! flow with PKCE, and token refresh.

use std::time::Duration;

use super::types::{DeviceCode, OAuthError, TokenResponse};
use super::GraphError;
use crate::config::GraphConfig;

/// The tokens of one signed-in mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: String,
    /// Unix seconds after which the access token is no longer accepted.
    pub expires_at: i64,
}

/// Talks to `{login_url}/{tenant}/oauth2/v2.0/…`.
#[derive(Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    endpoint: String,
    client_id: String,
    scopes: String,
}

impl OAuthClient {
    pub fn new(http: reqwest::Client, config: &GraphConfig) -> OAuthClient {
        OAuthClient {
            http,
            endpoint: format!(
                "{}/{}/oauth2/v2.0",
                config.login_url.trim_end_matches('/'),
                config.tenant
            ),
            client_id: config.client_id.clone(),
            scopes: config.scopes.join(" "),
        }
    }

    pub async fn start_device_code(&self) -> Result<DeviceCode, GraphError> {
        let form = [
            ("client_id", self.client_id.as_str()),
            ("scope", self.scopes.as_str()),
        ];
        let response = self
            .http
            .post(format!("{}/devicecode", self.endpoint))
            .form(&form)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(oauth_error(&body));
        }
        serde_json::from_slice(&body).map_err(|e| GraphError::Decode(e.to_string()))
    }

    /// Polls the token endpoint until the person at the device login page approves (or the
    /// code expires, or they decline).
    pub async fn finish_device_code(&self, code: &DeviceCode) -> Result<TokenSet, GraphError> {
        let mut interval = Duration::from_secs(code.interval.max(1));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(code.expires_in);
        loop {
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", self.client_id.as_str()),
                ("device_code", code.device_code.as_str()),
            ];
            match self.token_request(&form).await {
                Ok(tokens) => return Ok(tokens),
                Err(GraphError::OAuth { error, .. }) if error == "authorization_pending" => {}
                Err(GraphError::OAuth { error, .. }) if error == "slow_down" => {
                    interval += Duration::from_secs(5);
                }
                Err(e) => return Err(e),
            }
            if tokio::time::Instant::now() + interval > deadline {
                return Err(GraphError::OAuth {
                    error: "expired_token".into(),
                    description: "the device code expired before sign-in finished".into(),
                });
            }
            // The first poll went out at once: an approving page (or an emulator in
            // auto-consent mode) may already have answered. Then poll at the given interval.
            tokio::time::sleep(interval).await;
        }
    }

    /// The `/authorize` URL a person opens to sign in (authorization code flow with PKCE).
    /// `login_hint` pre-fills the account the bridge expects.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        pkce: &Pkce,
        login_hint: Option<&str>,
    ) -> Result<String, GraphError> {
        let mut params = vec![
            ("client_id", self.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri),
            ("response_mode", "query"),
            ("scope", self.scopes.as_str()),
            ("state", state),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if let Some(hint) = login_hint {
            params.push(("login_hint", hint));
        }
        reqwest::Url::parse_with_params(&format!("{}/authorize", self.endpoint), &params)
            .map(String::from)
            .map_err(|e| GraphError::Decode(format!("login_url is not a URL: {e}")))
    }

    /// Redeems the code that `/authorize` sent to `redirect_uri`.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce: &Pkce,
    ) -> Result<TokenSet, GraphError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", self.client_id.as_str()),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", pkce.verifier.as_str()),
            ("scope", self.scopes.as_str()),
        ];
        self.token_request(&form).await
    }

    /// Exchanges a refresh token. Microsoft rotates refresh tokens: the answer's new one must
    /// be stored, the old one may stop working.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, GraphError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("refresh_token", refresh_token),
            ("scope", self.scopes.as_str()),
        ];
        let mut tokens = self.token_request(&form).await?;
        if tokens.refresh_token.is_empty() {
            tokens.refresh_token = refresh_token.to_string();
        }
        Ok(tokens)
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenSet, GraphError> {
        let response = self
            .http
            .post(format!("{}/token", self.endpoint))
            .form(form)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(oauth_error(&body));
        }
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| GraphError::Decode(e.to_string()))?;
        Ok(TokenSet {
            access_token: token.access_token,
            refresh_token: token.refresh_token.unwrap_or_default(),
            expires_at: crate::mailstore::now_unix() + token.expires_in.unwrap_or(3600) as i64,
        })
    }
}

/// A PKCE pair (RFC 7636): the verifier stays with the bridge, the S256 challenge goes to
/// `/authorize`, so a stolen code is useless without the verifier.
#[derive(Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        use base64::Engine;
        use rand::RngCore;
        use sha2::{Digest, Sha256};
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let verifier = b64.encode(raw);
        let challenge = b64.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Pkce::new()
    }
}

impl std::fmt::Debug for Pkce {
    // The verifier is a secret until the code is redeemed: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

fn oauth_error(body: &[u8]) -> GraphError {
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) => GraphError::OAuth {
            error: e.error,
            description: e.error_description.unwrap_or_default(),
        },
        Err(_) => GraphError::OAuth {
            error: "invalid_response".into(),
            description: String::from_utf8_lossy(body).chars().take(200).collect(),
        },
    }
}
