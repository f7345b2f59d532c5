//! The TLS listener and what it tells about clients: HTTPS with HTTP/2 and HTTP/1.1 over ALPN,
//! a renewed certificate served after a reload, the JA4 of a client's own TLS library judged
//! against the browser its User-Agent names, and a trusted proxy's JA4 header read only from
//! that proxy.

use std::path::{Path, PathBuf};

use serde_json::Value;
use trustcaptcha_server::config::{self, Config};
use trustcaptcha_server::testing::*;

use crate::fixtures::*;

const SITE: &str = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
const KEY: &str = "ak_tls_site_key_0123456789abcdef";

/// JA4s as a proxy would report them: Chromium's library, and Python's (OpenSSL).
const CHROME_JA4: &str = "t13d1516h2_8daaf6152771_d8a2da3f94cd";
const PYTHON_JA4: &str = "t13d3112h1_e8f1e7e78f70_b26ce05bbdd6";

/// A self-signed certificate for 127.0.0.1 and its key, written as PEM under `name`.
fn certificate(name: &str) -> (PathBuf, PathBuf, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let dir = std::env::temp_dir().join(format!("trustcaptcha-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let pem = made.cert.pem();
    std::fs::write(&cert, &pem).expect("cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("key");
    (cert, key, pem)
}

/// One site at default settings; `server` holds extra `[server]` lines.
fn site_config(server: &str) -> Config {
    config::parse(&format!(
        r#"
        [server]
        widget_requests_per_minute = 60000
        widget_burst = 10000
        {server}
        [[sites]]
        name = "tls"
        site_key = "{SITE}"
        api_keys = ["{KEY}"]
        allowed_origins = ["{ORIGIN}"]
        "#
    ))
    .expect("valid")
}

fn tls_line(cert: &Path, key: &Path) -> String {
    format!(
        "tls = {{ certificate = {:?}, private_key = {:?} }}",
        cert.display().to_string(),
        key.display().to_string()
    )
}

/// A client (rustls, through reqwest) that trusts only `pem` and says it is the browser of
/// [`create_body`].
fn client_trusting(pem: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("pem")])
        .user_agent(USER_AGENT)
        .default_headers(browser_headers())
}

/// What a solved verification left: the difficulty asked, its id and its token.
struct Solved {
    difficulty: u64,
    id: String,
    token: String,
}

/// Creates a verification with `client` and `headers` and solves it natively at a browser's
/// pace on the server's clock.
async fn solved(
    server: &TestServer,
    client: &reqwest::Client,
    headers: &reqwest::header::HeaderMap,
) -> Solved {
    let post = async |path: String, body: &Value| -> Value {
        client
            .post(format!("{}{path}", server.url))
            .headers(headers.clone())
            .header("origin", ORIGIN)
            .json(body)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json")
    };
    let created = post("/v2/verifications".to_owned(), &create_body(SITE, false)).await;
    let challenge = &created["challenge"];
    let tasks = answers(challenge);
    server
        .clock
        .advance(browser_time(&tasks).max(std::time::Duration::from_secs(1)));
    let id = challenge["verificationId"].as_str().expect("id").to_owned();
    let finished = post(
        format!("/v2/verifications/{id}/challenges"),
        &submit_body(&tasks),
    )
    .await;
    Solved {
        difficulty: challenge["difficulty"].as_u64().expect("difficulty"),
        token: finished["finished"]["verificationToken"]
            .as_str()
            .expect("token")
            .to_owned(),
        id,
    }
}

/// [`solved`], and the result as the backend fetches it: the difficulty asked and the result.
async fn judged(
    server: &TestServer,
    client: &reqwest::Client,
    headers: &reqwest::header::HeaderMap,
) -> (u64, Value) {
    let solved = solved(server, client, headers).await;
    let result: Value = client
        .get(format!(
            "{}/v2/verifications/{}/results",
            server.url, solved.id
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("results")
        .json()
        .await
        .expect("json");
    (solved.difficulty, result)
}

#[tokio::test]
async fn the_listener_serves_https_over_http2_and_http1() {
    let (cert, key, pem) = certificate("alpn");
    let server = TestServer::start(site_config(&tls_line(&cert, &key))).await;
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let h2 = client_trusting(&pem).build().expect("client");
    let response = h2
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("h2");
    assert_eq!(
        (response.status().as_u16(), response.version()),
        (200, reqwest::Version::HTTP_2)
    );
    let h1 = client_trusting(&pem).http1_only().build().expect("client");
    let response = h1
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("h1");
    assert_eq!(
        (response.status().as_u16(), response.version()),
        (200, reqwest::Version::HTTP_11)
    );
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = server.url.replace("https://", "http://");
    assert!(plain.get(format!("{url}/healthz")).send().await.is_err());
}

#[tokio::test]
async fn a_client_whose_tls_library_is_not_its_claimed_browsers_fires_tls() {
    let (cert, key, pem) = certificate("judge");
    let server = TestServer::start(site_config(&tls_line(&cert, &key))).await;
    // reqwest's rustls under Chromium's User-Agent and headers.
    let client = client_trusting(&pem).build().expect("client");
    let (difficulty, result) = judged(&server, &client, &reqwest::header::HeaderMap::new()).await;
    assert_eq!(difficulty, 13 + 3, "tls (0.6) buys three bits of work");
    assert_eq!(result["score"], 0.6, "{result}");
    assert_eq!(result["decisionAction"], "BLOCK");
    let counts = server.statistics("tls", "hour").await["counts"].take();
    assert_eq!(counts["signal:tls"], 1, "{counts}");
    // The same library without a browser's name is not judged by this signal (its request
    // disagrees with the page's User-Agent, which is `request`'s business).
    let mut named = reqwest::header::HeaderMap::new();
    named.insert("user-agent", "inventory-sync/1.0".parse().expect("value"));
    let (_, result) = judged(&server, &client, &named).await;
    assert_eq!(result["score"], 0.4, "{result}");
    let counts = server.statistics("tls", "hour").await["counts"].take();
    assert_eq!(counts["signal:tls"], 1, "{counts}");
    assert_eq!(counts["signal:request"], 1, "{counts}");
}

/// A backend (the `trustcaptcha` crate) verifies against the TLS listener when told to trust
/// the server's own certificate authority, as in an air-gapped network; without it, the client
/// reports a configuration error (not an outage) and no result is believed.
#[tokio::test]
async fn a_backend_verifies_over_tls_trusting_a_private_authority() {
    let (cert, key, pem) = certificate("backend");
    let server = TestServer::start(site_config(&tls_line(&cert, &key))).await;
    let browser = client_trusting(&pem).build().expect("client");
    let Solved { id, token, .. } =
        solved(&server, &browser, &reqwest::header::HeaderMap::new()).await;
    let untrusting = trustcaptcha::TrustCaptcha::builder(KEY)
        .api_host(&server.url)
        .build()
        .expect("client");
    let error = untrusting
        .get_verification_result(&token)
        .await
        .expect_err("an unknown authority");
    // A certificate the client does not trust is a configuration problem, never an outage
    // (which a failover policy might answer).
    assert_eq!(error.kind(), trustcaptcha::ErrorKind::Builder, "{error:?}");
    assert!(error.to_string().contains("certificate"), "{error}");
    let trusting = trustcaptcha::TrustCaptcha::builder(KEY)
        .api_host(&server.url)
        .add_root_certificate(&pem)
        .build()
        .expect("client");
    let result = trusting
        .get_verification_result(&token)
        .await
        .expect("result");
    assert_eq!(result.verification_id.to_string(), id);
}

#[tokio::test]
async fn a_trusted_proxys_ja4_header_is_read_and_anyone_elses_is_not() {
    let proxied = TestServer::start(site_config(
        r#"trusted_proxies = ["127.0.0.1/32"]
        client_address_header = "x-forwarded-for"
        tls_fingerprint_header = "x-ja4""#,
    ))
    .await;
    let client = TestClient::new(&proxied.url).http;
    let with = |ja4: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-ja4", ja4.parse().expect("value"));
        headers.insert("x-forwarded-for", "203.0.113.7".parse().expect("value"));
        headers
    };
    let (difficulty, result) = judged(&proxied, &client, &with(CHROME_JA4)).await;
    assert_eq!(
        (difficulty, result["score"].as_f64()),
        (13, Some(0.0)),
        "{result}"
    );
    let (difficulty, result) = judged(&proxied, &client, &with(PYTHON_JA4)).await;
    assert_eq!(
        (difficulty, result["score"].as_f64()),
        (16, Some(0.6)),
        "{result}"
    );
    // A header that is not a JA4 is no fingerprint: nothing is judged.
    let (_, result) = judged(&proxied, &client, &with("curl")).await;
    assert_eq!(result["score"], 0.0);

    // From a peer that is not a trusted proxy the header is the client's own claim.
    let direct = TestServer::start(site_config(
        r#"trusted_proxies = ["10.0.0.0/8"]
        client_address_header = "x-forwarded-for"
        tls_fingerprint_header = "x-ja4""#,
    ))
    .await;
    let (_, result) = judged(&direct, &client, &with(PYTHON_JA4)).await;
    assert_eq!(result["score"], 0.0, "{result}");
}

#[tokio::test]
async fn a_reload_serves_the_renewed_certificate_and_a_bad_one_changes_nothing() {
    let (cert, key, old_pem) = certificate("reload");
    let file = cert.with_file_name("server.toml");
    let text = config_text(&tls_line(&cert, &key));
    std::fs::write(&file, &text).expect("config");
    let server = TestServer::from_file(&file).await;
    let get = |pem: &str| {
        let client = client_trusting(pem).build().expect("client");
        let url = format!("{}/healthz", server.url);
        async move { client.get(url).send().await.map(|r| r.status()) }
    };
    assert_eq!(get(&old_pem).await.expect("old"), 200);

    // The operator renews the certificate under the same names and reloads.
    let (new_cert, new_key, new_pem) = certificate("renewed");
    std::fs::copy(&new_cert, &cert).expect("cert");
    std::fs::copy(&new_key, &key).expect("key");
    let (status, _) = server.reload().await;
    assert_eq!(status, 200);
    assert_eq!(get(&new_pem).await.expect("renewed"), 200);
    assert!(
        get(&old_pem).await.is_err(),
        "the old certificate is no longer served"
    );

    // A key that is not a key: the reload is refused and the served certificate stays.
    std::fs::write(&key, "not a key").expect("key");
    let (status, body) = server.reload().await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("server.tls"), "{body}");
    assert!(!body.to_string().contains("not a key"), "{body}");
    // A key file the PEM parser stumbles in: the line it stumbled on is not quoted either.
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----SECRETMATERIAL\n").expect("key");
    let (status, body) = server.reload().await;
    assert_eq!(status, 422, "{body}");
    assert!(!body.to_string().contains("SECRETMATERIAL"), "{body}");
    assert_eq!(get(&new_pem).await.expect("still served"), 200);
}
