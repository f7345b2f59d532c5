//! The `trustcaptcha-server` binary as other tools drive it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdout, Command, Stdio};

use trustcaptcha_server::testing::{TestClient, create_body};

const BIN: &str = env!("CARGO_BIN_EXE_trustcaptcha-server");
const SANDBOX_KEY: &str = "ak_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

pub(crate) struct Server {
    child: Child,
    lines: Vec<String>,
}

/// Starts the binary with `args` and `RUST_LOG=log`, its log going to `stderr`; returns it with
/// a reader of its standard output.
fn start(args: &[&str], log: &str, stderr: Stdio) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start server");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    (child, stdout)
}

/// The URL in `serve`'s first line.
fn listening_on(announcement: &str) -> &str {
    announcement
        .trim()
        .strip_prefix("trustcaptcha-server listening on ")
        .expect("url line")
}

/// The `host:port` of an `http://` URL.
fn address_of(url: &str) -> &str {
    url.strip_prefix("http://").expect("an http URL")
}

/// Starts `serve` on a free port and reads its announcement lines.
pub(crate) fn serve(args: &[&str], announced: usize) -> Server {
    let serve = [&["serve", "--listen", "127.0.0.1:0"], args].concat();
    let (child, mut stdout) = start(&serve, "warn", Stdio::null());
    let lines = (0..announced)
        .map(|_| {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("announcement");
            line.trim().to_owned()
        })
        .collect();
    Server { child, lines }
}

impl Server {
    pub(crate) fn url(&self) -> &str {
        listening_on(&self.lines[0])
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    /// A server a test did not stop is killed, not left running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn solve(url: &str, site_key: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["solve", "--api-url", url, "--site-key", site_key])
        .output()
        .expect("solve")
}

#[test]
fn sandbox_serve_solve_fetch_and_graceful_shutdown() {
    let server = serve(&["--sandbox"], 3);
    assert!(
        server.lines[1].starts_with("development site: site key "),
        "{:?}",
        server.lines
    );
    assert_eq!(
        server.lines[2],
        format!(
            "sandbox site: site key 00000000-0000-0000-0000-000000000000, api key {SANDBOX_KEY}"
        )
    );
    let result = solved_and_fetched(
        server.url(),
        "00000000-0000-0000-0000-000000000000",
        SANDBOX_KEY,
    );
    assert!(result.verification_passed);
    // The sandbox is where automated tests pass: no risk scoring.
    assert_eq!(result.score, 0.0);
    assert_eq!(result.decision_action, trustcaptcha::DecisionAction::Allow);
    assert!(server.terminate().success(), "graceful shutdown exits 0");
}

/// Solves a challenge of `site_key` with the `solve` command, and fetches its result with the
/// blocking client.
fn solved_and_fetched(
    url: &str,
    site_key: &str,
    api_key: &str,
) -> trustcaptcha::VerificationResult {
    let output = solve(url, site_key);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).expect("utf8");
    trustcaptcha::blocking::TrustCaptcha::builder(api_key)
        .api_host(url)
        .build()
        .expect("client")
        .get_verification_result(token.trim())
        .expect("result")
}

#[test]
fn development_site_keys_are_printed_and_work() {
    let server = serve(&[], 2);
    let dev = server.lines[1]
        .strip_prefix("development site: site key ")
        .expect("dev line");
    let (site_key, api_key) = dev.split_once(", api key ").expect("both keys");
    let result = solved_and_fetched(server.url(), site_key, api_key);
    assert!(result.verification_passed);
    // A real site: the solve command's requests are a script's.
    assert!(result.score > 0.5, "score {}", result.score);
    assert!(server.terminate().success());
}

#[test]
fn solve_fails_clearly_for_an_unknown_site() {
    let server = serve(&[], 2);
    let output = solve(server.url(), "00000000-0000-4000-8000-0000000000ff");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("404"), "{stderr}");
    server.terminate();
}

#[test]
fn solve_help_points_automated_tests_to_the_sandbox_and_bypass_keys() {
    let output = Command::new(BIN)
        .args(["solve", "--help"])
        .output()
        .expect("help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in ["above 0.5", "--sandbox", "bypass key", "BYPASS_KEY"] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("trustcaptcha-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("write");
    path
}

#[test]
fn check_config_explains_every_problem_with_its_location() {
    let check = |file: &std::path::Path, env: &[(&str, &str)]| {
        let output = Command::new(BIN)
            .arg("check-config")
            .arg(file)
            .envs(env.iter().copied())
            .output()
            .expect("run");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // A value of the wrong shape is named by its line and its place.
    let shape = temp_file(
        "shape.toml",
        "[[sites]]\nname = \"shop\"\nsite_key = \"nope\"\n",
    );
    let (code, _, stderr) = check(&shape, &[]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("line 3, column 12 (sites[0].site_key)") && stderr.contains("UUID"),
        "{stderr}"
    );
    // Values of the right shape: every problem at once.
    let bad = temp_file(
        "bad.toml",
        "[[sites]]\nname = \"shop\"\nsite_key = \"00000000-0000-4000-8000-000000000001\"\n\n\
         [[sites]]\nname = \"b\"\nsite_key = \"00000000-0000-4000-8000-000000000002\"\n\
         api_keys = [\"ak_b_0123456789abcdef\"]\nallowed_origins = []\ndifficulty = 40\n",
    );
    let (code, _, stderr) = check(&bad, &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("3 problems"), "{stderr}");
    for location in [
        "sites[0].api_keys: needs at least one key (or set TRUSTCAPTCHA_SITE__SHOP__API_KEYS)",
        "sites[1].allowed_origins",
        "sites[1].difficulty",
    ] {
        assert!(stderr.contains(location), "{location}: {stderr}");
    }

    let good = temp_file(
        "good.toml",
        "[[sites]]\nname = \"shop\"\nsite_key = \"00000000-0000-4000-8000-000000000001\"\n",
    );
    for env in [
        (
            "TRUSTCAPTCHA_SITE__SHOP__API_KEYS",
            "[\"ak_from_env_0123456789\"]",
        ),
        // The older name, still read (with a deprecation warning).
        ("TRUSTCAPTCHA_SHOP_API_KEYS", "ak_from_env_0123456789"),
    ] {
        let (code, stdout, stderr) = check(&good, &[env]);
        assert_eq!(code, Some(0), "{env:?}: {stderr}");
        assert!(stdout.contains("ok, 1 site(s)"), "{stdout}");
        assert_eq!(
            stderr.contains("deprecated"),
            !env.0.contains("__"),
            "{env:?}: {stderr}"
        );
    }
    for file in [shape, bad, good] {
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn hash_key_reads_the_key_from_stdin() {
    let output = with_stdin(&["hash-key"], "ak_example\n");
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).expect("utf8");
    assert_eq!(
        printed.trim(),
        trustcaptcha_server::secret::KeyHash::of("ak_example").to_config()
    );
}

#[test]
fn check_config_names_the_key_and_what_it_expects() {
    let cases = [
        (
            "unquoted.toml",
            "[server]\nlisten = 127.0.0.1:8080\n",
            "`listen` is text and must be in quotes: listen = \"127.0.0.1:8080\"",
        ),
        (
            "wrong-type.toml",
            "[server]\nmax_connections = ten\n",
            "`max_connections = ten`: invalid type: string \"ten\", expected a whole number",
        ),
        (
            "negative.toml",
            "[server]\nmax_connections = -5\n",
            "`max_connections`: invalid value: integer `-5`, expected a whole number",
        ),
        ("empty.toml", "", "no site is configured"),
        (
            "no-sites.toml",
            "[server]\nmax_connections = 10\n",
            "no site is configured",
        ),
    ];
    for (name, text, expected) in cases {
        let file = temp_file(name, text);
        let output = Command::new(BIN)
            .arg("check-config")
            .arg(&file)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name} must be refused");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn serve_listens_on_a_host_name() {
    let (mut child, mut stdout) = start(
        &["serve", "--sandbox", "--listen", "localhost:0"],
        "warn",
        Stdio::null(),
    );
    let mut line = String::new();
    stdout.read_line(&mut line).expect("announcement");
    let _ = child.kill();
    let _ = child.wait();
    let address: std::net::SocketAddr = address_of(listening_on(&line))
        .parse()
        .expect("a resolved address");
    assert!(address.ip().is_loopback(), "{address}");
}

#[test]
fn help_explains_every_command_including_itself() {
    for args in [
        &["help", "--help"][..],
        &["help"],
        &["help", "serve"],
        &["serve", "--help"],
    ] {
        let output = Command::new(BIN).args(args).output().expect("run");
        assert!(output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage: trustcaptcha-server"),
            "{args:?}"
        );
    }
    let output = Command::new(BIN)
        .args(["help", "nope"])
        .output()
        .expect("run");
    assert!(!output.status.success());
}

/// Runs `serve` in `format` with `RUST_LOG=log`, asks for `/healthz` and `/nope` three times
/// each, stops it gracefully and returns what it logged.
fn logged(format: &str, log: &str) -> String {
    let (child, mut stdout) = start(
        &["serve", "--listen", "127.0.0.1:0", "--log-format", format],
        log,
        Stdio::piped(),
    );
    let mut announcement = String::new();
    stdout.read_line(&mut announcement).expect("announcement");
    for path in ["/healthz", "/nope"].repeat(3) {
        let mut connection =
            std::net::TcpStream::connect(address_of(listening_on(&announcement))).expect("connect");
        connection
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .expect("request");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut connection, &mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // Info lines wait in a buffer; a graceful exit writes them.
    let output = child.wait_with_output().expect("exit");
    assert!(output.status.success());
    String::from_utf8(output.stderr).expect("utf8")
}

#[test]
fn json_logs_carry_every_access_line_to_a_graceful_exit() {
    let logs = logged("json", "info");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let access = |route: &str, status: u64| {
        lines
            .iter()
            .filter(|line| {
                line["target"] == "trustcaptcha::access"
                    && line["level"] == "INFO"
                    && line["fields"]["route"] == route
                    && line["fields"]["status"] == status
                    && line["fields"]["network"] == "127.0.0.1/32"
                    && line["fields"]["latency_ms"].is_f64()
            })
            .count()
    };
    assert_eq!(access("/healthz", 200), 3, "{logs}");
    assert_eq!(access("unmatched", 404), 3, "{logs}");
}

#[test]
fn text_access_lines_are_written_and_turned_off_by_rust_log() {
    let logs = logged("text", "info");
    let health: Vec<&str> = logs
        .lines()
        .filter(|line| {
            line.contains(" INFO trustcaptcha::access: ") && line.contains("route=\"/healthz\"")
        })
        .collect();
    assert_eq!(health.len(), 3, "{logs}");
    for line in health {
        // `2026-12-04T11:12:35.123456Z  INFO trustcaptcha::access: method="GET" …`
        let (stamp, rest) = line.split_once("  INFO ").expect("a level");
        assert!(
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{line}"
        );
        assert!(
            rest.starts_with("trustcaptcha::access: method=\"GET\" route=\"/healthz\" status=200 network=127.0.0.1/32 latency_ms="),
            "{line}"
        );
    }
    let quiet = logged("text", "info,trustcaptcha::access=off");
    assert!(!quiet.contains("trustcaptcha::access"), "{quiet}");
    assert!(quiet.contains(" INFO "), "other lines stay: {quiet}");
}

#[tokio::test]
async fn health_answers_on_the_admin_listener_while_the_public_one_is_saturated() {
    use tokio::io::AsyncWriteExt as _;
    let config = temp_file(
        "saturated.toml",
        "[server]\nmax_connections = 2\n\n[[sites]]\nname = \"shop\"\nsite_key = \"00000000-0000-4000-8000-000000000001\"\napi_keys = [\"ak_saturation_test_0123456789\"]\n",
    );
    let server = serve(&["--config", config.to_str().expect("utf8")], 2);
    let admin = server.lines[1]
        .strip_prefix("admin (health, readiness, metrics, reload) on ")
        .expect("admin line")
        .to_owned();
    let public = server.url().trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(&public)
            .await
            .expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .expect("send");
        held.push(stream);
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let saturated = http
        .get(format!("http://{public}/healthz"))
        .timeout(std::time::Duration::from_secs(1))
        .send()
        .await;
    assert!(saturated.is_err(), "the public listener is saturated");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = http
            .get(format!("{admin}{path}"))
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .expect("the admin listener answers");
        assert_eq!(response.status(), 200, "{path}");
    }
    drop(held);
    assert!(server.terminate().success());
    let _ = std::fs::remove_file(config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_survive_kill_9_with_the_default_store_and_nothing_else_passes() {
    let dir = std::env::temp_dir().join(format!("trustcaptcha-kill9-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("server.toml");
    let key = "ak_kill9_test_key_0123456789";
    let site = "00000000-0000-4000-8000-0000000000aa";
    std::fs::write(
        &config,
        format!(
            "[server]\nwidget_requests_per_minute = 100000\nwidget_burst = 10000\n\n\
             [[sites]]\nname = \"shop\"\nsite_key = \"{site}\"\napi_keys = [\"{key}\"]\n\
             difficulty = 1\ntasks = 1\n"
        ),
    )
    .expect("write");
    let args = ["--config", config.to_str().expect("utf8")];
    let results = |id: &str| format!("/v2/verifications/{id}/results");

    // Full flows run back to back until the process is killed in the middle of them. Some
    // results are fetched before the crash; one verification is left unsolved.
    let mut first = serve(&args, 1);
    let remote = TestClient::new(first.url());
    let (acknowledged, mut progress) = tokio::sync::watch::channel(Vec::<String>::new());
    let flows = {
        let remote = remote.clone();
        tokio::spawn(async move {
            // A flow cut short by the crash fails at the transport: that ends the run.
            while let Ok(Ok(token)) = tokio::spawn({
                let remote = remote.clone();
                async move { remote.flow(site).await }
            })
            .await
            {
                acknowledged.send_modify(|tokens| tokens.push(token));
            }
        })
    };
    let fetched_before: Vec<String> = progress
        .wait_for(|tokens| tokens.len() >= 10)
        .await
        .expect("flows run")[..5]
        .to_vec();
    for token in &fetched_before {
        let id = token_id(token);
        assert_eq!(remote.get(&results(&id), Some(key)).await.0, 200);
    }
    let (status, created) = remote.create(&create_body(site, false)).await;
    assert_eq!(status, 200);
    let unsolved = created["challenge"]["verificationId"]
        .as_str()
        .expect("id")
        .to_owned();
    let killed = Command::new("kill")
        .args(["-KILL", &first.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let _ = first.child.wait();
    let _ = flows.await;
    let acknowledged = progress.borrow().clone();
    assert!(
        std::fs::metadata(dir.join("server.state.sqlite3")).is_ok(),
        "the default store is a file beside the configuration"
    );

    // After the restart: each acknowledged result that was not fetched is fetched exactly once;
    // those fetched before stay fetched; nothing else reads as passed.
    let second = serve(&args, 1);
    let remote = TestClient::new(second.url());
    for token in &acknowledged {
        let id = token_id(token);
        if !fetched_before.contains(token) {
            let (status, result) = remote.get(&results(&id), Some(key)).await;
            assert_eq!(status, 200, "{id}: {result}");
            assert_eq!(result["verificationId"], id.as_str());
        }
        assert_eq!(remote.get(&results(&id), Some(key)).await.0, 429, "{id}");
    }
    assert_eq!(remote.get(&results(&unsolved), Some(key)).await.0, 423);
    assert_eq!(
        remote
            .get(&results("00000000-0000-4000-8000-00000000dead"), Some(key))
            .await
            .0,
        404
    );
    assert!(second.terminate().success());
    let _ = std::fs::remove_dir_all(dir);
}

fn token_id(token: &str) -> String {
    trustcaptcha::VerificationToken::decode(token)
        .expect("token")
        .verification_id
        .to_string()
}

#[test]
fn an_admin_listener_beyond_loopback_without_a_token_is_refused() {
    let output = Command::new(BIN)
        .args([
            "serve",
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "0.0.0.0:0",
        ])
        .env_remove("TRUSTCAPTCHA_ADMIN_TOKEN")
        .env_remove("TRUSTCAPTCHA_SERVER__ADMIN_TOKEN")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TRUSTCAPTCHA_SERVER__ADMIN_TOKEN"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "nothing was announced: nothing listened"
    );
}

#[tokio::test]
async fn sighup_reloads_the_configuration_file() {
    let dir = std::env::temp_dir().join(format!("trustcaptcha-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("server.toml");
    let site = "00000000-0000-4000-8000-0000000000cc";
    let write = |key: &str| {
        std::fs::write(
            &config,
            format!("[[sites]]\nname = \"shop\"\nsite_key = \"{site}\"\napi_keys = [\"{key}\"]\ndifficulty = 1\ntasks = 1\n"),
        )
        .expect("write");
    };
    write("ak_before_the_reload_0123456789");
    let server = serve(&["--config", config.to_str().expect("utf8")], 1);
    let remote = TestClient::new(server.url());
    let id = token_id(&remote.flow(site).await.expect("a flow"));
    write("ak_after_the_reload_0123456789");
    let hangup = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(hangup.success());
    // The reload happens on the server's own time: poll until the new key is taken (bounded).
    let path = format!("/v2/verifications/{id}/results");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = remote
            .get(&path, Some("ak_after_the_reload_0123456789"))
            .await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 403, "before the reload the new key is unknown");
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload"
        );
    }
    assert_eq!(
        remote
            .get(&path, Some("ak_before_the_reload_0123456789"))
            .await
            .0,
        403,
        "the old key is gone"
    );
    assert!(server.terminate().success());
    let _ = std::fs::remove_dir_all(dir);
}

/// `check-config` and `serve` share one validation: every file one refuses, the other refuses
/// too, naming the same place, and `serve` refuses before it listens or opens a store.
#[test]
fn check_config_and_serve_refuse_the_same_files_for_the_same_reasons() {
    let site = |extra: &str| {
        format!(
            "[[sites]]\nname = \"shop\"\nsite_key = \"00000000-0000-4000-8000-000000000001\"\n\
             api_keys = [\"ak_shop_0123456789abcdef\"]\n{extra}\n"
        )
    };
    let cases = [
        (
            "store.url",
            format!("[store]\nurl = \"postgres://db\"\n{}", site("")),
        ),
        (
            "store.url",
            format!("[store]\nurl = \"redis://:::\"\n{}", site("")),
        ),
        (
            "store.url",
            format!("[store]\nurl = \"sqlite://\"\n{}", site("")),
        ),
        (
            "server.admin_listen",
            format!("[server]\nadmin_listen = \"0.0.0.0:0\"\n{}", site("")),
        ),
        (
            "server.client_address_header",
            format!("[server]\ntrusted_proxies = [\"10.0.0.1\"]\n{}", site("")),
        ),
        (
            "server.trusted_proxies",
            format!(
                "[server]\ntrusted_proxies = [\"0.0.0.0/0\"]\nclient_address_header = \"forwarded\"\n{}",
                site("")
            ),
        ),
        ("sites[0].allow_ips", site("allow_ips = [\"::/0\"]")),
        (
            "sites[0].allowed_origins[0]",
            site("allowed_origins = [\"https://*.com\"]"),
        ),
        (
            "sites[0].allowed_origins[0]",
            site("allowed_origins = [\"https://shop.example:99999\"]"),
        ),
        (
            "sites[0].allowed_origins[0]",
            site("allowed_origins = [\"https://user@shop.example\"]"),
        ),
        (
            "sites[0].bypass_keys",
            site("bypass_keys = [\"ak_shop_0123456789abcdef\"]"),
        ),
        ("sites[0].difficulty", site("difficulty = 28")),
        (
            "sites[0].rules[0].browsers[0]",
            site("[[sites.rules]]\naction = \"block\"\nbrowsers = [\"Chrom\"]"),
        ),
        (
            "sites[1].bypass_keys",
            format!(
                "{}[[sites]]\nname = \"blog\"\nsite_key = \"00000000-0000-4000-8000-000000000002\"\n\
                 api_keys = [\"ak_other_0123456789abcdef\"]\nbypass_keys = [\"ak_shop_0123456789abcdef\"]\n",
                site("")
            ),
        ),
        (
            "sites[1].name",
            format!(
                "{}[[sites]]\nname = \"SHOP\"\nsite_key = \"00000000-0000-4000-8000-000000000002\"\n\
                 api_keys = [\"ak_other_0123456789abcdef\"]\n",
                site("")
            ),
        ),
    ];
    for (i, (location, text)) in cases.iter().enumerate() {
        let file = temp_file(&format!("shared-{i}.toml"), text);
        let checked = Command::new(BIN)
            .arg("check-config")
            .arg(&file)
            .output()
            .expect("run");
        let served = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file)
            .output()
            .expect("run");
        for (command, output) in [("check-config", &checked), ("serve", &served)] {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                !output.status.success(),
                "{command} accepted {location}:\n{text}"
            );
            assert!(stderr.contains(location), "{command}, {location}: {stderr}");
        }
        assert!(
            String::from_utf8_lossy(&served.stdout).is_empty(),
            "serve announced a listener for {location}"
        );
        let _ = std::fs::remove_file(file);
    }
}

/// Runs `user` with `args`, `stdin` as its standard input; its output.
fn user_command(args: &[&str], stdin: &str) -> std::process::Output {
    with_stdin(&[&["user"], args].concat(), stdin)
}

/// Runs the command line with `args`, `stdin` as its standard input; its output.
fn with_stdin(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    child.wait_with_output().expect("wait")
}

#[tokio::test]
async fn the_first_console_user_is_added_from_the_shell_and_signs_in() {
    let dir = std::env::temp_dir().join(format!("trustcaptcha-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("server.toml");
    std::fs::write(
        &config,
        "[[sites]]\nname = \"shop\"\nsite_key = \"00000000-0000-4000-8000-0000000000cc\"\n\
         api_keys = [\"ak_user_command_key_0123456789\"]\n",
    )
    .expect("write");
    let config_arg = config.to_str().expect("utf8");
    let short = user_command(&["add", "--config", config_arg, "alice"], "short\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let added = user_command(
        &["add", "--config", config_arg, "alice"],
        "a password from the shell\n",
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let output = String::from_utf8_lossy(&added.stdout) + String::from_utf8_lossy(&added.stderr);
    assert!(!output.contains("a password from the shell"), "{output}");
    let again = user_command(
        &["add", "--config", config_arg, "alice", "--no-password"],
        "",
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let server = serve(&["--config", config_arg], 2);
    let admin = server.lines[1]
        .rsplit_once("http://")
        .map(|(_, address)| format!("http://{address}"))
        .expect("the admin listener's address");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let sign_in = |password: &'static str| {
        http.post(format!("{admin}/sign-in"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "name=alice&password={}",
                password.replace(' ', "+")
            ))
            .send()
    };
    assert_eq!(
        sign_in("not the password").await.expect("sign in").status(),
        401
    );
    let signed_in = sign_in("a password from the shell").await.expect("sign in");
    assert_eq!(signed_in.status(), 303);
    assert!(signed_in.headers().contains_key("set-cookie"));
    // A user exists: the loopback listener no longer opens the console to anyone.
    let anonymous = http
        .get(format!("{admin}/admin/sites"))
        .send()
        .await
        .expect("get");
    assert_eq!(anonymous.status(), 403);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
