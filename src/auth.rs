//! Bridge users and how they log in, shared by IMAP and SMTP.
//!
//! A user logs in as `user` (their default mailbox, with the others they are assigned to
//! beside it) or as `address*user` (that one mailbox, as a CRM connects one account per
//! mailbox). SASL PLAIN's authorization identity, when given, names the mailbox the same way.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::mailstore::{accounts, MailboxRecord, Store, StoreError, User};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid credentials")]
    BadCredentials,
    #[error("user {user} is not assigned to mailbox {mailbox}")]
    NotAssigned { user: String, mailbox: String },
    #[error("user {0} is not assigned to any mailbox")]
    NoMailbox(String),
    #[error("malformed authentication data")]
    Malformed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A logged-in user and what they may see.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: User,
    /// The mailbox served as the personal namespace (and the one SMTP sends from).
    pub primary: MailboxRecord,
    /// Every mailbox the session can reach, `primary` first. With `address*user` logins this
    /// is `primary` alone.
    pub mailboxes: Vec<MailboxRecord>,
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Malformed)
}

/// Checks `password` against a stored argon2 hash. A success is remembered for a while (as
/// Dovecot's auth cache does), so that a client opening several connections, or reconnecting,
/// does not pay for argon2 (tens of milliseconds and 19 MiB) each time.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let key = VerifiedLogins::get().key(hash, password);
    if VerifiedLogins::get().contains(&key) {
        return true;
    }
    let ok = PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false);
    if ok {
        VerifiedLogins::get().insert(key);
    }
    ok
}

/// How long a successful check is remembered; a changed password has another hash, so it
/// never matches an entry made for the old one.
const VERIFIED_FOR: Duration = Duration::from_secs(15 * 60);
/// Most successful checks remembered at once.
const VERIFIED_MAX: usize = 10_000;

/// Successful password checks, keyed by SHA-256 over a per-process random secret, the stored
/// hash and the password: neither is kept, and the keys are worthless outside this process.
struct VerifiedLogins {
    secret: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

impl VerifiedLogins {
    fn get() -> &'static VerifiedLogins {
        static VERIFIED: OnceLock<VerifiedLogins> = OnceLock::new();
        VERIFIED.get_or_init(|| VerifiedLogins {
            secret: rand::random(),
            entries: Mutex::new(HashMap::new()),
        })
    }

    fn key(&self, hash: &str, password: &str) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(self.secret);
        digest.update((hash.len() as u64).to_be_bytes());
        digest.update(hash.as_bytes());
        digest.update(password.as_bytes());
        digest.finalize().into()
    }

    fn contains(&self, key: &[u8; 32]) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .is_some_and(|checked| checked.elapsed() < VERIFIED_FOR)
    }

    fn insert(&self, key: [u8; 32]) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= VERIFIED_MAX {
            entries.retain(|_, checked| checked.elapsed() < VERIFIED_FOR);
            if entries.len() >= VERIFIED_MAX {
                entries.clear();
            }
        }
        entries.insert(key, Instant::now());
    }
}

/// Splits `address*user` into (Some(address), user); a plain `user` into (None, user).
pub fn split_login(login: &str) -> (Option<&str>, &str) {
    match login.rsplit_once('*') {
        Some((address, user)) if !address.is_empty() && !user.is_empty() => (Some(address), user),
        _ => (None, login),
    }
}

/// Checks a login and password; `authzid` (SASL) names a mailbox like `address*` does.
pub async fn authenticate(
    store: &Store,
    login: &str,
    password: &str,
    authzid: Option<&str>,
) -> Result<Login, AuthError> {
    let (address, user_name) = split_login(login);
    let address = authzid
        .filter(|a| !a.is_empty() && *a != user_name)
        .or(address)
        .map(str::to_string);
    let user_name = user_name.to_string();
    let password = password.to_string();
    let store = store.clone();
    // Argon2 is deliberately slow: keep it off the async workers, and off the store's one
    // connection, so that a flood of failed logins does not hold up every other session.
    let _permit = password_checks()
        .acquire()
        .await
        .map_err(|_| AuthError::Store(StoreError::WorkerGone))?;
    tokio::task::spawn_blocking(move || {
        let user = store.call_blocking(|conn| accounts::user_by_name(conn, &user_name))?;
        let Some(user) = user else {
            // An unknown name costs the same argon2 check as a wrong password, so that
            // response times do not tell which user names exist.
            verify_password(unknown_user_hash(), &password);
            return Err(AuthError::BadCredentials);
        };
        if !verify_password(&user.password_hash, &password) {
            return Err(AuthError::BadCredentials);
        }
        store.call_blocking(|conn| assigned_login(conn, user, address.as_deref()))
    })
    .await
    .map_err(|_| AuthError::Store(StoreError::WorkerGone))?
}

/// A hash no password matches in practice (its password is random and forgotten), checked
/// for unknown user names.
fn unknown_user_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let forgotten: [u8; 16] = rand::random();
        hash_password(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(forgotten))
            .unwrap_or_default()
    })
}

/// Logins checked at once. Each Argon2 verification takes 19 MiB and a core for tens of
/// milliseconds: a flood of logins waits here instead of growing memory without bound.
fn password_checks() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// The login of a user whose password checked out: the mailboxes it reaches.
fn assigned_login(
    conn: &rusqlite::Connection,
    user: User,
    address: Option<&str>,
) -> Result<Login, AuthError> {
    let assigned = accounts::mailboxes_of_user(conn, user.id)?;
    match address {
        Some(address) => {
            let Some(mailbox) = assigned
                .iter()
                .find(|m| m.address.eq_ignore_ascii_case(address))
            else {
                return Err(AuthError::NotAssigned {
                    user: user.name,
                    mailbox: address.to_string(),
                });
            };
            Ok(Login {
                primary: mailbox.clone(),
                mailboxes: vec![mailbox.clone()],
                user,
            })
        }
        None => {
            let Some(primary) = assigned.first().cloned() else {
                return Err(AuthError::NoMailbox(user.name));
            };
            Ok(Login {
                primary,
                mailboxes: assigned,
                user,
            })
        }
    }
}

/// Decoded SASL PLAIN message: authzid NUL authcid NUL password (RFC 4616).
#[derive(Debug, PartialEq, Eq)]
pub struct SaslPlain {
    pub authzid: Option<String>,
    pub authcid: String,
    pub password: String,
}

pub fn decode_sasl_plain(raw: &[u8]) -> Result<SaslPlain, AuthError> {
    let mut parts = raw.split(|b| *b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| AuthError::Malformed);
    let authzid = text(authzid)?;
    Ok(SaslPlain {
        authzid: (!authzid.is_empty()).then_some(authzid),
        authcid: text(authcid)?,
        password: text(password)?,
    })
}

/// Base64 as used by SASL exchanges; `=` alone stands for an empty response.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, AuthError> {
    let text = text.trim();
    if text == "=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| AuthError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_forms_split() {
        assert_eq!(split_login("demo"), (None, "demo"));
        assert_eq!(
            split_login("info@contoso.test*demo"),
            (Some("info@contoso.test"), "demo")
        );
        assert_eq!(split_login("*demo"), (None, "*demo"));
    }

    #[test]
    fn sasl_plain_decodes_and_rejects_garbage() {
        let plain = decode_sasl_plain(b"\0demo\0pw").expect("valid");
        assert_eq!(plain.authzid, None);
        assert_eq!(plain.authcid, "demo");
        assert_eq!(plain.password, "pw");
        let with = decode_sasl_plain(b"sales@contoso.test\0demo\0pw").expect("valid");
        assert_eq!(with.authzid.as_deref(), Some("sales@contoso.test"));
        assert!(decode_sasl_plain(b"demo\0pw").is_err());
        assert!(decode_sasl_plain(b"a\0b\0c\0d").is_err());
        assert!(decode_sasl_plain(b"\0\xff\0pw").is_err());
    }

    #[test]
    fn password_hash_verifies_only_the_password() {
        let hash = hash_password("s3cret").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "s3cret"));
        assert!(!verify_password(&hash, "S3cret"));
        assert!(!verify_password("not a hash", "s3cret"));
    }

    #[test]
    fn a_remembered_check_still_refuses_other_passwords_and_other_hashes() {
        let old = hash_password("first").expect("hash");
        assert!(verify_password(&old, "first"));
        assert!(verify_password(&old, "first"), "remembered");
        assert!(!verify_password(&old, "First"));
        assert!(!verify_password(&old, "firs"));
        // The password changed: the old one no longer opens the account.
        let new = hash_password("second").expect("hash");
        assert!(!verify_password(&new, "first"));
        assert!(verify_password(&new, "second"));
    }
}
