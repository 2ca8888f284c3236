//! The running bridge: configuration, store, secrets and one sync engine per signed-in
//! Microsoft 365 account, shared by the IMAP, SMTP and HTTP fronts.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use crate::config::Config;
use crate::graph::{
    self, GraphClient, GraphError, OAuthClient, RequestBudget, TokenPersist, TokenSet,
};
use crate::mailstore::{accounts, MailboxRecord, SigninState, Store, StoreError, StoredTokens};
use crate::secrets::SecretBox;
use crate::sync::MailboxSync;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("mailbox {0} has not been signed in to Microsoft yet: run `graphbridge mailbox signin {0}`")]
    NotSignedIn(String),
    #[error("the stored sign-in of {0} cannot be read (was the encryption key changed?)")]
    Unreadable(String),
}

pub struct Bridge {
    pub config: Config,
    pub store: Store,
    pub secrets: SecretBox,
    http: reqwest::Client,
    syncs: RwLock<HashMap<i64, Arc<MailboxSync>>>,
    /// Wakes the outbox worker when SMTP queued a message.
    pub outbox_ready: Notify,
}

impl Bridge {
    pub fn new(config: Config, store: Store, secrets: SecretBox) -> Result<Arc<Bridge>, BridgeError> {
        Ok(Arc::new(Bridge {
            config,
            store,
            secrets,
            http: graph::http_client()?,
            syncs: RwLock::new(HashMap::new()),
            outbox_ready: Notify::new(),
        }))
    }

    pub fn oauth(&self) -> OAuthClient {
        OAuthClient::new(self.http.clone(), &self.config.graph)
    }

    /// The sync engine that serves `mailbox` (an alias is served by its primary's).
    pub fn sync_for(&self, mailbox: &MailboxRecord) -> Option<Arc<MailboxSync>> {
        self.syncs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&mailbox.account_id())
            .cloned()
    }

    pub fn all_syncs(&self) -> Vec<Arc<MailboxSync>> {
        self.syncs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Builds the Graph client and sync engine of a signed-in account from its stored tokens.
    pub async fn attach_account(&self, account_id: i64) -> Result<Arc<MailboxSync>, BridgeError> {
        if let Some(existing) = self
            .syncs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&account_id)
        {
            return Ok(existing.clone());
        }
        let (record, stored) = self
            .store
            .call(move |c| {
                Ok((
                    accounts::mailbox_by_id(c, account_id)?,
                    accounts::load_tokens(c, account_id)?,
                ))
            })
            .await?;
        let Some(stored) = stored else {
            return Err(BridgeError::NotSignedIn(record.address));
        };
        let tokens = self.unseal_tokens(&stored).ok_or_else(|| BridgeError::Unreadable(record.address.clone()))?;
        let client = GraphClient::new(
            self.http.clone(),
            &self.config.graph.base_url,
            self.oauth(),
            tokens,
            self.token_persister(account_id),
            self.config.graph.max_concurrent_requests,
            self.request_budget(),
        );
        let sync = MailboxSync::new(account_id, Arc::new(client), self.store.clone());
        self.syncs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account_id, sync.clone());
        Ok(sync)
    }

    fn request_budget(&self) -> RequestBudget {
        let (count, window) = graph::parse_budget(&self.config.graph.request_budget)
            .unwrap_or((9500, std::time::Duration::from_secs(600)));
        RequestBudget::new(count, window)
    }

    /// Signs a mailbox in with the device code flow: `show` receives the URL and code a person
    /// must open; returns once Microsoft issued tokens, which are stored sealed.
    pub async fn signin_device_code(
        &self,
        mailbox_id: i64,
        show: impl FnOnce(&graph::types::DeviceCode),
    ) -> Result<(), BridgeError> {
        let oauth = self.oauth();
        let code = oauth.start_device_code().await?;
        show(&code);
        let tokens = oauth.finish_device_code(&code).await?;
        self.save_tokens(mailbox_id, &tokens).await?;
        Ok(())
    }

    async fn save_tokens(&self, mailbox_id: i64, tokens: &TokenSet) -> Result<(), BridgeError> {
        let sealed = seal_tokens(&self.secrets, tokens);
        self.store
            .call(move |c| {
                accounts::save_tokens(c, mailbox_id, &sealed)?;
                accounts::set_signin_state(c, mailbox_id, SigninState::SignedIn, None)
            })
            .await?;
        Ok(())
    }

    fn unseal_tokens(&self, stored: &StoredTokens) -> Option<TokenSet> {
        let open = |b: &[u8]| self.secrets.open(b).ok().and_then(|v| String::from_utf8(v).ok());
        Some(TokenSet {
            refresh_token: open(&stored.refresh_token)?,
            access_token: stored.access_token.as_deref().and_then(open).unwrap_or_default(),
            expires_at: if stored.access_token.is_some() {
                stored.access_expires_at.unwrap_or(0)
            } else {
                0
            },
        })
    }

    /// Stores every rotated token set at once, before it is used (ARCHITECTURE: tokens are
    /// encrypted at rest; a crash must not leave only a revoked refresh token behind).
    fn token_persister(&self, account_id: i64) -> TokenPersist {
        let store = self.store.clone();
        let secrets = self.secrets.clone();
        Arc::new(move |tokens: &TokenSet| {
            let sealed = seal_tokens(&secrets, tokens);
            store
                .call_blocking(|c| accounts::save_tokens(c, account_id, &sealed))
                .map_err(|e| e.to_string())
        })
    }
}

fn seal_tokens(secrets: &SecretBox, tokens: &TokenSet) -> StoredTokens {
    StoredTokens {
        refresh_token: secrets.seal(tokens.refresh_token.as_bytes()),
        access_token: Some(secrets.seal(tokens.access_token.as_bytes())),
        access_expires_at: Some(tokens.expires_at),
    }
}
