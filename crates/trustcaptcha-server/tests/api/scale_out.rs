//! Scaling out for real: three server processes behind Debian's HAProxy (health-checking their
//! admin listeners), on a Redis Cluster of three primaries with a replica each. Flows run
//! through the balancer while a primary dies, an instance is killed, another drained, and all
//! three are restarted one by one; what a widget was told is never contradicted afterwards.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use trustcaptcha::{DecisionAction, DecisionType};
use trustcaptcha_server::testing::{
    Backend, HaProxy, ORIGIN, RedisCluster, TestClient, USER_AGENT, answers, browser_headers,
    create_body,
};

const BIN: &str = env!("CARGO_BIN_EXE_trustcaptcha-server");
const SITE: &str = "00000000-0000-4000-8000-0000000000cc";
const KEY: &str = "ak_scale_out_test_key_0123456789";
/// Blocked by the site: a client connecting from here may claim any address in its headers.
const BLOCKED: &str = "127.0.0.9";
/// What that client claims to be.
const CLAIMED: &str = "127.0.0.10";

/// Held by each test here: six Redis nodes, three servers and a balancer apiece are enough for
/// two cores, and a starved replica would make writes time out that are not meant to.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `done` every 20 ms until it holds, failing the test after `within`.
async fn eventually(within: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "{what} did not happen in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The configuration every instance reads: HAProxy on 127.0.0.1 is the trusted proxy, the
/// site blocks [`BLOCKED`], limits are high enough for a test's bursts from one address.
fn configuration(store_url: &str, wait_for_replicas: u32, drain_secs: u64) -> Configuration {
    let path = std::env::temp_dir().join(format!(
        "trustcaptcha-scale-{}-{}.toml",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::write(
        &path,
        format!(
            "[server]\nwidget_requests_per_minute = 100000\nwidget_burst = 10000\n\
             max_pending_per_network = 10000\ndrain_secs = {drain_secs}\n\
             trusted_proxies = [\"127.0.0.1/32\"]\nclient_address_header = \"x-forwarded-for\"\n\n\
             [store]\nurl = \"{store_url}\"\nwait_for_replicas = {wait_for_replicas}\n\
             replica_timeout_ms = 1500\n\n\
             [[sites]]\nname = \"shop\"\nsite_key = \"{SITE}\"\napi_keys = [\"{KEY}\"]\n\
             difficulty = 1\ntasks = 1\nallowed_origins = [\"{ORIGIN}\"]\nmax_retrievals = 1\n\
             block_ips = [\"{BLOCKED}\"]\n"
        ),
    )
    .expect("write the configuration");
    Configuration(path)
}

/// The instances' configuration file, removed when the test is done with it.
struct Configuration(PathBuf);

impl Drop for Configuration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One `trustcaptcha-server serve` process on fixed loopback ports, so that a restarted
/// instance takes its predecessor's place behind the balancer.
struct Instance {
    config: PathBuf,
    port: u16,
    admin_port: u16,
    child: Option<Child>,
}

impl Instance {
    fn start(config: &std::path::Path) -> Instance {
        let mut instance = Instance {
            config: config.to_path_buf(),
            port: free_port(),
            admin_port: free_port(),
            child: None,
        };
        instance.launch();
        instance
    }

    /// Starts the process and waits for its announcement (its listeners are bound then).
    fn launch(&mut self) {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--admin-listen", &format!("127.0.0.1:{}", self.admin_port)])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("announcement");
        assert!(
            line.contains("listening on"),
            "the server did not start: {line}"
        );
        self.child = Some(child);
    }

    fn signal(&mut self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; whether it exited successfully.
    fn wait(&mut self) -> bool {
        let mut child = self.child.take().expect("running");
        child.wait().expect("wait").success()
    }

    fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The verifications this instance created (its own `/metrics`).
    async fn created(&self) -> u64 {
        let text = reqwest::get(format!("{}/metrics", self.admin_url()))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|line| line.starts_with("trustcaptcha_verifications_created_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// HAProxy in front of `instances`, health-checking their admin listeners.
fn balance(instances: &[Instance]) -> HaProxy {
    HaProxy::start(
        &instances
            .iter()
            .map(|instance| Backend {
                port: instance.port,
                admin_port: Some(instance.admin_port),
            })
            .collect::<Vec<_>>(),
    )
}

/// What the flows running through the balancer saw.
#[derive(Default)]
struct Outcomes {
    /// Acknowledged verification tokens.
    tokens: Vec<String>,
    /// Every status a create or submit answered other than success.
    refusals: BTreeMap<u16, usize>,
}

/// Runs `workers` loops of full flows (create, solve, submit) through `url` until `stop` is
/// set; returns what they saw.
fn run_flows(
    url: &str,
    workers: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Outcomes>> {
    (0..workers)
        .map(|_| {
            let client = TestClient::new(url);
            let stop = Arc::clone(stop);
            tokio::spawn(async move {
                let mut outcomes = Outcomes::default();
                while !stop.load(Ordering::Relaxed) {
                    match client.flow(SITE).await {
                        Ok(token) => outcomes.tokens.push(token),
                        Err(status) => *outcomes.refusals.entry(status).or_default() += 1,
                    }
                }
                outcomes
            })
        })
        .collect()
}

async fn collect(flows: Vec<tokio::task::JoinHandle<Outcomes>>) -> Outcomes {
    let mut all = Outcomes::default();
    for flow in flows {
        let outcomes = flow.await.expect("flows");
        all.tokens.extend(outcomes.tokens);
        for (status, count) in outcomes.refusals {
            *all.refusals.entry(status).or_default() += count;
        }
    }
    all
}

/// Fetches every token's result twice through `client`: each must pass once, then be refused
/// as already retrieved (nothing acknowledged was lost, nothing is fetched twice).
async fn each_fetched_exactly_once(client: &TestClient, tokens: &[String]) {
    let backend = client.client(KEY);
    for token in tokens {
        let result = backend
            .get_verification_result(token)
            .await
            .unwrap_or_else(|error| panic!("an acknowledged result is lost: {error}"));
        assert!(result.verification_passed, "{result:?}");
        let again = backend.get_verification_result(token).await;
        assert!(
            again.is_err_and(|error| error.status().map(|status| status.as_u16()) == Some(429)),
            "a result fetched twice"
        );
    }
}

/// A client that connects from `from`, writing its own forwarding headers.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().expect("ip"))
        .no_proxy()
        .user_agent(USER_AGENT)
        .default_headers(browser_headers())
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_behind_haproxy_on_a_cluster_with_replicas_act_as_one() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start_with_replicas(&["--maxmemory-policy", "noeviction"]);
    let config = configuration(&cluster.url(), 1, 0);
    let instances: Vec<Instance> = (0..3).map(|_| Instance::start(&config.0)).collect();
    let balancer = balance(&instances);
    let through = TestClient::new(balancer.url());

    // Every flow goes through the balancer, each request possibly to another instance.
    let mut tokens = Vec::new();
    for _ in 0..30 {
        tokens.push(
            through
                .flow(SITE)
                .await
                .expect("a flow through the balancer"),
        );
    }
    each_fetched_exactly_once(&through, &tokens).await;
    for instance in &instances {
        assert!(
            instance.created().await >= 5,
            "round robin reaches every instance"
        );
    }

    // The address rule holds through HAProxy: a blocked client claiming another address in
    // every forwarding header it can write is still itself.
    let response = client_from(BLOCKED)
        .post(format!("{}/v2/verifications", balancer.url()))
        .header("origin", ORIGIN)
        .header("x-forwarded-for", CLAIMED)
        .header("forwarded", format!("for={CLAIMED}"))
        .header("x-real-ip", CLAIMED)
        .json(&create_body(SITE, false))
        .send()
        .await
        .expect("create through haproxy");
    assert_eq!(response.status(), 200);
    let created: Value = response.json().await.expect("json");
    let (status, finished) = through
        .submit(&created["challenge"], &answers(&created["challenge"]))
        .await;
    assert_eq!(status, 201, "{finished}");
    let token = finished["finished"]["verificationToken"]
        .as_str()
        .expect("token");
    let result = through
        .client(KEY)
        .get_verification_result(token)
        .await
        .expect("result");
    assert_eq!(result.ip_address, BLOCKED);
    assert_eq!(result.decision_type, DecisionType::CustomAccessRule);
    assert_eq!(result.decision_action, DecisionAction::Block);
    assert!(!result.verification_passed);
}

/// A primary is killed while flows run through the balancer: its replica is promoted, the
/// instances follow without a restart, meanwhile answers are only 503, and every result a widget
/// was given is afterwards fetched exactly once (writes wait for a replica).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_mid_run_loses_nothing_acknowledged() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut cluster = RedisCluster::start_with_replicas(&["--maxmemory-policy", "noeviction"]);
    let config = configuration(&cluster.url(), 1, 0);
    let instances: Vec<Instance> = (0..3).map(|_| Instance::start(&config.0)).collect();
    let balancer = balance(&instances);
    let through = TestClient::new(balancer.url());

    let stop = Arc::new(AtomicBool::new(false));
    let flows = run_flows(balancer.url(), 8, &stop);
    let before = through.flow(SITE).await.expect("flows run");
    let described = cluster.describe();
    let victim = described
        .iter()
        .find(|node| node.primary)
        .expect("a primary")
        .clone();
    cluster.node_mut(cluster.index_of(victim.port)).kill();
    cluster.wait_until(|nodes| {
        nodes
            .iter()
            .any(|node| node.port == victim.port && node.failed)
            && nodes
                .iter()
                .filter(|node| node.primary && !node.failed)
                .count()
                == 3
    });
    // The promoted replica has no replica of its own: waiting for one, its writes are refused
    // (503) until the old primary, restarted, has rejoined as its replica.
    let victim_index = cluster.index_of(victim.port);
    cluster.node_mut(victim_index).restart();
    cluster.wait_until(|nodes| {
        nodes
            .iter()
            .any(|node| node.port == victim.port && !node.primary && !node.failed)
    });
    // The instances follow the promoted replica on their own: flows succeed again.
    let mut after = Vec::new();
    eventually(
        Duration::from_secs(20),
        "flows after the failover",
        async || {
            if let Ok(token) = through.flow(SITE).await {
                after.push(token);
            }
            after.len() >= 20
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = collect(flows).await;
    assert!(
        outcomes.refusals.keys().all(|&status| status == 503),
        "only 503 while the primary was gone: {:?}",
        outcomes.refusals
    );
    outcomes.tokens.push(before);
    outcomes.tokens.extend(after);
    each_fetched_exactly_once(&through, &outcomes.tokens).await;
}

/// What the option buys, shown deterministically: a result is finished while its primary's
/// replica is down, then the primary dies and that replica (restarted from its own file, without
/// the write) takes over. Waiting for a replica, the widget was never told it passed; without,
/// it was, and the result is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_replica_is_what_keeps_an_acknowledged_result_through_a_failover() {
    let _alone = ONE_AT_A_TIME.lock().await;
    for wait_for_replicas in [1, 0] {
        let mut cluster = RedisCluster::start_with_replicas(&["--maxmemory-policy", "noeviction"]);
        let config = configuration(&cluster.url(), wait_for_replicas, 0);
        let instance = Instance::start(&config.0);
        let client = TestClient::new(&format!("http://127.0.0.1:{}", instance.port));

        let (status, created) = client.create(&create_body(SITE, false)).await;
        assert_eq!(status, 200, "{created}");
        let challenge = &created["challenge"];
        let id = challenge["verificationId"].as_str().expect("id");
        let (primary, replicas) = cluster.serving(&format!("trustcaptcha:v:{{{id}}}"));
        let replica = replicas[0];
        cluster.node_mut(replica).kill();
        let (status, finished) = client.submit(challenge, &answers(challenge)).await;

        cluster.node_mut(primary).kill();
        cluster.node_mut(replica).restart();
        let takeover = cluster.nodes()[replica].command("CLUSTER FAILOVER TAKEOVER");
        assert!(takeover.contains("OK"), "{takeover}");
        let port = cluster.nodes()[replica].address().port();
        cluster.wait_until(|nodes| {
            nodes
                .iter()
                .any(|node| node.port == port && node.primary && !node.failed)
        });

        if wait_for_replicas == 1 {
            assert_eq!(
                status, 503,
                "no replica had it: not acknowledged ({finished})"
            );
        } else {
            assert_eq!(
                status, 201,
                "acknowledged by the primary alone ({finished})"
            );
            let token = finished["finished"]["verificationToken"]
                .as_str()
                .expect("token");
            // The instance follows the new primary, which never had the result.
            let mut lost = None;
            eventually(
                Duration::from_secs(20),
                "an answer from the new primary",
                async || {
                    let answer = client.client(KEY).get_verification_result(token).await;
                    lost = answer
                        .err()
                        .and_then(|error| error.status())
                        .map(|status| status.as_u16());
                    lost != Some(503)
                },
            )
            .await;
            // The new primary holds the verification as it was before the write: unsolved.
            assert_eq!(
                lost,
                Some(423),
                "the acknowledged result went with its primary"
            );
        }
    }
}

/// One instance is killed and another drained while flows run through the balancer; then all
/// three are restarted one by one. Nothing acknowledged is lost, no request gets a 500, and the
/// rolling restart fails no flow at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_killed_drained_and_restarted_behind_the_balancer() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start_with_replicas(&["--maxmemory-policy", "noeviction"]);
    let config = configuration(&cluster.url(), 1, 1);
    let mut instances: Vec<Instance> = (0..3).map(|_| Instance::start(&config.0)).collect();
    let balancer = balance(&instances);
    let through = TestClient::new(balancer.url());
    let up = |admin: String| async move {
        reqwest::get(format!("{admin}/readyz"))
            .await
            .is_ok_and(|response| response.status() == 200)
    };

    // A SIGKILL and a SIGTERM mid-run.
    let stop = Arc::new(AtomicBool::new(false));
    let flows = run_flows(balancer.url(), 6, &stop);
    let mut before = Vec::new();
    for _ in 0..10 {
        before.push(through.flow(SITE).await.expect("flows run"));
    }
    instances[0].signal("-KILL");
    instances[0].wait();
    instances[1].signal("-TERM");
    let admin = instances[1].admin_url();
    eventually(Duration::from_secs(5), "draining shown", async || {
        reqwest::get(format!("{admin}/readyz"))
            .await
            .is_ok_and(|response| response.status() == 503)
    })
    .await;
    assert!(instances[1].wait(), "a drained instance exits cleanly");
    for _ in 0..10 {
        before.push(through.flow(SITE).await.expect("one instance serves"));
    }
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = collect(flows).await;
    assert!(
        outcomes.refusals.keys().all(|&status| status != 500),
        "no 500 when instances die: {:?}",
        outcomes.refusals
    );
    outcomes.tokens.extend(before);
    each_fetched_exactly_once(&through, &outcomes.tokens).await;
    for instance in &mut instances[..2] {
        instance.launch();
        eventually(Duration::from_secs(20), "an instance back", || {
            up(instance.admin_url())
        })
        .await;
    }

    // A rolling restart under load: every flow succeeds.
    let stop = Arc::new(AtomicBool::new(false));
    let flows = run_flows(balancer.url(), 6, &stop);
    for instance in &mut instances {
        instance.signal("-TERM");
        assert!(instance.wait(), "a drained instance exits cleanly");
        instance.launch();
        let admin = instance.admin_url();
        eventually(
            Duration::from_secs(20),
            "a restarted instance ready",
            || up(admin.clone()),
        )
        .await;
        // HAProxy takes it back after two good checks; the next one goes only then.
        let before = instance.created().await;
        eventually(
            Duration::from_secs(20),
            "a restarted instance in rotation",
            async || through.flow(SITE).await.is_ok() && instance.created().await > before,
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let outcomes = collect(flows).await;
    assert!(
        outcomes.refusals.is_empty(),
        "a rolling restart fails no flow: {:?}",
        outcomes.refusals
    );
    assert!(!outcomes.tokens.is_empty());
    each_fetched_exactly_once(&through, &outcomes.tokens).await;
}
