//! The Graph client: the only code that knows Graph's URLs and JSON.

pub mod batch;
mod budget;
mod client;
pub mod mail;
pub mod oauth;
pub mod types;

pub use budget::{parse_budget, RequestBudget};
pub use client::{Body, GraphClient, TokenPersist};
pub use oauth::{OAuthClient, Pkce, TokenSet};

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("cannot reach Graph: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("Graph answered {status} {code}: {message}")]
    Status {
        status: u16,
        code: String,
        message: String,
    },
    #[error("sign-in refused ({error}): {description}{}", signin_hint(.error))]
    OAuth { error: String, description: String },
    #[error("unexpected answer from Graph: {0}")]
    Decode(String),
    #[error("cannot store the new tokens: {0}")]
    TokenStore(String),
    #[error("the Graph client is shutting down")]
    Closed,
    /// A transport failure shared by several requests (those of one `$batch`), as text:
    /// the underlying error cannot be copied.
    #[error("cannot reach Graph: {0}")]
    Unreachable(String),
}

/// What to do about a dead sign-in, added to the message so every place that shows it names
/// the fix.
fn signin_hint(error: &str) -> &'static str {
    if error == "invalid_grant" {
        "; the mailbox needs a new sign-in: `graphbridge mailbox signin ADDRESS` or the web admin"
    } else {
        ""
    }
}

impl GraphError {
    /// True when the mailbox must be signed in again (refresh token revoked or expired).
    pub fn needs_signin(&self) -> bool {
        matches!(self, GraphError::OAuth { error, .. } if error == "invalid_grant")
    }

    /// True when a delta link is dead and the folder needs a full reconciliation.
    pub fn is_sync_state_lost(&self) -> bool {
        match self {
            GraphError::Status { status, code, .. } => {
                *status == 410
                    || code.eq_ignore_ascii_case("syncStateNotFound")
                    || code.eq_ignore_ascii_case("resyncRequired")
            }
            _ => false,
        }
    }

    /// The same error for another request that failed with it (every request of a `$batch`
    /// that could not be sent). Keeps what callers look at: status and code, sign-in.
    pub fn duplicate(&self) -> GraphError {
        match self {
            GraphError::Transport(e) => GraphError::Unreachable(e.to_string()),
            GraphError::Status {
                status,
                code,
                message,
            } => GraphError::Status {
                status: *status,
                code: code.clone(),
                message: message.clone(),
            },
            GraphError::OAuth { error, description } => GraphError::OAuth {
                error: error.clone(),
                description: description.clone(),
            },
            GraphError::Decode(text) => GraphError::Decode(text.clone()),
            GraphError::TokenStore(text) => GraphError::TokenStore(text.clone()),
            GraphError::Closed => GraphError::Closed,
            GraphError::Unreachable(text) => GraphError::Unreachable(text.clone()),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, GraphError::Status { status: 404, .. })
    }
}

/// Builds the HTTP client used for Graph and sign-in.
pub fn http_client() -> Result<reqwest::Client, GraphError> {
    crate::tls::install_crypto_provider();
    Ok(reqwest::Client::builder()
        .user_agent(concat!("graphbridge/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(std::time::Duration::from_secs(120))
        .build()?)
}
