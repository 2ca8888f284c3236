//! An access token from the emulator's device-code flow (approved at once in the demo), as an
//! outside Graph client such as Outlook holds one.

use std::net::SocketAddr;

pub async fn emulator_token(http: &reqwest::Client, graph: SocketAddr, scope: &str) -> String {
    graphbridge::tls::install_crypto_provider();
    let base = format!("http://{graph}");
    let code: serde_json::Value = http
        .post(format!("{base}/common/oauth2/v2.0/devicecode"))
        .form(&[("client_id", "tests"), ("scope", scope)])
        .send()
        .await
        .expect("devicecode")
        .json()
        .await
        .expect("devicecode JSON");
    let device_code = code["device_code"].as_str().expect("device_code");
    let token: serde_json::Value = http
        .post(format!("{base}/common/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "tests"),
            ("device_code", device_code),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}
