//! Shared helpers for the emulator's contract tests: start an emulator in-process on a free port
//! and talk to it with plain reqwest.
#![allow(dead_code)]

use graphbridge::emulator::{Emulator, EmulatorArgs};
use serde_json::Value;

pub const SALES: &str = "sales@contoso.test";

pub struct Opts {
    pub auto_consent: bool,
    pub token_lifetime_secs: u64,
    pub mime_rewrite: bool,
    pub client_id: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            auto_consent: true,
            token_lifetime_secs: 3600,
            mime_rewrite: false,
            client_id: None,
        }
    }
}

pub struct Running {
    pub base: String,
    pub client: reqwest::Client,
    pub emulator: Emulator,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub fn fixture(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/demo")
        .join(rel)
}

pub fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

pub async fn start(o: Opts) -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = EmulatorArgs {
        port: 0,
        fixtures: Some(fixture("")),
        auto_consent: o.auto_consent.then(|| SALES.to_string()),
        client_id: o.client_id,
        token_lifetime_secs: o.token_lifetime_secs,
        mime_rewrite: o.mime_rewrite,
        ..EmulatorArgs::default()
    };
    start_with(args).await
}

pub async fn start_with(args: EmulatorArgs) -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = Emulator::new(&args).expect("emulator loads the demo fixtures");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = emulator.clone();
    tokio::spawn(async move {
        let _ = server
            .serve(listener, async move {
                let _ = rx.await;
            })
            .await;
    });
    Running {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        emulator,
        _stop: tx,
    }
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Running {
    pub async fn post_form(&self, path: &str, body: String) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("post form");
        json_of(resp).await
    }

    pub async fn devicecode(&self) -> Value {
        let (status, v) = self
            .post_form(
                "/organizations/oauth2/v2.0/devicecode",
                "client_id=test-client&scope=offline_access%20https%3A%2F%2Fgraph.microsoft.com%2FMail.ReadWrite%20https%3A%2F%2Fgraph.microsoft.com%2FMail.Send".into(),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    pub async fn token_poll(&self, dc: &Value) -> (u16, Value) {
        let code = dc["device_code"].as_str().unwrap_or_default();
        self.post_form(
            "/organizations/oauth2/v2.0/token",
            format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=test-client&device_code={code}"),
        )
        .await
    }

    pub async fn poll_device(&self, dc: &Value) -> Value {
        let (status, v) = self.token_poll(dc).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    pub async fn refresh(&self, rt: &str) -> (u16, Value) {
        self.post_form(
            "/organizations/oauth2/v2.0/token",
            format!("grant_type=refresh_token&client_id=test-client&refresh_token={rt}"),
        )
        .await
    }

    /// Signs in as the auto-consent account and returns an access token.
    pub async fn sign_in(&self) -> String {
        let dc = self.devicecode().await;
        s(&self.poll_device(&dc).await["access_token"])
    }

    pub async fn get_with(&self, token: &str, path: &str) -> (u16, Value) {
        self.get_url(token, &format!("{}{path}", self.base)).await
    }

    pub async fn get_url(&self, token: &str, url: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        json_of(resp).await
    }

    pub async fn get_url_prefer(&self, token: &str, url: &str, prefer: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(url)
            .bearer_auth(token)
            .header("Prefer", prefer)
            .send()
            .await
            .expect("get");
        json_of(resp).await
    }

    pub async fn get_prefer(&self, token: &str, path: &str, prefer: &str) -> (u16, Value) {
        self.get_url_prefer(token, &format!("{}{path}", self.base), prefer)
            .await
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Value,
        prefer: &str,
    ) -> (u16, Value) {
        let mut rb = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body);
        if !prefer.is_empty() {
            rb = rb.header("Prefer", prefer);
        }
        json_of(rb.send().await.expect("send")).await
    }

    pub async fn patch_json(
        &self,
        token: &str,
        path: &str,
        body: Value,
        prefer: &str,
    ) -> (u16, Value) {
        self.send_json(reqwest::Method::PATCH, token, path, body, prefer)
            .await
    }

    pub async fn post_json(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, token, path, body, "")
            .await
    }

    /// POSTs a base64 MIME body as `text/plain`.
    pub async fn post_mime(&self, token: &str, path: &str, raw: &[u8]) -> (u16, Value) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        self.post_text(token, path, b64).await
    }

    pub async fn post_text(&self, token: &str, path: &str, body: String) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "text/plain")
            .body(body)
            .send()
            .await
            .expect("post text");
        json_of(resp).await
    }

    /// Follows nextLinks to the deltaLink; returns every item and the deltaLink.
    pub async fn delta_round(&self, token: &str, url: &str, prefer: &str) -> (Vec<Value>, String) {
        let mut items = Vec::new();
        let mut url = url.to_string();
        for _ in 0..1000 {
            let (status, page) = self.get_url_prefer(token, &url, prefer).await;
            assert_eq!(status, 200, "{page}");
            items.extend(page["value"].as_array().cloned().unwrap_or_default());
            match (page.get("@odata.nextLink"), page.get("@odata.deltaLink")) {
                (Some(next), None) => url = s(next),
                (None, Some(delta)) => return (items, s(delta)),
                other => panic!("a page carries exactly one link: {other:?}"),
            }
        }
        panic!("delta never ended");
    }

    /// Every message of a folder (through delta, full properties).
    pub async fn folder_messages(&self, token: &str, folder: &str) -> Vec<Value> {
        let url = format!("{}/v1.0/me/mailFolders/{folder}/messages/delta", self.base);
        self.delta_round(token, &url, "odata.maxpagesize=50")
            .await
            .0
    }

    pub async fn find_message(&self, token: &str, folder: &str, subject: &str) -> Value {
        let all = self.folder_messages(token, folder).await;
        all.into_iter()
            .find(|m| m["subject"] == subject)
            .unwrap_or_else(|| panic!("no message {subject:?} in {folder}"))
    }

    /// A folder by display name among the children of `parent` (root when `None`).
    pub async fn folder_by_name(&self, token: &str, parent: Option<&str>, name: &str) -> Value {
        let path = match parent {
            Some(p) => format!("/v1.0/me/mailFolders/{p}/childFolders?$top=100"),
            None => "/v1.0/me/mailFolders?$top=100".to_string(),
        };
        let (_, v) = self.get_with(token, &path).await;
        v["value"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["displayName"] == name).cloned())
            .unwrap_or_else(|| panic!("no folder {name}"))
    }
}

impl Running {
    /// Signs in as any account through the device-code page (works with or without auto-consent:
    /// an approval from the page overrides the automatic one).
    pub async fn sign_in_as(&self, upn: &str) -> String {
        let dc = self.devicecode().await;
        let code = s(&dc["user_code"]);
        let resp = self
            .client
            .post(format!("{}/devicelogin", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "code={code}&account={}&action=approve",
                upn.replace('@', "%40")
            ))
            .send()
            .await
            .expect("devicelogin");
        assert_eq!(resp.status(), 200);
        s(&self.poll_device(&dc).await["access_token"])
    }
}
