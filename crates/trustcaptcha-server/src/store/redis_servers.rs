//! Real Redis servers for tests: one node, or a three-node Redis Cluster, each started from the
//! `redis-server` binary on free loopback ports in a temporary directory, and killed (and the
//! directory removed) when dropped. The Redis store's conformance suite and the fault tests
//! (Redis killed and restarted, several servers sharing one Redis) run against these; the
//! latter reach them as `testing::{RedisServer, RedisCluster}`.

// Without `test-support` only the store's own unit tests use this, and not all of it.
#![cfg_attr(not(feature = "test-support"), allow(dead_code, unreachable_pub))]

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a starting Redis gets to answer `PING` (or a cluster to agree on its slots).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One `redis-server` process on `127.0.0.1`, with an append-only file synced on every write, so
/// that what it acknowledged survives `SIGKILL`.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a node with the default settings (no memory limit).
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed or does not start.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a node with extra `redis-server` arguments (e.g. `["--maxmemory", "2mb"]`).
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed or does not start.
    #[must_use]
    pub fn start_with(args: &[&str]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "trustcaptcha-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a directory for redis");
        let mut server = RedisServer {
            port: 0,
            dir,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            child: None,
        };
        // The free port is found by binding and releasing it, so another process may take it
        // first: then Redis exits, and the next port is tried.
        for _ in 0..5 {
            server.port = free_port();
            if server.launch() {
                return server;
            }
        }
        panic!("redis-server did not start (is it installed? scripts/install-deps.sh)");
    }

    /// The address the server listens on.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The store URL of this node, `redis://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://{}", self.address())
    }

    /// The process id, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with `SIGKILL`, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, from the same append-only file.
    ///
    /// # Panics
    ///
    /// When it does not start.
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.launch(), "redis-server did not restart");
    }

    /// Sends one command (space-separated words) and returns the raw reply.
    ///
    /// # Panics
    ///
    /// When the server does not answer.
    #[must_use]
    pub fn command(&self, words: &str) -> String {
        command(self.address(), words).expect("redis answers")
    }

    /// The memory Redis reports in use (`INFO memory`'s `used_memory`), in bytes.
    ///
    /// # Panics
    ///
    /// When the server does not answer.
    #[must_use]
    pub fn used_memory(&self) -> u64 {
        self.command("INFO memory")
            .lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|used| used.trim().parse().ok())
            .expect("INFO memory shows used_memory")
    }

    fn launch(&mut self) -> bool {
        let mut server = Command::new("redis-server");
        server
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = server.spawn().expect("redis-server runs");
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if command(self.address(), "PING").is_ok_and(|reply| reply.contains("PONG")) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three primaries on loopback ports, with or without a replica each.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// One node of a cluster as `CLUSTER NODES` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node's id.
    pub id: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Whether it is a primary (`master`), rather than a replica.
    pub primary: bool,
    /// Whether the cluster considers it failed.
    pub failed: bool,
    /// A replica's primary's id.
    pub primary_id: Option<String>,
    /// A primary's slot ranges.
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Starts three cluster-enabled nodes, assigns the slots and waits until every node reports
    /// the cluster as ready.
    ///
    /// # Panics
    ///
    /// When the nodes do not start or do not form a cluster.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`RedisCluster::start`] with extra `redis-server` arguments for every node.
    ///
    /// # Panics
    ///
    /// When the nodes do not start or do not form a cluster.
    #[must_use]
    pub fn start_with(args: &[&str]) -> Self {
        Self::launch(args, 0)
    }

    /// Three primaries with a replica each (six nodes), started with extra `redis-server`
    /// arguments for every node; returns once every replica has caught up with its primary.
    ///
    /// # Panics
    ///
    /// When the nodes do not start or do not form a cluster.
    #[must_use]
    pub fn start_with_replicas(args: &[&str]) -> Self {
        Self::launch(args, 1)
    }

    fn launch(args: &[&str], replicas: usize) -> Self {
        let mut node_args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        node_args.extend_from_slice(args);
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| RedisServer::start_with(&node_args))
            .collect();
        let mut create = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|node| node.address().to_string()))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli runs");
        // redis-cli introduces the nodes once and then waits for them to agree, for ever: on a
        // loaded machine a handshake can outlast the node timeout and be dropped. Past a grace
        // period (the introductions are long made), the first node is introduced again to
        // every node it does not know.
        let started = Instant::now();
        loop {
            if let Some(status) = create.try_wait().expect("redis-cli") {
                assert!(status.success(), "redis-cli --cluster create failed");
                break;
            }
            if started.elapsed() > 3 * START_TIMEOUT {
                let _ = create.kill();
                let _ = create.wait();
                panic!("the cluster did not form");
            }
            if started.elapsed() > Duration::from_secs(5) {
                let known = nodes[0].command("CLUSTER NODES");
                for node in &nodes[1..] {
                    if !known.contains(&format!(":{}@", node.port)) {
                        let _ = command(
                            nodes[0].address(),
                            &format!("CLUSTER MEET 127.0.0.1 {}", node.port),
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while !nodes
            .iter()
            .all(|node| node.command("CLUSTER INFO").contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let cluster = RedisCluster { nodes };
        cluster.wait_until(|described| {
            described.iter().filter(|node| !node.primary).count() == 3 * replicas
        });
        while replicas > 0 && !cluster.replicas_in_sync() {
            assert!(Instant::now() < deadline, "the replicas did not catch up");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// Whether every live replica reports its link to its primary up and nothing left to load.
    fn replicas_in_sync(&self) -> bool {
        self.nodes
            .iter()
            .filter(|node| node.child.is_some())
            .all(|node| {
                let info = node.command("INFO replication");
                info.contains("role:master")
                    || (info.contains("master_link_status:up")
                        && info.contains("master_sync_in_progress:0"))
            })
    }

    /// The cluster as the first live node sees it.
    ///
    /// # Panics
    ///
    /// When no node answers.
    #[must_use]
    pub fn describe(&self) -> Vec<ClusterNode> {
        let node = self
            .nodes
            .iter()
            .find(|node| node.child.is_some())
            .expect("a live node");
        node.command("CLUSTER NODES")
            .lines()
            .filter_map(parse_cluster_node)
            .collect()
    }

    /// Waits (up to 20 s) until every live node reports the cluster ready and the description
    /// satisfies `done`.
    ///
    /// # Panics
    ///
    /// When it does not happen in time.
    pub fn wait_until(&self, done: impl Fn(&[ClusterNode]) -> bool) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = self
                .nodes
                .iter()
                .filter(|node| node.child.is_some())
                .all(|node| {
                    command(node.address(), "CLUSTER INFO")
                        .is_ok_and(|info| info.contains("cluster_state:ok"))
                });
            if ready && done(&self.describe()) {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not settle");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The index (in [`RedisCluster::nodes`]) of the node on `port`.
    ///
    /// # Panics
    ///
    /// When no node listens there.
    #[must_use]
    pub fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|node| node.port == port)
            .expect("a node of this cluster")
    }

    /// The primary serving `key`'s slot now, and its replicas, as indices into
    /// [`RedisCluster::nodes`].
    ///
    /// # Panics
    ///
    /// When the cluster does not answer or no primary serves the slot.
    #[must_use]
    pub fn serving(&self, key: &str) -> (usize, Vec<usize>) {
        let node = self
            .nodes
            .iter()
            .find(|node| node.child.is_some())
            .expect("a live node");
        let slot: u16 = node
            .command(&format!("CLUSTER KEYSLOT {key}"))
            .trim()
            .trim_start_matches(':')
            .parse()
            .expect("a slot");
        let described = self.describe();
        let primary = described
            .iter()
            .find(|node| {
                node.primary
                    && !node.failed
                    && node
                        .slots
                        .iter()
                        .any(|&(from, to)| (from..=to).contains(&slot))
            })
            .expect("a primary serves the slot");
        let replicas = described
            .iter()
            .filter(|node| node.primary_id.as_deref() == Some(primary.id.as_str()))
            .map(|node| self.index_of(node.port))
            .collect();
        (self.index_of(primary.port), replicas)
    }

    /// The node at `index`, to kill or restart.
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// The store URL, `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    #[must_use]
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|node| node.address().to_string())
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The nodes.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// One line of `CLUSTER NODES`: `ID IP:PORT@BUS FLAGS PRIMARY PING PONG EPOCH LINK SLOT…`.
fn parse_cluster_node(line: &str) -> Option<ClusterNode> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [id, address, flags, primary_id, _, _, _, _, slots @ ..] = fields.as_slice() else {
        return None;
    };
    let port = address
        .split('@')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()?;
    let flags: Vec<&str> = flags.split(',').collect();
    let slots = slots
        .iter()
        .filter(|slot| !slot.starts_with('['))
        .filter_map(|slot| match slot.split_once('-') {
            Some((from, to)) => Some((from.parse().ok()?, to.parse().ok()?)),
            None => slot.parse().ok().map(|one| (one, one)),
        })
        .collect();
    Some(ClusterNode {
        id: (*id).to_owned(),
        port,
        primary: flags.contains(&"master"),
        failed: flags.contains(&"fail"),
        primary_id: (*primary_id != "-").then(|| (*primary_id).to_owned()),
        slots,
    })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// One inline command over a fresh connection; the reply as text (for these tests' small
/// replies a single read suffices once the first bytes arrived).
fn command(address: SocketAddr, words: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{words}\r\n").as_bytes())?;
    let mut reply = vec![0; 64 * 1024];
    let read = stream.read(&mut reply)?;
    reply.truncate(read);
    Ok(String::from_utf8_lossy(&reply).into_owned())
}
