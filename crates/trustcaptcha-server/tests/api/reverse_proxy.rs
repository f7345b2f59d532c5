//! The client's address behind a real reverse proxy: Debian's nginx, started on a free loopback
//! port in front of the server, forwarding the way operators set it up. Clients connect from
//! chosen loopback addresses (127.0.0.9, …) and write every forwarding header they like; the
//! address the server records, and the rules and limits it applies, are always what nginx saw.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command};

use crate::fixtures::*;
use serde_json::Value;
use trustcaptcha::{DecisionAction, DecisionType, VerificationToken};
use trustcaptcha_server::config;
use trustcaptcha_server::testing::*;

/// Blocked by the site; the attacker's own address.
const BLOCKED: &str = "127.0.0.9";
/// Allowed by the site; what the attacker would like to be.
const ALLOWED: &str = "127.0.0.10";
/// Neither: an ordinary visitor, and the victim of a lockout.
const VISITOR: &str = "127.0.0.11";

/// One nginx process in a temporary directory, stopped (and the directory removed) on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Nginx {
    /// Starts nginx on a free port, proxying to `upstream` with the given `proxy_set_header`
    /// lines. Panics when nginx is not installed (`scripts/install-deps.sh` installs it).
    fn start(upstream: &str, headers: &str) -> Nginx {
        let dir = std::env::temp_dir().join(format!(
            "trustcaptcha-nginx-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(dir.join("logs")).expect("a directory for nginx");
        let started = start_listening(|port| {
            let conf = format!(
                "daemon off;\nworker_processes 1;\nerror_log {dir}/logs/error.log;\npid {dir}/nginx.pid;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
                 fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
                 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass {upstream};\n\
                 proxy_http_version 1.1;\n      proxy_set_header Host $host;\n      {headers}\n    }}\n  }}\n}}\n",
                dir = dir.display()
            );
            std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
            let mut nginx = Command::new("nginx");
            nginx
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("logs/error.log"))
                .arg("-c")
                .arg(dir.join("nginx.conf"));
            nginx
        });
        if let Some((child, port)) = started {
            return Nginx {
                child,
                dir,
                url: format!("http://127.0.0.1:{port}"),
            };
        }
        let log = std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default();
        panic!("nginx did not start: {log}");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server that trusts nginx (on 127.0.0.1) and reads `header`; one site that blocks
/// [`BLOCKED`] and allows [`ALLOWED`]; two failed key guesses per hour.
async fn server(header: &str) -> TestServer {
    let text = format!(
        r#"
        [server]
        trusted_proxies = ["127.0.0.1/32"]
        client_address_header = "{header}"
        failed_keys_per_hour = 2
        widget_requests_per_minute = 60000
        widget_burst = 10000

        [[sites]]
        name = "guarded"
        site_key = "{SITE_A}"
        api_keys = ["{KEY_A}"]
        allowed_origins = ["{ORIGIN}"]
        difficulty = 1
        tasks = 1
        max_retrievals = 100
        block_ips = ["{BLOCKED}"]
        allow_ips = ["{ALLOWED}"]
        "#
    );
    TestServer::start(config::parse(&text).expect("valid")).await
}

/// A client connecting from `from`.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().expect("ip"))
        .no_proxy()
        .user_agent(USER_AGENT)
        .default_headers(browser_headers())
        .build()
        .expect("client")
}

/// Every way a client can claim to be [`ALLOWED`] (or someone else) in its own headers.
fn forgeries() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![],
        vec![("x-forwarded-for", ALLOWED)],
        vec![("x-forwarded-for", "127.0.0.10, 127.0.0.1")],
        vec![("x-forwarded-for", ALLOWED), ("x-forwarded-for", ALLOWED)],
        vec![("x-forwarded-for", "[::1]:80, 127.0.0.10:443")],
        vec![("forwarded", "for=127.0.0.10")],
        vec![(
            "forwarded",
            r#"for="[2001:db8::1]:80";proto=https, for=127.0.0.10"#,
        )],
        vec![("x-real-ip", ALLOWED)],
        vec![("x-real-ip", "unknown")],
        vec![
            ("forwarded", "for=127.0.0.10"),
            ("x-forwarded-for", ALLOWED),
            ("x-real-ip", ALLOWED),
        ],
    ]
}

/// Starts a verification through the proxy from `from` with `headers`, finishes it, and returns
/// the result the backend sees.
async fn verify_through(
    proxy: &Nginx,
    server: &TestServer,
    from: &str,
    headers: &[(&str, &str)],
) -> trustcaptcha::VerificationResult {
    let mut request = client_from(from)
        .post(format!("{}/v2/verifications", proxy.url))
        .header("origin", ORIGIN)
        .json(&create_body(SITE_A, false));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("create through nginx");
    assert_eq!(response.status(), 200, "{headers:?}");
    let created: Value = response.json().await.expect("json");
    let token = server.finish(&created["challenge"]).await;
    server.fetch(KEY_A, &token).await
}

/// For every proxy set-up and every forgery, the recorded address is the connection's, the
/// block list holds and the allow list is not reached.
#[tokio::test]
async fn behind_nginx_the_client_cannot_choose_its_address() {
    let setups = [
        (
            "x-forwarded-for",
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        ),
        ("x-real-ip", "proxy_set_header X-Real-IP $remote_addr;"),
        (
            "forwarded",
            // Appends to what the client sent, the harder case for the server.
            r#"proxy_set_header Forwarded "$http_forwarded, for=$remote_addr";"#,
        ),
    ];
    for (header, directive) in setups {
        let server = server(header).await;
        let proxy = Nginx::start(&server.url, directive);
        for forged in forgeries() {
            let result = verify_through(&proxy, &server, BLOCKED, &forged).await;
            assert_eq!(result.ip_address, BLOCKED, "{header}: {forged:?}");
            assert_eq!(result.decision_type, DecisionType::CustomAccessRule);
            assert_eq!(result.decision_action, DecisionAction::Block);
            assert!(!result.verification_passed, "{header}: {forged:?}");

            let result = verify_through(&proxy, &server, VISITOR, &forged).await;
            assert_eq!(result.ip_address, VISITOR, "{header}: {forged:?}");
            assert_ne!(
                result.decision_type,
                DecisionType::CustomAccessRule,
                "{header}: {forged:?} reached a rule of another address"
            );
        }
        // The allow list works for the address it names, so the assertions above could fail.
        let result = verify_through(&proxy, &server, ALLOWED, &[]).await;
        assert_eq!(result.decision_action, DecisionAction::Allow, "{header}");
    }
}

/// Wrong keys sent through the proxy count against the sender's own network, however it names
/// someone else: the sender is locked out, the victim is not.
#[tokio::test]
async fn forged_headers_cannot_lock_another_address_out_of_the_results_api() {
    let server = server("x-forwarded-for").await;
    let proxy = Nginx::start(
        &server.url,
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    );
    let token = server.solve(SITE_A).await;
    let results = |from: &str, key: &str| {
        let request = client_from(from)
            .get(format!(
                "{}/v2/verifications/{}/results",
                proxy.url,
                VerificationToken::decode(&token)
                    .expect("token")
                    .verification_id
            ))
            .bearer_auth(key)
            .header("x-forwarded-for", VISITOR)
            .header("forwarded", format!("for={VISITOR}"))
            .header("x-real-ip", VISITOR);
        async move { request.send().await.expect("results").status().as_u16() }
    };
    for _ in 0..5 {
        assert_eq!(results(BLOCKED, "ak_wrong_guess").await, 403);
    }
    assert_eq!(
        results(BLOCKED, KEY_A).await,
        403,
        "the guesser is locked out"
    );
    assert_eq!(
        results(VISITOR, KEY_A).await,
        200,
        "the named victim is not"
    );
}
