//! Server-rendered HTML of the web admin: plain forms and tables, no scripts, so every page
//! works with a keyboard and a screen reader. Everything that comes from data goes through
//! `escape`.

use super::core::{self, MailboxOverview, UserOverview};
use super::session::Notice;
use super::{encode_segment, escape};
use crate::mailstore::accounts::{
    AttachmentPolicy, DeleteBehaviour, MailboxSettings, Rows, SentCopy,
};
use crate::mailstore::SigninState;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b}\
header{background:#0f3d67;color:#fff;padding:.5rem 1rem;display:flex;gap:1rem;align-items:center}\
header a{color:#fff}header form{margin-left:auto}main{padding:1rem;max-width:70rem}\
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #bbb;padding:.3rem .6rem;text-align:left;vertical-align:top}\
fieldset{margin:1rem 0;border:1px solid #999}label{display:inline-block;min-width:12rem}\
.warn{background:#fff4ce;border:1px solid #c8a600;padding:.5rem}.error{background:#fde7e9;border:1px solid #a4262c;padding:.5rem}\
.done{background:#dff6dd;border:1px solid #107c10;padding:.5rem}.note{color:#555}\
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;color:#000;padding:.5rem}\
a:focus,button:focus,input:focus,select:focus,textarea:focus{outline:3px solid #f0a000;outline-offset:1px}";

pub const SHARED_WARNING: &str = "After sign-in, every user assigned to this mailbox can read \
its contents, even users who do not have access to the Microsoft account.";

/// A whole page. `csrf` is Some for a logged-in admin (it also shows the navigation).
pub fn page(title: &str, csrf: Option<&str>, notice: Option<Notice>, body: &str) -> String {
    let nav = match csrf {
        Some(csrf) => format!(
            "<nav aria-label=Main><a href=\"/\">External IMAP mailboxes</a> · <a href=\"/users\">Users</a></nav>\
             <form method=post action=\"/logout\">{}<button>Log out</button></form>",
            csrf_input(csrf)
        ),
        None => String::new(),
    };
    let notice = match notice {
        Some(Notice::Done(text)) => {
            format!("<p class=done role=status id=notice>{}</p>", escape(&text))
        }
        Some(Notice::Error(text)) => {
            format!("<p class=error role=alert id=notice>{}</p>", escape(&text))
        }
        None => String::new(),
    };
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{title} · graphbridge</title><style>{STYLE}</style></head><body>\
         <a class=skip href=\"#main\">Skip to content</a><header><strong>graphbridge</strong>{nav}</header>\
         <main id=main><h1>{title}</h1>{notice}{body}</main></body></html>",
        title = escape(title),
    )
}

pub fn csrf_input(csrf: &str) -> String {
    format!("<input type=hidden name=csrf value=\"{}\">", escape(csrf))
}

pub fn login(csrf: &str, configured: bool, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=error role=alert>{}</p>", escape(e)))
        .unwrap_or_default();
    let body = if configured {
        format!(
            "{error}<form method=post action=\"/login\">{}\
             <p><label for=password>Admin password</label> \
             <input type=password id=password name=password autocomplete=current-password required autofocus></p>\
             <p><button id=login>Log in</button></p></form>",
            csrf_input(csrf)
        )
    } else {
        "<p class=warn>No admin password is set. Set one on the bridge's machine with \
         <code>graphbridge admin password</code>.</p>"
            .to_string()
    };
    page("Log in", None, None, &body)
}

fn mailbox_link(address: &str) -> String {
    format!(
        "<a href=\"/mailboxes/{}\">{}</a>",
        encode_segment(address),
        escape(address)
    )
}

fn users_cell(o: &MailboxOverview) -> String {
    if o.users.is_empty() {
        return "<span class=note>nobody</span>".into();
    }
    o.users
        .iter()
        .map(|u| {
            if u.is_main {
                format!(
                    "<span title=\"main user\">👑 {} <span class=note>(main user)</span></span>",
                    escape(&u.name)
                )
            } else {
                escape(&u.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn state_cell(o: &MailboxOverview) -> String {
    let mut out = escape(core::state_text(o.signin_state));
    if let Some(primary) = &o.alias_of {
        out.push_str(&format!(
            " <span class=note>(through {})</span>",
            escape(primary)
        ));
    }
    if let Some(error) = &o.last_error {
        out.push_str(&format!("<br><span class=note>{}</span>", escape(error)));
    }
    out
}

pub fn mailbox_list(csrf: &str, notice: Option<Notice>, mailboxes: &[MailboxOverview]) -> String {
    let rows: String = mailboxes
        .iter()
        .map(|o| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                mailbox_link(&o.record.address),
                o.kind(),
                state_cell(o),
                escape(&o.progress_text()),
                users_cell(o)
            )
        })
        .collect();
    let table = if mailboxes.is_empty() {
        "<p class=note>No mailbox has been imported yet.</p>".to_string()
    } else {
        format!(
            "<table id=mailboxes><caption>Imported mailboxes</caption><thead><tr><th scope=col>Mailbox</th>\
             <th scope=col>Kind</th><th scope=col>Sign-in</th><th scope=col>Sync</th><th scope=col>Users</th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        )
    };
    let primaries: String = mailboxes
        .iter()
        .filter(|o| o.alias_of.is_none())
        .map(|o| {
            format!(
                "<option value=\"{0}\">{0}</option>",
                escape(&o.record.address)
            )
        })
        .collect();
    let import = format!(
        "<form method=post action=\"/mailboxes\"><fieldset><legend>IMAP Import</legend>{}\
         <p><label for=address>Email address</label> <input type=email id=address name=address required \
         autocomplete=off placeholder=\"sales@example.com\"></p>\
         <p><label for=alias_of>Alias of (optional)</label> <select id=alias_of name=alias_of>\
         <option value=\"\">none: a Microsoft 365 mailbox</option>{primaries}</select></p>\
         <p><button id=import>Import Office 365</button></p></fieldset></form>",
        csrf_input(csrf)
    );
    page(
        "External IMAP mailboxes",
        Some(csrf),
        notice,
        &format!("{table}{import}<p class=warn>{SHARED_WARNING}</p>"),
    )
}

/// What the mailbox page shows besides the overview.
pub struct MailboxPage<'a> {
    pub overview: &'a MailboxOverview,
    pub settings: &'a MailboxSettings,
    pub all_users: &'a [UserOverview],
    pub activities: Option<&'a Rows>,
    pub download_links: Option<&'a Rows>,
}

pub fn mailbox_page(csrf: &str, notice: Option<Notice>, p: &MailboxPage<'_>) -> String {
    let o = p.overview;
    let base = format!("/mailboxes/{}", encode_segment(&o.record.address));
    let body = [
        status_section(o),
        signin_section(csrf, &base, o),
        users_section(csrf, &base, o, p.all_users),
        settings_section(csrf, &base, p.settings),
        records_section(
            "Activities",
            "activities",
            p.activities,
            "Activities are recorded by sending; this version of graphbridge records none yet.",
        ),
        records_section(
            "Download links",
            "download-links",
            p.download_links,
            "Download links are made by sending; this version of graphbridge makes none yet.",
        ),
        remove_section(csrf, &base),
    ]
    .concat();
    page(&o.record.address, Some(csrf), notice, &body)
}

fn status_section(o: &MailboxOverview) -> String {
    format!(
        "<p><a href=\"/\">← All mailboxes</a></p><dl><dt>Kind</dt><dd>{}</dd>\
         <dt>Sign-in</dt><dd id=signin-state data-state=\"{}\">{}</dd>\
         <dt>Sync</dt><dd id=sync-progress data-complete=\"{}\">{}</dd></dl>",
        o.kind(),
        o.signin_state.as_str(),
        state_cell(o),
        o.progress.is_complete(),
        escape(&o.progress_text()),
    )
}

fn signin_section(csrf: &str, base: &str, o: &MailboxOverview) -> String {
    let action = match &o.alias_of {
        Some(primary) => format!(
            "<p>This alias mailbox uses the sign-in of {}.</p>",
            mailbox_link(primary)
        ),
        None => {
            let label = if o.signin_state == SigninState::SignedIn {
                "Sign in with Microsoft again"
            } else {
                "Sign in with Microsoft"
            };
            format!(
                "<form method=post action=\"{base}/signin\">{}<button id=signin>{label}</button></form>\
                 <p class=note>Sign in with the Microsoft account of {} and approve access.</p>",
                csrf_input(csrf),
                escape(&o.record.address)
            )
        }
    };
    format!("<section aria-labelledby=h-signin><h2 id=h-signin>Microsoft sign-in</h2><p class=warn>{SHARED_WARNING}</p>{action}</section>")
}

fn users_section(csrf: &str, base: &str, o: &MailboxOverview, all: &[UserOverview]) -> String {
    let rows: String = o
        .users
        .iter()
        .map(|u| {
            let name = escape(&u.name);
            let role = if u.is_main {
                "<span title=\"main user\">👑 main user</span>".to_string()
            } else {
                format!(
                    "<form method=post action=\"{base}/main\">{}<input type=hidden name=user value=\"{name}\">\
                     <button>Make {name} the main user</button></form>",
                    csrf_input(csrf)
                )
            };
            format!(
                "<tr><td>{name}</td><td>{role}</td><td><form method=post action=\"{base}/unassign\">{}\
                 <input type=hidden name=user value=\"{name}\"><button>Unassign {name}</button></form></td></tr>",
                csrf_input(csrf)
            )
        })
        .collect();
    let table = if o.users.is_empty() {
        "<p class=note>No user is assigned yet. The first user assigned becomes the main user.</p>"
            .to_string()
    } else {
        format!("<table id=assigned><thead><tr><th scope=col>User</th><th scope=col>Role</th><th scope=col></th></tr></thead><tbody>{rows}</tbody></table>")
    };
    let options: String = all
        .iter()
        .filter(|u| !o.users.iter().any(|a| a.name == u.name))
        .map(|u| format!("<option value=\"{0}\">{0}</option>", escape(&u.name)))
        .collect();
    let form = if options.is_empty() {
        "<p class=note>Every user is assigned. Add users on the <a href=\"/users\">Users</a> page.</p>".to_string()
    } else {
        format!(
            "<form method=post action=\"{base}/assign\">{}<p><label for=assign-user>User</label> \
             <select id=assign-user name=user>{options}</select> \
             <input type=checkbox id=assign-main name=main value=yes> <label for=assign-main>main user (👑)</label> \
             <button id=assign>Assign</button></p></form>",
            csrf_input(csrf)
        )
    };
    format!("<section aria-labelledby=h-users><h2 id=h-users>Users</h2>{table}{form}</section>")
}

fn select<T: Copy + PartialEq>(
    name: &str,
    all: &[T],
    current: T,
    text: impl Fn(T) -> &'static str,
) -> String {
    let options: String = all
        .iter()
        .map(|v| {
            let selected = if *v == current { " selected" } else { "" };
            format!("<option{selected}>{}</option>", text(*v))
        })
        .collect();
    format!("<select id=\"{name}\" name=\"{name}\">{options}</select>")
}

fn settings_section(csrf: &str, base: &str, s: &MailboxSettings) -> String {
    let yes_no = select(
        "book_external_sends",
        &[true, false],
        s.book_external_sends,
        |b| if b { "yes" } else { "no" },
    );
    let row = |name: &str, label: &str, control: String, help: &str| {
        format!(
            "<p><label for=\"{name}\">{label}</label> {control} <span class=note>{help}</span></p>"
        )
    };
    let fields = [
        row("sent_copy", "Sent copy", select("sent_copy", SentCopy::ALL, s.sent_copy, SentCopy::as_str),
            "graph: Microsoft saves sent mail in Sent Items; client: the mail program stores its own copy"),
        row("book_external_sends", "Book external sends", yes_no,
            "book mail sent from external mail programs as activities"),
        row("attachment_policy", "Attachments over the limits",
            select("attachment_policy", AttachmentPolicy::ALL, s.attachment_policy, AttachmentPolicy::as_str),
            "keep, replace by download links (14 days), or refuse"),
        row("recipient_limit", "Recipient limit",
            format!("<input type=number id=recipient_limit name=recipient_limit min=1 max=500 value=\"{}\">", s.recipient_limit),
            "most recipients per message (Microsoft 365: 10)"),
        row("poll_interval_secs", "Poll interval (seconds)",
            format!("<input id=poll_interval_secs name=poll_interval_secs inputmode=numeric value=\"{}\">",
                s.poll_interval_secs.map_or_else(|| "default".into(), |p| p.to_string())),
            "how often Microsoft 365 is asked for changes; default: the configured interval"),
        row("delete_behaviour", "Delete", select("delete_behaviour", DeleteBehaviour::ALL, s.delete_behaviour, DeleteBehaviour::as_str),
            "trash: expunged mail goes to Deleted Items; permanent: deleted for good"),
        format!("<p><label for=agreement_text>Agreement text</label><br><textarea id=agreement_text name=agreement_text rows=3 cols=60>{}</textarea></p>",
            escape(&s.agreement_text)),
    ]
    .concat();
    format!(
        "<section aria-labelledby=h-settings><h2 id=h-settings>Settings</h2><form method=post action=\"{base}/settings\">{}{fields}\
         <p><button id=save-settings>Save settings</button></p></form></section>",
        csrf_input(csrf)
    )
}

fn records_section(title: &str, id: &str, rows: Option<&Rows>, missing: &str) -> String {
    let content = match rows {
        None => format!("<p class=note>{}</p>", escape(missing)),
        Some(r) if r.rows.is_empty() => "<p class=note>None.</p>".to_string(),
        Some(r) => {
            let head: String = r
                .columns
                .iter()
                .map(|c| format!("<th scope=col>{}</th>", escape(c)))
                .collect();
            let body: String = r
                .rows
                .iter()
                .map(|row| {
                    let cells: String = row
                        .iter()
                        .map(|v| format!("<td>{}</td>", escape(v)))
                        .collect();
                    format!("<tr>{cells}</tr>")
                })
                .collect();
            format!("<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        }
    };
    format!(
        "<section aria-labelledby=h-{id} id={id}><h2 id=h-{id}>{}</h2>{content}</section>",
        escape(title)
    )
}

fn remove_section(csrf: &str, base: &str) -> String {
    format!(
        "<section aria-labelledby=h-remove><h2 id=h-remove>Remove</h2><form method=post action=\"{base}/remove\">{}\
         <p><input type=checkbox id=confirm-remove name=confirm value=yes required> \
         <label for=confirm-remove>Delete this mailbox, its Microsoft sign-in and all mail cached by the bridge</label></p>\
         <p><button id=remove>Remove mailbox</button></p></form></section>",
        csrf_input(csrf)
    )
}

pub fn users_page(csrf: &str, notice: Option<Notice>, users: &[UserOverview]) -> String {
    let rows: String = users
        .iter()
        .map(|u| {
            let name = escape(&u.name);
            let seg = encode_segment(&u.name);
            let mailboxes = u
                .mailboxes
                .iter()
                .map(|(a, main)| format!("{}{}", if *main { "👑 " } else { "" }, mailbox_link(a)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "<tr><td>{name}</td><td>{mailboxes}</td><td><form method=post action=\"/users/{seg}/password\">{csrf_in}\
                 <label for=\"pw-{seg}\">New password for {name}</label> \
                 <input type=password id=\"pw-{seg}\" name=password autocomplete=new-password required> <button>Set</button></form></td>\
                 <td><form method=post action=\"/users/{seg}/remove\">{csrf_in}<button>Remove {name}</button></form></td></tr>",
                csrf_in = csrf_input(csrf)
            )
        })
        .collect();
    let table = if users.is_empty() {
        "<p class=note>No users yet.</p>".to_string()
    } else {
        format!("<table id=users><thead><tr><th scope=col>User</th><th scope=col>Mailboxes</th><th scope=col>Password</th><th scope=col></th></tr></thead><tbody>{rows}</tbody></table>")
    };
    let add = format!(
        "<form method=post action=\"/users\"><fieldset><legend>Add a user</legend>{}\
         <p><label for=new-user>User name</label> <input id=new-user name=name required autocomplete=off></p>\
         <p><label for=new-password>Password</label> <input type=password id=new-password name=password required autocomplete=new-password></p>\
         <p><button id=add-user>Add user</button></p></fieldset></form>",
        csrf_input(csrf)
    );
    page("Users", Some(csrf), notice, &format!("{table}{add}"))
}

/// The page Microsoft's redirect lands on. It moves on with a refresh rather than a redirect:
/// the next request then starts on this site, so the `SameSite=Strict` session cookie goes along.
pub fn signed_in(address: &str, return_to: &str) -> String {
    let target = escape(return_to);
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content=\"0;url={target}\">\
         <title>Signed in · graphbridge</title></head><body><main><h1>Signed in</h1>\
         <p id=notice>{} is signed in; the bridge has started to sync it.</p><p class=warn>{SHARED_WARNING}</p>\
         <p><a href=\"{target}\">Continue to the mailbox</a></p></main></body></html>",
        escape(address)
    )
}

pub fn signin_failed(message: &str) -> String {
    page(
        "Sign-in failed",
        None,
        Some(Notice::Error(message.to_string())),
        "<p><a href=\"/\">Back to the mailboxes</a></p>",
    )
}
