//! This crate's client vs a raw pooled reqwest GET vs the official `trustcaptcha` 3.0.0 crate,
//! in one run against the same `trustcaptcha-server` process on loopback.
//!
//! ```sh
//! cargo run --release -p trustcaptcha-bench --bin client-bench
//! ```

use std::time::Duration;

use trustcaptcha_bench::{
    API_KEY, SITE_KEY, concurrent, concurrent_lenient, latency, ms, sequential, serve_if_child,
    spawn_server,
};

const ROUNDS: usize = 10;
const SEQUENTIAL_PER_ROUND: usize = 500;
const CONCURRENT: usize = 30_000;
const OFFICIAL_SEQUENTIAL: usize = 100;
const OFFICIAL_CONCURRENT: usize = 640;
const IN_FLIGHT: usize = 64;

fn main() {
    serve_if_child();
    let server = spawn_server();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(&server.url));
}

async fn run(url: &str) {
    let token = trustcaptcha_server::solve::solve(&trustcaptcha_server::solve::SolveOptions::new(
        url.to_owned(),
        SITE_KEY.to_owned(),
    ))
    .await
    .expect("a token");

    // (a) this crate: one client, shared.
    let ours = trustcaptcha::TrustCaptcha::builder(API_KEY)
        .api_host(url)
        .build()
        .expect("client");
    let call_ours = || {
        let ours = ours.clone();
        let token = token.clone();
        async move { ours.get_verification_result(&token).await.is_ok() }
    };

    // (b) raw pooled reqwest: the same request and JSON decode, nothing else.
    let verification_id = trustcaptcha::VerificationToken::decode(&token)
        .expect("token")
        .verification_id;
    let results_url = format!("{url}/v2/verifications/{verification_id}/results");
    // The same transport settings as the crate's defaults: no redirects, 3 s / 5 s timeouts.
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .expect("reqwest");
    let call_raw = || {
        let request = raw
            .get(&results_url)
            .bearer_auth(API_KEY)
            .header(
                "user-agent",
                "Trustcaptcha/eyJsYW5ndWFnZSI6InJ1c3QiLCJ2ZXJzaW9uIjoiMy4xLjAifQ==",
            )
            .header("accept", "application/json");
        async move {
            match request.send().await {
                Ok(response) if response.status() == 200 => match response.bytes().await {
                    Ok(body) => {
                        serde_json::from_slice::<trustcaptcha::VerificationResult>(&body).is_ok()
                    }
                    Err(_) => false,
                },
                _ => false,
            }
        }
    };

    // (c) the official 3.0.0 crate, used as its guide shows.
    let official = trustcaptcha_official::trust_captcha::TrustCaptcha::builder(API_KEY)
        .api_host(url)
        .build()
        .expect("official client");
    let call_official = || async { official.get_verification_result(&token).await.is_ok() };

    // Warm up connections and caches.
    concurrent(2_000, IN_FLIGHT, call_ours).await;
    concurrent(2_000, IN_FLIGHT, call_raw).await;
    concurrent_lenient(20, 4, call_official).await;

    // Rounds alternate between (a) and (b), so that drift (CPU frequency, other load) hits
    // both alike.
    let (mut ours_samples, mut raw_samples, mut official_samples) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        sequential(SEQUENTIAL_PER_ROUND, &mut ours_samples, call_ours).await;
        sequential(SEQUENTIAL_PER_ROUND, &mut raw_samples, call_raw).await;
    }
    sequential(OFFICIAL_SEQUENTIAL, &mut official_samples, call_official).await;
    let seq_ours = latency(&mut ours_samples);
    let seq_raw = latency(&mut raw_samples);
    let seq_official = latency(&mut official_samples);
    let tput_ours = concurrent(CONCURRENT, IN_FLIGHT, call_ours).await;
    let tput_raw = concurrent(CONCURRENT, IN_FLIGHT, call_raw).await;
    // The official crate opens a new client (and connection) per call; under load some calls
    // fail, which is reported rather than hidden.
    let official = concurrent_lenient(OFFICIAL_CONCURRENT, IN_FLIGHT, call_official).await;
    let tput_official = official.per_second;

    println!("| client | sequential mean | p50 | p99 | throughput at {IN_FLIGHT} in flight |");
    println!("|---|---|---|---|---|");
    for (name, latency, throughput) in [
        ("(a) trustcaptcha 3.1.0 (this crate)", seq_ours, tput_ours),
        (
            "(b) raw pooled reqwest GET + JSON decode",
            seq_raw,
            tput_raw,
        ),
        (
            "(c) official trustcaptcha 3.0.0",
            seq_official,
            tput_official,
        ),
    ] {
        println!(
            "| {name} | {} | {} | {} | {throughput:.0} calls/s |",
            ms(latency.mean),
            ms(latency.p50),
            ms(latency.p99)
        );
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!();
    println!(
        "(a)/(b) sequential mean latency: {:.3}x",
        ratio(seq_ours.mean, seq_raw.mean)
    );
    println!("(b)/(a) throughput: {:.3}x", tput_raw / tput_ours);
    println!("(a)/(c) throughput: {:.0}x", tput_ours / tput_official);
    println!(
        "(c)/(a) sequential mean latency: {:.0}x",
        ratio(seq_official.mean, seq_ours.mean)
    );
    println!(
        "(c) failed calls at {IN_FLIGHT} in flight: {} of {OFFICIAL_CONCURRENT}",
        official.failed
    );
}
