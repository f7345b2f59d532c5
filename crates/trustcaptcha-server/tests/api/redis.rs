//! Server processes sharing a real Redis (one node, or a three-node cluster): they act as one
//! server, and a Redis that is killed and restarted never makes them fail open or fall over.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use trustcaptcha_server::testing::{
    RedisCluster, RedisServer, TestClient, answers, create_body, submit_body,
};

use crate::cli::{Server, serve};

const SITE: &str = "00000000-0000-4000-8000-0000000000bb";
const KEY: &str = "ak_redis_test_key_0123456789";
const MADE_UP: &str = "00000000-0000-4000-8000-00000000dead";

/// Starts `count` server processes on the store at `store_url`, with limits high enough that a
/// test's own bursts from loopback are not what gets refused.
fn servers(store_url: &str, count: usize, name: &str) -> (Vec<Server>, Vec<TestClient>) {
    servers_with(store_url, count, name, "")
}

/// [`servers`] with more settings for the site.
fn servers_with(
    store_url: &str,
    count: usize,
    name: &str,
    site: &str,
) -> (Vec<Server>, Vec<TestClient>) {
    let config = std::env::temp_dir().join(format!(
        "trustcaptcha-redis-{}-{name}.toml",
        std::process::id()
    ));
    std::fs::write(
        &config,
        format!(
            "[server]\nwidget_requests_per_minute = 100000\nwidget_burst = 10000\n\
             max_pending_per_network = 10000\n\n\
             [store]\nurl = \"{store_url}\"\n\n\
             [[sites]]\nname = \"shop\"\nsite_key = \"{SITE}\"\napi_keys = [\"{KEY}\"]\n\
             difficulty = 1\ntasks = 1\nallowed_origins = [\"http://shop.localhost:3000\"]\n{site}\n"
        ),
    )
    .expect("write the configuration");
    let servers: Vec<Server> = (0..count)
        .map(|_| serve(&["--config", config.to_str().expect("utf-8")], 1))
        .collect();
    let remotes = servers
        .iter()
        .map(|server| TestClient::new(server.url()))
        .collect();
    (servers, remotes)
}

fn results_path(id: &str) -> String {
    format!("/v2/verifications/{id}/results")
}

fn id_of(token: &str) -> String {
    trustcaptcha::VerificationToken::decode(token)
        .expect("a token")
        .verification_id
        .to_string()
}

/// Counts each status among `responses`.
fn tally(statuses: impl IntoIterator<Item = u16>) -> BTreeMap<u16, usize> {
    let mut tally = BTreeMap::new();
    for status in statuses {
        *tally.entry(status).or_default() += 1;
    }
    tally
}

/// Created on one instance, solved on the next, fetched concurrently from all: the instances
/// share every verification and count every transition once.
async fn instances_act_as_one(remotes: &[TestClient]) {
    // A challenge handed out by one instance is submitted to another, 50 times at once.
    let (status, created) = remotes[0].create(&create_body(SITE, false)).await;
    assert_eq!(status, 200, "{created}");
    let challenge = created["challenge"].clone();
    let solution = answers(&challenge);
    let id = challenge["verificationId"].as_str().expect("id").to_owned();
    let submissions = (0..50).map(|i| {
        let remote = remotes[i % remotes.len()].clone();
        let solution = solution.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let (status, body) = remote
                .post(
                    &format!("/v2/verifications/{id}/challenges"),
                    &submit_body(&solution),
                    Some(trustcaptcha_server::testing::ORIGIN),
                )
                .await;
            (status, body)
        })
    });
    let mut submitted = Vec::new();
    for submission in submissions {
        submitted.push(submission.await.expect("task"));
    }
    let tokens: Vec<&Value> = submitted
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| &body["finished"]["verificationToken"])
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "{:?}",
        tally(submitted.iter().map(|s| s.0))
    );
    assert!(
        submitted.iter().all(|(status, _)| *status < 500),
        "{:?}",
        tally(submitted.iter().map(|s| s.0))
    );

    // 200 fetches of that result at once, spread over the instances: exactly one gets it.
    let fetches = (0..200).map(|i| {
        let remote = remotes[i % remotes.len()].clone();
        let path = results_path(&id);
        tokio::spawn(async move { remote.get(&path, Some(KEY)).await.0 })
    });
    let mut statuses = Vec::new();
    for fetch in fetches {
        statuses.push(fetch.await.expect("task"));
    }
    let statuses = tally(statuses);
    assert_eq!(
        statuses,
        BTreeMap::from([(200, 1), (429, 199)]),
        "one result, then the limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_on_one_redis_act_as_one() {
    let redis = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let (_servers, remotes) = servers(&redis.url(), 3, "node");
    instances_act_as_one(&remotes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_on_a_redis_cluster_act_as_one() {
    let cluster = RedisCluster::start_with(&["--maxmemory-policy", "noeviction"]);
    let (_servers, remotes) = servers(&cluster.url(), 3, "cluster");
    instances_act_as_one(&remotes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_and_difficulty_are_counted_once_across_instances() {
    let cluster = RedisCluster::start_with(&["--maxmemory-policy", "noeviction"]);
    let (_servers, remotes) = servers_with(
        &cluster.url(),
        3,
        "counted",
        "hourly_quota = 12\nadaptive_difficulty = { window_secs = 3600, free_solves = 2, step = 1, max_extra = 4 }",
    );
    for remote in &remotes {
        remote.flow(SITE).await.expect("a flow");
    }
    // Three solves from this network, one on each instance: every instance raises the
    // difficulty, as one server would.
    for remote in &remotes {
        assert_eq!(remote.challenge(SITE).await["difficulty"], 2);
    }
    // The quota counts finished verifications across instances: three more use up the half
    // that one client block may spend alone.
    for remote in &remotes {
        remote.flow(SITE).await.expect("within the quota");
    }
    for remote in &remotes {
        let (status, body) = remote.create(&create_body(SITE, false)).await;
        assert_eq!(status, 402, "{body}");
    }
}

#[test]
fn a_server_refuses_to_start_on_a_redis_that_evicts() {
    let redis = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let config = std::env::temp_dir().join(format!(
        "trustcaptcha-redis-{}-evicting.toml",
        std::process::id()
    ));
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{}\"\n\n[[sites]]\nname = \"shop\"\nsite_key = \"{SITE}\"\n\
             api_keys = [\"{KEY}\"]\n",
            redis.url()
        ),
    )
    .expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_trustcaptcha-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("noeviction"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_run_fails_closed_and_recovers() {
    let mut redis = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let (_servers, remotes) = servers(&redis.url(), 2, "restart");

    // Flows run without pause on both instances while Redis is killed and restarted; every
    // answer is recorded, and every token that was handed out is kept.
    let running = Arc::new(AtomicBool::new(true));
    let (completed, mut progress) = tokio::sync::watch::channel(0_usize);
    let completed = Arc::new(completed);
    let workers: Vec<_> = remotes
        .iter()
        .cloned()
        .map(|remote| {
            let (running, completed) = (Arc::clone(&running), Arc::clone(&completed));
            tokio::spawn(async move {
                let (mut tokens, mut refusals) = (Vec::new(), Vec::new());
                while running.load(Ordering::Relaxed) {
                    match remote.flow(SITE).await {
                        Ok(token) => tokens.push(token),
                        Err(status) => refusals.push(status),
                    }
                    completed.send_modify(|flows| *flows += 1);
                }
                (tokens, refusals)
            })
        })
        .collect();
    let outage = async |remotes: &[TestClient]| {
        // During the outage nothing passes: a made-up id is not found, nor answered for.
        for remote in remotes {
            let (status, _) = remote.get(&results_path(MADE_UP), Some(KEY)).await;
            assert_eq!(status, 503, "a made-up id while the store is down");
        }
    };

    progress
        .wait_for(|flows| *flows >= 20)
        .await
        .expect("workers run");
    redis.kill();
    outage(&remotes).await;
    redis.restart();
    let restarted = Instant::now();
    // Recovery: both instances complete a flow again within seconds.
    for remote in &remotes {
        loop {
            if remote.flow(SITE).await.is_ok() {
                break;
            }
            assert!(
                restarted.elapsed() < Duration::from_secs(15),
                "an instance did not recover"
            );
        }
    }
    running.store(false, Ordering::Relaxed);
    let (mut tokens, mut refusals) = (Vec::new(), Vec::new());
    for worker in workers {
        let (kept, refused) = worker.await.expect("no request failed at the transport");
        tokens.extend(kept);
        refusals.extend(refused);
    }
    assert!(!tokens.is_empty());
    assert!(
        refusals.iter().all(|status| *status == 503),
        "only 'unavailable' while Redis was down: {:?}",
        tally(refusals)
    );

    // Every acknowledged result is fetched exactly once, from either instance.
    for (i, token) in tokens.iter().enumerate() {
        let id = id_of(token);
        let remote = &remotes[i % remotes.len()];
        assert_eq!(
            remote.get(&results_path(&id), Some(KEY)).await.0,
            200,
            "{i}"
        );
        assert_eq!(
            remote.get(&results_path(&id), Some(KEY)).await.0,
            429,
            "{i}"
        );
    }
    assert_eq!(
        remotes[0].get(&results_path(MADE_UP), Some(KEY)).await.0,
        404
    );
}

/// A Redis whose eviction policy is changed under a running server could drop live
/// verifications: readiness fails, naming why, and recovers once it is set back.
#[tokio::test]
async fn readiness_fails_when_redis_starts_evicting() {
    let redis = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let mut config = trustcaptcha_server::config::parse(&format!(
        "[[sites]]\nname = \"shop\"\nsite_key = \"{SITE}\"\napi_keys = [\"{KEY}\"]\n"
    ))
    .expect("valid");
    config.store.url = Some(redis.url());
    let server = trustcaptcha_server::testing::TestServer::start(config).await;
    assert_eq!(server.admin.get("/readyz", None).await.0, 200);
    assert!(
        redis
            .command("CONFIG SET maxmemory-policy allkeys-lru")
            .contains("OK")
    );
    let (status, body) = server.admin.get("/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("allkeys-lru"), "{body}");
    assert!(
        redis
            .command("CONFIG SET maxmemory-policy noeviction")
            .contains("OK")
    );
    assert_eq!(server.admin.get("/readyz", None).await.0, 200);
}
