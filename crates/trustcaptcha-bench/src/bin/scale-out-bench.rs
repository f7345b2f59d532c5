//! Full verifications through HAProxy to one, two and three server instances on a Redis Cluster
//! of three primaries with a replica each, with and without waiting for a replica before a
//! deciding write is acknowledged (`[store] wait_for_replicas`).
//!
//! ```sh
//! cargo run --release -p trustcaptcha-bench --bin scale-out-bench
//! TRUSTCAPTCHA_BENCH_SECONDS=30 TRUSTCAPTCHA_BENCH_ROUNDS=3 cargo run --release -p trustcaptcha-bench --bin scale-out-bench
//! ```
//!
//! Everything runs on this machine: the instances (this binary started again, allocating as the
//! shipped server does), HAProxy, six Redis nodes (append-only, fsync every second) and the load
//! generator (64 flows in flight, as `capacity-bench`) share its cores. So the figures show what
//! the balancer, the cluster and the replica wait cost per flow, and whether more instances
//! help when the cores are already busy; they do not show how instances scale on machines of
//! their own. Each configuration runs `TRUSTCAPTCHA_BENCH_SECONDS` (default 20) per round, the
//! configurations alternating within each of `TRUSTCAPTCHA_BENCH_ROUNDS` (default 3) rounds;
//! the table gives min / median / max over the rounds.

// The server children run this binary: it allocates as the shipped `trustcaptcha-server` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use trustcaptcha_bench::{
    NO_ADAPTIVE_DIFFICULTY, ONE_CLIENT_NETWORK, SITE_KEY, ServerProcess, bench_site, cpu_seconds,
    flow, serve_if_child, setting, spawn_server_with,
};
use trustcaptcha_server::testing::{self, Backend, HaProxy, RedisCluster};

const IN_FLIGHT: usize = 64;

/// One run's figures.
struct Run {
    flows_per_second: f64,
    /// CPU per flow in µs: the instances together, HAProxy, the Redis nodes, the load generator.
    servers: f64,
    balancer: f64,
    redis: f64,
    load: f64,
    refused: u64,
}

fn config(store: &str, wait_for_replicas: u32) -> String {
    format!(
        r#"
        [store]
        url = "{store}"
        wait_for_replicas = {wait_for_replicas}

        [server]
        {ONE_CLIENT_NETWORK}
        {site}"#,
        site = bench_site(NO_ADAPTIVE_DIFFICULTY)
    )
}

fn port_of(server: &ServerProcess) -> u16 {
    server
        .url
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("a port")
}

async fn measure(cluster: &RedisCluster, instances: usize, wait: u32, length: Duration) -> Run {
    let servers: Vec<ServerProcess> = (0..instances)
        .map(|_| spawn_server_with(&config(&cluster.url(), wait)))
        .collect();
    let balancer = HaProxy::start(
        &servers
            .iter()
            .map(|server| Backend {
                port: port_of(server),
                admin_port: None,
            })
            .collect::<Vec<_>>(),
    );
    let redis_pids: Vec<u32> = cluster
        .nodes()
        .iter()
        .filter_map(|node| node.pid())
        .collect();
    let cpu = |pids: &[u32]| pids.iter().map(|&pid| cpu_seconds(pid)).sum::<f64>();
    let server_pids: Vec<u32> = servers.iter().map(ServerProcess::pid).collect();
    let before = (
        cpu(&server_pids),
        cpu(&[balancer.pid()]),
        cpu(&redis_pids),
        cpu(&[std::process::id()]),
    );
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .expect("client");
    let create = bytes::Bytes::from(
        serde_json::to_vec(&testing::create_body(SITE_KEY, false)).expect("serializable"),
    );
    let (done, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (http, url, create) = (http.clone(), balancer.url().to_owned(), create.clone());
            let (done, refused) = (Arc::clone(&done), Arc::clone(&refused));
            tokio::spawn(async move {
                while started.elapsed() < length {
                    match flow(&http, &url, &create).await {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let flows = done.load(Ordering::Relaxed).max(1) as f64;
    let per_flow = |after: f64, before: f64| (after - before) * 1e6 / flows;
    Run {
        flows_per_second: flows / elapsed,
        servers: per_flow(cpu(&server_pids), before.0),
        balancer: per_flow(cpu(&[balancer.pid()]), before.1),
        redis: per_flow(cpu(&redis_pids), before.2),
        load: per_flow(cpu(&[std::process::id()]), before.3),
        refused: refused.load(Ordering::Relaxed),
    }
}

/// `min / median / max` of `values`, formatted by `show`.
fn spread(values: &mut [f64], show: impl Fn(f64) -> String) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "{} / {} / {}",
        show(values[0]),
        show(values[values.len() / 2]),
        show(values[values.len() - 1])
    )
}

fn main() {
    serve_if_child();
    let length = Duration::from_secs(setting("TRUSTCAPTCHA_BENCH_SECONDS").unwrap_or(20));
    let rounds: u64 = setting("TRUSTCAPTCHA_BENCH_ROUNDS").unwrap_or(3);
    let cluster = RedisCluster::start_with_replicas(&[
        "--maxmemory-policy",
        "noeviction",
        "--maxmemory",
        "1gb",
        "--appendfsync",
        "everysec",
    ]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let configurations = [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)];
    let mut runs: Vec<Vec<Run>> = configurations.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (runs, &(instances, wait)) in runs.iter_mut().zip(&configurations) {
            runs.push(runtime.block_on(measure(&cluster, instances, wait, length)));
        }
    }
    println!(
        "{} s per run, {rounds} rounds, {IN_FLIGHT} flows in flight, through HAProxy, on a Redis \
         Cluster of 3 primaries with 1 replica each; min / median / max over the rounds.\n",
        length.as_secs()
    );
    println!(
        "| instances | wait_for_replicas | flows/s | CPU per flow: instances | HAProxy | Redis (6 nodes) | load generator | refused |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (runs, (instances, wait)) in runs.iter().zip(configurations) {
        let column = |pick: fn(&Run) -> f64, show: fn(f64) -> String| {
            spread(&mut runs.iter().map(pick).collect::<Vec<_>>(), show)
        };
        let rate = |value: f64| format!("{value:.0}");
        let micros = |value: f64| format!("{value:.0} µs");
        println!(
            "| {instances} | {wait} | {} | {} | {} | {} | {} | {} |",
            column(|run| run.flows_per_second, rate),
            column(|run| run.servers, micros),
            column(|run| run.balancer, micros),
            column(|run| run.redis, micros),
            column(|run| run.load, micros),
            runs.iter().map(|run| run.refused).sum::<u64>(),
        );
    }
}
