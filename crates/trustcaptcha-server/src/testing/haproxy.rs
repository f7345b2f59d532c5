//! A real load balancer for tests and benchmarks: Debian's HAProxy, started on a free loopback
//! port in front of server instances, as a team scaling out would run it (round robin,
//! `X-Forwarded-For` appended, each instance health-checked on its admin listener's `/readyz`,
//! a request whose connection failed or got no answer retried once on another instance).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One instance behind the balancer: its public port, and the admin port whose `/readyz` takes
/// it out of rotation when it fails twice in a row (checked every 100 ms), if any.
#[derive(Debug, Clone, Copy)]
pub struct Backend {
    /// The public listener's port on 127.0.0.1.
    pub port: u16,
    /// The admin listener's port on 127.0.0.1, for health checks.
    pub admin_port: Option<u16>,
}

/// One `haproxy` process in a temporary directory, stopped (and the directory removed) when
/// dropped.
#[derive(Debug)]
pub struct HaProxy {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl HaProxy {
    /// Starts HAProxy on a free port in front of `backends`.
    ///
    /// # Panics
    ///
    /// When `haproxy` is not installed (`scripts/install-deps.sh` installs it) or does not
    /// start.
    #[must_use]
    pub fn start(backends: &[Backend]) -> HaProxy {
        let dir = std::env::temp_dir().join(format!(
            "trustcaptcha-haproxy-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).expect("a directory for haproxy");
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, backend)| match backend.admin_port {
                Some(admin) => format!(
                    "  server i{i} 127.0.0.1:{} check port {admin}\n",
                    backend.port
                ),
                None => format!("  server i{i} 127.0.0.1:{}\n", backend.port),
            })
            .collect();
        for _ in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let conf = format!(
                "global\n  maxconn 4000\n\
                 defaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n\
                 timeout server 30s\n  timeout http-request 10s\n  retries 2\n\
                 option redispatch 1\n  retry-on conn-failure empty-response\n\
                 frontend public\n  bind 127.0.0.1:{port}\n  default_backend instances\n\
                 backend instances\n  balance roundrobin\n  option forwardfor\n\
                 option httpchk GET /readyz\n  http-check expect status 200\n\
                 default-server inter 100ms fall 2 rise 2\n{servers}"
            );
            std::fs::write(dir.join("haproxy.cfg"), conf).expect("haproxy.cfg");
            let mut child = Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(dir.join("haproxy.cfg"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("haproxy runs (scripts/install-deps.sh installs it)");
            let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                    return HaProxy {
                        child,
                        dir,
                        url: format!("http://{address}"),
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("haproxy did not start");
    }

    /// The balancer's base URL, `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The balancer process's id (for its CPU time).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
