//! `trustcaptcha-server` under load from a second process on loopback: `GET /results` beside a
//! bare hyper server answering the same body (the ceiling), the create→submit flow, the memory
//! held per pending verification, and the time a restarted server takes to serve again with
//! them stored.
//!
//! ```sh
//! cargo run --release -p trustcaptcha-bench --bin server-bench
//! TRUSTCAPTCHA_BENCH_STORE_URL=sqlite:///tmp/bench.sqlite3 cargo run --release -p trustcaptcha-bench --bin server-bench
//! TRUSTCAPTCHA_BENCH_STORE_URL=redis cargo run --release -p trustcaptcha-bench --bin server-bench
//! ```
//!
//! `redis` starts a Redis of its own (`redis-server`, append-only file synced every second).

// The server child runs this binary: it allocates as the shipped `trustcaptcha-server` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::Value;
use trustcaptcha_bench::{
    API_KEY, SITE_KEY, concurrent, config_for, serve_if_child, spawn_ceiling, spawn_server_with,
};
use trustcaptcha_server::testing::{self, RedisServer};

const REQUESTS: usize = 60_000;
const FLOWS: usize = 5_000;
const PENDING: usize = 100_000;
const IN_FLIGHT: usize = 64;

fn main() {
    serve_if_child();
    let store = trustcaptcha_bench::store_url();
    let redis = (store == "redis").then(|| {
        RedisServer::start_with(&[
            "--maxmemory-policy",
            "noeviction",
            "--appendfsync",
            "everysec",
        ])
    });
    let store = redis.as_ref().map_or(store, RedisServer::url);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(&store, redis.as_ref()));
}

async fn run(store: &str, redis: Option<&RedisServer>) {
    let config = config_for(store);
    let server = spawn_server_with(&config);
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
    let redis_before = redis.map(RedisServer::used_memory);
    let create = || {
        let http = http.clone();
        let url = url.clone();
        async move { create(&http, &url).await.is_some() }
    };
    concurrent(PENDING, IN_FLIGHT, create).await;
    let after = server.rss_bytes();
    let per_pending = after.saturating_sub(before) as f64 / PENDING as f64;
    let redis_growth = redis
        .zip(redis_before)
        .map(|(redis, before)| redis.used_memory().saturating_sub(before));

    // A restart with everything stored: from starting the process to its first answer.
    drop(server);
    let started = std::time::Instant::now();
    let again = spawn_server_with(&config);
    let healthy = http
        .get(format!("{}/healthz", again.url))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200);
    let restart = started.elapsed();
    assert!(healthy, "the restarted server answers");

    println!("| measurement | figure |");
    println!("|---|---|");
    println!("| GET /results, trustcaptcha-server, {IN_FLIGHT} in flight | {ours:.0} req/s |");
    println!(
        "| GET /results, bare hyper fixed body (ceiling), {IN_FLIGHT} in flight | {floor:.0} req/s |"
    );
    println!(
        "| store | {} |",
        trustcaptcha_server::config::redacted(store)
    );
    println!("| ratio to ceiling | {:.2} |", ours / floor);
    println!("| create + solve + submit flows, {IN_FLIGHT} in flight | {flows:.0} flows/s |");
    println!(
        "| server RSS growth for {PENDING} pending verifications | {:.1} MiB, {per_pending:.0} bytes each |",
        after.saturating_sub(before) as f64 / 1_048_576.0
    );
    if let Some(growth) = redis_growth {
        println!(
            "| Redis used_memory growth for them | {:.1} MiB, {:.0} bytes each |",
            growth as f64 / 1_048_576.0,
            growth as f64 / PENDING as f64
        );
    }
    println!(
        "| restart with {} verifications stored: start to first answer | {:.0} ms |",
        PENDING + FLOWS + 1,
        restart.as_secs_f64() * 1000.0
    );
    if let Some(path) = store.strip_prefix("sqlite://") {
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
