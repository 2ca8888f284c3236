//! Configuration: a TOML file for `serve`, built in code for `demo`. Every field has a default,
//! so an empty file runs the bridge on loopback against Microsoft's real endpoints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the store, keys and certificates live.
    pub data_dir: PathBuf,
    pub imap: ImapConfig,
    pub smtp: SmtpConfig,
    pub http: HttpConfig,
    pub graph: GraphConfig,
    pub sync: SyncConfig,
    pub tls: TlsConfig,
    pub submission: SubmissionConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImapConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub listen: SocketAddr,
    /// Implicit TLS (submissions, RFC 8314); None turns that port off.
    pub tls_listen: Option<SocketAddr>,
    /// Largest message accepted, in bytes (Exchange Online's default is 35 MB). A mailbox's
    /// policy may lower it.
    pub max_message_bytes: usize,
    /// AUTH is offered only after STARTTLS (or on the implicit TLS port)...
    pub require_tls_for_auth: bool,
    /// ...except for clients on the loopback interface, which cannot be overheard.
    pub allow_plain_auth_on_loopback: bool,
    /// How long the end of DATA waits for Graph to accept the message, so that a permanent
    /// refusal can still be answered with 5xx. The message is queued either way.
    pub send_wait_secs: u64,
}

/// The certificate the IMAP and SMTP servers present. Without `cert`/`key` a self-signed one
/// is made at first start and kept in the data folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// Names written into the self-signed certificate.
    pub hostnames: Vec<String>,
}

/// Sending: download links, retries, activities, and the per-mailbox Microsoft 365 rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubmissionConfig {
    /// Base URL under which recipients reach download links; empty: `http://<http.listen>`.
    pub public_url: String,
    /// Days a download link stays valid.
    pub link_validity_days: u32,
    /// Hours a message that Graph keeps refusing for transient reasons is retried before a
    /// delivery status notification goes to the sender.
    pub retry_hours: u64,
    /// Every activity is POSTed here as JSON, retried until a 2xx answer.
    pub activity_webhook: Option<String>,
    /// The rules every mailbox follows unless `mailboxes` overrides them.
    pub policy: MailboxPolicy,
    /// Per-mailbox overrides, keyed by mailbox address.
    pub mailboxes: std::collections::HashMap<String, PolicyOverride>,
}

/// Where the copy of a sent message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentCopy {
    /// Graph saves it in Sent Items; a client's APPEND of the same message is recognised.
    Graph,
    /// The client's APPEND is the only copy.
    Client,
}

/// What happens to attachments of a message too large for one Graph request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LargeAttachments {
    /// Draft plus upload sessions.
    Upload,
    /// Replaced by a download link.
    Links,
}

/// The Microsoft 365 rules of one mailbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailboxPolicy {
    /// Recipients per message (To + Cc + Bcc + envelope, de-duplicated).
    pub max_recipients: usize,
    /// Largest message, in bytes.
    pub max_message_bytes: usize,
    /// The N-th copy of the same attachments to different recipients counts as serial mail.
    pub serial_copies: usize,
    /// ... within this many minutes.
    pub serial_window_mins: u64,
    /// Serial or bulk mail with attachments gets download links instead of a refusal.
    pub auto_links: bool,
    /// Refuse every message with attachments (the administrator's `attachment_policy = refuse`).
    pub refuse_attachments: bool,
    pub large_attachments: LargeAttachments,
    pub sent_copy: SentCopy,
    /// Book mail that reaches Sent Items without passing the bridge (Outlook, phones).
    pub book_external_sends: bool,
    /// What `_agreementLink` recipients must accept before downloading.
    pub agreement_text: String,
    /// Exchange Online's sending pace, per Graph account.
    pub messages_per_minute: usize,
    pub recipients_per_day: usize,
}

/// A mailbox's departures from the default policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyOverride {
    pub max_recipients: Option<usize>,
    pub max_message_bytes: Option<usize>,
    pub serial_copies: Option<usize>,
    pub serial_window_mins: Option<u64>,
    pub auto_links: Option<bool>,
    pub large_attachments: Option<LargeAttachments>,
    pub sent_copy: Option<SentCopy>,
    pub book_external_sends: Option<bool>,
    pub agreement_text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// How browsers reach the HTTP side (`https://bridge.example.com`); empty: this machine's
    /// loopback, `http://localhost:PORT`. Sign-in with Microsoft redirects back to it.
    pub public_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphConfig {
    /// Graph's base URL, up to and including the version.
    pub base_url: String,
    /// The identity platform's base URL (the tenant and `/oauth2/v2.0/...` follow).
    pub login_url: String,
    /// `common`, `organizations`, `consumers`, or a tenant id or domain.
    pub tenant: String,
    /// The application (client) id registered in Microsoft Entra.
    pub client_id: String,
    pub scopes: Vec<String>,
    /// Where Microsoft sends the browser back after a web sign-in; empty:
    /// `{http.public_url}/oauth/callback`. Must be registered with the Entra app.
    pub redirect_uri: String,
    /// Most requests in flight per mailbox (Microsoft allows 4).
    pub max_concurrent_requests: usize,
    /// Requests per window per mailbox, as `COUNT/SECONDS`. Microsoft allows 10,000 per 600 s;
    /// the default keeps a margin.
    pub request_budget: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// How often folders that a client has selected or idles in are polled, in seconds.
    pub poll_interval_secs: u64,
    /// How often every folder (and the folder tree) is polled, in seconds.
    pub full_poll_interval_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("graphbridge-data"),
            imap: ImapConfig::default(),
            smtp: SmtpConfig::default(),
            http: HttpConfig::default(),
            graph: GraphConfig::default(),
            sync: SyncConfig::default(),
            tls: TlsConfig::default(),
            submission: SubmissionConfig::default(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            hostnames: vec!["localhost".into(), "127.0.0.1".into()],
        }
    }
}

impl Default for SubmissionConfig {
    fn default() -> Self {
        SubmissionConfig {
            public_url: String::new(),
            link_validity_days: 14,
            retry_hours: 24,
            activity_webhook: None,
            policy: MailboxPolicy::default(),
            mailboxes: std::collections::HashMap::new(),
        }
    }
}

impl Default for MailboxPolicy {
    fn default() -> Self {
        MailboxPolicy {
            max_recipients: 10,
            max_message_bytes: 35 * 1024 * 1024,
            serial_copies: 3,
            serial_window_mins: 10,
            auto_links: false,
            refuse_attachments: false,
            large_attachments: LargeAttachments::Upload,
            sent_copy: SentCopy::Graph,
            book_external_sends: true,
            agreement_text: "I accept the terms under which these files are provided.".into(),
            messages_per_minute: 30,
            recipients_per_day: 10_000,
        }
    }
}

impl SubmissionConfig {
    /// The policy of the mailbox `address`: the defaults with its overrides applied.
    pub fn policy_for(&self, address: &str) -> MailboxPolicy {
        let mut policy = self.policy.clone();
        let found = self
            .mailboxes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(address));
        if let Some((_, o)) = found {
            let p = &mut policy;
            p.max_recipients = o.max_recipients.unwrap_or(p.max_recipients);
            p.max_message_bytes = o.max_message_bytes.unwrap_or(p.max_message_bytes);
            p.serial_copies = o.serial_copies.unwrap_or(p.serial_copies);
            p.serial_window_mins = o.serial_window_mins.unwrap_or(p.serial_window_mins);
            p.auto_links = o.auto_links.unwrap_or(p.auto_links);
            p.large_attachments = o.large_attachments.unwrap_or(p.large_attachments);
            p.sent_copy = o.sent_copy.unwrap_or(p.sent_copy);
            p.book_external_sends = o.book_external_sends.unwrap_or(p.book_external_sends);
            if let Some(text) = &o.agreement_text {
                p.agreement_text = text.clone();
            }
        }
        policy
    }
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 1143)),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 1587)),
            tls_listen: Some(SocketAddr::from(([127, 0, 0, 1], 1465))),
            max_message_bytes: 35 * 1024 * 1024,
            require_tls_for_auth: true,
            allow_plain_auth_on_loopback: true,
            send_wait_secs: 20,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
        }
    }
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            base_url: "https://graph.microsoft.com/v1.0".into(),
            login_url: "https://login.microsoftonline.com".into(),
            tenant: "common".into(),
            client_id: String::new(),
            scopes: vec![
                "offline_access".into(),
                "https://graph.microsoft.com/Mail.ReadWrite".into(),
                "https://graph.microsoft.com/Mail.Send".into(),
            ],
            redirect_uri: String::new(),
            max_concurrent_requests: 4,
            request_budget: "9500/600".into(),
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            poll_interval_secs: 10,
            full_poll_interval_secs: 60,
        }
    }
}

impl SyncConfig {
    pub fn schedule(&self) -> crate::sync::PollSchedule {
        crate::sync::PollSchedule {
            hot: std::time::Duration::from_secs(self.poll_interval_secs.max(1)),
            full: std::time::Duration::from_secs(self.full_poll_interval_secs.max(1)),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Config::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Checks what the TOML types cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if crate::graph::parse_budget(&self.graph.request_budget).is_none() {
            return Err(format!(
                "graph.request_budget must look like COUNT/SECONDS (e.g. 9500/600), not {:?}",
                self.graph.request_budget
            ));
        }
        if self.graph.max_concurrent_requests == 0 {
            return Err("graph.max_concurrent_requests must be at least 1".into());
        }
        Ok(())
    }

    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("graphbridge.sqlite3")
    }

    /// Base URL of download links, without a trailing slash.
    pub fn public_url(&self) -> String {
        if self.submission.public_url.is_empty() {
            format!("http://{}", self.http.listen)
        } else {
            self.submission.public_url.trim_end_matches('/').to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::parse("").expect("empty config parses");
        assert_eq!(config.imap.listen.port(), 1143);
        assert_eq!(config.graph.tenant, "common");
        assert_eq!(config.graph.max_concurrent_requests, 4);
        assert!(crate::graph::parse_budget(&config.graph.request_budget).is_some());
    }

    #[test]
    fn bad_budgets_are_refused() {
        let config = Config::parse("[graph]\nrequest_budget = \"lots\"\n").expect("parses");
        assert!(config.validate().is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(Config::parse("[imap]\nlisten = \"127.0.0.1:1\"\nport = 3\n").is_err());
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../graphbridge.example.toml");
        let config = Config::parse(text).expect("example config parses");
        assert_eq!(config.graph.base_url, "https://graph.microsoft.com/v1.0");
    }
}
