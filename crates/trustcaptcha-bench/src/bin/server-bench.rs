//! `trustcaptcha-server` under load from a second process on loopback: `GET /results` beside a
//! bare hyper server answering the same body (the ceiling), the create→submit flow, and the
//! memory held per pending verification.
//!
//! ```sh
//! cargo run --release -p trustcaptcha-bench --bin server-bench
//! ```

use serde_json::Value;
use trustcaptcha_bench::{
    API_KEY, SITE_KEY, concurrent, serve_if_child, spawn_ceiling, spawn_server,
};
use trustcaptcha_server::testing;

const REQUESTS: usize = 60_000;
const FLOWS: usize = 5_000;
const PENDING: usize = 100_000;
const IN_FLIGHT: usize = 64;

fn main() {
    serve_if_child();
    let server = spawn_server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(&server));
}

async fn run(server: &trustcaptcha_bench::ServerProcess) {
    let url = &server.url;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let token = trustcaptcha_server::solve::solve(&trustcaptcha_server::solve::SolveOptions::new(
        url.clone(),
        SITE_KEY.to_owned(),
    ))
    .await
    .expect("token");
    let id = trustcaptcha::VerificationToken::decode(&token)
        .expect("token")
        .verification_id;
    let results_url = format!("{url}/v2/verifications/{id}/results");
    let body = http
        .get(&results_url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("result")
        .text()
        .await
        .expect("body");
    let ceiling = spawn_ceiling(&body);
    let ceiling_url = format!("{}/v2/verifications/{id}/results", ceiling.url);

    let get = |target: String| {
        let http = http.clone();
        move || {
            let request = http.get(&target).bearer_auth(API_KEY);
            async move {
                match request.send().await {
                    Ok(response) if response.status() == 200 => response.bytes().await.is_ok(),
                    _ => false,
                }
            }
        }
    };
    let results = get(results_url.clone());
    let bare = get(ceiling_url);
    concurrent(5_000, IN_FLIGHT, &results).await;
    concurrent(5_000, IN_FLIGHT, &bare).await;
    let ours = concurrent(REQUESTS, IN_FLIGHT, &results).await;
    let floor = concurrent(REQUESTS, IN_FLIGHT, &bare).await;

    let flow = || {
        let http = http.clone();
        let url = url.clone();
        async move { create_and_submit(&http, &url).await }
    };
    concurrent(500, IN_FLIGHT, flow).await;
    let flows = concurrent(FLOWS, IN_FLIGHT, flow).await;

    let before = server.rss_bytes();
    let create = || {
        let http = http.clone();
        let url = url.clone();
        async move { create(&http, &url).await.is_some() }
    };
    concurrent(PENDING, IN_FLIGHT, create).await;
    let after = server.rss_bytes();
    let per_pending = after.saturating_sub(before) as f64 / PENDING as f64;

    println!("| measurement | figure |");
    println!("|---|---|");
    println!("| GET /results, trustcaptcha-server, {IN_FLIGHT} in flight | {ours:.0} req/s |");
    println!(
        "| GET /results, bare hyper fixed body (ceiling), {IN_FLIGHT} in flight | {floor:.0} req/s |"
    );
    println!("| store | {} |", trustcaptcha_bench::store_url());
    println!("| ratio to ceiling | {:.2} |", ours / floor);
    println!("| create + solve + submit flows, {IN_FLIGHT} in flight | {flows:.0} flows/s |");
    println!(
        "| server RSS growth for {PENDING} pending verifications | {:.1} MiB, {per_pending:.0} bytes each |",
        after.saturating_sub(before) as f64 / 1_048_576.0
    );
    if let Some(path) = trustcaptcha_bench::store_url().strip_prefix("sqlite://") {
        // The WAL holds recent writes until a checkpoint; both files count.
        let size =
            |suffix: &str| std::fs::metadata(format!("{path}{suffix}")).map_or(0, |m| m.len());
        let bytes = size("") + size("-wal");
        println!(
            "| SQLite file (+ WAL) after them | {:.1} MiB, {:.0} bytes per verification held |",
            bytes as f64 / 1_048_576.0,
            bytes as f64 / (PENDING + FLOWS + 1) as f64
        );
    }
}

/// A widget-shaped create request; returns the challenge.
async fn create(http: &reqwest::Client, url: &str) -> Option<Value> {
    let response = http
        .post(format!("{url}/v2/verifications"))
        .json(&testing::create_request(SITE_KEY, false))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    response
        .json::<Value>()
        .await
        .ok()
        .map(|v| v["challenge"].clone())
}

async fn create_and_submit(http: &reqwest::Client, url: &str) -> bool {
    let Some(challenge) = create(http, url).await else {
        return false;
    };
    let submit = testing::submit_body(&testing::answers(&challenge));
    let id = challenge["verificationId"].as_str().unwrap_or_default();
    matches!(
        http.post(format!("{url}/v2/verifications/{id}/challenges")).json(&submit).send().await,
        Ok(response) if response.status() == 201
    )
}
