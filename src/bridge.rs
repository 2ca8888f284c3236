//! The running bridge: configuration, store, secrets and one sync engine per signed-in
//! Microsoft 365 account, shared by the IMAP, SMTP and HTTP fronts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::graph::{
    self, GraphClient, GraphError, OAuthClient, Pkce, RequestBudget, TokenPersist, TokenSet,
};
use crate::imap::fetch::structure_cache::{self, StructureCache};
use crate::mailstore::{accounts, MailboxRecord, SigninState, Store, StoreError, StoredTokens};
use crate::secrets::SecretBox;
use crate::sync::{MailboxSync, PollSchedule};

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(
        "mailbox {0} has not been signed in to Microsoft yet: run `graphbridge mailbox signin {0}`"
    )]
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
    /// Stops the sync loops started while the bridge runs (see `restart_sync`).
    loop_stops: Mutex<HashMap<i64, watch::Sender<bool>>>,
    /// The bridge's shutdown signal, once the servers run.
    shutdown: Mutex<Option<watch::Receiver<bool>>>,
    /// Wakes the outbox worker when SMTP queued a message.
    pub outbox_ready: Notify,
    /// ENVELOPE and BODYSTRUCTURE of messages fetched lately, shared by every IMAP session.
    pub structures: StructureCache,
}

impl Bridge {
    pub fn new(
        config: Config,
        store: Store,
        secrets: SecretBox,
    ) -> Result<Arc<Bridge>, BridgeError> {
        Ok(Arc::new(Bridge {
            config,
            store,
            secrets,
            http: graph::http_client()?,
            syncs: RwLock::new(HashMap::new()),
            loop_stops: Mutex::new(HashMap::new()),
            shutdown: Mutex::new(None),
            outbox_ready: Notify::new(),
            structures: StructureCache::new(structure_cache::CAPACITY),
        }))
    }

    pub fn oauth(&self) -> OAuthClient {
        OAuthClient::new(self.http.clone(), &self.config.graph)
    }

    /// The sync engine that serves `mailbox` (an alias is served by its primary's); None
    /// when there is none or Microsoft refused its sign-in (then it is detached).
    pub fn sync_for(&self, mailbox: &MailboxRecord) -> Option<Arc<MailboxSync>> {
        let account = mailbox.account_id();
        let sync = self
            .syncs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&account)
            .cloned()?;
        if sync.needs_signin() {
            self.detach_account(account);
            return None;
        }
        Some(sync)
    }

    pub fn all_syncs(&self) -> Vec<Arc<MailboxSync>> {
        self.syncs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The sync engine that serves `mailbox`, attached from the stored tokens (with its sync
    /// loop) when there is none yet: a sign-in made by the CLI while the bridge runs is picked
    /// up by the first client or message that needs it.
    pub async fn sync_or_attach(
        &self,
        mailbox: &MailboxRecord,
    ) -> Result<Arc<MailboxSync>, BridgeError> {
        if let Some(sync) = self.sync_for(mailbox) {
            return Ok(sync);
        }
        let account_id = mailbox.account_id();
        let (sync, created) = self.attach(account_id).await?;
        if created {
            let schedule = self.poll_schedule(account_id).await;
            tokio::spawn(sync.clone().run(schedule, self.loop_stop(account_id)));
        }
        Ok(sync)
    }

    /// Builds the Graph client and sync engine of a signed-in account from its stored tokens.
    pub async fn attach_account(&self, account_id: i64) -> Result<Arc<MailboxSync>, BridgeError> {
        self.attach(account_id).await.map(|(sync, _)| sync)
    }

    /// The account's sync engine, and whether this call made it.
    async fn attach(&self, account_id: i64) -> Result<(Arc<MailboxSync>, bool), BridgeError> {
        if let Some(existing) = self
            .syncs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&account_id)
        {
            return Ok((existing.clone(), false));
        }
        let (record, stored) = self.stored_signin(account_id).await?;
        let Some(stored) = stored else {
            return Err(BridgeError::NotSignedIn(record.address));
        };
        // Tokens Microsoft refused stay stored until a new sign-in replaces them: unusable.
        if record.signin_state == SigninState::NeedsSignin {
            return Err(BridgeError::NotSignedIn(record.address));
        }
        let tokens = self
            .unseal_tokens(&stored)
            .ok_or_else(|| BridgeError::Unreadable(record.address.clone()))?;
        let client = GraphClient::new(
            self.http.clone(),
            &self.config.graph.base_url,
            self.oauth(),
            tokens,
            self.token_persister(account_id),
            self.config.graph.max_concurrent_requests,
            self.request_budget(),
        );
        // Two callers (the outbox and a login, say) may build a client for the same account at
        // once; only the first is kept. Two clients would each allow the mailbox's 4 requests
        // in flight, and each rotate the same refresh token.
        let mut syncs = self.syncs.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = syncs.get(&account_id) {
            return Ok((existing.clone(), false));
        }
        let sync = MailboxSync::new(account_id, Arc::new(client), self.store.clone());
        if !self.config.http.public_url.is_empty() {
            sync.enable_push(&self.config.http.public_url);
        }
        syncs.insert(account_id, sync.clone());
        Ok((sync, true))
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

    /// Whether Microsoft still takes the account's stored sign-in: the refresh token is used
    /// once and the rotated tokens stored. False when there is none or Microsoft refused it.
    pub async fn stored_signin_works(&self, account_id: i64) -> Result<bool, BridgeError> {
        let (record, stored) = self.stored_signin(account_id).await?;
        let Some(tokens) = stored.as_ref().and_then(|s| self.unseal_tokens(s)) else {
            return Ok(false);
        };
        if record.signin_state == SigninState::NeedsSignin {
            return Ok(false);
        }
        match self.oauth().refresh(&tokens.refresh_token).await {
            Ok(fresh) => {
                self.save_tokens(account_id, &fresh).await?;
                Ok(true)
            }
            Err(e) if e.needs_signin() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Signs a mailbox in with the code that `/authorize` sent to `redirect_uri`.
    pub async fn signin_with_code(
        &self,
        mailbox_id: i64,
        code: &str,
        redirect_uri: &str,
        pkce: &Pkce,
    ) -> Result<(), BridgeError> {
        let tokens = self.oauth().exchange_code(code, redirect_uri, pkce).await?;
        self.save_tokens(mailbox_id, &tokens).await
    }

    /// Remembers the shutdown signal so that sync loops started later stop with the bridge.
    pub fn set_shutdown(&self, shutdown: watch::Receiver<bool>) {
        *self.shutdown.lock().unwrap_or_else(|p| p.into_inner()) = Some(shutdown);
    }

    /// How often an account is polled: its own poll interval setting, or the configured one.
    pub async fn poll_schedule(&self, account_id: i64) -> PollSchedule {
        let own = self
            .store
            .call(move |c| accounts::mailbox_settings(c, account_id))
            .await
            .ok()
            .and_then(|s| s.poll_interval_secs);
        let mut schedule = self.config.sync.schedule();
        if let Some(secs) = own {
            schedule.hot = Duration::from_secs(secs.max(1));
        }
        schedule
    }

    /// After a (new) sign-in while the bridge runs: drops the account's old engine, which
    /// holds the old tokens, and starts a fresh one with its sync loop.
    pub async fn restart_sync(self: &Arc<Self>, account_id: i64) -> Result<(), BridgeError> {
        self.detach_account(account_id);
        let sync = self.attach_account(account_id).await?;
        let schedule = self.poll_schedule(account_id).await;
        tokio::spawn(sync.run(schedule, self.loop_stop(account_id)));
        Ok(())
    }

    /// The stop signal for an account's sync loop: fires when the bridge shuts down or when
    /// the account is detached (signed in again, removed).
    pub fn loop_stop(&self, account_id: i64) -> watch::Receiver<bool> {
        let (stop, stopped) = watch::channel(false);
        let shutdown = self
            .shutdown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let previous = self
            .loop_stops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account_id, stop);
        if let Some(previous) = previous {
            let _ = previous.send(true);
        }
        stop_on_either(stopped, shutdown)
    }

    /// Forgets an account's sync engine and stops a loop `restart_sync` started for it.
    pub fn detach_account(&self, account_id: i64) {
        self.syncs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&account_id);
        if let Some(stop) = self
            .loop_stops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&account_id)
        {
            let _ = stop.send(true);
        }
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

    /// The account's record and its sealed tokens, if it has any.
    async fn stored_signin(
        &self,
        account_id: i64,
    ) -> Result<(MailboxRecord, Option<StoredTokens>), BridgeError> {
        Ok(self
            .store
            .call(move |c| {
                Ok((
                    accounts::mailbox_by_id(c, account_id)?,
                    accounts::load_tokens(c, account_id)?,
                ))
            })
            .await?)
    }

    fn unseal_tokens(&self, stored: &StoredTokens) -> Option<TokenSet> {
        let open = |b: &[u8]| {
            self.secrets
                .open(b)
                .ok()
                .and_then(|v| String::from_utf8(v).ok())
        };
        Some(TokenSet {
            refresh_token: open(&stored.refresh_token)?,
            access_token: stored
                .access_token
                .as_deref()
                .and_then(open)
                .unwrap_or_default(),
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

/// A receiver that fires when `own` or the bridge's `shutdown` does.
fn stop_on_either(
    mut own: watch::Receiver<bool>,
    shutdown: Option<watch::Receiver<bool>>,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        match shutdown {
            Some(mut shutdown) => tokio::select! {
                _ = own.changed() => {}
                _ = shutdown.changed() => {}
            },
            None => {
                let _ = own.changed().await;
            }
        }
        let _ = tx.send(true);
    });
    rx
}
