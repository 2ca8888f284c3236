//! "Sign in with Microsoft" from the web admin and the JSON API: the authorization code flow
//! with PKCE, redirecting back to the bridge's `/oauth/callback`.
//!
//! The callback is not authenticated by the admin's session cookie: Microsoft's redirect is a
//! cross-site navigation, on which a `SameSite=Strict` cookie is not sent. It is authenticated
//! by `state` instead: random, single-use, short-lived, and known only to whoever started the
//! sign-in; the PKCE verifier never leaves the bridge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bridge::{Bridge, BridgeError};
use crate::graph::Pkce;
use crate::mailstore::{accounts, MailboxRecord};

use super::core::random_token;

/// Microsoft's authorization codes live about 10 minutes; a sign-in left open longer restarts.
const PENDING_LIFETIME: Duration = Duration::from_secs(15 * 60);
const MAX_PENDING: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum SigninError {
    #[error("graph.client_id is not set in the configuration: register an app in Microsoft Entra (see README)")]
    NoClientId,
    #[error("this sign-in link is unknown or has expired; start the sign-in again")]
    UnknownState,
    #[error("Microsoft did not sign in: {0}")]
    Refused(String),
    #[error(transparent)]
    Bridge(#[from] BridgeError),
}

struct Pending {
    mailbox: MailboxRecord,
    pkce: Pkce,
    redirect_uri: String,
    /// Where the admin continues once signed in.
    return_to: String,
    started: Instant,
}

/// A finished sign-in.
pub struct Finished {
    pub mailbox: MailboxRecord,
    pub return_to: String,
}

#[derive(Default)]
pub struct PendingSignins {
    pending: Mutex<HashMap<String, Pending>>,
}

impl PendingSignins {
    /// Starts a sign-in of `mailbox` (a Microsoft 365 mailbox, not an alias) and returns the
    /// URL to send the browser to.
    pub fn start(
        &self,
        bridge: &Bridge,
        mailbox: MailboxRecord,
        redirect_uri: &str,
        return_to: String,
    ) -> Result<String, SigninError> {
        if bridge.config.graph.client_id.is_empty() {
            return Err(SigninError::NoClientId);
        }
        let state = random_token(24);
        let pkce = Pkce::new();
        let url = bridge
            .oauth()
            .authorize_url(redirect_uri, &state, &pkce, Some(&mailbox.address))
            .map_err(BridgeError::from)?;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.started.elapsed() < PENDING_LIFETIME);
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            state,
            Pending {
                mailbox,
                pkce,
                redirect_uri: redirect_uri.to_string(),
                return_to,
                started: Instant::now(),
            },
        );
        Ok(url)
    }

    /// Handles Microsoft's redirect: redeems the code, stores the tokens sealed and (re)starts
    /// the account's sync.
    pub async fn finish(
        &self,
        bridge: &Arc<Bridge>,
        params: &HashMap<String, String>,
    ) -> Result<Finished, SigninError> {
        let state = params.get("state").map(String::as_str).unwrap_or("");
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(state)
            .filter(|p| p.started.elapsed() < PENDING_LIFETIME)
            .ok_or(SigninError::UnknownState)?;
        match redeem(bridge, &pending, params).await {
            Ok(()) => Ok(Finished {
                mailbox: pending.mailbox,
                return_to: pending.return_to,
            }),
            Err(e) => {
                record_error(bridge, &pending.mailbox, &e).await;
                Err(e)
            }
        }
    }
}

async fn redeem(
    bridge: &Arc<Bridge>,
    pending: &Pending,
    params: &HashMap<String, String>,
) -> Result<(), SigninError> {
    if let Some(error) = params.get("error") {
        let description = params
            .get("error_description")
            .map(String::as_str)
            .unwrap_or("");
        return Err(SigninError::Refused(format!("{error}: {description}")));
    }
    let code = params
        .get("code")
        .ok_or_else(|| SigninError::Refused("no code in the answer".into()))?;
    let id = pending.mailbox.id;
    bridge
        .signin_with_code(id, code, &pending.redirect_uri, &pending.pkce)
        .await?;
    bridge.restart_sync(id).await?;
    Ok(())
}

/// Keeps the mailbox's sign-in state but shows why the last attempt failed.
async fn record_error(bridge: &Bridge, mailbox: &MailboxRecord, error: &SigninError) {
    let id = mailbox.id;
    let text = error.to_string();
    let result = bridge
        .store
        .call(move |c| {
            let state = accounts::mailbox_by_id(c, id)?.signin_state;
            accounts::set_signin_state(c, id, state, Some(&text))
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(mailbox = %mailbox.address, error = %e, "cannot record the sign-in error");
    }
}
