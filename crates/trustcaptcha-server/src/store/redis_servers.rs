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

/// A Redis Cluster of three primaries (no replicas) on loopback ports.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
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
        let mut node_args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        node_args.extend_from_slice(args);
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(&node_args))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|node| node.address().to_string()))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(status.success(), "redis-cli --cluster create failed");
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
        RedisCluster { nodes }
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
