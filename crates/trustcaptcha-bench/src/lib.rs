//! Shared parts of the benchmarks: the server under test runs in a second process (this
//! executable started again with an environment variable), a bare hyper server gives the
//! ceiling, a minimal axum router the framework's share of the distance to it, and small timing
//! helpers report latency and throughput.
//!
//! * `client-bench`: this crate's client vs a raw pooled reqwest GET vs the official 3.0.0 crate.
//! * `server-bench`: `GET /results` and create→submit under load, beside the hyper ceiling, and
//!   the memory held per pending verification.
//! * `flood-bench`: one client network flooding the widget's endpoints beside a second network's
//!   success rate, the memory per verification at the largest stored texts, and the cost of the
//!   largest admitted body.
//! * `expiry-bench`: requests' latency while 800 000 verifications expire, beside as long with
//!   nothing expiring, alternating.
//! * `capacity-bench`: full verifications for minutes, as fast as the server answers or on a
//!   schedule (a soak), with the server's CPU, memory and file over time.

#![allow(missing_docs)] // benchmark harness, not a library for users

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

/// The bench site: trivial proof-of-work and unlimited retrievals, so that each benchmark
/// measures the HTTP path rather than hashing or the retrieval limit.
pub const SITE_KEY: &str = "5b1e0c1d-7a39-4f6e-9d2b-0c8a4e6f1b3d";
pub const API_KEY: &str = "ak_bench_0123456789abcdef";

const SERVE_ENV: &str = "TRUSTCAPTCHA_BENCH_SERVE";
const CEILING_ENV: &str = "TRUSTCAPTCHA_BENCH_CEILING";
const ROUTER_ENV: &str = "TRUSTCAPTCHA_BENCH_ROUTER";

/// The store the bench server uses: `TRUSTCAPTCHA_BENCH_STORE_URL` (e.g. `sqlite:///tmp/b.db`,
/// `redis://127.0.0.1:6379`), or memory.
pub fn store_url() -> String {
    std::env::var("TRUSTCAPTCHA_BENCH_STORE_URL").unwrap_or_else(|_| "memory://".to_owned())
}

/// The bench configuration on the store [`store_url`] names.
pub fn config() -> String {
    config_for(&store_url())
}

/// `[server]` settings for a load generator that is one client network: the per-network limits,
/// which would stop it, are lifted.
pub const ONE_CLIENT_NETWORK: &str = "
        widget_requests_per_minute = 100000000
        widget_burst = 100000000
        max_pending_per_network = 2000000
        max_connections_per_network = 100000
        max_requests_in_flight = 100000
";

/// The bench site (`[[sites]]`): the bench keys and the cheapest proof-of-work; `extra` adds
/// keys.
pub fn bench_site(extra: &str) -> String {
    format!(
        r#"
        [[sites]]
        name = "bench"
        site_key = "{SITE_KEY}"
        api_keys = ["{API_KEY}"]
        difficulty = 1
        tasks = 1
        {extra}
        "#
    )
}

/// Adaptive difficulty that never adds a bit, for a load generator that solves as one network.
pub const NO_ADAPTIVE_DIFFICULTY: &str =
    "adaptive_difficulty = { window_secs = 1, free_solves = 4000000000, step = 0, max_extra = 0 }";

/// The bench configuration on the store at `store`.
pub fn config_for(store: &str) -> String {
    format!(
        r#"
        [store]
        url = "{store}"

        [server]
        max_verifications = 2000000
        max_pending_per_site = 2000000
        {ONE_CLIENT_NETWORK}
        {site}"#,
        site = bench_site(&format!(
            "max_retrievals = 4294967295\n\
             result_lifetime_secs = 86400\n\
             challenge_lifetime_secs = 3600\n\
             {NO_ADAPTIVE_DIFFICULTY}"
        ))
    )
}

/// A server in a child process, stopped on drop.
#[derive(Debug)]
pub struct ServerProcess {
    pub url: String,
    child: Child,
}

impl ServerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the child has used, user and system.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid())
    }

    /// The child's resident set size in bytes (Linux).
    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(&self.pid().to_string())
    }
}

/// CPU time process `pid` has used, user and system (Linux, where `USER_HZ` is 100; 0
/// elsewhere).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are the 14th and 15th fields: 12th and 13th after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The resident set size of process `pid` (or `self`) in bytes (Linux; 0 elsewhere).
pub fn rss_bytes(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(env: &str, value: &str) -> ServerProcess {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(env, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start server process");
    let log = child.stderr.take().expect("stderr");
    std::thread::spawn(move || forward_warnings(log));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("server address");
    ServerProcess {
        url: line.trim().to_owned(),
        child,
    }
}

/// Reads a server process's log as a log collector would, and passes on to this process's
/// standard error every line that is not at info level or below (warnings, errors, panics);
/// the access lines, millions in a long run, are read and dropped.
fn forward_warnings(log: impl std::io::Read) {
    use std::io::Write as _;
    let mut log = BufReader::with_capacity(64 * 1024, log);
    let mut line = Vec::new();
    // Read to the end whatever the bytes: a reader that stopped would block the server once
    // the pipe is full.
    while log.read_until(b'\n', &mut line).is_ok_and(|read| read > 0) {
        // A text line: timestamp, level, target, fields.
        let level = line
            .split(u8::is_ascii_whitespace)
            .filter(|word| !word.is_empty())
            .nth(1);
        if !matches!(level, Some(b"INFO" | b"DEBUG" | b"TRACE")) {
            let _ = std::io::stderr().write_all(&line);
        }
        line.clear();
    }
}

/// `trustcaptcha-server` with the bench config, in a second process.
pub fn spawn_server() -> ServerProcess {
    spawn(SERVE_ENV, &config())
}

/// `trustcaptcha-server` with the configuration `config` (TOML), in a second process.
pub fn spawn_server_with(config: &str) -> ServerProcess {
    spawn(SERVE_ENV, config)
}

/// A bare hyper HTTP/1.1 server answering every request with `body`, in a second process.
pub fn spawn_ceiling(body: &str) -> ServerProcess {
    spawn(CEILING_ENV, body)
}

/// Call first in `main`: when this process was started as a server, serve and never return.
pub fn serve_if_child() {
    if let Ok(config) = std::env::var(SERVE_ENV) {
        if config == "print" {
            print_config();
        }
        run_server(&config);
    }
    if let Ok(body) = std::env::var(CEILING_ENV) {
        run_ceiling(body);
    }
    if let Ok(body) = std::env::var(ROUTER_ENV) {
        run_router(body);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `TRUSTCAPTCHA_BENCH_SERVE=print`: the bench configuration, for scripts that start the
/// shipped binary with it.
#[expect(clippy::exit, reason = "a process started only to print")]
fn print_config() -> ! {
    print!("{}", config());
    std::process::exit(0)
}

#[expect(
    clippy::exit,
    reason = "a child process that serves until it is killed"
)]
fn run_server(config: &str) -> ! {
    let config = trustcaptcha_server::config::parse(config).expect("bench config");
    // The shipped binary's log, access lines included: what it costs is part of the figures.
    let _flush_on_exit =
        trustcaptcha_server::log_output::install(trustcaptcha_server::log_output::LogFormat::Text)
            .expect("log output");
    runtime().block_on(async {
        let state = trustcaptcha_server::AppState::builder(config)
            .build()
            .expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("http://{}", listener.local_addr().expect("addr"));
        trustcaptcha_server::serve(listener, state, std::future::pending()).await;
    });
    std::process::exit(0)
}

/// The bare hyper ceiling: every request answered with `body`, nothing else done.
fn run_ceiling(body: String) -> ! {
    let body = bytes::Bytes::from(body);
    serve_forever(hyper::service::service_fn(move |_request| {
        let mut response = hyper::Response::new(http_body_util::Full::new(body.clone()));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        std::future::ready(Ok::<_, std::convert::Infallible>(response))
    }))
}

/// The framework's share of the ceiling's distance: an axum router with the results route and a
/// handler that extracts the id and answers `body`, no layers, on the same connection loop.
fn run_router(body: String) -> ! {
    use axum::extract::Path;
    let body = bytes::Bytes::from(body);
    let router = axum::Router::new().route(
        "/v2/verifications/{id}/results",
        axum::routing::get(move |Path(_id): Path<String>| {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    serve_forever(hyper_util::service::TowerToHyperService::new(router))
}

/// Serves HTTP/1.1 connections with `service` until the process is killed.
fn serve_forever<S, B>(service: S) -> !
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("http://{}", listener.local_addr().expect("addr"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Latency figures of a sequential run.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub mean: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

/// Runs `call` `n` times one after another and appends each call's duration to `samples`.
pub async fn sequential<F, Fut>(n: usize, samples: &mut Vec<Duration>, mut call: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..n {
        let started = Instant::now();
        assert!(call().await, "a benchmarked call failed");
        samples.push(started.elapsed());
    }
}

/// Mean and percentiles of `samples`.
pub fn latency(samples: &mut [Duration]) -> Latency {
    samples.sort();
    let n = samples.len();
    let total: Duration = samples.iter().sum();
    Latency {
        mean: total / u32::try_from(n).expect("count"),
        p50: samples[n / 2],
        p99: samples[(n * 99 / 100).min(n - 1)],
    }
}

/// Throughput of a concurrent run.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Successful calls per second.
    pub per_second: f64,
    /// Calls that failed.
    pub failed: usize,
}

/// Runs `total` calls with `concurrency` in flight. All calls are driven from one task, so that
/// clients whose futures are not `Send` are measured alike.
pub async fn concurrent_lenient<F, Fut>(total: usize, concurrency: usize, call: F) -> Throughput
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let ok = futures_util::stream::iter(0..total)
        .map(|_| call())
        .buffer_unordered(concurrency)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    Throughput {
        per_second: ok as f64 / started.elapsed().as_secs_f64(),
        failed: total - ok,
    }
}

/// As [`concurrent_lenient`], but every call must succeed; returns calls per second.
pub async fn concurrent<F, Fut>(total: usize, concurrency: usize, call: F) -> f64
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let throughput = concurrent_lenient(total, concurrency, call).await;
    assert_eq!(throughput.failed, 0, "every benchmarked call must succeed");
    throughput.per_second
}

/// One full verification (create, solve, submit, fetch with the bench key) with the create
/// request `create` already serialized; the error is the first refusal's status (0 for no
/// answer at all).
///
/// # Errors
///
/// The status of the first step that did not answer as a passing flow does.
pub async fn flow(http: &reqwest::Client, url: &str, create: &bytes::Bytes) -> Result<(), u16> {
    let answered = |status: reqwest::StatusCode, expected: u16| {
        if status.as_u16() == expected {
            Ok(())
        } else {
            Err(status.as_u16())
        }
    };
    let created = http
        .post(format!("{url}/v2/verifications"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(create.clone())
        .send()
        .await
        .map_err(|_| 0_u16)?;
    answered(created.status(), 200)?;
    let challenge = created
        .json::<serde_json::Value>()
        .await
        .map_err(|_| 0_u16)?["challenge"]
        .clone();
    let id = challenge["verificationId"].as_str().unwrap_or_default();
    let submitted = http
        .post(format!("{url}/v2/verifications/{id}/challenges"))
        .json(&trustcaptcha_server::testing::submit_body(
            &trustcaptcha_server::testing::answers(&challenge),
        ))
        .send()
        .await
        .map_err(|_| 0_u16)?;
    answered(submitted.status(), 201)?;
    let fetched = http
        .get(format!("{url}/v2/verifications/{id}/results"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .map_err(|_| 0_u16)?;
    answered(fetched.status(), 200)
}

/// The `GET /results` URL of a verification solved on the embedded `server`'s bench site.
pub async fn solved_results_url(server: &trustcaptcha_server::testing::TestServer) -> String {
    let token = server.solve(SITE_KEY).await;
    let id = trustcaptcha::VerificationToken::decode(&token)
        .expect("token")
        .verification_id;
    format!("{}/v2/verifications/{id}/results", server.url)
}

/// The benchmark setting `name` from the environment, if it is set and parses.
pub fn setting<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

/// The `q` quantile (0 to 1) of `sorted`; `None` when it is empty.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied()
}

/// The bench site of an embedded server ([`trustcaptcha_server::testing::TestServer`]): the
/// bench key, the cheapest proof-of-work, retrievals without a practical limit.
pub fn embedded_bench_site() -> trustcaptcha_server::config::Site {
    trustcaptcha_server::config::Site {
        api_keys: vec![trustcaptcha_server::secret::KeyHash::of(API_KEY)],
        difficulty: 1,
        tasks: 1,
        max_retrievals: 1_000_000_000,
        ..trustcaptcha_server::config::Site::new("bench", SITE_KEY.parse().expect("site key"))
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
