//! Webhooks through the real server: alerts reach a local HTTP receiver, signed so that it can
//! check them, retried when refused, written to the delivery log, and only where they belong.

use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use trustcaptcha_server::config::{self, Config};
use trustcaptcha_server::testing::*;

use crate::fixtures::*;

const QUOTA_SITE: &str = "6b2c3d4e-5f6a-4b7c-8d9e-0a1b2c3d4e5f";

/// One request the receiver took.
#[derive(Debug)]
struct Received {
    signature: String,
    delivery: String,
    event: String,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// Checks the signature as a receiver would: the HMAC-SHA256 of `t.body` under `secret`,
    /// compared in constant time, and `t` within five minutes.
    fn signed_with(&self, secret: &str) -> bool {
        let Some((t, v1)) = self
            .signature
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
        else {
            return false;
        };
        let Ok(t) = t.parse::<i64>() else {
            return false;
        };
        let fresh = (time::OffsetDateTime::now_utc().unix_timestamp() - t).abs() < 300;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(format!("{t}.{}", self.body).as_bytes());
        let Ok(v1) = hex::decode(v1) else {
            return false;
        };
        fresh && mac.verify_slice(&v1).is_ok()
    }
}

/// A receiver on a free loopback port: every request it takes is sent on; it answers 500 to
/// the first `refuse_first` requests and 204 to the rest.
async fn receiver(refuse_first: usize) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (sender, received) = mpsc::unbounded_channel();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (sender, refused) = (sender.clone(), Arc::clone(&refused));
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let _ = sender.send(Received {
                    signature: header("trustcaptcha-signature"),
                    delivery: header("trustcaptcha-delivery"),
                    event: header("trustcaptcha-event"),
                    body,
                });
                if refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < refuse_first {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// The next request of kind `event`, skipping others (a console change raises its own).
async fn next(received: &mut mpsc::UnboundedReceiver<Received>, event: &str) -> Received {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let request = received.recv().await.expect("the receiver runs");
            if request.event == event {
                return request;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {event} arrived"))
}

async fn admin(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .admin
        .http
        .request(method, format!("{}{path}", server.admin.url));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    let text = response.text().await.expect("text");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Makes a webhook; its id and secret.
async fn make(server: &TestServer, body: Value) -> (String, String) {
    let (status, made) = admin(server, reqwest::Method::POST, "/admin/webhooks", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    (
        made["id"].as_str().expect("id").to_owned(),
        made["secret"].as_str().expect("secret").to_owned(),
    )
}

/// Finishes one verification of `site` for a visitor at `client_ip` (through the trusted
/// proxy), so that no block is held to its fair share of the quota.
async fn solve_from(server: &TestServer, client_ip: &str, site: &str) {
    let response = via_proxy()
        .post(format!("{}/v2/verifications", server.url))
        .header("origin", ORIGIN)
        .header("x-forwarded-for", client_ip)
        .json(&create_body(site, false))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 200);
    let created: Value = response.json().await.expect("json");
    server.finish(&created["challenge"]).await;
}

/// Five visitors of five blocks finish a verification of the quota site (its quota: five).
async fn spend_the_quota(server: &TestServer) {
    for block in 1..=5 {
        solve_from(server, &format!("198.51.{block}.7"), QUOTA_SITE).await;
    }
}

fn quota_config() -> Config {
    let mut text = config_text("failed_keys_per_hour = 3\nrefusal_spike_minimum = 20");
    text.push_str(&format!(
        r#"
        [[sites]]
        name = "quota"
        site_key = "{QUOTA_SITE}"
        api_keys = ["ak_quota_site_secret_0123456789"]
        difficulty = 2
        tasks = 1
        hourly_quota = 5
        "#
    ));
    config::parse(&text).expect("valid")
}

#[tokio::test]
async fn alerts_reach_a_signed_webhook_and_a_refused_delivery_is_retried() {
    let server = TestServer::start(quota_config()).await;
    let (url, mut received) = receiver(1).await;
    let (id, secret) = make(&server, json!({ "url": url })).await;

    // Made: the secret is shown once, then never again (not in the list, not in the audit).
    let (_, listed) = admin(&server, reqwest::Method::GET, "/admin/webhooks", None).await;
    assert_eq!(listed["webhooks"][0]["id"], id.as_str());
    let (_, audit) = admin(&server, reqwest::Method::GET, "/admin/audit", None).await;
    for shown in [&listed, &audit] {
        assert!(
            !shown.to_string().contains(&secret),
            "the secret shown again"
        );
    }

    // The webhook's own making is a configuration change; the receiver refuses it once, the
    // retry comes with the same delivery id and a fresh signature.
    let first = next(&mut received, "configuration.changed").await;
    let retry = next(&mut received, "configuration.changed").await;
    assert_eq!(first.delivery, retry.delivery);
    for request in [&first, &retry] {
        assert!(request.signed_with(&secret), "{}", request.signature);
        assert!(
            !request.signed_with("whsec_another"),
            "only its own secret checks"
        );
    }
    let body = retry.json();
    assert_eq!(body["type"], "configuration.changed");
    assert_eq!(body["data"]["action"], "webhook.add");
    assert_eq!(body["id"], retry.delivery.as_str());
    // A forged body does not check.
    let forged = Received {
        body: retry.body.replace("webhook.add", "site.delete"),
        ..retry
    };
    assert!(!forged.signed_with(&secret));

    // The delivery log: the refusal, then the delivery.
    let (_, log) = admin(
        &server,
        reqwest::Method::GET,
        &format!("/admin/webhooks/{id}/deliveries"),
        None,
    )
    .await;
    let attempts = log["deliveries"].as_array().expect("deliveries");
    let statuses: Vec<(u64, u64)> = attempts
        .iter()
        .map(|attempt| {
            (
                attempt["attempt"].as_u64().expect("n"),
                attempt["status"].as_u64().expect("status"),
            )
        })
        .collect();
    assert_eq!(statuses, [(2, 204), (1, 500)], "newest first");

    // The quota at 80 % and 100 %: four of five, then five.
    spend_the_quota(&server).await;
    let warning = next(&mut received, "quota.warning").await.json();
    assert_eq!(
        (warning["site"].clone(), warning["data"]["used"].clone()),
        (json!("quota"), json!(4))
    );
    let exhausted = next(&mut received, "quota.exhausted").await.json();
    assert_eq!(exhausted["data"], json!({"used": 5, "quota": 5}));

    // A network guessing keys is locked out at its third failure.
    for _ in 0..3 {
        let answer = server
            .client("ak_not_a_key_of_anyone_0123456789")
            .get_verification_result(&server.solve(SITE_A).await)
            .await;
        assert!(answer.is_err());
    }
    let locked = next(&mut received, "network.locked_out").await.json();
    assert!(
        locked["data"]["network"]
            .as_str()
            .expect("network")
            .starts_with("127.0.0.")
    );

    // A spike: 25 refusals in a site's first hour (no baseline, above the minimum of 20).
    for _ in 0..25 {
        let (status, _) = server
            .post(
                "/v2/verifications",
                &create_body(SITE_A, false),
                Some("http://elsewhere.example"),
            )
            .await;
        assert_ne!(status, 200);
    }
    server.check_spikes().await;
    let spike = next(&mut received, "refusals.spike").await.json();
    assert_eq!(spike["site"], "a");
    assert!(spike["data"]["refusals_last_hour"].as_u64().expect("n") >= 20);

    // The test button: one attempt, answered at once.
    let (status, tested) = admin(
        &server,
        reqwest::Method::POST,
        &format!("/admin/webhooks/{id}/test"),
        None,
    )
    .await;
    assert_eq!((status, tested["status"].clone()), (200, json!(204)));
    assert!(
        next(&mut received, "webhook.test")
            .await
            .signed_with(&secret)
    );
    assert_eq!(
        admin(
            &server,
            reqwest::Method::POST,
            "/admin/webhooks/wh_none/test",
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn a_sites_webhook_hears_only_its_site_and_the_kinds_it_asked_for() {
    let server = TestServer::start(quota_config()).await;
    let (url, mut received) = receiver(0).await;
    let (everything_url, mut everything) = receiver(0).await;
    make(
        &server,
        json!({ "url": url, "site": "quota", "events": ["quota.exhausted"] }),
    )
    .await;
    make(&server, json!({ "url": everything_url })).await;
    spend_the_quota(&server).await;
    next(&mut everything, "quota.warning").await;
    next(&mut everything, "quota.exhausted").await;
    let only = next(&mut received, "quota.exhausted").await;
    assert_eq!(only.json()["site"], "quota");
    // Nothing else reached the site's webhook: not the warning, not the other webhook's making.
    assert!(received.try_recv().is_err(), "only what it asked for");

    // The console's pages: the list, a form with two kinds ticked (the secret shown once), the
    // test button, the delivery log.
    let form = |path: &str, fields: &[(&str, &str)]| {
        server
            .admin
            .http
            .post(format!("{}{path}", server.admin.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish(),
            )
            .send()
    };
    let made = form(
        "/webhooks",
        &[
            ("url", url.as_str()),
            ("site", "quota"),
            ("events", "quota.warning"),
            ("events", "webhook.test"),
        ],
    )
    .await
    .expect("page");
    assert_eq!(made.status(), 201);
    let page = made.text().await.expect("html");
    let secret = page
        .split("<pre id=\"new-key\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the secret, once")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = admin(&server, reqwest::Method::GET, "/admin/webhooks", None).await;
    let made = listed["webhooks"]
        .as_array()
        .expect("webhooks")
        .iter()
        .find(|webhook| webhook["events"] == json!(["quota.warning", "webhook.test"]))
        .expect("made by the form")
        .clone();
    let id = made["id"].as_str().expect("id");
    let listing = server.admin.get("/webhooks", None).await.1.to_string();
    assert!(listing.contains(id) && !listing.contains(&secret));
    let tested = form(&format!("/webhooks/{id}/test"), &[])
        .await
        .expect("page");
    let tested = tested.text().await.expect("html");
    assert!(tested.contains("The test was delivered: 204"), "{tested}");
    assert!(
        next(&mut received, "webhook.test")
            .await
            .signed_with(&secret)
    );
    let log = server
        .admin
        .get(&format!("/webhooks/{id}"), None)
        .await
        .1
        .to_string();
    assert!(
        log.contains("webhook.test") && log.contains("data-delivered=\\\"true\\\""),
        "{log}"
    );
    let removed = form(&format!("/webhooks/{id}/remove"), &[])
        .await
        .expect("page");
    assert!(removed.status().is_redirection() || removed.status() == 200);
    assert_eq!(
        admin(
            &server,
            reqwest::Method::DELETE,
            &format!("/admin/webhooks/{id}"),
            None
        )
        .await
        .0,
        404,
        "removed"
    );

    // Refused: a URL that is not http(s), a site or kind that does not exist.
    for (body, status) in [
        (json!({ "url": "file:///etc/passwd" }), 422),
        (json!({ "url": "not a url" }), 422),
        (json!({ "url": url, "site": "nope" }), 404),
        (json!({ "url": url, "events": ["moon.landing"] }), 422),
    ] {
        let (got, answer) = admin(
            &server,
            reqwest::Method::POST,
            "/admin/webhooks",
            Some(body.clone()),
        )
        .await;
        assert_eq!(got, status, "{body}: {answer}");
    }
}

#[tokio::test]
async fn a_store_outage_and_the_failover_window_it_opens_are_told() {
    // A webhook already in the store, and downtime on record when the server starts.
    use trustcaptcha_server::store::{Collection, Expect, Mark, Store as _};
    let (url, mut received) = receiver(0).await;
    let dir = std::env::temp_dir().join(format!("trustcaptcha-webhooks-{}", uuid::Uuid::new_v4()));
    let path = dir.join("state.sqlite3");
    let now = time::OffsetDateTime::now_utc();
    {
        let store = trustcaptcha_server::store::sqlite::SqliteStore::open(
            &path,
            10,
            Arc::new(trustcaptcha_server::clock::SystemClock),
        )
        .expect("open");
        store
            .mark(Mark::Heartbeat, now - Duration::from_secs(600))
            .await
            .expect("beat");
        let webhook = json!({
            "id": "wh_made_earlier", "url": url, "site": null, "events": [],
            "secret": "whsec_made_earlier", "created_at": "2026-01-01T00:00:00Z",
        });
        store
            .put_entry(
                Collection::Webhooks,
                "wh_made_earlier",
                webhook.to_string(),
                Expect::Absent,
                None,
                now,
            )
            .await
            .expect("put");
    }
    let mut durable = config("");
    durable.store.url = Some(format!("sqlite://{}", path.display()));
    let server = TestServer::start(durable).await;
    let opened = next(&mut received, "failover.window_opened").await;
    assert!(opened.signed_with("whsec_made_earlier"));
    assert!(opened.json()["data"]["until"].is_string());
    drop(server);
    let _ = std::fs::remove_dir_all(dir);

    // A store that stops answering, then answers again: told while it is down (the webhooks
    // read before it went down are used).
    let (server, store) = TestServer::with_fault_store(config("")).await;
    let (url, mut received) = receiver(0).await;
    let kinds = [
        "store.outage_started",
        "store.outage_ended",
        "configuration.changed",
    ];
    make(&server, json!({ "url": url, "events": kinds })).await;
    // Its own making is told: the list of webhooks was read before the outage.
    next(&mut received, "configuration.changed").await;
    store.layer().set_down(true);
    assert_ne!(server.create(&create_body(SITE_A, false)).await.0, 200);
    let started = next(&mut received, "store.outage_started").await.json();
    assert!(started["data"]["instance"].is_string());
    store.layer().set_down(false);
    server.create(&create_body(SITE_A, false)).await;
    let ended = next(&mut received, "store.outage_ended").await.json();
    assert!(ended["data"]["seconds"].is_number());
}
