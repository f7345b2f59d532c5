//! Full verifications (create, solve, submit, fetch) sustained for minutes against a server at
//! default settings, in a second process: does the capacity hold real traffic, and what memory
//! does it take?
//!
//! ```sh
//! cargo run --release -p trustcaptcha-bench --bin capacity-bench
//! TRUSTCAPTCHA_BENCH_STORE_URL=memory:// TRUSTCAPTCHA_BENCH_SECONDS=60 cargo run --release -p trustcaptcha-bench --bin capacity-bench
//! ```
//!
//! The store is a fresh SQLite file unless `TRUSTCAPTCHA_BENCH_STORE_URL` names another; the run
//! lasts `TRUSTCAPTCHA_BENCH_SECONDS` (default 300); `TRUSTCAPTCHA_BENCH_SITE` adds TOML lines to
//! the site (e.g. `repetition = { networks = 0 }`, to measure what a setting costs). Everything
//! that bounds state is the default (capacity 100 000, challenge and result lifetimes, one
//! retrieval per result); the proof-of-work is one task of one bit, so that two cores can
//! generate the load, and the per-network limits are lifted, since the load generator is a
//! single client network. Every 30 s a line reports the flows per second of that interval, the
//! server's CPU per flow in it, the refusals by status, and the server's resident memory; the
//! file size for SQLite. The end gives the CPU per flow of the whole run and of its last five
//! minutes (what a long run sustains, not what it starts with).

// The server child runs this binary: it allocates as the shipped `trustcaptcha-server` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trustcaptcha_bench::{
    NO_ADAPTIVE_DIFFICULTY, ONE_CLIENT_NETWORK, SITE_KEY, bench_site, flow, serve_if_child,
    spawn_server_with,
};
use trustcaptcha_server::testing;

const IN_FLIGHT: usize = 64;
const REPORT_EVERY: Duration = Duration::from_secs(30);
const FIVE_MINUTES: Duration = Duration::from_secs(300);
const SQLITE_FILE: &str = "/tmp/trustcaptcha-capacity-bench.sqlite3";

fn config(store: &str) -> String {
    format!(
        r#"
        [store]
        url = "{store}"

        [server]
        # One load generator is one client network: its limits are lifted. Nothing else is.
        {ONE_CLIENT_NETWORK}
        {site}"#,
        site = bench_site(&format!(
            "{NO_ADAPTIVE_DIFFICULTY}\n{}",
            std::env::var("TRUSTCAPTCHA_BENCH_SITE").unwrap_or_default()
        ))
    )
}

fn main() {
    serve_if_child();
    let store = std::env::var("TRUSTCAPTCHA_BENCH_STORE_URL")
        .unwrap_or_else(|_| format!("sqlite://{SQLITE_FILE}"));
    if store.starts_with("sqlite://") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{SQLITE_FILE}{suffix}"));
        }
    }
    let seconds: u64 = std::env::var("TRUSTCAPTCHA_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(&store, Duration::from_secs(seconds)));
}

async fn run(store: &str, length: Duration) {
    let server = spawn_server_with(&config(store));
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .expect("client");
    let done = Arc::new(AtomicU64::new(0));
    let refused: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    // Every flow sends the same create request, serialized once: building it per flow cost the
    // load generator a quarter of its CPU, taken from the server on the same cores.
    let create = bytes::Bytes::from(
        serde_json::to_vec(&testing::create_body(SITE_KEY, false)).expect("serializable"),
    );
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (http, url) = (http.clone(), server.url.clone());
            let (done, refused) = (Arc::clone(&done), Arc::clone(&refused));
            let create = create.clone();
            tokio::spawn(async move {
                while started.elapsed() < length {
                    match flow(&http, &url, &create).await {
                        None => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(status) => {
                            *refused.lock().expect("lock").entry(status).or_default() += 1;
                        }
                    }
                }
            })
        })
        .collect();
    println!(
        "store {store}, {} s, {IN_FLIGHT} flows in flight",
        length.as_secs()
    );
    let mut rates = Vec::new();
    // (done, server CPU seconds, when) at each report: the intervals and the last five minutes.
    let mut reports = vec![(0, server.cpu_seconds(), Instant::now())];
    while started.elapsed() < length {
        tokio::time::sleep(REPORT_EVERY.min(length.saturating_sub(started.elapsed()))).await;
        let (last, last_cpu, last_at) = *reports.last().expect("the start is a report");
        let (now, cpu) = (done.load(Ordering::Relaxed), server.cpu_seconds());
        let rate = (now - last) as f64 / last_at.elapsed().as_secs_f64();
        rates.push(rate);
        let cpu_per_flow = (cpu - last_cpu) * 1e6 / (now - last).max(1) as f64;
        reports.push((now, cpu, Instant::now()));
        let file = std::fs::metadata(SQLITE_FILE).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(format!("{SQLITE_FILE}-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
        println!(
            "{:>4} s: {rate:>7.0} flows/s, {cpu_per_flow:.0} µs CPU per flow, {now} done, refused {:?}, server RSS {} MiB{}",
            started.elapsed().as_secs(),
            refused.lock().expect("lock"),
            server.rss_bytes() / (1 << 20),
            if store.starts_with("sqlite://") {
                format!(", file + WAL {} MiB", file / (1 << 20))
            } else {
                String::new()
            }
        );
    }
    for worker in workers {
        let _ = worker.await;
    }
    let total = done.load(Ordering::Relaxed);
    let cpu = server.cpu_seconds();
    rates.sort_by(f64::total_cmp);
    println!(
        "server CPU {cpu:.1} s: {:.0} µs per flow",
        cpu * 1e6 / total.max(1) as f64
    );
    // The reports of the last five minutes (ten of them at 30 s), when the run is longer.
    let window = (FIVE_MINUTES.as_secs() / REPORT_EVERY.as_secs()) as usize;
    if reports.len() > window + 1 {
        let (from, to) = (
            reports[reports.len() - 1 - window],
            reports[reports.len() - 1],
        );
        println!(
            "last five minutes: {:.0} µs of server CPU per flow, {:.0} flows/s",
            (to.1 - from.1) * 1e6 / (to.0 - from.0).max(1) as f64,
            (to.0 - from.0) as f64 / (to.2 - from.2).as_secs_f64()
        );
    }
    println!(
        "total {total} flows in {:.0} s ({:.0}/s); 30-s intervals min / median / max {:.0} / {:.0} / {:.0} flows/s; refused {:?}",
        started.elapsed().as_secs_f64(),
        total as f64 / started.elapsed().as_secs_f64(),
        rates.first().copied().unwrap_or(0.0),
        rates.get(rates.len() / 2).copied().unwrap_or(0.0),
        rates.last().copied().unwrap_or(0.0),
        refused.lock().expect("lock"),
    );
}
