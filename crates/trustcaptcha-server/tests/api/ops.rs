//! Health, readiness, metrics, the sandbox fixtures and the `solve` helper.

use crate::fixtures::*;
use trustcaptcha::ErrorKind;
use trustcaptcha_server::config::{SANDBOX_API_KEY, SANDBOX_SITE_KEY, Site};
use trustcaptcha_server::solve::{SolveOptions, solve};
use trustcaptcha_server::testing::*;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = TestServer::start(config("")).await;
    assert_eq!(
        server.get("/healthz", None).await,
        (200, serde_json::json!("ok"))
    );
    assert_eq!(server.admin.get("/readyz", None).await.0, 200);
    let token = server.solve(SITE_A).await;
    server.fetch(KEY_A, &token).await;
    server
        .client(KEY_A)
        .get_verification_result(&token)
        .await
        .expect_err("429");

    let response = server
        .http
        .get(format!("{}/metrics", server.admin.url))
        .send()
        .await
        .expect("metrics");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.expect("text");
    for expected in [
        r#"trustcaptcha_http_requests_total{endpoint="/v2/verifications",method="POST",status="200"} 1"#,
        r#"trustcaptcha_http_requests_total{endpoint="/v2/verifications/{id}/results",method="GET",status="429"} 1"#,
        r#"trustcaptcha_verifications_created_total{site="a"} 1"#,
        r#"trustcaptcha_verifications_solved_total{site="a",outcome="proof_of_work"} 1"#,
        r#"trustcaptcha_result_retrievals_total{site="a",outcome="ok"} 1"#,
        r#"trustcaptcha_result_retrievals_total{site="a",outcome="limit_reached"} 1"#,
        // Retrieved as often as allowed: a marker only, out of the count.
        "trustcaptcha_stored_verifications 0",
        "trustcaptcha_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert_eq!(server.get("/nope", None).await.0, 404);
    for operators_only in ["/readyz", "/metrics"] {
        assert_eq!(
            server.get(operators_only, None).await.0,
            404,
            "{operators_only} is not on the public listener"
        );
    }
}

/// A configuration file with site A's keys as `keys` (TOML array items).
fn write_config(path: &std::path::Path, keys: &str) {
    let text = config_text("").replacen(
        &format!("api_keys = [\"{KEY_A}\"]"),
        &format!("api_keys = [{keys}]"),
        1,
    );
    std::fs::write(path, text).expect("write the configuration");
}

#[tokio::test]
async fn keys_rotate_through_a_reload_and_a_bad_file_changes_nothing() {
    const NEW_KEY: &str = "ak_site_a_rotated_key_42424242";
    let path =
        std::env::temp_dir().join(format!("trustcaptcha-reload-{}.toml", std::process::id()));
    write_config(&path, &format!("\"{KEY_A}\""));
    let server = TestServer::from_file(&path).await;
    // A challenge handed out before the reloads is solved after them.
    let in_flight = server.challenge(SITE_A).await;
    let token = server.solve(SITE_A).await;
    server.fetch(KEY_A, &token).await;

    // Both keys: the new one works at once, the old one still does.
    write_config(&path, &format!("\"{KEY_A}\", \"{NEW_KEY}\""));
    assert_eq!(server.reload().await.0, 200);
    server.fetch(NEW_KEY, &server.solve(SITE_A).await).await;
    server.fetch(KEY_A, &server.solve(SITE_A).await).await;

    // The old key removed: refused from then on.
    write_config(&path, &format!("\"{NEW_KEY}\""));
    assert_eq!(server.reload().await.0, 200);
    let token = server.solve(SITE_A).await;
    let refused = server
        .client(KEY_A)
        .get_verification_result(&token)
        .await
        .expect_err("old key");
    assert_eq!(refused.kind(), ErrorKind::ApiKeyInvalid);
    server.fetch(NEW_KEY, &token).await;

    // A file that is not valid is refused with its problems; the running one stays.
    write_config(&path, "\"short\"");
    let (status, body) = server.reload().await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["reloaded"], false);
    assert!(body["problems"].to_string().contains("api_keys"), "{body}");
    server.fetch(NEW_KEY, &server.solve(SITE_A).await).await;

    // A [server] setting a running server cannot change is refused, named, with the rest:
    // never answered as reloaded while the old value stays.
    std::fs::write(
        &path,
        config_text("max_connections = 77\nmax_pending_per_site = 123"),
    )
    .expect("write");
    let (status, body) = server.reload().await;
    assert_eq!(status, 422, "{body}");
    let problems = body["problems"].to_string();
    assert!(
        problems.contains("server.max_connections")
            && problems.contains("server.max_pending_per_site"),
        "{body}"
    );
    assert!(!problems.contains("server.listen"), "{body}");

    let token = server.finish(&in_flight).await;
    server.fetch(NEW_KEY, &token).await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn sandbox_answers_the_official_fixtures() {
    let mut config = config("");
    config.sites.push(Site::sandbox());
    let server = TestServer::start(config).await;
    let client = server.client(SANDBOX_API_KEY);
    let fixture = |n: u32| token_for(&format!("00000000-0000-0000-0000-00000000000{n}"), "");
    let result = client
        .get_verification_result(&fixture(0))
        .await
        .expect("fixture 0 passes");
    assert!(result.verification_passed);
    client
        .get_verification_result(&fixture(0))
        .await
        .expect("fixture 0 passes every time");
    let with_extra = token_for(
        "00000000-0000-0000-0000-000000000000",
        r#","somethingElse":1"#,
    );
    client
        .get_verification_result(&with_extra)
        .await
        .expect("unknown fields are fine");
    for (n, kind) in [
        (1, ErrorKind::VerificationNotFound),
        (2, ErrorKind::VerificationNotFinished),
        (3, ErrorKind::VerificationResultExpired),
        (4, ErrorKind::VerificationResultRetrievalLimitReached),
    ] {
        assert_eq!(
            client
                .get_verification_result(&fixture(n))
                .await
                .expect_err("fixture")
                .kind(),
            kind
        );
    }
    let wrong = server.client("ak_not_the_sandbox_key");
    assert_eq!(
        wrong
            .get_verification_result(&fixture(0))
            .await
            .expect_err("403")
            .kind(),
        ErrorKind::ApiKeyInvalid
    );

    // The sandbox site also runs real verifications.
    let token = solve(&SolveOptions::new(
        server.url.clone(),
        SANDBOX_SITE_KEY.to_string(),
    ))
    .await
    .expect("solve");
    assert!(
        client
            .get_verification_result(&token)
            .await
            .expect("real result")
            .verification_passed
    );
}

#[tokio::test]
async fn solve_reports_server_rejections() {
    let server = TestServer::start(config("")).await;
    let options = SolveOptions::new(server.url.clone(), SITE_A.to_owned());
    let error = solve(&options)
        .await
        .expect_err("origin required")
        .to_string();
    assert!(error.contains("403"), "{error}");
    let token = solve(&SolveOptions {
        origin: Some(ORIGIN.to_owned()),
        ..options.clone()
    })
    .await
    .expect("solve with origin");
    let result = server.fetch(KEY_A, &token).await;
    assert!(result.verification_passed);
    assert!(
        result.score > 0.0,
        "an automated solve is not scored as a person"
    );
    let bypass = solve(&SolveOptions {
        origin: Some(ORIGIN.to_owned()),
        bypass_key: Some(BYPASS_A.to_owned()),
        ..options
    })
    .await
    .expect("bypass");
    assert_eq!(
        server.fetch(KEY_A, &bypass).await.decision_type,
        trustcaptcha::DecisionType::BypassKey
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = TestServer::start(config("header_read_timeout_secs = 1")).await;
    let address = server.url.trim_start_matches("http://");
    let mut slow = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial headers");

    // Meanwhile the server serves others.
    assert_eq!(server.get("/healthz", None).await.0, 200);

    // The server ends the slow connection (with a 408 or without an answer); the bound only keeps
    // a server without a header timeout from hanging CI.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut answer))
        .await
        .expect("the server must not keep a slow client forever")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the configured timeout"
    );

    // Finishing the headers now gets no answer: the connection is gone.
    let _ = slow.write_all(b"\r\n").await;
    let mut late = Vec::new();
    let _ = slow.read_to_end(&mut late).await;
    assert!(late.is_empty(), "{}", String::from_utf8_lossy(&late));
}

#[tokio::test]
async fn the_widget_package_is_served_when_configured_and_nothing_beside_it() {
    let dir = std::env::temp_dir().join(format!("trustcaptcha-widget-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("package/dist/bundles")).expect("dir");
    std::fs::write(
        dir.join("package/dist/bundles/trustcaptcha.umd.min.js"),
        "/* widget */",
    )
    .expect("write");
    std::fs::write(dir.join("package/LICENSE"), "Apache License 2.0").expect("write");
    std::fs::write(
        dir.join("secret.toml"),
        "api_keys = [\"ak_beside_the_widget\"]",
    )
    .expect("write");
    // Links that lead out of the package, under names a widget page would load, and files in
    // it that no widget page loads.
    let link = |target: &std::path::Path, name: &str| {
        let _ = std::fs::remove_file(dir.join("package/dist").join(name));
        std::os::unix::fs::symlink(target, dir.join("package/dist").join(name)).expect("symlink");
    };
    link(&dir.join("secret.toml"), "secret.js");
    link(&dir, "up");
    std::fs::write(dir.join("package/package.json"), "{}").expect("write");
    std::fs::write(
        dir.join("package/dist/state.sqlite3"),
        "ak_beside_the_widget",
    )
    .expect("write");
    std::fs::write(dir.join("package/dist/.env.js"), "ak_beside_the_widget").expect("write");
    let server = TestServer::start(config(&format!(
        "widget_dir = {:?}",
        dir.join("package").display().to_string()
    )))
    .await;
    let response = server
        .http
        .get(format!(
            "{}/widget/dist/bundles/trustcaptcha.umd.min.js",
            server.url
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        response.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(response.text().await.expect("body"), "/* widget */");
    assert_eq!(
        server.get("/widget/LICENSE", None).await.0,
        200,
        "its licence notice"
    );
    for outside in [
        "/widget/../secret.toml",
        "/widget/%2e%2e/secret.toml",
        "/widget/nope.js",
        "/widget/dist/secret.js",
        "/widget/dist/up/secret.toml",
        "/widget/dist/up/package/dist/secret.js",
        "/widget/dist/%73ecret.js",
        "/widget/package.json",
        "/widget/dist/state.sqlite3",
        "/widget/dist/.env.js",
        "/widget/dist",
        "/widget/dist/",
        "/widget/",
    ] {
        let response = server
            .http
            .get(format!("{}{outside}", server.url))
            .send()
            .await
            .expect("get");
        let status = response.status().as_u16();
        assert!(matches!(status, 400 | 404), "{outside}: {status}");
        assert!(
            response.headers().get("location").is_none(),
            "{outside}: no redirect"
        );
        assert!(
            response
                .headers()
                .get("cache-control")
                .is_none_or(|value| !value.to_str().unwrap_or_default().contains("public")),
            "{outside}: not cached"
        );
        let body = response.text().await.expect("body");
        assert!(!body.contains("ak_beside_the_widget"), "{outside}");
    }
    let unconfigured = TestServer::start(config("")).await;
    assert_eq!(
        unconfigured
            .get("/widget/dist/bundles/trustcaptcha.umd.min.js", None)
            .await
            .0,
        404
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn statistics_are_kept_in_the_store_and_read_by_any_instance() {
    use std::sync::Arc;
    use trustcaptcha_server::store::Store;
    use trustcaptcha_server::store::memory::MemoryStore;

    let mut shared: Option<Arc<dyn Store>> = None;
    let first = TestServer::start_with(config(""), |clock| {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(1_000, clock));
        shared = Some(Arc::clone(&store));
        Some(store)
    })
    .await;
    let shared = shared.expect("made");
    let second = TestServer::start_with(config(""), |_| Some(Arc::clone(&shared))).await;

    for server in [&first, &second] {
        let token = server.solve(SITE_A).await;
        server.fetch(KEY_A, &token).await;
    }
    let challenge = first.challenge(SITE_A).await;
    let input = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        challenge["tasks"][0]["input"].as_str().expect("input"),
    )
    .expect("base64");
    let difficulty =
        u8::try_from(challenge["difficulty"].as_u64().expect("difficulty")).expect("u8");
    let failing = (0..)
        .map(|n| format!("tcn{n}"))
        .find(|nonce| !trustcaptcha_server::pow::check(&input, nonce, difficulty))
        .expect("some nonce fails");
    let mut wrong = answers(&challenge);
    wrong[0]["nonce"] = failing.into();
    assert_eq!(first.submit(&challenge, &wrong).await.0, 409);

    // The second instance's counts reach the store when it flushes (this read flushes it);
    // the first instance reads everything, its own included.
    let _ = second.statistics("a", "hour").await;
    let hour = first.statistics("a", "hour").await;
    let counts = &hour["counts"];
    assert_eq!(counts["created"], 3, "{hour}");
    assert_eq!(counts["solved"], 2, "{hour}");
    assert_eq!(counts["passed"], 2, "{hour}");
    assert_eq!(counts["failed"], 1, "{hour}");
    assert_eq!(counts["retrieval:ok"], 2, "{hour}");
    assert_eq!(
        counts["score:0.0"].as_u64().unwrap_or(0)
            + counts["score:0.1"].as_u64().unwrap_or(0)
            + counts["score:0.2"].as_u64().unwrap_or(0)
            + counts["score:0.3"].as_u64().unwrap_or(0)
            + counts["score:0.4"].as_u64().unwrap_or(0)
            + counts["score:0.5"].as_u64().unwrap_or(0),
        2,
        "{hour}"
    );
    assert_eq!(first.statistics("a", "week").await["counts"]["created"], 3);
    let bad = first.statistics_response("a", "year").await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn the_console_draws_a_sites_numbers() {
    let server = TestServer::start(config("")).await;
    for _ in 0..2 {
        let token = server.solve(SITE_A).await;
        server.fetch(KEY_A, &token).await;
    }
    let (status, page) = server.admin.get("/statistics?site=a&range=24h", None).await;
    assert_eq!(status, 200);
    let page = page.as_str().expect("html").to_owned();
    for drawn in [
        r#"data-label="created" data-count="2""#,
        r#"data-label="solved" data-count="2""#,
        r#"data-label="passed" data-count="2""#,
        r#"data-label="ok" data-count="2""#,
        "100.0 % passed (2 of 2)",
        "<svg",
    ] {
        assert!(page.contains(drawn), "missing {drawn}");
    }
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "loads nothing"
    );
    assert_eq!(server.admin.get("/statistics?site=nope", None).await.0, 404);
    assert_eq!(
        server.admin.get("/statistics?range=year", None).await.0,
        400
    );
    assert_eq!(
        server.get("/", None).await.0,
        404,
        "not on the public listener"
    );
}

/// Readiness tells the truth about a SQLite file deleted or replaced under the server: every
/// write since would go into a file no one opens again.
#[tokio::test]
async fn readiness_fails_with_its_reason_when_the_sqlite_file_is_deleted_or_replaced() {
    for (replaced, reason) in [(false, "is gone"), (true, "was replaced")] {
        let dir = std::env::temp_dir().join(format!("trustcaptcha-ready-{}", uuid::Uuid::new_v4()));
        let path = dir.join("state.sqlite3");
        let mut config = config("");
        config.store.url = Some(format!("sqlite://{}", path.display()));
        let server = TestServer::start(config).await;
        assert_eq!(server.admin.get("/readyz", None).await.0, 200);
        std::fs::remove_file(&path).expect("delete");
        if replaced {
            std::fs::write(&path, b"").expect("another file");
        }
        let (status, body) = server.admin.get("/readyz", None).await;
        assert_eq!(status, 503, "{body}");
        let body = body.to_string();
        assert!(
            body.contains(reason) && body.contains("state.sqlite3"),
            "{body}"
        );
        drop(server);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Half-open connections from one address take a few of the admin listener's places, not all:
/// the operator's request from elsewhere is answered meanwhile.
#[tokio::test]
async fn half_open_connections_from_one_address_do_not_starve_the_admin_listener() {
    use tokio::io::AsyncWriteExt as _;
    let server = TestServer::start(config("")).await;
    let admin: std::net::SocketAddr = server
        .admin
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let mut held = Vec::new();
    for _ in 0..80 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 5], 0)))
            .expect("bind");
        let Ok(mut stream) = socket.connect(admin).await else {
            continue;
        };
        // Headers begun, never finished.
        let _ = stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await;
        held.push(stream);
    }
    let operator = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 1]))
        .no_proxy()
        .build()
        .expect("client");
    // Places held until the header timeout (10 s on the public listener) would keep the
    // operator waiting at least that long; with its own places it is answered at once.
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(8),
        operator.get(format!("{}/readyz", server.admin.url)).send(),
    )
    .await
    .expect("answered while attacked")
    .expect("request");
    assert_eq!(answer.status(), 200);
    drop(held);
}

/// The alerting rules and the dashboard in `deploy/` name only metrics the server exports (with
/// the suffixes their types give them), and `promtool` finds the rules valid and their unit
/// tests (`alerts.test.yml`) passing.
#[tokio::test]
async fn the_alerting_rules_and_the_dashboard_name_only_exported_metrics() {
    let server = TestServer::start(config("")).await;
    // A family is exported once it has a sample: one of each.
    let token = server.solve(SITE_A).await;
    server.fetch(KEY_A, &token).await;
    let refused = server
        .post(
            "/v2/verifications",
            &create_body(SITE_A, false),
            Some("http://elsewhere.example"),
        )
        .await;
    assert_eq!(refused.0, 403);
    let (one, other) = (
        server.challenge(SITE_A).await,
        server.challenge(SITE_A).await,
    );
    assert_ne!(server.submit(&one, &answers(&other)).await.0, 201);
    let webhook = server
        .admin
        .http
        .post(format!("{}/admin/webhooks", server.admin.url))
        .json(&serde_json::json!({ "url": "http://127.0.0.1:9/nobody-listens" }))
        .send()
        .await
        .expect("webhook");
    let webhook: serde_json::Value = webhook.json().await.expect("json");
    let test = format!(
        "/admin/webhooks/{}/test",
        webhook["id"].as_str().expect("id")
    );
    let tested = server.admin.post(&test, &serde_json::json!({}), None).await;
    assert_eq!(tested.1["error"], "could not connect", "{tested:?}");
    let response = server
        .http
        .get(format!("{}/metrics", server.admin.url))
        .send()
        .await
        .expect("metrics");
    let text = response.text().await.expect("text");
    // `# TYPE name kind`: the names a sample may carry.
    let mut exported = std::collections::BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            exported.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        }
    }
    assert!(exported.contains("trustcaptcha_store_up"), "{exported:?}");
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    for file in ["prometheus/alerts.yml", "grafana/trustcaptcha.json"] {
        let content = std::fs::read_to_string(deploy.join(file)).expect("file");
        let named: Vec<&str> = content
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("trustcaptcha_"))
            .collect();
        assert!(named.len() >= 8, "{file} names the metrics");
        for name in named {
            assert!(
                exported.contains(name),
                "{file} names {name}, which is not exported"
            );
        }
    }
    let promtool = |args: &[&str]| {
        std::process::Command::new("promtool")
            .args(args)
            .current_dir(deploy.join("prometheus"))
            .output()
    };
    match promtool(&["check", "rules", "alerts.yml"]) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            // scripts/install-deps.sh installs it; a developer without it checks the names only.
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is missing in CI"
            );
            eprintln!("promtool is not installed: the rules' syntax and unit tests are not run");
        }
        checked => {
            let checked = checked.expect("promtool runs");
            assert!(checked.status.success(), "{checked:?}");
            let tested = promtool(&["test", "rules", "alerts.test.yml"]).expect("promtool runs");
            assert!(
                tested.status.success(),
                "{}",
                String::from_utf8_lossy(&tested.stdout)
            );
        }
    }
}
