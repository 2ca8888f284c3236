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
    /// Largest message accepted, in bytes (Exchange Online's default is 35 MB).
    pub max_message_bytes: usize,
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
        }
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
            max_message_bytes: 35 * 1024 * 1024,
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
