//! Does a request cost more when the server holds more? The same requests against a small
//! server (one site, nothing stored) and a large one (10 000 sites, 1 000 000 stored
//! verifications, 1 000 000 client networks tracked for adaptive difficulty, each with a
//! challenge pending in the per-network limits and a failed key guess on record), among
//! them wrong keys from networks never seen before (each one a new entry in a full guess
//! record), and the stalls
//! requests see while the large server forgets 800 000 expired verifications, beside the stalls
//! they see for as long with nothing expiring (this machine's own).
//!
//! ```sh
//! cargo run --release -p trustcaptcha-bench --bin scale-bench
//! ```
//!
//! The server is embedded (memory store, manual clock, mimalloc as in the shipped binary) and
//! the client is sequential, one request at a time: the figures are per-request latencies on
//! loopback, client included. The process's RSS before and after the mass expiry shows whether
//! the memory is given back.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use trustcaptcha_bench::{
    API_KEY, SITE_KEY, embedded_bench_site, latency, ms, rss_bytes, sequential, solved_results_url,
};
use trustcaptcha_server::clock::Clock as _;
use trustcaptcha_server::config::{Config, Site};
use trustcaptcha_server::secret::KeyHash;
use trustcaptcha_server::store::Store;
use trustcaptcha_server::store::memory::MemoryStore;
use trustcaptcha_server::testing::{self, TestServer};

const REQUESTS: usize = 20_000;
const CREATES: usize = 5_000;
const WINDOW: Duration = Duration::from_secs(60);
/// A request slower than this counts as stalled.
const STALL: Duration = Duration::from_millis(5);

struct Scale {
    name: &'static str,
    sites: usize,
    stored: usize,
    networks: u32,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| server | GET /results p50 / p99 / max | create p50 / p99 / max | wrong key from a new network p50 / p99 / max |"
    );
    println!("|---|---|---|---|");
    let small = Scale {
        name: "small: 1 site, nothing stored",
        sites: 1,
        stored: 0,
        networks: 0,
    };
    let large = Scale {
        name: "large: 10 000 sites, 1 000 000 stored, 1 000 000 networks",
        sites: 10_000,
        stored: 1_000_000,
        networks: 1_000_000,
    };
    let small = runtime.block_on(measure(&small));
    let large = runtime.block_on(measure(&large));
    println!();
    println!(
        "large ÷ small, p50: GET /results {:.2}×, create {:.2}×, wrong key from a new network {:.2}×",
        large.0.as_secs_f64() / small.0.as_secs_f64(),
        large.1.as_secs_f64() / small.1.as_secs_f64(),
        large.2.as_secs_f64() / small.2.as_secs_f64()
    );
}

fn config(sites: usize) -> Config {
    let bench = embedded_bench_site();
    let others = (1..sites).map(|i| Site {
        api_keys: vec![KeyHash::of(&format!("ak_other_site_key_{i:08}"))],
        ..Site::new(format!("site-{i}"), uuid::Uuid::new_v4())
    });
    let mut config = Config::new(std::iter::once(bench).chain(others).collect());
    // The limits' pools at twice what is handed out, so that their fair share (past half a pool)
    // does not refuse the one client network that measures; the store holds its own 2 000 000.
    config.server.max_verifications = 4_000_000;
    config.server.widget_requests_per_minute = 100_000_000;
    config.server.widget_burst = 100_000_000;
    config.server.max_pending_per_network = 2_000_000;
    config.server.max_pending_per_site = 4_000_000;
    // The client speaks for many networks through X-Forwarded-For (wrong keys from new ones).
    config.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
    config.server.client_address_header =
        Some(trustcaptcha_server::client_address::ClientAddressHeader::XForwardedFor);
    config.server.failed_keys_per_hour = 1_000_000;
    config
}

/// The p50s of GET /results, of create and of a wrong key from a new network, after printing
/// the scale's row.
async fn measure(scale: &Scale) -> (Duration, Duration, Duration) {
    let mut made: Option<Arc<MemoryStore>> = None;
    let server = TestServer::start_with(config(scale.sites), |clock| {
        let store = Arc::new(MemoryStore::new(2_000_000, clock));
        made = Some(Arc::clone(&store));
        Some(store)
    })
    .await;
    let store = made.expect("the store was made");
    let now = server.clock.now();
    let site_key = SITE_KEY.parse().expect("site key");
    // Most expire after a minute (the stall test lets them), the rest later.
    fill(
        &store,
        scale.stored,
        now,
        |i| if i % 5 == 4 { 600 } else { 60 },
    )
    .await;
    testing::hooks::track_networks(&*store, scale.networks, WINDOW, now)
        .await
        .expect("counted");
    // Each network also has a challenge pending, expiring with most of the stored ones.
    let recorded = testing::hooks::hand_out_challenges(
        &server.state,
        scale.networks,
        site_key,
        now,
        now + Duration::from_secs(60),
    );
    assert_eq!(recorded, scale.networks, "every network has its challenge");
    testing::hooks::fail_guesses(&server.state, scale.networks, now);

    let results = solved_results_url(&server).await;
    let fetch = || {
        let request = server.http.get(&results).bearer_auth(API_KEY);
        async move { request.send().await.is_ok_and(|r| r.status() == 200) }
    };
    let mut warm = Vec::new();
    sequential(1_000, &mut warm, fetch).await;
    let mut fetches = Vec::new();
    sequential(REQUESTS, &mut fetches, fetch).await;
    let create = || {
        let request = server
            .http
            .post(format!("{}/v2/verifications", server.url))
            .header("origin", testing::ORIGIN)
            .json(&testing::create_request(SITE_KEY, false));
        async move { request.send().await.is_ok_and(|r| r.status() == 200) }
    };
    let mut creates = Vec::new();
    sequential(CREATES, &mut creates, create).await;
    // Each from a network no request came from before (11.0.0.0 onwards).
    let next = std::sync::atomic::AtomicU32::new(0x0b00_0000);
    let guess = || {
        let network =
            std::net::Ipv4Addr::from(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let request = server
            .http
            .get(&results)
            .bearer_auth("ak_wrong_key_0123456789")
            .header("x-forwarded-for", network.to_string());
        async move { request.send().await.is_ok_and(|r| r.status() == 403) }
    };
    let mut guesses = Vec::new();
    sequential(REQUESTS, &mut guesses, guess).await;
    let guess_max = *guesses.iter().max().expect("samples");
    let guessed = latency(&mut guesses);
    let fetch_max = *fetches.iter().max().expect("samples");
    let create_max = *creates.iter().max().expect("samples");
    let fetched = latency(&mut fetches);
    let created = latency(&mut creates);
    println!(
        "| {} | {} / {} / {} | {} / {} / {} | {} / {} / {} |",
        scale.name,
        ms(fetched.p50),
        ms(fetched.p99),
        ms(fetch_max),
        ms(created.p50),
        ms(created.p99),
        ms(create_max),
        ms(guessed.p50),
        ms(guessed.p99),
        ms(guess_max),
    );

    if scale.stored > 0 {
        // The same requests for as long, first with nothing to forget (what this machine's
        // scheduler alone does to a request), then while 800 000 verifications expire and the
        // sweeper (every 5 s) forgets them. Stalls beyond the first row's are background work's.
        // Each window also runs one pass of the limits' housekeeping at its start (the server's
        // own every 30 s falls into a window only by chance): over a million networks' live
        // challenges in the first, as they expire in the second.
        let housekeeping = || {
            let (state, now) = (server.state.clone(), server.clock.now());
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                testing::hooks::limits_housekeeping(&state, now);
                started.elapsed()
            })
        };
        let pass = housekeeping();
        let quiet = during_window(&fetch).await;
        let pass = pass.await.expect("housekeeping");
        report(
            &format!("nothing expiring (12 s; limits' pass {})", ms(pass)),
            &quiet,
        );
        server.clock.advance(Duration::from_secs(61));
        let before = store.count().await.expect("count");
        let rss_before = rss_bytes("self");
        let pass = housekeeping();
        let expiring = during_window(&fetch).await;
        let pass = pass.await.expect("housekeeping");
        let after = store.count().await.expect("count");
        let rss_after = rss_bytes("self");
        report(
            &format!(
                "while {} expired verifications were forgotten (12 s; limits' pass {})",
                before - after,
                ms(pass)
            ),
            &expiring,
        );
        // As many new ones as were forgotten: do they fit in the memory the old ones left?
        fill(&store, before - after, server.clock.now(), |_| 600).await;
        let rss_refilled = rss_bytes("self");
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        println!(
            "\nprocess RSS before the expiry {:.0} MiB, after it {:.0} MiB, after as many new \
             verifications as were forgotten {:.0} MiB\n",
            mib(rss_before),
            mib(rss_after),
            mib(rss_refilled)
        );
    }
    (fetched.p50, created.p50, guessed.p50)
}

/// Stores `count` pending verifications handed out at `now`, the `i`th living `lifetime(i)`
/// seconds.
async fn fill(
    store: &MemoryStore,
    count: usize,
    now: OffsetDateTime,
    lifetime: impl Fn(usize) -> u64,
) {
    let site_key = SITE_KEY.parse().expect("site key");
    for i in 0..count {
        let expires_at = now + Duration::from_secs(lifetime(i));
        let pending = testing::hooks::pending_for(site_key, now, expires_at);
        store
            .insert_pending(uuid::Uuid::new_v4(), pending, now)
            .await
            .expect("room");
    }
}

/// Requests one after another for 12 seconds; their latencies.
async fn during_window<F, Fut>(fetch: &F) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(12) {
        sequential(100, &mut samples, fetch).await;
    }
    samples
}

/// A row of latencies, with how many requests took longer than [`STALL`].
fn report(name: &str, samples: &[Duration]) {
    let longest = *samples.iter().max().expect("samples");
    let stalled = samples.iter().filter(|sample| **sample > STALL).count();
    let mut sorted = samples.to_vec();
    let figures = latency(&mut sorted);
    println!(
        "| {name}: {} requests, {stalled} over {} | {} / {} / {} | | |",
        samples.len(),
        ms(STALL),
        ms(figures.p50),
        ms(figures.p99),
        ms(longest)
    );
}
