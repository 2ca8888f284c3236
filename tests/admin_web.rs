//! The web admin and the JSON API over HTTP: credentials, CSRF, cookies, the whole import →
//! assign → sign in with Microsoft → sync flow through the emulator's authorize page, and
//! the API's answers and errors.

mod admin_support;
mod common;

use std::time::Duration;

use admin_support::{
    contains, csrf_of, http, set_cookie, store_bytes, stored_refresh_token, WebAdmin, MAILBOX,
};
use graphbridge::admin::core as admin;
use serde_json::{json, Value};

#[tokio::test]
async fn pages_and_api_refuse_without_credentials() {
    let setup = admin_support::start(false).await;
    let base = &setup.base;
    let client = http();
    for path in ["/", "/users", "/mailboxes/support@contoso.test"] {
        let r = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 303, "{path} without a session");
        assert_eq!(r.headers()["location"], "/login");
    }
    for path in [
        "/mailboxes",
        "/users",
        "/mailboxes/x@y.test/assign",
        "/logout",
    ] {
        let r = client
            .post(format!("{base}{path}"))
            .form(&[("address", "x@y.test")])
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 403, "POST {path} without a session");
    }
    // A made-up session cookie is no session.
    let r = client
        .get(format!("{base}/"))
        .header("Cookie", "gb_session=made-up")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 303);

    let token = admin::new_api_token(setup.store()).expect("token");
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic YWRtaW46YWRtaW4="),
        Some(token.as_str()),
    ] {
        let mut request = client.get(format!("{base}/api/v1/mailboxes"));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let r = request.send().await.expect("API");
        // The raw token without "Bearer " is not accepted either.
        assert_eq!(r.status(), 401, "API with {auth:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let r = client
        .post(format!("{base}/api/v1/mailboxes"))
        .json(&json!({"address": "x@y.test"}))
        .send()
        .await
        .expect("API");
    assert_eq!(r.status(), 401);
    assert!(
        admin::list_mailboxes(setup.store())
            .expect("list")
            .is_empty(),
        "nothing imported"
    );

    // Pages are served on one origin: the session cookie and Microsoft's redirect meet there.
    let r = client
        .get(format!("http://{}/users?x=1", setup.running.http))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"].to_str().expect("location"),
        format!("{base}/users?x=1")
    );

    // The health check stays open.
    let r = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    setup.stop().await;
}

#[tokio::test]
async fn login_needs_the_password_and_its_csrf_token_and_sets_a_strict_cookie() {
    let setup = admin_support::start(false).await;
    let base = &setup.base;
    let client = http();
    let page = client
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login page");
    let (login_cookie, header) = set_cookie(&page, "gb_login").expect("login cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Strict"),
        "{header}"
    );
    let csrf = csrf_of(&page.text().await.expect("body"));

    let attempt = |cookie: Option<String>, csrf: Option<&str>, password: &str| {
        let mut form = vec![("password", password.to_string())];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf.to_string()));
        }
        let mut request = client.post(format!("{base}/login")).form(&form);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("gb_login={cookie}"));
        }
        request.send()
    };
    let r = attempt(
        Some(login_cookie.clone()),
        None,
        admin_support::ADMIN_PASSWORD,
    )
    .await
    .expect("POST");
    assert_eq!(r.status(), 403, "no CSRF token");
    let r = attempt(None, Some(&csrf), admin_support::ADMIN_PASSWORD)
        .await
        .expect("POST");
    assert_eq!(r.status(), 403, "no login cookie");
    let r = attempt(
        Some(login_cookie.clone()),
        Some("forged"),
        admin_support::ADMIN_PASSWORD,
    )
    .await
    .expect("POST");
    assert_eq!(r.status(), 403, "wrong CSRF token");
    let r = attempt(Some(login_cookie.clone()), Some(&csrf), "wrong")
        .await
        .expect("POST");
    assert_eq!(r.status(), 401, "wrong password");
    assert!(set_cookie(&r, "gb_session").is_none());
    let r = attempt(
        Some(login_cookie),
        Some(&csrf),
        admin_support::ADMIN_PASSWORD,
    )
    .await
    .expect("POST");
    assert_eq!(r.status(), 303);
    let (_, header) = set_cookie(&r, "gb_session").expect("session cookie");
    assert!(header.contains("HttpOnly"), "{header}");
    assert!(header.contains("SameSite=Strict"), "{header}");
    assert!(
        !header.contains("Secure"),
        "plain-HTTP loopback cannot use Secure cookies"
    );
    setup.stop().await;
}

#[tokio::test]
async fn forms_refuse_without_the_csrf_token() {
    let setup = admin_support::start(false).await;
    let web = WebAdmin::login(&setup.base).await;
    let r = web.post_raw("/mailboxes", &[("address", MAILBOX)]).await;
    assert_eq!(r.status(), 403);
    let r = web
        .post_raw("/mailboxes", &[("address", MAILBOX), ("csrf", "forged")])
        .await;
    assert_eq!(r.status(), 403);
    let r = web
        .post_raw("/users", &[("name", "eve"), ("password", "x")])
        .await;
    assert_eq!(r.status(), 403);
    assert!(admin::list_mailboxes(setup.store())
        .expect("list")
        .is_empty());
    assert!(!admin::list_users(setup.store())
        .expect("users")
        .iter()
        .any(|u| u.name == "eve"));

    // With the token the same forms work; a session's token does not work for another session.
    let r = web.post("/mailboxes", &[("address", MAILBOX)]).await;
    assert_eq!(r.status(), 303);
    let other = WebAdmin::login(&setup.base).await;
    let their_csrf = csrf_of(&other.page("/").await);
    let r = web
        .post_raw(
            "/users",
            &[
                ("name", "eve"),
                ("password", "x"),
                ("csrf", their_csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    for path in [
        "/mailboxes/support@contoso.test/remove",
        "/mailboxes/support@contoso.test/signin",
    ] {
        let r = web.post_raw(path, &[("confirm", "yes")]).await;
        assert_eq!(r.status(), 403, "{path}");
    }
    assert_eq!(admin::list_mailboxes(setup.store()).expect("list").len(), 1);
    setup.stop().await;
}

#[tokio::test]
async fn web_flow_import_assign_sign_in_and_sync() {
    let setup = admin_support::start(false).await;
    let web = WebAdmin::login(&setup.base).await;
    let page = web.page("/").await;
    assert!(page.contains("Import Office 365"), "the import form");
    assert!(
        page.contains("even users who do not have access to the Microsoft account"),
        "the warning"
    );

    // Mistakes come back as notices.
    let r = web
        .post("/mailboxes", &[("address", "not an address")])
        .await;
    assert_eq!(r.headers()["location"], "/");
    assert!(web.page("/").await.contains("is not an email address"));

    let r = web.post("/mailboxes", &[("address", MAILBOX)]).await;
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert_eq!(location, "/mailboxes/support@contoso.test");
    let page = web.page(&location).await;
    assert!(
        page.contains("support@contoso.test imported"),
        "notice shown once"
    );
    assert!(page.contains("data-state=\"never\""));
    assert!(
        !web.page(&location)
            .await
            .contains("support@contoso.test imported"),
        "notice gone"
    );

    web.post(
        &format!("{location}/assign"),
        &[("user", "anna"), ("main", "yes")],
    )
    .await;
    web.post(
        &format!("{location}/assign"),
        &[("user", "bob"), ("main", "yes")],
    )
    .await;
    let page = web.page(&location).await;
    assert!(
        page.contains("already has a main user (anna)"),
        "second main user refused"
    );
    web.post(&format!("{location}/assign"), &[("user", "bob")])
        .await;
    let o = admin::mailbox_overview(setup.store(), MAILBOX).expect("overview");
    assert_eq!(o.main_user(), Some("anna"));
    assert_eq!(o.users.len(), 2);
    let page = web.page(&location).await;
    assert!(page.contains("👑 main user"), "the crown");
    web.post(&format!("{location}/unassign"), &[("user", "anna")])
        .await;
    assert!(web
        .page(&location)
        .await
        .contains("anna is the main user of support@contoso.test"));

    // Settings: all or nothing.
    web.post(
        &format!("{location}/settings"),
        &[
            ("recipient_limit", "25"),
            ("sent_copy", "client"),
            ("agreement_text", "<b>Terms</b>"),
        ],
    )
    .await;
    let page = web.page(&location).await;
    assert!(page.contains("Settings saved"));
    assert!(page.contains("&lt;b&gt;Terms&lt;/b&gt;"), "escaped");
    assert!(!page.contains("<b>Terms</b>"));
    web.post(
        &format!("{location}/settings"),
        &[("recipient_limit", "0"), ("sent_copy", "graph")],
    )
    .await;
    assert!(web
        .page(&location)
        .await
        .contains("recipient_limit cannot be"));
    let s = admin::settings(setup.store(), MAILBOX).expect("settings");
    assert_eq!((s.recipient_limit, s.sent_copy.as_str()), (25, "client"));
    assert!(
        page.contains("id=activities") && !page.contains("records none yet"),
        "activities: an (empty) list, since sending books them"
    );

    // Sign in with Microsoft: the bridge sends the browser to /authorize with PKCE.
    let r = web.post(&format!("{location}/signin"), &[]).await;
    assert_eq!(r.status(), 303);
    let authorize = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let url = reqwest::Url::parse(&authorize).expect("authorize URL");
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert!(
        url.path().ends_with("/oauth2/v2.0/authorize"),
        "{authorize}"
    );
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["login_hint"], MAILBOX);
    let redirect_uri = query["redirect_uri"].clone();
    assert_eq!(
        redirect_uri,
        format!(
            "http://localhost:{}/oauth/callback",
            setup.running.http.port()
        )
    );
    // The emulator's sign-in page: pick the account, as a person would.
    let client = http();
    let mut form: Vec<(String, String)> = query.clone().into_iter().collect();
    form.push(("account".into(), MAILBOX.into()));
    let r = client
        .post(&authorize)
        .form(&form)
        .send()
        .await
        .expect("authorize");
    assert!(r.status().is_redirection(), "{}", r.status());
    let callback = r.headers()["location"]
        .to_str()
        .expect("callback")
        .to_string();
    assert!(callback.starts_with(&redirect_uri), "{callback}");
    // Microsoft's redirect arrives without the admin's (SameSite=Strict) cookie.
    let r = client.get(&callback).send().await.expect("callback");
    assert_eq!(r.status(), 200);
    let body = r.text().await.expect("body");
    assert!(body.contains("is signed in"), "{body}");
    assert!(
        body.contains(&format!("{}/mailboxes/support@contoso.test", setup.base)),
        "back to the same site"
    );
    // The state is single-use.
    let r = client.get(&callback).send().await.expect("callback again");
    assert_eq!(r.status(), 400);

    let synced = common::eventually(Duration::from_secs(60), || async {
        let o = admin::mailbox_overview(setup.store(), MAILBOX).expect("overview");
        o.progress.is_complete() && o.progress.messages >= 3
    })
    .await;
    assert!(
        synced,
        "sync finished: {:?}",
        admin::mailbox_overview(setup.store(), MAILBOX).expect("o")
    );
    let page = web.page(&location).await;
    assert!(page.contains("data-state=\"signed_in\""), "signed in");
    assert!(page.contains("data-complete=\"true\""), "sync complete");

    // The refresh token is sealed: its text appears nowhere in the store's files.
    let token = stored_refresh_token(setup.data_dir.path(), MAILBOX);
    assert!(token.len() > 20);
    assert!(!contains(
        &store_bytes(setup.data_dir.path()),
        token.as_bytes()
    ));

    // bob (assigned) reads the mailbox over IMAP; carl (not assigned) is refused.
    let mut imap =
        common::Imap::login(setup.running.imap, "bob", admin_support::USER_PASSWORD).await;
    let select = imap.cmd("SELECT INBOX").await;
    select.assert_ok();
    assert!(select.find("3 EXISTS").is_some(), "{:?}", select.untagged);
    let mut carl = common::Imap::connect(setup.running.imap).await;
    assert!(!carl
        .cmd(&format!("LOGIN carl {}", admin_support::USER_PASSWORD))
        .await
        .ok());
    let mut carl = common::Imap::connect(setup.running.imap).await;
    assert!(!carl
        .cmd(&format!(
            "LOGIN {MAILBOX}*carl {}",
            admin_support::USER_PASSWORD
        ))
        .await
        .ok());

    // Removing the mailbox takes its tokens and cached mail along.
    let r = web.post(&format!("{location}/remove"), &[]).await;
    assert_eq!(
        r.headers()["location"],
        location.as_str(),
        "needs the confirmation box"
    );
    let r = web
        .post(&format!("{location}/remove"), &[("confirm", "yes")])
        .await;
    assert_eq!(r.headers()["location"], "/");
    assert!(admin::list_mailboxes(setup.store())
        .expect("list")
        .is_empty());
    setup.stop().await;
}

#[tokio::test]
async fn users_page_adds_changes_and_removes_users_and_escapes_names() {
    let setup = admin_support::start(false).await;
    let web = WebAdmin::login(&setup.base).await;
    web.post("/users", &[("name", "<img>"), ("password", "pw1")])
        .await;
    let page = web.page("/users").await;
    assert!(page.contains("user &lt;img&gt; added"), "escaped notice");
    assert!(!page.contains("<img>"), "never raw");
    web.post("/users", &[("name", "dora"), ("password", "")])
        .await;
    assert!(web
        .page("/users")
        .await
        .contains("passwords must not be empty"));
    web.post("/users/dora/password", &[("password", "x")]).await;
    assert!(web.page("/users").await.contains("no user named dora"));
    web.post("/users/carl/password", &[("password", "new-pw")])
        .await;
    assert!(web
        .page("/users")
        .await
        .contains("password of carl changed"));
    web.post("/users/%3Cimg%3E/remove", &[]).await;
    let users = admin::list_users(setup.store()).expect("users");
    assert!(!users.iter().any(|u| u.name == "<img>"));
    setup.stop().await;
}

async fn api(
    client: &reqwest::Client,
    token: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.expect("API");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn json_api_mirrors_the_admin() {
    use reqwest::Method;
    let setup = admin_support::start(false).await;
    let token = admin::new_api_token(setup.store()).expect("token");
    let client = http();
    let b = format!("{}/api/v1", setup.base);

    let (s, v) = api(
        &client,
        &token,
        Method::POST,
        format!("{b}/mailboxes"),
        Some(json!({"address": MAILBOX})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["signin_state"], "never");
    assert_eq!(v["kind"], "microsoft365");
    let (s, v) = api(
        &client,
        &token,
        Method::POST,
        format!("{b}/mailboxes"),
        Some(json!({"address": MAILBOX})),
    )
    .await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")));
    let (s, _) = api(
        &client,
        &token,
        Method::POST,
        format!("{b}/mailboxes"),
        Some(json!({"address": "nope"})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, v) = api(
        &client,
        &token,
        Method::POST,
        format!("{b}/mailboxes"),
        Some(json!({"address": "help@contoso.test", "alias_of": MAILBOX})),
    )
    .await;
    assert_eq!((s, v["alias_of"].as_str()), (201, Some(MAILBOX)));

    let m = format!("{b}/mailboxes/{MAILBOX}");
    let (s, v) = api(
        &client,
        &token,
        Method::PUT,
        format!("{m}/assignments/anna"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["users"][0],
        json!({"name": "anna", "main": true}),
        "first user is main"
    );
    let (s, _) = api(
        &client,
        &token,
        Method::PUT,
        format!("{m}/assignments/bob"),
        Some(json!({"main": true})),
    )
    .await;
    assert_eq!(s, 409, "second main user");
    let (s, _) = api(
        &client,
        &token,
        Method::PUT,
        format!("{m}/assignments/nobody"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, v) = api(
        &client,
        &token,
        Method::PUT,
        format!("{m}/assignments/bob"),
        Some(json!({"replace_main": true})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["users"][0], json!({"name": "bob", "main": true}));
    let (s, _) = api(
        &client,
        &token,
        Method::DELETE,
        format!("{m}/assignments/bob"),
        None,
    )
    .await;
    assert_eq!(s, 409, "the main user cannot leave others behind");
    let (s, _) = api(
        &client,
        &token,
        Method::DELETE,
        format!("{m}/assignments/anna"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = api(
        &client,
        &token,
        Method::DELETE,
        format!("{m}/assignments/anna"),
        None,
    )
    .await;
    assert_eq!(s, 404);

    let (s, v) = api(&client, &token, Method::GET, format!("{m}/settings"), None).await;
    assert_eq!((s, v["recipient_limit"].as_u64()), (200, Some(10)));
    let (s, v) = api(
        &client,
        &token,
        Method::PATCH,
        format!("{m}/settings"),
        Some(
            json!({"recipient_limit": 20, "book_external_sends": false, "poll_interval_secs": 30}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["recipient_limit"].as_u64(),
            v["book_external_sends"].as_bool()
        ),
        (Some(20), Some(false))
    );
    let (s, v) = api(
        &client,
        &token,
        Method::PATCH,
        format!("{m}/settings"),
        Some(json!({"colour": "red"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");

    let (s, v) = api(
        &client,
        &token,
        Method::GET,
        format!("{m}/activities"),
        None,
    )
    .await;
    assert_eq!((s, v["available"].as_bool()), (200, Some(true)));
    let unversioned = format!("{}/activities", b.trim_end_matches("/v1"));
    let (s, v) = api(&client, &token, Method::GET, unversioned, None).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["activities"].as_array().is_some_and(|a| a.is_empty()),
        "{v}"
    );
    let (s, v) = api(
        &client,
        &token,
        Method::GET,
        format!("{m}/download-links"),
        None,
    )
    .await;
    assert_eq!((s, v["items"].as_array().map(Vec::len)), (200, Some(0)));

    let (s, v) = api(&client, &token, Method::POST, format!("{m}/signin"), None).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["authorize_url"]
        .as_str()
        .is_some_and(|u| u.contains("code_challenge=")));
    let (s, _) = api(
        &client,
        &token,
        Method::POST,
        format!("{b}/mailboxes/help@contoso.test/signin"),
        None,
    )
    .await;
    assert_eq!(s, 409, "an alias signs in through its primary");

    let (s, _) = api(
        &client,
        &token,
        Method::POST,
        format!("{b}/users"),
        Some(json!({"name": "dora", "password": "pw"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = api(
        &client,
        &token,
        Method::PUT,
        format!("{b}/users/dora/password"),
        Some(json!({"password": "pw2"})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, v) = api(&client, &token, Method::GET, format!("{b}/users"), None).await;
    assert_eq!(s, 200);
    assert!(v["users"]
        .as_array()
        .expect("users")
        .iter()
        .any(|u| u["name"] == "dora"));
    let (s, _) = api(
        &client,
        &token,
        Method::DELETE,
        format!("{b}/users/dora"),
        None,
    )
    .await;
    assert_eq!(s, 204);

    let (s, _) = api(
        &client,
        &token,
        Method::DELETE,
        format!("{b}/mailboxes/{MAILBOX}"),
        None,
    )
    .await;
    assert_eq!(s, 409, "has an alias");
    let (s, _) = api(
        &client,
        &token,
        Method::DELETE,
        format!("{b}/mailboxes/help@contoso.test"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, v) = api(&client, &token, Method::GET, format!("{b}/mailboxes"), None).await;
    assert_eq!((s, v["mailboxes"].as_array().map(Vec::len)), (200, Some(1)));
    setup.stop().await;
}
