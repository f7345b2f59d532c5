//! What history costs the store: the bytes of a busy site's statistics (90 days of hours, a
//! year of days) and of a full event log, in SQLite and in Redis, and the time a flush takes
//! (the store's share of counting, per verification).
//!
//! ```sh
//! cargo run --release -p trustcaptcha-bench --bin history-bench
//! ```
//!
//! A busy site here counts 85 events in every bucket: the 7 outcomes, 4 refusal and 3 retrieval
//! reasons, 11 score tenths, 8 signals, 7 solve-time buckets, 30 countries, 8 browser and 7
//! system families. Sizes are the SQLite file (its write-ahead log checkpointed when the store
//! closes) and Redis's `used_memory`, each against the same empty store. A flush adds the
//! counts of one server's last 10 s of one site: 85 events, in their hour and their day.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use trustcaptcha_server::clock::SystemClock;
use trustcaptcha_server::store::{
    JournalBound, JournalEntry, Resolution, SeriesAdd, Store, sqlite::SqliteStore,
};
use trustcaptcha_server::testing::RedisServer;

const EVENTS_PER_BUCKET: usize = 85;

/// The events of a busy site's bucket.
fn events() -> Vec<String> {
    let mut events: Vec<String> = [
        "created",
        "solved",
        "passed",
        "blocked",
        "blocked:score",
        "blocked:rule",
        "failed",
    ]
    .iter()
    .map(|event| (*event).to_owned())
    .collect();
    for reason in [
        "origin_not_allowed",
        "rate_limited",
        "too_many_pending",
        "quota_exhausted",
    ] {
        events.push(format!("refused:{reason}"));
    }
    for outcome in ["ok", "not_found", "limit_reached"] {
        events.push(format!("retrieval:{outcome}"));
    }
    events.extend((0..=10).map(|tenths| format!("score:{:.1}", f64::from(tenths) / 10.0)));
    for signal in [
        "automation",
        "headless",
        "no_events",
        "request",
        "window",
        "synthetic",
        "tls",
        "hosting",
    ] {
        events.push(format!("signal:{signal}"));
    }
    for bucket in [
        "<250ms", "<500ms", "<1000ms", "<2000ms", "<5000ms", "<10000ms", "slower",
    ] {
        events.push(format!("solve:{bucket}"));
    }
    events.extend((0..30).map(|country| format!("country:C{country}")));
    for browser in [
        "Chrome", "Safari", "Firefox", "Edge", "Opera", "Samsung", "Other", "unknown",
    ] {
        events.push(format!("browser:{browser}"));
    }
    for system in [
        "Windows", "Mac", "iOS", "Android", "Linux", "ChromeOS", "Other",
    ] {
        events.push(format!("os:{system}"));
    }
    assert_eq!(events.len(), EVENTS_PER_BUCKET);
    events
}

fn adds(
    resolution: Resolution,
    bucket: i64,
    events: &[String],
    now: OffsetDateTime,
) -> Vec<SeriesAdd> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| SeriesAdd {
            site: "busy-shop.example".to_owned(),
            resolution,
            bucket,
            event: event.clone(),
            by: 1_000 + i as u64 * 37,
            forget_at: now + Duration::from_secs(3 * 365 * 86_400),
        })
        .collect()
}

/// A realistic event log entry (what `statistics::log` writes), about 390 bytes.
fn logged(i: usize, at: OffsetDateTime) -> JournalEntry {
    let id = uuid::Uuid::new_v4();
    let value = serde_json::json!({
        "id": id, "at": at.format(&time::format_description::well_known::Rfc3339).expect("time"),
        "decision": if i.is_multiple_of(7) { "block" } else { "pass" }, "how": "proof_of_work",
        "score": if i.is_multiple_of(7) { 0.6 } else { 0.0 },
        "signals": if i.is_multiple_of(7) { vec!["automation"] } else { vec![] },
        "rule": null, "origin": "https://busy-shop.example/checkout", "country": "DE",
        "browser": "Chrome 143.0.0.0", "system": "Windows 10", "network": "203.0.113.0/24",
        "started_at": "2026-12-04T07:00:00Z", "solve_ms": 1843,
    });
    JournalEntry {
        at: i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("ms") + i as i64,
        id: id.to_string(),
        value: value.to_string(),
    }
}

/// What a store is measured by, and the name it goes by.
trait Measured {
    fn store(&self) -> &dyn Store;
    fn bytes(&mut self) -> u64;
}

struct Sqlite {
    path: std::path::PathBuf,
    store: Option<SqliteStore>,
}

impl Sqlite {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "trustcaptcha-history-{name}-{}.sqlite3",
            std::process::id()
        ));
        remove(&path);
        let store = SqliteStore::open(&path, 1_000, Arc::new(SystemClock)).expect("open");
        Sqlite {
            path,
            store: Some(store),
        }
    }
}

fn remove(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

impl Measured for Sqlite {
    fn store(&self) -> &dyn Store {
        self.store.as_ref().expect("open")
    }

    /// The file once the store is closed (its log checkpointed into it); reopened after.
    fn bytes(&mut self) -> u64 {
        drop(self.store.take());
        std::thread::sleep(Duration::from_millis(200));
        let size = |suffix: &str| {
            std::fs::metadata(format!("{}{suffix}", self.path.display()))
                .map(|meta| meta.len())
                .unwrap_or(0)
        };
        let bytes = size("") + size("-wal");
        self.store =
            Some(SqliteStore::open(&self.path, 1_000, Arc::new(SystemClock)).expect("reopen"));
        bytes
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        drop(self.store.take());
        remove(&self.path);
    }
}

/// A Redis of its own (the tests' `RedisServer`, without an append-only file here: only memory
/// is measured), and a store on it.
struct Redis {
    server: RedisServer,
    store: trustcaptcha_server::store::redis::RedisStore,
}

impl Redis {
    /// `None` when `redis-server` is not installed.
    fn start() -> Option<Self> {
        std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .ok()?;
        let server = RedisServer::start_with(&["--appendonly", "no"]);
        let store = trustcaptcha_server::store::redis::RedisStore::open(&server.url()).ok()?;
        Some(Redis { server, store })
    }
}

impl Measured for Redis {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn bytes(&mut self) -> u64 {
        self.server.used_memory()
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

async fn measure(name: &str, make: &dyn Fn() -> Option<Box<dyn Measured>>) {
    let events = events();
    let now = OffsetDateTime::now_utc();
    let hour = Resolution::Hour.bucket(now);
    let day = Resolution::Day.bucket(now);
    let Some(mut measured) = make() else {
        println!("| {name} | (not available here) | | | |");
        return;
    };
    // 90 days of hours.
    let empty = measured.bytes();
    for days in 0..90 {
        let mut batch = Vec::new();
        for h in 0..24 {
            batch.extend(adds(
                Resolution::Hour,
                hour - (days * 24 + h) * 3_600,
                &events,
                now,
            ));
        }
        measured.store().add_series(batch, now).await.expect("add");
    }
    let hours = measured.bytes() - empty;
    // A year of days (a fresh store, so that each figure stands alone).
    let Some(mut measured) = make() else { return };
    let empty = measured.bytes();
    let batch: Vec<SeriesAdd> = (0..365)
        .flat_map(|d| adds(Resolution::Day, day - d * 86_400, &events, now))
        .collect();
    for chunk in batch.chunks(5_000) {
        measured
            .store()
            .add_series(chunk.to_vec(), now)
            .await
            .expect("add");
    }
    let days = measured.bytes() - empty;
    // A full event log: 10 000 entries.
    let Some(mut measured) = make() else { return };
    let empty = measured.bytes();
    let bound = JournalBound {
        entries: 10_000,
        age: Duration::from_secs(7 * 86_400),
    };
    for chunk in (0..10_000).collect::<Vec<usize>>().chunks(1_000) {
        let entries = chunk.iter().map(|i| logged(*i, now)).collect();
        measured
            .store()
            .append_journal("events:busy-shop.example", entries, bound, now)
            .await
            .expect("append");
    }
    let log = measured.bytes() - empty;
    // Flushes: one server's 10 s of one site, into its hour and its day; 200 of them.
    let mut samples = Vec::new();
    for i in 0..200 {
        let mut batch = adds(Resolution::Hour, hour - i * 3_600, &events, now);
        batch.extend(adds(Resolution::Day, day, &events, now));
        let started = Instant::now();
        measured
            .store()
            .add_series(batch, now)
            .await
            .expect("flush");
        samples.push(started.elapsed());
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    println!(
        "| {name} | {} ({} B per bucket) | {} ({} B per bucket) | {} ({} B per entry) | {:.2} / {:.2} / {:.2} ms |",
        mib(hours),
        hours / (90 * 24),
        mib(days),
        days / 365,
        mib(log),
        log / 10_000,
        samples[0].as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("A busy site: {EVENTS_PER_BUCKET} events in every bucket.\n");
    println!(
        "| store | 90 days of hours | a year of days | event log, 10 000 entries | one flush (170 counts) min / median / max |"
    );
    println!("|---|---|---|---|---|");
    runtime.block_on(async {
        measure("SQLite", &|| {
            Some(Box::new(Sqlite::new("bench")) as Box<dyn Measured>)
        })
        .await;
        measure("Redis 7", &|| {
            Redis::start().map(|redis| Box::new(redis) as Box<dyn Measured>)
        })
        .await;
    });
}
