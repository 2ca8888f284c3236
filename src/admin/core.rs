//! Administration shared by the CLI and (later) the web admin: users, mailboxes, assignments.

use crate::auth;
use crate::mailstore::{accounts, MailboxRecord, Store, StoreError, User};

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
    #[error("user names may not be empty or contain '*', spaces or control characters")]
    BadUserName,
    #[error("passwords must not be empty")]
    EmptyPassword,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
}

pub fn add_user(store: &Store, name: &str, password: &str) -> Result<User, AdminError> {
    if name.is_empty() || name.contains('*') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AdminError::BadUserName);
    }
    if password.is_empty() {
        return Err(AdminError::EmptyPassword);
    }
    let hash = auth::hash_password(password)?;
    Ok(store.call_blocking(|c| accounts::add_user(c, name, &hash))?)
}

/// Imports a Microsoft 365 mailbox by address, or an alias mailbox of an imported one.
pub fn import_mailbox(
    store: &Store,
    address: &str,
    alias_of: Option<&str>,
) -> Result<MailboxRecord, AdminError> {
    check_address(address)?;
    store.call_blocking(|c| {
        let primary = match alias_of {
            None => None,
            Some(primary) => {
                let Some(record) = accounts::mailbox_by_address(c, primary)? else {
                    return Err(AdminError::UnknownMailbox(primary.to_string()));
                };
                if record.alias_of.is_some() {
                    return Err(AdminError::AliasOfAlias(primary.to_string()));
                }
                Some(record.id)
            }
        };
        Ok(accounts::add_mailbox(c, address, primary)?)
    })
}

pub fn assign(store: &Store, address: &str, user: &str, main: bool) -> Result<(), AdminError> {
    store.call_blocking(|c| {
        let mailbox = accounts::mailbox_by_address(c, address)?
            .ok_or_else(|| AdminError::UnknownMailbox(address.to_string()))?;
        let user = accounts::user_by_name(c, user)?
            .ok_or_else(|| AdminError::UnknownUser(user.to_string()))?;
        // The first user assigned becomes the main user: a mailbox always has one.
        let main = main || accounts::assignments_of_mailbox(c, mailbox.id)?.is_empty();
        Ok(accounts::assign(c, mailbox.id, user.id, main)?)
    })
}

pub fn mailbox(store: &Store, address: &str) -> Result<MailboxRecord, AdminError> {
    store
        .call_blocking(|c| accounts::mailbox_by_address(c, address))?
        .ok_or_else(|| AdminError::UnknownMailbox(address.to_string()))
}

fn check_address(address: &str) -> Result<(), AdminError> {
    let valid = match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !address.chars().any(|c| c.is_whitespace() || c.is_control() || c == '*')
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
        assert!(matches!(add_user(&store, "anna", "pw"), Err(AdminError::Store(_))));
        assert!(matches!(add_user(&store, "a*b", "pw"), Err(AdminError::BadUserName)));
        import_mailbox(&store, "sales@contoso.test", None).expect("import");
        assert!(matches!(
            import_mailbox(&store, "not-an-address", None),
            Err(AdminError::BadAddress(_))
        ));
        import_mailbox(&store, "info@contoso.test", Some("sales@contoso.test")).expect("alias");
        assert!(matches!(
            import_mailbox(&store, "x@contoso.test", Some("info@contoso.test")),
            Err(AdminError::AliasOfAlias(_))
        ));
        assert!(matches!(
            assign(&store, "sales@contoso.test", "bob", false),
            Err(AdminError::UnknownUser(_))
        ));
        assign(&store, "sales@contoso.test", "anna", false).expect("assign");
        let main = store
            .call_blocking(|c| {
                let m = accounts::mailbox_by_address(c, "sales@contoso.test")?.expect("mailbox");
                accounts::assignments_of_mailbox(c, m.id)
            })
            .expect("assignments");
        assert!(main[0].is_main, "the first user assigned is the main user");
    }
}
