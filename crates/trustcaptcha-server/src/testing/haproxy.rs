//! A real load balancer for tests and benchmarks: Debian's HAProxy, started on a free loopback
//! port in front of server instances, as a team scaling out would run it (round robin,
//! `X-Forwarded-For` appended, each instance health-checked on its admin listener's `/readyz`,
//! a request whose connection failed or got no answer retried once on another instance).

use std::path::PathBuf;
use std::process::{Child, Command};

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
        let (child, port) = super::start_listening(|port| {
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
            let mut haproxy = Command::new("haproxy");
            haproxy.arg("-db").arg("-f").arg(dir.join("haproxy.cfg"));
            haproxy
        })
        .expect("haproxy starts (scripts/install-deps.sh installs it)");
        HaProxy {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        }
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
