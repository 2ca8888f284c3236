//! An access token from the emulator's device-code flow (approved at once in the demo), as an
//! outside Graph client such as Outlook holds one.

use std::net::SocketAddr;

pub async fn emulator_token(http: &reqwest::Client, graph: SocketAddr, scope: &str) -> String {
    let code = device_code(http, graph, "tests", scope).await;
    let token = redeem(http, graph, "tests", &code).await;
    token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Starts the device-code flow; the emulator's answer.
async fn device_code(
    http: &reqwest::Client,
    graph: SocketAddr,
    client_id: &str,
    scope: &str,
) -> serde_json::Value {
    graphbridge::tls::install_crypto_provider();
    http.post(format!("http://{graph}/common/oauth2/v2.0/devicecode"))
        .form(&[("client_id", client_id), ("scope", scope)])
        .send()
        .await
        .expect("devicecode")
        .json()
        .await
        .expect("devicecode JSON")
}

/// Redeems an approved device code; the emulator's token answer.
async fn redeem(
    http: &reqwest::Client,
    graph: SocketAddr,
    client_id: &str,
    code: &serde_json::Value,
) -> serde_json::Value {
    let device_code = code["device_code"].as_str().expect("device_code");
    http.post(format!("http://{graph}/common/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client_id),
            ("device_code", device_code),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON")
}

/// The emulator's token answer (access and refresh token) for `account`, whichever account
/// the demo approves automatically: the device code is approved on the emulator's sign-in
/// page as `account` before it is redeemed.
pub async fn emulator_tokens_as(
    http: &reqwest::Client,
    graph: SocketAddr,
    client_id: &str,
    scope: &str,
    account: &str,
) -> serde_json::Value {
    let code = device_code(http, graph, client_id, scope).await;
    let user_code = code["user_code"].as_str().expect("user_code");
    let approved = http
        .post(format!("http://{graph}/devicelogin"))
        .form(&[
            ("code", user_code),
            ("account", account),
            ("action", "approve"),
        ])
        .send()
        .await
        .expect("devicelogin");
    assert!(approved.status().is_success(), "approve as {account}");
    redeem(http, graph, client_id, &code).await
}
