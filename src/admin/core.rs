//! Administration shared by the CLI, the web admin and the JSON API: users, mailboxes,
//! assignments, per-mailbox settings and the admin's own credentials. Every rule (one main
//! user, no alias of an alias, valid addresses, …) is checked here once, with a typed error
//! that each front turns into its own answer.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth;
use crate::mailstore::accounts::{
    self, AttachmentPolicy, Credential, DeleteBehaviour, MailboxSettings, RecordTable, Rows,
    SentCopy, SyncProgress,
};
use crate::mailstore::{MailboxRecord, SigninState, Store, StoreError, User};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0} is not an email address")]
    BadAddress(String),
    #[error("no user named {0}")]
    UnknownUser(String),
    #[error("no mailbox {0} has been imported")]
    UnknownMailbox(String),
    #[error("{0} is itself an alias mailbox; an alias must belong to a Microsoft 365 mailbox")]
    AliasOfAlias(String),
    #[error("user names may not be empty or contain '*', '/', spaces or control characters")]
    BadUserName,
    #[error("passwords must not be empty")]
    EmptyPassword,
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("mailbox {0} is already imported")]
    MailboxExists(String),
    #[error("{mailbox} already has a main user ({main}); replace them explicitly to make {user} the main user (CLI: --replace-main)")]
    SecondMain {
        mailbox: String,
        main: String,
        user: String,
    },
    #[error(
        "{user} is the main user of {mailbox}; make another assigned user the main user first"
    )]
    LastMain { mailbox: String, user: String },
    #[error("{user} is not assigned to {mailbox}")]
    NotAssigned { mailbox: String, user: String },
    #[error("{mailbox} has alias mailboxes ({aliases}); remove them first")]
    HasAliases { mailbox: String, aliases: String },
    #[error("{alias} is an alias mailbox: sign in {primary} instead")]
    SigninAlias { alias: String, primary: String },
    #[error("unknown setting {0}; settings are: {keys}", keys = SETTING_KEYS.join(", "))]
    UnknownSetting(String),
    #[error("{key} cannot be {value:?}: expected {expected}")]
    BadSetting {
        key: String,
        value: String,
        expected: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
}

/// What kind of mistake an error is, so the HTTP side can pick a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Invalid,
    NotFound,
    Conflict,
    Internal,
}

impl AdminError {
    pub fn kind(&self) -> ErrorKind {
        use AdminError::*;
        match self {
            BadAddress(_) | BadUserName | EmptyPassword | UnknownSetting(_) | BadSetting { .. } => {
                ErrorKind::Invalid
            }
            UnknownUser(_) | UnknownMailbox(_) | NotAssigned { .. } => ErrorKind::NotFound,
            AliasOfAlias(_)
            | UserExists(_)
            | MailboxExists(_)
            | SecondMain { .. }
            | LastMain { .. }
            | HasAliases { .. }
            | SigninAlias { .. } => ErrorKind::Conflict,
            Store(_) | Auth(_) => ErrorKind::Internal,
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

// ---------------------------------------------------------------------------------------------
// Users

pub fn add_user(store: &Store, name: &str, password: &str) -> AdminResult<User> {
    check_user_name(name)?;
    let hash = hash_password(password)?;
    store.call_blocking(|c| {
        if accounts::user_by_name(c, name)?.is_some() {
            return Err(AdminError::UserExists(name.to_string()));
        }
        Ok(accounts::add_user(c, name, &hash)?)
    })
}

pub fn set_password(store: &Store, name: &str, password: &str) -> AdminResult<()> {
    let hash = hash_password(password)?;
    store.call_blocking(|c| {
        let user = user(c, name)?;
        Ok(accounts::set_password_hash(c, user.id, &hash)?)
    })
}

/// Removes a user. Refused while they are the main user of a mailbox that others share:
/// that mailbox would be left without a main user.
pub fn remove_user(store: &Store, name: &str) -> AdminResult<()> {
    store.call_blocking(|c| {
        let user = user(c, name)?;
        for mailbox in accounts::mailboxes_of_user(c, user.id)? {
            check_not_sole_main(c, &mailbox, &user)?;
        }
        Ok(accounts::remove_user(c, user.id)?)
    })
}

/// A user with the mailboxes they are assigned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserOverview {
    pub name: String,
    /// (address, is main user)
    pub mailboxes: Vec<(String, bool)>,
}

pub fn list_users(store: &Store) -> AdminResult<Vec<UserOverview>> {
    store.call_blocking(|c| {
        let users = accounts::list_users(c)?;
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            let mut mailboxes = Vec::new();
            for mailbox in accounts::mailboxes_of_user(c, user.id)? {
                let is_main = accounts::assignments_of_mailbox(c, mailbox.id)?
                    .iter()
                    .any(|a| a.user_id == user.id && a.is_main);
                mailboxes.push((mailbox.address, is_main));
            }
            out.push(UserOverview {
                name: user.name,
                mailboxes,
            });
        }
        Ok(out)
    })
}

fn check_user_name(name: &str) -> AdminResult<()> {
    let bad = name.is_empty()
        || name.len() > 200
        || name.contains(['*', '/'])
        || name.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        Err(AdminError::BadUserName)
    } else {
        Ok(())
    }
}

fn hash_password(password: &str) -> AdminResult<String> {
    if password.is_empty() {
        return Err(AdminError::EmptyPassword);
    }
    Ok(auth::hash_password(password)?)
}

fn user(c: &rusqlite::Connection, name: &str) -> AdminResult<User> {
    accounts::user_by_name(c, name)?.ok_or_else(|| AdminError::UnknownUser(name.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Mailboxes

/// Imports a Microsoft 365 mailbox by address, or an alias mailbox of an imported one.
pub fn import_mailbox(
    store: &Store,
    address: &str,
    alias_of: Option<&str>,
) -> AdminResult<MailboxRecord> {
    check_address(address)?;
    store.call_blocking(|c| {
        if accounts::mailbox_by_address(c, address)?.is_some() {
            return Err(AdminError::MailboxExists(address.to_string()));
        }
        let primary = match alias_of {
            None => None,
            Some(primary) => {
                let record = mailbox_in(c, primary)?;
                if record.alias_of.is_some() {
                    return Err(AdminError::AliasOfAlias(primary.to_string()));
                }
                Some(record.id)
            }
        };
        Ok(accounts::add_mailbox(c, address, primary)?)
    })
}

pub fn mailbox(store: &Store, address: &str) -> AdminResult<MailboxRecord> {
    store.call_blocking(|c| mailbox_in(c, address))
}

fn mailbox_in(c: &rusqlite::Connection, address: &str) -> AdminResult<MailboxRecord> {
    accounts::mailbox_by_address(c, address)?
        .ok_or_else(|| AdminError::UnknownMailbox(address.to_string()))
}

/// The mailbox whose Microsoft sign-in serves `address`: itself, never an alias.
pub fn signin_target(store: &Store, address: &str) -> AdminResult<MailboxRecord> {
    store.call_blocking(|c| {
        let record = mailbox_in(c, address)?;
        match record.alias_of {
            Some(primary) => Err(AdminError::SigninAlias {
                alias: record.address,
                primary: accounts::mailbox_by_id(c, primary)?.address,
            }),
            None => Ok(record),
        }
    })
}

/// Removes a mailbox with its tokens and cached mail. A Microsoft 365 mailbox with alias
/// mailboxes is refused: removing it would silently take the aliases along.
pub fn remove_mailbox(store: &Store, address: &str) -> AdminResult<MailboxRecord> {
    store.call_blocking(|c| {
        let record = mailbox_in(c, address)?;
        let aliases = accounts::aliases_of(c, record.id)?;
        if !aliases.is_empty() {
            let names: Vec<&str> = aliases.iter().map(|a| a.address.as_str()).collect();
            return Err(AdminError::HasAliases {
                mailbox: record.address,
                aliases: names.join(", "),
            });
        }
        accounts::remove_mailbox(c, record.id)?;
        Ok(record)
    })
}

/// An assigned user as the admin shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedUser {
    pub name: String,
    pub is_main: bool,
}

/// Everything the mailbox list shows about one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxOverview {
    pub record: MailboxRecord,
    /// For an alias mailbox: the address of its Microsoft 365 mailbox.
    pub alias_of: Option<String>,
    /// The sign-in state of the account serving it (the primary's, for an alias).
    pub signin_state: SigninState,
    pub last_error: Option<String>,
    /// Main user first.
    pub users: Vec<AssignedUser>,
    pub progress: SyncProgress,
}

impl MailboxOverview {
    pub fn kind(&self) -> &'static str {
        if self.alias_of.is_some() {
            "alias"
        } else {
            "Microsoft 365"
        }
    }

    pub fn main_user(&self) -> Option<&str> {
        self.users
            .iter()
            .find(|u| u.is_main)
            .map(|u| u.name.as_str())
    }

    /// A short description of where sync stands, for lists.
    pub fn progress_text(&self) -> String {
        progress_text(self.signin_state, &self.progress)
    }
}

pub fn state_text(state: SigninState) -> &'static str {
    match state {
        SigninState::Never => "never signed in",
        SigninState::SignedIn => "signed in",
        SigninState::NeedsSignin => "needs sign-in",
    }
}

pub fn progress_text(state: SigninState, p: &SyncProgress) -> String {
    if state == SigninState::Never && p.folders == 0 {
        return "not started".into();
    }
    if p.folders == 0 {
        return "starting".into();
    }
    let status = if p.is_complete() {
        "complete"
    } else {
        "syncing"
    };
    format!(
        "{status}: folders {}/{}, bodies {}/{}",
        p.folders_synced, p.folders, p.bodies, p.messages
    )
}

pub fn list_mailboxes(store: &Store) -> AdminResult<Vec<MailboxOverview>> {
    store.call_blocking(|c| {
        let records = accounts::list_mailboxes(c)?;
        records.into_iter().map(|r| overview(c, r)).collect()
    })
}

pub fn mailbox_overview(store: &Store, address: &str) -> AdminResult<MailboxOverview> {
    store.call_blocking(|c| {
        let record = mailbox_in(c, address)?;
        overview(c, record)
    })
}

fn overview(c: &rusqlite::Connection, record: MailboxRecord) -> AdminResult<MailboxOverview> {
    let account = match record.alias_of {
        Some(primary) => accounts::mailbox_by_id(c, primary)?,
        None => record.clone(),
    };
    let mut users = Vec::new();
    for a in accounts::assignments_of_mailbox(c, record.id)? {
        if let Some(user) = accounts::user_by_id(c, a.user_id)? {
            users.push(AssignedUser {
                name: user.name,
                is_main: a.is_main,
            });
        }
    }
    Ok(MailboxOverview {
        alias_of: record.alias_of.map(|_| account.address.clone()),
        signin_state: account.signin_state,
        last_error: account.last_error.clone(),
        progress: accounts::sync_progress(c, account.id)?,
        users,
        record,
    })
}

// ---------------------------------------------------------------------------------------------
// Assignments

/// How an assignment treats the main user (the crown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An ordinary user; the first user of a mailbox becomes its main user all the same.
    Member,
    /// The main user; refused when the mailbox already has another one.
    Main,
    /// The main user, taking the crown from the current one (who stays assigned).
    ReplaceMain,
}

pub fn assign(store: &Store, address: &str, user_name: &str, role: Role) -> AdminResult<()> {
    store.call_blocking(|c| {
        let mailbox = mailbox_in(c, address)?;
        let user = user(c, user_name)?;
        let assigned = accounts::assignments_of_mailbox(c, mailbox.id)?;
        let current_main = assigned.iter().find(|a| a.is_main);
        let already = assigned.iter().find(|a| a.user_id == user.id);
        let main = match (role, current_main) {
            // A mailbox always has one main user: the first one assigned.
            (_, None) => true,
            (Role::Member, Some(m)) => m.user_id == user.id,
            (Role::ReplaceMain, Some(_)) => true,
            (Role::Main, Some(m)) if m.user_id == user.id => true,
            (Role::Main, Some(m)) => {
                let main = accounts::user_by_id(c, m.user_id)?
                    .map(|u| u.name)
                    .unwrap_or_default();
                return Err(AdminError::SecondMain {
                    mailbox: mailbox.address,
                    main,
                    user: user.name,
                });
            }
        };
        if already.is_some_and(|a| a.is_main == main) {
            return Ok(());
        }
        Ok(accounts::assign(c, mailbox.id, user.id, main)?)
    })
}

/// Takes a user off a mailbox. The main user can leave only as the last user: otherwise
/// the others would be left without a main user.
pub fn unassign(store: &Store, address: &str, user_name: &str) -> AdminResult<()> {
    store.call_blocking(|c| {
        let mailbox = mailbox_in(c, address)?;
        let user = user(c, user_name)?;
        check_not_sole_main(c, &mailbox, &user)?;
        if !accounts::unassign(c, mailbox.id, user.id)? {
            return Err(AdminError::NotAssigned {
                mailbox: mailbox.address,
                user: user.name,
            });
        }
        Ok(())
    })
}

fn check_not_sole_main(
    c: &rusqlite::Connection,
    mailbox: &MailboxRecord,
    user: &User,
) -> AdminResult<()> {
    let assigned = accounts::assignments_of_mailbox(c, mailbox.id)?;
    let is_main = assigned.iter().any(|a| a.user_id == user.id && a.is_main);
    if is_main && assigned.len() > 1 {
        return Err(AdminError::LastMain {
            mailbox: mailbox.address.clone(),
            user: user.name.clone(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Settings

/// The setting names, as the CLI, the web form and the JSON API spell them.
pub const SETTING_KEYS: &[&str] = &[
    "sent_copy",
    "book_external_sends",
    "attachment_policy",
    "recipient_limit",
    "poll_interval_secs",
    "delete_behaviour",
    "agreement_text",
];

/// Microsoft's per-message recipient limit (graph-facts: 500, unverified default).
const MAX_RECIPIENT_LIMIT: u32 = 500;
const MAX_POLL_INTERVAL_SECS: u64 = 86_400;
const MAX_AGREEMENT_TEXT: usize = 10_000;

pub fn settings(store: &Store, address: &str) -> AdminResult<MailboxSettings> {
    store.call_blocking(|c| {
        let record = mailbox_in(c, address)?;
        Ok(accounts::mailbox_settings(c, record.id)?)
    })
}

/// Changes one setting; `key` may use `-` or `_`.
pub fn set_setting(
    store: &Store,
    address: &str,
    key: &str,
    value: &str,
) -> AdminResult<MailboxSettings> {
    update_settings(store, address, &[(key.to_string(), value.to_string())])
}

/// Changes several settings at once: all of them, or none when one is invalid.
pub fn update_settings(
    store: &Store,
    address: &str,
    changes: &[(String, String)],
) -> AdminResult<MailboxSettings> {
    store.call_blocking(|c| {
        let record = mailbox_in(c, address)?;
        let mut settings = accounts::mailbox_settings(c, record.id)?;
        for (key, value) in changes {
            apply_setting(&mut settings, key, value)?;
        }
        accounts::save_mailbox_settings(c, record.id, &settings)?;
        Ok(settings)
    })
}

fn apply_setting(s: &mut MailboxSettings, key: &str, value: &str) -> AdminResult<()> {
    let key = key.trim().replace('-', "_");
    let value = value.trim_matches(['\r', '\n']);
    let bad = |expected: String| AdminError::BadSetting {
        key: key.clone(),
        value: value.to_string(),
        expected,
    };
    match key.as_str() {
        "sent_copy" => {
            s.sent_copy =
                SentCopy::parse(value).ok_or_else(|| bad(choices(SentCopy::ALL, |v| v.as_str())))?
        }
        "book_external_sends" => {
            s.book_external_sends = parse_bool(value).ok_or_else(|| bad("yes or no".into()))?
        }
        "attachment_policy" => {
            s.attachment_policy = AttachmentPolicy::parse(value)
                .ok_or_else(|| bad(choices(AttachmentPolicy::ALL, |v| v.as_str())))?
        }
        "recipient_limit" => {
            s.recipient_limit = value
                .parse()
                .ok()
                .filter(|n| (1..=MAX_RECIPIENT_LIMIT).contains(n))
                .ok_or_else(|| bad(format!("a number from 1 to {MAX_RECIPIENT_LIMIT}")))?
        }
        "poll_interval_secs" => {
            s.poll_interval_secs = if value.is_empty() || value == "default" {
                None
            } else {
                Some(
                    value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_POLL_INTERVAL_SECS).contains(n))
                        .ok_or_else(|| {
                            bad(format!(
                                "seconds from 1 to {MAX_POLL_INTERVAL_SECS}, or default"
                            ))
                        })?,
                )
            }
        }
        "delete_behaviour" => {
            s.delete_behaviour = DeleteBehaviour::parse(value)
                .ok_or_else(|| bad(choices(DeleteBehaviour::ALL, |v| v.as_str())))?
        }
        "agreement_text" => {
            if value.len() > MAX_AGREEMENT_TEXT {
                return Err(bad(format!("at most {MAX_AGREEMENT_TEXT} bytes")));
            }
            s.agreement_text = value.to_string()
        }
        _ => return Err(AdminError::UnknownSetting(key)),
    }
    Ok(())
}

fn choices<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> String {
    let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
    format!("one of {}", names.join(", "))
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The settings as (key, value) text, in [`SETTING_KEYS`] order.
pub fn settings_pairs(s: &MailboxSettings) -> Vec<(&'static str, String)> {
    vec![
        ("sent_copy", s.sent_copy.as_str().into()),
        (
            "book_external_sends",
            if s.book_external_sends { "yes" } else { "no" }.into(),
        ),
        ("attachment_policy", s.attachment_policy.as_str().into()),
        ("recipient_limit", s.recipient_limit.to_string()),
        (
            "poll_interval_secs",
            s.poll_interval_secs
                .map_or_else(|| "default".into(), |p| p.to_string()),
        ),
        ("delete_behaviour", s.delete_behaviour.as_str().into()),
        ("agreement_text", s.agreement_text.clone()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Activities and download links (recorded by sending; shown here)

/// Newest activities of a mailbox; None when this version records none.
pub fn activities(store: &Store, address: &str) -> AdminResult<Option<Rows>> {
    records(store, address, RecordTable::Activities)
}

/// Download links of a mailbox that can still be used; None when this version has none.
pub fn download_links(store: &Store, address: &str) -> AdminResult<Option<Rows>> {
    records(store, address, RecordTable::DownloadLinks)
}

const RECORDS_SHOWN: usize = 200;

fn records(store: &Store, address: &str, table: RecordTable) -> AdminResult<Option<Rows>> {
    store.call_blocking(|c| {
        let record = mailbox_in(c, address)?;
        Ok(accounts::mailbox_rows(c, table, record.id, RECORDS_SHOWN)?)
    })
}

// ---------------------------------------------------------------------------------------------
// The admin's own credentials

pub fn set_admin_password(store: &Store, password: &str) -> AdminResult<()> {
    let hash = hash_password(password)?;
    store.call_blocking(|c| {
        Ok(accounts::set_credential_hash(
            c,
            Credential::WebPassword,
            &hash,
        )?)
    })
}

pub fn admin_password_set(store: &Store) -> AdminResult<bool> {
    Ok(store
        .call_blocking(|c| accounts::credential_hash(c, Credential::WebPassword))?
        .is_some())
}

/// Checks the web admin password (slow on purpose: argon2id).
pub fn check_admin_password(store: &Store, password: &str) -> AdminResult<bool> {
    let hash = store.call_blocking(|c| accounts::credential_hash(c, Credential::WebPassword))?;
    Ok(hash.is_some_and(|h| auth::verify_password(&h, password)))
}

/// Makes a new JSON API token (replacing the previous one) and returns it; only its hash is
/// stored, so it is shown once.
pub fn new_api_token(store: &Store) -> AdminResult<String> {
    let token = random_token(32);
    let hash = token_hash(&token);
    store.call_blocking(|c| accounts::set_credential_hash(c, Credential::ApiToken, &hash))?;
    Ok(token)
}

pub fn check_api_token(store: &Store, token: &str) -> AdminResult<bool> {
    let stored = store.call_blocking(|c| accounts::credential_hash(c, Credential::ApiToken))?;
    Ok(stored.is_some_and(|h| constant_time_eq(h.as_bytes(), token_hash(token).as_bytes())))
}

/// A random URL-safe token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// SHA-256 in hex: tokens are long and random, so a plain hash is enough to keep them out of
/// the database.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_address(address: &str) -> AdminResult<()> {
    let valid = match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && address.len() <= 254
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && !address.chars().any(|c| {
                    c.is_whitespace()
                        || c.is_control()
                        || matches!(c, '*' | '/' | '<' | '>' | '"' | ',')
                })
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(AdminError::BadAddress(address.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db.sqlite3")).expect("store");
        (dir, store)
    }

    #[test]
    fn import_assign_and_errors() {
        let (_dir, store) = store();
        add_user(&store, "anna", "pw").expect("user");
        add_user(&store, "bob", "pw").expect("user");
        assert!(matches!(
            add_user(&store, "anna", "pw"),
            Err(AdminError::UserExists(_))
        ));
        assert!(matches!(
            add_user(&store, "a*b", "pw"),
            Err(AdminError::BadUserName)
        ));
        assert!(matches!(
            add_user(&store, "carl", ""),
            Err(AdminError::EmptyPassword)
        ));
        import_mailbox(&store, "sales@contoso.test", None).expect("import");
        assert!(matches!(
            import_mailbox(&store, "SALES@contoso.test", None),
            Err(AdminError::MailboxExists(_))
        ));
        for bad in [
            "not-an-address",
            "a@b",
            "@x.test",
            "a b@x.test",
            "a@x..test",
        ] {
            assert!(
                matches!(
                    import_mailbox(&store, bad, None),
                    Err(AdminError::BadAddress(_))
                ),
                "{bad}"
            );
        }
        import_mailbox(&store, "info@contoso.test", Some("sales@contoso.test")).expect("alias");
        assert!(matches!(
            import_mailbox(&store, "x@contoso.test", Some("info@contoso.test")),
            Err(AdminError::AliasOfAlias(_))
        ));
        assert!(matches!(
            assign(&store, "sales@contoso.test", "nobody", Role::Member),
            Err(AdminError::UnknownUser(_))
        ));
        assign(&store, "sales@contoso.test", "anna", Role::Member).expect("assign");
        assign(&store, "sales@contoso.test", "bob", Role::Member).expect("assign");
        let o = mailbox_overview(&store, "sales@contoso.test").expect("overview");
        assert_eq!(
            o.main_user(),
            Some("anna"),
            "the first user assigned is the main user"
        );
        assert!(matches!(
            assign(&store, "sales@contoso.test", "bob", Role::Main),
            Err(AdminError::SecondMain { .. })
        ));
        assert!(matches!(
            unassign(&store, "sales@contoso.test", "anna"),
            Err(AdminError::LastMain { .. })
        ));
        assert!(matches!(
            remove_user(&store, "anna"),
            Err(AdminError::LastMain { .. })
        ));
        assign(&store, "sales@contoso.test", "bob", Role::ReplaceMain).expect("crown moves");
        let o = mailbox_overview(&store, "sales@contoso.test").expect("overview");
        assert_eq!(o.main_user(), Some("bob"));
        assert_eq!(o.users.len(), 2);
        unassign(&store, "sales@contoso.test", "anna").expect("unassign");
        assert!(matches!(
            unassign(&store, "sales@contoso.test", "anna"),
            Err(AdminError::NotAssigned { .. })
        ));
        assert!(matches!(
            remove_mailbox(&store, "sales@contoso.test"),
            Err(AdminError::HasAliases { .. })
        ));
        remove_mailbox(&store, "info@contoso.test").expect("alias removed");
        remove_mailbox(&store, "sales@contoso.test").expect("removed");
        assert!(list_mailboxes(&store).expect("list").is_empty());
    }

    #[test]
    fn settings_are_checked_and_kept() {
        let (_dir, store) = store();
        import_mailbox(&store, "sales@contoso.test", None).expect("import");
        let s = settings(&store, "sales@contoso.test").expect("defaults");
        assert_eq!(s.recipient_limit, 10);
        set_setting(&store, "sales@contoso.test", "recipient-limit", "25").expect("set");
        set_setting(&store, "sales@contoso.test", "sent_copy", "client").expect("set");
        set_setting(&store, "sales@contoso.test", "poll-interval-secs", "60").expect("set");
        assert!(matches!(
            set_setting(&store, "sales@contoso.test", "recipient_limit", "0"),
            Err(AdminError::BadSetting { .. })
        ));
        assert!(matches!(
            set_setting(&store, "sales@contoso.test", "colour", "red"),
            Err(AdminError::UnknownSetting(_))
        ));
        let s = settings(&store, "sales@contoso.test").expect("read");
        assert_eq!(s.recipient_limit, 25);
        assert_eq!(s.sent_copy, SentCopy::Client);
        assert_eq!(s.poll_interval_secs, Some(60));
        let booked = activities(&store, "sales@contoso.test").expect("activities");
        assert!(
            booked.is_some_and(|rows| rows.rows.is_empty()),
            "no activity booked yet"
        );
    }

    #[test]
    fn admin_credentials_are_hashed() {
        let (_dir, store) = store();
        assert!(!check_admin_password(&store, "x").expect("check"));
        set_admin_password(&store, "s3cret").expect("set");
        assert!(check_admin_password(&store, "s3cret").expect("check"));
        assert!(!check_admin_password(&store, "S3cret").expect("check"));
        let token = new_api_token(&store).expect("token");
        assert!(check_api_token(&store, &token).expect("check"));
        assert!(!check_api_token(&store, "nope").expect("check"));
    }
}
