//! Does a mass expiry slow the requests served meanwhile? A server holding 1 000 000 pending
//! verifications serves GET /results while 800 000 of them expire and the sweeper forgets them,
//! beside the same server serving the same requests for as long with nothing expiring, the two
//! windows alternating over rounds (each round refills what the last forgot). The figure is the
//! p99.9 of each window and their ratio.
//!
//! ```sh
//! cargo run --release -p trustcaptcha-bench --bin expiry-bench
//! TRUSTCAPTCHA_BENCH_STORE_URL=memory:// cargo run --release -p trustcaptcha-bench --bin expiry-bench
//! ```
//!
//! The server is embedded (a manual clock, so that 800 000 verifications expire at one step;
//! mimalloc as in the shipped binary) on the default store, a fresh SQLite file, unless
//! `TRUSTCAPTCHA_BENCH_STORE_URL=memory://`. `TRUSTCAPTCHA_BENCH_ROUNDS` rounds (default 3).
//! Each GET /results counts a retrieval (a write: on SQLite it queues behind the sweeper's
//! deletes on the one writer). Eight clients send one request at a time each. A window lasts
//! until the sweeper has forgotten the 800 000 (its interval, 5 s on memory and 30 s on SQLite,
//! is real time) plus 5 s, at least 12 s; the quiet window before it lasts as long as the
//! expiring window of the round before (12 s in the first).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use time::OffsetDateTime;

use trustcaptcha_bench::{
    API_KEY, SITE_KEY, embedded_bench_site, ms, quantile, rss_bytes, setting, solved_results_url,
};
use trustcaptcha_server::clock::Clock as _;
use trustcaptcha_server::config::Config;
use trustcaptcha_server::store::Store;
use trustcaptcha_server::store::memory::MemoryStore;
use trustcaptcha_server::store::sqlite::SqliteStore;
use trustcaptcha_server::testing::{self, TestServer};

const HELD: usize = 1_000_000;
const EXPIRING: usize = 800_000;
const CLIENTS: usize = 8;
const SHORTEST_WINDOW: Duration = Duration::from_secs(12);
const AFTER_FORGETTING: Duration = Duration::from_secs(5);
/// A sweeper that has not forgotten them by then fails the run.
const GIVE_UP: Duration = Duration::from_secs(300);
const SQLITE_FILE: &str = "/tmp/trustcaptcha-expiry-bench.sqlite3";

fn main() {
    let store = std::env::var("TRUSTCAPTCHA_BENCH_STORE_URL")
        .unwrap_or_else(|_| format!("sqlite://{SQLITE_FILE}"));
    let rounds = setting("TRUSTCAPTCHA_BENCH_ROUNDS").unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(&store, rounds));
}

fn config() -> Config {
    let mut config = Config::new(vec![embedded_bench_site()]);
    config.server.max_verifications = 2 * HELD;
    config.server.max_pending_per_site = 2 * HELD;
    config
}

async fn run(url: &str, rounds: usize) {
    let sqlite = url.strip_prefix("sqlite://");
    if let Some(path) = sqlite {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    let mut made: Option<Arc<dyn Store>> = None;
    let server = TestServer::start_with(config(), |clock| {
        let store: Arc<dyn Store> = match sqlite {
            Some(path) => Arc::new(
                SqliteStore::open(std::path::Path::new(path), 2 * HELD, clock).expect("open"),
            ),
            None => Arc::new(MemoryStore::new(2 * HELD, clock)),
        };
        made = Some(Arc::clone(&store));
        Some(store)
    })
    .await;
    let store = made.expect("the store was made");
    println!(
        "store {url}: {HELD} held, {EXPIRING} expiring; {CLIENTS} clients, GET /results one at a time each; {rounds} rounds"
    );
    println!("| round | window | requests | p50 | p99 | p99.9 | max | forgotten |");
    println!("|---|---|---|---|---|---|---|---|");

    let results = solved_results_url(&server).await;
    let fetch = || {
        let request = server.http.get(&results).bearer_auth(API_KEY);
        async move {
            match request.send().await {
                Ok(response) if response.status() == 200 => {}
                Ok(response) => panic!("a retrieval answered {}", response.status()),
                Err(error) => panic!("a retrieval failed: {error:?}"),
            }
        }
    };
    // The lasting fifth is stored once; each round adds the expiring ones.
    fill(&*store, HELD - EXPIRING, server.clock.now(), 86_400).await;
    let mut length = SHORTEST_WINDOW;
    let mut ratios = Vec::new();
    // The process's memory each time it holds the million again.
    let mut full = Vec::new();
    for round in 1..=rounds {
        fill(&*store, EXPIRING, server.clock.now(), 60).await;
        full.push(rss_bytes("self"));
        let held = store.count().await.expect("count");
        let quiet = window(&fetch, || async { length }).await;
        row(round, "nothing expiring", &quiet, 0);
        server.clock.advance(Duration::from_secs(61));
        // Until the sweeper forgot them (then a little longer), the window being timed from now.
        let target = held - EXPIRING;
        let started = Instant::now();
        let done = std::sync::OnceLock::new();
        let expiring = window(&fetch, || async {
            let forgot = store.count().await.expect("count") <= target;
            if forgot || started.elapsed() >= GIVE_UP {
                let at = *done.get_or_init(|| started.elapsed());
                (at + AFTER_FORGETTING).max(SHORTEST_WINDOW)
            } else {
                Duration::MAX
            }
        })
        .await;
        let forgotten = held - store.count().await.expect("count");
        row(round, "while they expire", &expiring, forgotten);
        if forgotten < EXPIRING {
            println!("\nthe sweeper had not forgotten them after {GIVE_UP:?}: no ratio");
            return;
        }
        length = started.elapsed();
        ratios.push(p999(&expiring) / p999(&quiet));
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "\np99.9 while expiring ÷ nothing expiring, min / median / max over {rounds} rounds: {:.2} / {:.2} / {:.2}",
        ratios[0],
        ratios[ratios.len() / 2],
        ratios[ratios.len() - 1]
    );
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    println!(
        "process RSS holding {HELD}: after the first fill {:.0} MiB, after the last {:.0} MiB{}",
        mib(full[0]),
        mib(full[full.len() - 1]),
        sqlite.map_or(String::new(), |path| format!(
            "; file {:.0} MiB",
            mib(std::fs::metadata(path).map_or(0, |m| m.len()))
        ))
    );
}

/// Stores `count` pending verifications handed out at `now`, living `seconds`, under ids that
/// begin with their creation time as the server's do; many inserts in flight, so that SQLite
/// commits them in groups.
async fn fill(store: &dyn Store, count: usize, now: OffsetDateTime, seconds: u64) {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let site_key = SITE_KEY.parse().expect("site key");
    let expires_at = now + Duration::from_secs(seconds);
    let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).expect("after 1970");
    futures_util::stream::iter(0..count)
        .map(|_| async move {
            let mut tail = [0; 10];
            tail[..8].copy_from_slice(&MADE.fetch_add(1, Ordering::Relaxed).to_be_bytes());
            let id = uuid::Builder::from_unix_timestamp_millis(millis, &tail).into_uuid();
            let pending = testing::hooks::pending_for(site_key, now, expires_at);
            store.insert_pending(id, pending, now).await.expect("room");
        })
        .buffer_unordered(1024)
        .collect::<()>()
        .await;
}

/// Requests from [`CLIENTS`] clients, one at a time each, until the window has lasted as long
/// as `length` answers (asked every 100 requests); their latencies, sorted.
async fn window<F, Fut, L, LFut>(fetch: &F, length: L) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
    L: Fn() -> LFut,
    LFut: Future<Output = Duration>,
{
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < length().await {
        let mut batch: Vec<Duration> = futures_util::stream::iter(0..100)
            .map(|_| async {
                let sent = Instant::now();
                fetch().await;
                sent.elapsed()
            })
            .buffer_unordered(CLIENTS)
            .collect()
            .await;
        samples.append(&mut batch);
    }
    samples.sort_unstable();
    samples
}

fn p999(sorted: &[Duration]) -> f64 {
    quantile(sorted, 0.999).unwrap_or_default().as_secs_f64()
}

fn row(round: usize, name: &str, sorted: &[Duration], forgotten: usize) {
    let at = |q| ms(quantile(sorted, q).unwrap_or_default());
    println!(
        "| {round} | {name} | {} | {} | {} | {} | {} | {forgotten} |",
        sorted.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0),
    );
}
