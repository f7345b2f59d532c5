//! Full verifications (create, solve, submit, fetch) sustained for minutes against a server at
//! default settings, in a second process: does the capacity hold real traffic, and what memory
//! does it take?
//!
//! ```sh
//! cargo run --release -p trustcaptcha-bench --bin capacity-bench
//! TRUSTCAPTCHA_BENCH_STORE_URL=memory:// TRUSTCAPTCHA_BENCH_SECONDS=60 cargo run --release -p trustcaptcha-bench --bin capacity-bench
//! TRUSTCAPTCHA_BENCH_RATE=1000 TRUSTCAPTCHA_BENCH_SECONDS=3600 cargo run --release -p trustcaptcha-bench --bin capacity-bench
//! ```
//!
//! The store is a fresh SQLite file unless `TRUSTCAPTCHA_BENCH_STORE_URL` names another; the run
//! lasts `TRUSTCAPTCHA_BENCH_SECONDS` (default 300); `TRUSTCAPTCHA_BENCH_SITE` adds TOML lines to
//! the site (e.g. `repetition = { networks = 0 }`, to measure what a setting costs). Everything
//! that bounds state is the default (capacity 100 000, challenge and result lifetimes, one
//! retrieval per result); the proof-of-work is one task of one bit, so that two cores can
//! generate the load, and the per-network limits are lifted, since the load generator is a
//! single client network.
//!
//! Without `TRUSTCAPTCHA_BENCH_RATE` the 64 flows in flight start one after another as fast as
//! the server answers (its capacity); with it, flows start on a fixed schedule of that many per
//! second (a soak), and a flow's latency counts from when it was due, so a server that falls
//! behind shows it in the latencies rather than in a slower schedule.
//!
//! Every 30 s a line reports the flows per second of that interval, the server's CPU per flow in
//! it, the flows' latency (median, p99, maximum), the refusals by status, and the server's
//! resident memory; the file size (with its WAL) for SQLite. The end gives the CPU per flow of
//! the whole run and of its last five minutes (what a long run sustains, not what it starts
//! with); a run of ten minutes or more compares its first five minutes with its last (p99,
//! memory, file) and the file at ten minutes with the file at the end.

// The server child runs this binary: it allocates as the shipped `trustcaptcha-server` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trustcaptcha_bench::{
    NO_ADAPTIVE_DIFFICULTY, ONE_CLIENT_NETWORK, SITE_KEY, bench_site, flow, quantile,
    serve_if_child, setting, spawn_server_with,
};
use trustcaptcha_server::testing;

const IN_FLIGHT: usize = 64;
const REPORT_EVERY: Duration = Duration::from_secs(30);
const FIVE_MINUTES: Duration = Duration::from_secs(300);
const TEN_MINUTES: Duration = Duration::from_secs(600);
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
    let seconds = setting("TRUSTCAPTCHA_BENCH_SECONDS").unwrap_or(300);
    let rate = setting::<f64>("TRUSTCAPTCHA_BENCH_RATE").filter(|rate| *rate > 0.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(&store, Duration::from_secs(seconds), rate));
}

/// What the workers count: flows done, refusals by status, and the latencies (µs) of the
/// interval under way.
#[derive(Default)]
struct Tally {
    done: AtomicU64,
    refused: Mutex<BTreeMap<u16, u64>>,
    latencies: Mutex<Vec<u32>>,
}

/// The state at one report, and the latencies (µs, sorted) of the interval it closes.
struct Report {
    at: Instant,
    done: u64,
    cpu: f64,
    rss: u64,
    file: u64,
    latencies: Vec<u32>,
}

/// The `q` quantile of sorted latencies (µs), in milliseconds.
fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    quantile(sorted, q).map_or(0.0, |us| f64::from(us) / 1000.0)
}

/// The p99 (ms) over the intervals of `reports`.
fn p99_of(reports: &[Report]) -> f64 {
    let mut all: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.latencies.iter().copied())
        .collect();
    all.sort_unstable();
    quantile_ms(&all, 0.99)
}

fn file_size() -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{SQLITE_FILE}{suffix}")).ok())
        .map(|metadata| metadata.len())
        .sum()
}

const MIB: f64 = (1 << 20) as f64;

async fn run(store: &str, length: Duration, rate: Option<f64>) {
    let server = spawn_server_with(&config(store));
    let sqlite = store.starts_with("sqlite://");
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .expect("client");
    let tally = Arc::new(Tally::default());
    // Every flow sends the same create request, serialized once: building it per flow cost the
    // load generator a quarter of its CPU, taken from the server on the same cores.
    let create = bytes::Bytes::from(
        serde_json::to_vec(&testing::create_body(SITE_KEY, false)).expect("serializable"),
    );
    // On a schedule, each worker starts a flow every `period`, the workers evenly staggered.
    let period = rate.map(|rate| Duration::from_secs_f64(IN_FLIGHT as f64 / rate));
    let first = tokio::time::Instant::now();
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|worker| {
            let (http, url) = (http.clone(), server.url.clone());
            let (tally, create) = (Arc::clone(&tally), create.clone());
            tokio::spawn(async move {
                // When this worker's next flow is due, and the period between its flows.
                let mut schedule = period.map(|period| {
                    (
                        first + period.mul_f64(worker as f64 / IN_FLIGHT as f64),
                        period,
                    )
                });
                while started.elapsed() < length {
                    let since = match &mut schedule {
                        Some((due, period)) => {
                            tokio::time::sleep_until(*due).await;
                            let since = due.into_std();
                            *due += *period;
                            since
                        }
                        None => Instant::now(),
                    };
                    let outcome = flow(&http, &url, &create).await;
                    let latency = u32::try_from(since.elapsed().as_micros()).unwrap_or(u32::MAX);
                    match outcome {
                        Ok(()) => {
                            tally.done.fetch_add(1, Ordering::Relaxed);
                            tally.latencies.lock().expect("lock").push(latency);
                        }
                        Err(status) => {
                            *tally
                                .refused
                                .lock()
                                .expect("lock")
                                .entry(status)
                                .or_default() += 1;
                        }
                    }
                }
            })
        })
        .collect();
    println!(
        "store {store}, {} s, {IN_FLIGHT} flows in flight, {}",
        length.as_secs(),
        rate.map_or("as fast as the server answers".to_owned(), |rate| format!(
            "{rate} flows/s on schedule"
        ))
    );
    let mut reports = vec![Report {
        at: Instant::now(),
        done: 0,
        cpu: server.cpu_seconds(),
        rss: server.rss_bytes(),
        file: file_size(),
        latencies: Vec::new(),
    }];
    while started.elapsed() < length {
        tokio::time::sleep(REPORT_EVERY.min(length.saturating_sub(started.elapsed()))).await;
        let last = reports.last().expect("the start is a report");
        let mut latencies = std::mem::take(&mut *tally.latencies.lock().expect("lock"));
        latencies.sort_unstable();
        let report = Report {
            at: Instant::now(),
            done: tally.done.load(Ordering::Relaxed),
            cpu: server.cpu_seconds(),
            rss: server.rss_bytes(),
            file: file_size(),
            latencies,
        };
        let flows = (report.done - last.done).max(1) as f64;
        println!(
            "{:>4} s: {:>7.0} flows/s, {:.0} µs CPU per flow, latency p50 / p99 / max {:.1} / {:.1} / {:.1} ms, {} done, refused {:?}, server RSS {:.0} MiB{}",
            started.elapsed().as_secs(),
            flows / (report.at - last.at).as_secs_f64(),
            (report.cpu - last.cpu) * 1e6 / flows,
            quantile_ms(&report.latencies, 0.5),
            quantile_ms(&report.latencies, 0.99),
            quantile_ms(&report.latencies, 1.0),
            report.done,
            tally.refused.lock().expect("lock"),
            report.rss as f64 / MIB,
            if sqlite {
                format!(", file + WAL {:.0} MiB", report.file as f64 / MIB)
            } else {
                String::new()
            }
        );
        reports.push(report);
    }
    for worker in workers {
        let _ = worker.await;
    }
    summarize(&reports, started.elapsed(), &tally, sqlite);
}

fn summarize(reports: &[Report], elapsed: Duration, tally: &Tally, sqlite: bool) {
    let (first, last) = (&reports[0], &reports[reports.len() - 1]);
    let total = last.done;
    println!(
        "server CPU {:.1} s: {:.0} µs per flow",
        last.cpu - first.cpu,
        (last.cpu - first.cpu) * 1e6 / total.max(1) as f64
    );
    // The reports of five minutes (ten of them at 30 s), and of ten.
    let window = (FIVE_MINUTES.as_secs() / REPORT_EVERY.as_secs()) as usize;
    if reports.len() > window + 1 {
        let from = &reports[reports.len() - 1 - window];
        println!(
            "last five minutes: {:.0} µs of server CPU per flow, {:.0} flows/s",
            (last.cpu - from.cpu) * 1e6 / (last.done - from.done).max(1) as f64,
            (last.done - from.done) as f64 / (last.at - from.at).as_secs_f64()
        );
    }
    if reports.len() > 2 * window {
        let (early, late) = (&reports[1..=window], &reports[reports.len() - window..]);
        println!(
            "first five minutes against the last five: p99 {:.1} against {:.1} ms; server RSS {:.0} against {:.0} MiB{}",
            p99_of(early),
            p99_of(late),
            early[early.len() - 1].rss as f64 / MIB,
            last.rss as f64 / MIB,
            if sqlite {
                format!(
                    "; file + WAL {:.0} against {:.0} MiB",
                    early[early.len() - 1].file as f64 / MIB,
                    last.file as f64 / MIB
                )
            } else {
                String::new()
            }
        );
        if sqlite {
            let at_ten = reports
                .iter()
                .find(|report| report.at - first.at >= TEN_MINUTES - REPORT_EVERY / 2)
                .expect("a run of ten minutes");
            println!(
                "file + WAL after ten minutes {:.0} MiB, at the end {:.0} MiB: {:.2}×",
                at_ten.file as f64 / MIB,
                last.file as f64 / MIB,
                last.file as f64 / at_ten.file.max(1) as f64
            );
        }
    }
    let mut rates: Vec<f64> = reports
        .windows(2)
        .map(|pair| (pair[1].done - pair[0].done) as f64 / (pair[1].at - pair[0].at).as_secs_f64())
        .collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "total {total} flows in {:.0} s ({:.0}/s); 30-s intervals min / median / max {:.0} / {:.0} / {:.0} flows/s; p99 {:.1} ms; refused {:?}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        rates.first().copied().unwrap_or(0.0),
        rates.get(rates.len() / 2).copied().unwrap_or(0.0),
        rates.last().copied().unwrap_or(0.0),
        p99_of(&reports[1..]),
        tally.refused.lock().expect("lock"),
    );
}
