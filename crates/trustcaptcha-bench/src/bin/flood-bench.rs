//! The server's limits under attack, measured against a server in a second process:
//!
//! 1. one client network floods the create endpoint for ten seconds (64 in flight) while
//!    visitors, each from a network of its own, run full verifications (create, solve, submit,
//!    retrieve) one every 250 ms: how many of the flood's requests are refused, and whether the
//!    visitors' all succeed;
//!    then the same for twenty seconds from 1 000 networks in 1 000 blocks (/24s), enough to
//!    fill the site's pool of open challenges many times over were each held only to its
//!    network's budget, and from 1 000 IPv6 /64s in one /48;
//! 2. resident memory after 100 000 creates whose page URL and User-Agent are far above what is
//!    stored (the stored texts are cut to their bound);
//! 3. the latency of the largest body the default limits admit (1 MiB of user events).
//!
//! ```sh
//! cargo run --release -p trustcaptcha-bench --bin flood-bench
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trustcaptcha_bench::{
    API_KEY, SITE_KEY, bench_site, concurrent, latency, ms, serve_if_child, spawn_server,
    spawn_server_with,
};
use trustcaptcha_server::testing;

const FLOOD_FOR: Duration = Duration::from_secs(10);
const IN_FLIGHT: usize = 64;
const PENDING: usize = 100_000;

/// Default limits, the load generator's address as a trusted proxy (so that it can speak for
/// two networks), cheap proof-of-work.
fn config() -> String {
    format!(
        r#"
        [server]
        trusted_proxies = ["127.0.0.1/32"]
        client_address_header = "x-forwarded-for"
        {site}"#,
        site = bench_site("")
    )
}

fn main() {
    serve_if_child();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    println!("| measurement | figure |\n|---|---|");

    // One network; then 1 000 /24s, which at 100 open challenges each could hold 100 000,
    // twice a site's pool of 50 000; then 1 000 /64s of one /48.
    let floods: [(&str, Duration, fn(usize) -> String); 3] = [
        ("one network", FLOOD_FOR, |_| "198.51.100.7".to_owned()),
        ("1 000 networks in 1 000 /24s", 2 * FLOOD_FOR, |i| {
            format!("10.{}.{}.1", i % 1000 / 250, i % 250)
        }),
        ("1 000 /64s in one /48", 2 * FLOOD_FOR, |i| {
            format!("2001:db8:7:{:x}::1", i % 1000)
        }),
    ];
    for (label, duration, network) in floods {
        let server = spawn_server_with(&config());
        flood(&http, &server.url, label, duration, network).await;
        drop(server);
    }

    let server = spawn_server();
    memory(&http, &server).await;
    largest_body(&http, &server.url).await;
}

async fn create_as(http: &reqwest::Client, url: &str, network: &str, body: &Value) -> (u16, Value) {
    let Ok(response) = http
        .post(format!("{url}/v2/verifications"))
        .header("x-forwarded-for", network)
        .json(body)
        .send()
        .await
    else {
        return (0, Value::Null);
    };
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Floods the create endpoint for `duration` from the networks `network` names (the `i`th
/// request's), while another network runs full verifications; prints both rows.
async fn flood(
    http: &reqwest::Client,
    url: &str,
    label: &str,
    duration: Duration,
    network: fn(usize) -> String,
) {
    let body = testing::create_body(SITE_KEY, false);
    let statuses: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let sent = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + duration;
    let flooders: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (http, url, body, statuses, sent) = (
                http.clone(),
                url.to_owned(),
                body.clone(),
                Arc::clone(&statuses),
                Arc::clone(&sent),
            );
            tokio::spawn(async move {
                while Instant::now() < until {
                    let from = network(sent.fetch_add(1, Ordering::Relaxed));
                    let slot = match create_as(&http, &url, &from, &body).await.0 {
                        200 => 0,
                        429 => 1,
                        _ => 2,
                    };
                    statuses[slot].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let (mut tried, mut passed, mut samples) = (0, 0, Vec::new());
    let client = trustcaptcha::TrustCaptcha::builder(API_KEY)
        .api_host(url)
        .build()
        .expect("client");
    while Instant::now() + Duration::from_millis(250) < until {
        let started = Instant::now();
        tried += 1;
        // Each flow is another visitor, from a network and block of its own (198.18.0.0/15).
        let visitor = format!("198.18.{}.{}", tried / 250, tried % 250 + 1);
        if full_flow(http, url, &client, &body, &visitor).await {
            passed += 1;
            samples.push(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250).saturating_sub(started.elapsed())).await;
    }
    for flooder in flooders {
        flooder.await.expect("flooder");
    }
    let [ok, limited, other] = [0, 1, 2].map(|i| statuses[i].load(Ordering::Relaxed));
    let total = ok + limited + other;
    println!(
        "| flood from {label}, {IN_FLIGHT} in flight, {}s | {total} create requests ({:.0}/s): {ok} answered 200, {limited} refused 429, {other} other |",
        duration.as_secs(),
        total as f64 / duration.as_secs_f64()
    );
    let lat = latency(&mut samples);
    println!(
        "| visitors meanwhile, one full verification per 250 ms, each from a network of its own | **{passed} of {tried} succeeded**; flow p50 {}, p99 {} |",
        ms(lat.p50),
        ms(lat.p99)
    );
}

/// Create, solve, submit and retrieve as a visitor at `visitor`; whether all of it succeeded.
async fn full_flow(
    http: &reqwest::Client,
    url: &str,
    client: &trustcaptcha::TrustCaptcha,
    body: &Value,
    visitor: &str,
) -> bool {
    let (status, created) = create_as(http, url, visitor, body).await;
    if status != 200 {
        return false;
    }
    let challenge = &created["challenge"];
    let id = challenge["verificationId"].as_str().unwrap_or_default();
    let Ok(response) = http
        .post(format!("{url}/v2/verifications/{id}/challenges"))
        .header("x-forwarded-for", visitor)
        .json(&testing::submit_body(&testing::answers(challenge)))
        .send()
        .await
    else {
        return false;
    };
    let finished: Value = response.json().await.unwrap_or(Value::Null);
    let Some(token) = finished["finished"]["verificationToken"].as_str() else {
        return false;
    };
    client.get_verification_result(token).await.is_ok()
}

async fn memory(http: &reqwest::Client, server: &trustcaptcha_bench::ServerProcess) {
    let mut body = testing::create_body(SITE_KEY, false);
    body["browserInformation"]["window-location-href"] =
        json!(format!("https://shop.example/{}", "a".repeat(4096)));
    let user_agent = format!(
        "Mozilla/5.0 (X11; Linux x86_64) Chrome/{}",
        "9".repeat(4096)
    );
    let before = server.rss_bytes();
    let url = server.url.clone();
    concurrent(PENDING, IN_FLIGHT, || {
        let (http, url, body, user_agent) = (http.clone(), url.clone(), body.clone(), user_agent.clone());
        async move {
            matches!(
                http.post(format!("{url}/v2/verifications")).header("user-agent", user_agent).json(&body).send().await,
                Ok(response) if response.status() == 200
            )
        }
    })
    .await;
    let after = server.rss_bytes();
    println!(
        "| server RSS growth for {PENDING} pending verifications with a 4 KiB page URL and User-Agent each | {:.1} MiB, **{:.0} bytes each** |",
        after.saturating_sub(before) as f64 / 1_048_576.0,
        after.saturating_sub(before) as f64 / PENDING as f64
    );
}

async fn largest_body(http: &reqwest::Client, url: &str) {
    let mut body = testing::create_body(SITE_KEY, false);
    let event =
        json!({"isTrusted": true, "timeStamp": 1234.5, "type": "mousemove", "x": 100, "y": 200});
    body["userEvents"] = Value::Array(vec![event; 12_000]);
    body["browserInformation"]["deep"] = json!([[[[1, 2, 3]]]]);
    let bytes = serde_json::to_vec(&body).expect("json");
    let mut samples = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let response = http
            .post(format!("{url}/v2/verifications"))
            .header("content-type", "application/json")
            .body(bytes.clone())
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await;
        samples.push(started.elapsed());
    }
    let lat = latency(&mut samples);
    println!(
        "| the largest admitted create body ({} KiB, 12 000 user events), 50 in a row | p50 {}, p99 {} |",
        bytes.len() / 1024,
        ms(lat.p50),
        ms(lat.p99)
    );
}
