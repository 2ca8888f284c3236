//! Web admin sessions: a random cookie (`HttpOnly; SameSite=Strict`) naming a server-side
//! session that carries the CSRF token every form must send back, and a one-shot notice shown
//! after a redirect. Sessions live in memory: a restart asks the admin to log in again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::core::{constant_time_eq, random_token, token_hash};

pub const SESSION_COOKIE: &str = "gb_session";
/// Double-submit cookie protecting the login form, before any session exists.
pub const LOGIN_COOKIE: &str = "gb_login";
/// A session ends this long after login, used or not.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most: a flood of logins cannot grow memory without bound.
const MAX_SESSIONS: usize = 1000;

/// A one-shot message for the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Done(String),
    Error(String),
}

struct Entry {
    csrf: String,
    expires: Instant,
    notice: Option<Notice>,
}

/// The logged-in admin, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The cookie's hash: the map key (the cookie itself is not kept in memory).
    key: String,
    pub csrf: String,
}

#[derive(Default)]
pub struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    /// Starts a session; returns the cookie value.
    pub fn create(&self) -> String {
        let cookie = random_token(32);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        entries.retain(|_, e| e.expires > now);
        if entries.len() >= MAX_SESSIONS {
            // Drop the session closest to its end.
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            token_hash(&cookie),
            Entry {
                csrf: random_token(32),
                expires: now + SESSION_LIFETIME,
                notice: None,
            },
        );
        cookie
    }

    /// The session named by the request's cookie, if it is live.
    pub fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let cookie = cookie(headers, SESSION_COOKIE)?;
        let key = token_hash(&cookie);
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(&key).filter(|e| e.expires > Instant::now())?;
        Some(Session {
            csrf: entry.csrf.clone(),
            key,
        })
    }

    pub fn end(&self, session: &Session) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&session.key);
    }

    pub fn set_notice(&self, session: &Session, notice: Notice) {
        if let Some(e) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&session.key)
        {
            e.notice = Some(notice);
        }
    }

    pub fn take_notice(&self, session: &Session) -> Option<Notice> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&session.key)
            .and_then(|e| e.notice.take())
    }
}

impl Session {
    /// True when a submitted form carries this session's CSRF token.
    pub fn csrf_ok(&self, form: &[(String, String)]) -> bool {
        form_value(form, "csrf")
            .is_some_and(|t| constant_time_eq(t.as_bytes(), self.csrf.as_bytes()))
    }
}

pub fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value for a cookie scripts cannot read and other sites cannot send.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut out = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        out.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        out.push_str("; Secure");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_find_by_cookie_and_check_csrf() {
        let sessions = Sessions::default();
        let cookie_value = sessions.create();
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            format!("other=1; {SESSION_COOKIE}={cookie_value}")
                .parse()
                .expect("header"),
        );
        let session = sessions.find(&headers).expect("session");
        assert!(session.csrf_ok(&[("csrf".into(), session.csrf.clone())]));
        assert!(!session.csrf_ok(&[("csrf".into(), "forged".into())]));
        assert!(!session.csrf_ok(&[]));
        sessions.set_notice(&session, Notice::Done("ok".into()));
        assert_eq!(
            sessions.take_notice(&session),
            Some(Notice::Done("ok".into()))
        );
        assert_eq!(sessions.take_notice(&session), None);
        sessions.end(&session);
        assert!(sessions.find(&headers).is_none());
    }

    #[test]
    fn session_cookie_is_http_only_and_strict() {
        let c = set_cookie(SESSION_COOKIE, "x", false, None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"));
        assert!(set_cookie(SESSION_COOKIE, "x", true, None).ends_with("; Secure"));
    }
}
