//! Hostile input, one test per class of attack: the process survives, the bound holds, and no
//! request is waved through. Requests "from other networks" come through the trusted proxy
//! (127.0.0.2) with `X-Forwarded-For`.

use std::time::Duration;

use crate::fixtures::*;
use serde_json::{Value, json};
use trustcaptcha::{DecisionAction, DecisionType, ErrorKind};
use trustcaptcha_server::config::{Config, Site};
use trustcaptcha_server::testing::*;

/// POSTs a create request as the client at `client_ip` behind the trusted proxy.
async fn create_from(
    server: &TestServer,
    client_ip: &str,
    body: &Value,
) -> (u16, Value, Option<String>) {
    let response = via_proxy()
        .post(format!("{}/v2/verifications", server.url))
        .header("origin", ORIGIN)
        .header("x-forwarded-for", client_ip)
        .json(body)
        .send()
        .await
        .expect("create");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

#[tokio::test]
async fn deeply_nested_browser_information_is_answered_at_once_and_the_server_lives() {
    let server = TestServer::start(config("")).await;
    let mut body = create_body(SITE_A, false);
    // Far deeper than any stack allows for recursion: 100 000 levels in 200 kB.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let text = serde_json::to_string(&body).expect("json").replacen(
        r#""browserInformation":{"#,
        &format!(r#""browserInformation":{{"deep":{deep},"#),
        1,
    );
    body = serde_json::from_str(&text).unwrap_or(body);
    let raw = server
        .http
        .post(format!("{}/v2/verifications", server.url))
        .header("origin", ORIGIN)
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .expect("the server answers");
    // The value is kept unparsed, and the integrity hash refuses to go that deep: a challenge
    // (whose integrity signal fired), never a crash.
    assert_eq!(raw.status(), 200);
    let created: Value = raw.json().await.expect("json");
    assert!(created["challenge"]["verificationId"].is_string());
    assert_eq!(server.get("/healthz", None).await.0, 200);
    drop(body);
}

#[tokio::test]
async fn stored_text_per_verification_is_bounded_and_the_result_echoes_the_cut() {
    let server = TestServer::start(config("")).await;
    let mut body = create_body(SITE_B, false);
    let long_page = format!("{ORIGIN}/{}", "a".repeat(500_000));
    body["browserInformation"]["window-location-href"] = json!(long_page);
    // Within the 64-KiB bound on a request's head (past it: 431).
    let user_agent = format!("Mozilla/5.0 Chrome/{}", "9".repeat(40_000));
    let (status, created) = server.create_as(&body, &user_agent).await;
    assert_eq!(status, 200);
    let token = server.finish(&created["challenge"]).await;
    let result = server.fetch(KEY_B, &token).await;
    assert!(result.origin.len() <= 256, "{}", result.origin.len());
    assert!(result.origin.starts_with(ORIGIN));
    assert!(result.browser.len() <= 256, "{}", result.browser.len());
}

#[tokio::test]
async fn a_flood_from_one_network_is_limited_while_another_network_is_served() {
    let mut config = config("");
    config.server.widget_requests_per_minute = 1;
    config.server.widget_burst = 5;
    let server = TestServer::start(config).await;
    let body = create_body(SITE_B, false);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let (status, _, retry) = create_from(&server, "198.51.100.7", &body).await;
        statuses.push(status);
        retry_after = retry_after.or(retry);
    }
    assert_eq!(statuses[..5], [200; 5], "{statuses:?}");
    assert_eq!(statuses[5..], [429; 3], "{statuses:?}");
    let seconds: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&seconds), "{seconds}");
    // The same /64 counts as one network; another network is untouched.
    assert_eq!(create_from(&server, "2001:db8::1", &body).await.0, 200);
    assert_eq!(create_from(&server, "203.0.113.9", &body).await.0, 200);
}

#[tokio::test]
async fn one_network_cannot_hold_more_than_its_share_of_open_challenges() {
    let mut config = config("");
    config.server.max_pending_per_network = 3;
    let server = TestServer::start(config).await;
    let body = create_body(SITE_B, false);
    let mut open = Vec::new();
    for _ in 0..3 {
        let (status, created, _) = create_from(&server, "198.51.100.7", &body).await;
        assert_eq!(status, 200);
        open.push(created["challenge"].clone());
    }
    let (status, answer, retry) = create_from(&server, "198.51.100.7", &body).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (429, Some("too_many_pending"))
    );
    assert!(retry.is_some());
    assert_eq!(create_from(&server, "203.0.113.9", &body).await.0, 200);
    // Solving one makes room again for that network.
    server.finish(&open[0]).await;
    assert_eq!(create_from(&server, "198.51.100.7", &body).await.0, 200);
}

#[tokio::test]
async fn bypass_key_guessing_locks_the_network_out_even_for_the_right_key() {
    let mut config = config("");
    config.server.failed_keys_per_hour = 3;
    let server = TestServer::start(config).await;
    let mut body = create_body(SITE_A, false);
    let stored = server.stored().await;
    for guess in 0..3 {
        body["widget"]["bypassToken"] = json!(format!("guess-number-{guess}-0123456789"));
        let (status, answer, _) = create_from(&server, "198.51.100.7", &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (403, Some("bypass_key_rejected"))
        );
    }
    assert_eq!(server.stored().await, stored, "wrong guesses store nothing");
    body["widget"]["bypassToken"] = json!(BYPASS_A);
    let (status, answer, retry) = create_from(&server, "198.51.100.7", &body).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("locked_out"))
    );
    assert!(retry.is_some());
    assert_eq!(
        create_from(&server, "203.0.113.9", &body).await.0,
        201,
        "other networks keep their keys"
    );
}

#[tokio::test]
async fn api_key_guessing_locks_the_network_out_even_for_the_right_key() {
    let mut config = config("");
    config.server.failed_keys_per_hour = 2;
    let server = TestServer::start(config).await;
    let token = server.solve(SITE_A).await;
    for guess in ["ak_guess_one_0123456789", "ak_guess_two_0123456789"] {
        assert_eq!(
            server
                .client(guess)
                .get_verification_result(&token)
                .await
                .expect_err("wrong")
                .kind(),
            ErrorKind::ApiKeyInvalid
        );
    }
    let locked = server
        .client(KEY_A)
        .get_verification_result(&token)
        .await
        .expect_err("locked out");
    assert_eq!(
        locked.kind(),
        ErrorKind::ApiKeyInvalid,
        "indistinguishable from a wrong key"
    );
    let (status, body) = server
        .get(
            &format!(
                "/v2/verifications/{}/results",
                trustcaptcha::VerificationToken::decode(&token)
                    .expect("token")
                    .verification_id
            ),
            Some(KEY_A),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("locked_out")));
}

#[tokio::test]
async fn opaque_and_overridden_origins_are_foreign() {
    let server = TestServer::start(config("")).await;
    for site in [SITE_A, SITE_B] {
        let (status, _) = server
            .post("/v2/verifications", &create_body(site, false), Some("null"))
            .await;
        assert_eq!(status, 403, "Origin: null on {site}");
    }
    // The body claims the allowed page, the browser says otherwise: the browser wins.
    let mut body = create_body(SITE_A, false);
    body["browserInformation"]["window-origin"] = json!(ORIGIN);
    let (status, _) = server
        .post("/v2/verifications", &body, Some("https://shop.example.com"))
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_unreadable_forwarded_address_is_never_the_proxys_own() {
    let server = TestServer::start(config("")).await;
    // The "lists" site allows 127.0.0.0/8 (which includes the proxy) and blocks 127.0.0.9.
    let (status, created, _) =
        create_from(&server, "unknown", &create_body(SITE_LISTS, false)).await;
    assert_eq!(status, 200);
    let token = server.finish(&created["challenge"]).await;
    let result = server.fetch(KEY_B, &token).await;
    assert_eq!(result.ip_address, "", "unknown, not 127.0.0.2");
    assert_eq!(result.decision_type, DecisionType::CustomAccessRule);
    assert_eq!(
        result.decision_action,
        DecisionAction::Block,
        "not shown to be outside the block list"
    );
    assert!(!result.verification_passed);
}

#[tokio::test]
async fn settings_made_in_code_are_validated_like_a_file() {
    let site = Site {
        tasks: 0,
        challenge_lifetime: Duration::from_secs(u64::MAX / 2),
        ..Site::sandbox()
    };
    let error = trustcaptcha_server::AppState::builder(Config::new(vec![site]))
        .build()
        .expect_err("refused");
    let locations: Vec<&str> = error.problems.iter().map(|(at, _)| at.as_str()).collect();
    assert_eq!(
        locations,
        ["sites[0].tasks", "sites[0].challenge_lifetime_secs"]
    );
}

#[tokio::test]
async fn the_largest_real_body_is_admitted_and_a_larger_one_is_not() {
    let server = TestServer::start(config("")).await;
    let mut body = create_body(SITE_B, false);
    // Just under the default 1 MiB limit: many user events, as a real widget may send.
    let event =
        json!({"isTrusted": true, "timeStamp": 1234.5, "type": "mousemove", "x": 100, "y": 200});
    body["userEvents"] = Value::Array(vec![event; 12_000]);
    let size = serde_json::to_vec(&body).expect("json").len();
    assert!(size > 700_000 && size < 1_048_576, "{size}");
    let (status, _) = server.create(&body).await;
    assert_eq!(status, 200, "a widget's largest real body is admitted");
    body["userEvents"] = Value::Array(vec![json!("x".repeat(1024)); 1100]);
    assert_eq!(server.create(&body).await.0, 413, "a larger one is not");
}

/// Reads what the server sends until it closes the connection (bounded, so that a server that
/// never closes fails the test instead of hanging it).
async fn until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn connect_from(server: &TestServer, local: [u8; 4]) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from((local, 0)))
        .expect("bind");
    socket
        .connect(
            server
                .url
                .trim_start_matches("http://")
                .parse()
                .expect("address"),
        )
        .await
        .expect("connect")
}

#[tokio::test]
async fn a_connection_that_never_speaks_is_closed() {
    let server = TestServer::start(config("header_read_timeout_secs = 1")).await;
    let mut silent = connect_from(&server, [127, 0, 0, 1]).await;
    assert_eq!(until_closed(&mut silent).await, "");
    assert_eq!(server.get("/healthz", None).await.0, 200);
}

/// A connection past its age is closed after a response that says so, never under a request
/// the client is sending on it (which would get no answer at all: a backend's pooled client
/// would report the server unreachable).
#[tokio::test]
async fn an_old_connection_closes_after_a_response_that_says_so() {
    use tokio::io::AsyncWriteExt as _;
    let server = TestServer::start(config("max_connection_age_secs = 10")).await;
    let mut stream = connect_from(&server, [127, 0, 0, 1]).await;
    let started = std::time::Instant::now();
    loop {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        let head = response_head(&mut stream).await;
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "every request is answered, got {head:?} after {:?}",
            started.elapsed()
        );
        if head
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n")
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "it ages");
        // Idle between requests, as a pooled client's connection is.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "not before its age"
    );
    assert_eq!(until_closed(&mut stream).await, "", "then it closes");
}

/// Reads one response on `stream` and returns its head (empty when the server closed the
/// connection without one); the body, of `Content-Length` bytes, is read and dropped.
async fn response_head(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut received = Vec::new();
    let mut chunk = [0_u8; 4096];
    let read = async {
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    return text[..end + 4].to_owned();
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return String::new(),
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("an answer or a close")
}

#[tokio::test]
async fn a_body_that_trickles_is_cut_off_with_408() {
    use tokio::io::AsyncWriteExt as _;
    let server = TestServer::start(config("body_read_timeout_secs = 1")).await;
    let mut slow = connect_from(&server, [127, 0, 0, 1]).await;
    slow.write_all(
        format!(
            "POST /v2/verifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"siteKey\":\"{SITE_B}\""
        )
        .as_bytes(),
    )
    .await
    .expect("send");
    let answer = until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn one_network_cannot_take_every_connection() {
    use tokio::io::AsyncWriteExt as _;
    let server = TestServer::start(config("max_connections_per_network = 3")).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from(&server, [127, 0, 0, 5]).await;
        // Started requests, so that the connections are held (not closed as silent).
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .expect("send");
        held.push(stream);
    }
    let mut fourth = connect_from(&server, [127, 0, 0, 5]).await;
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(
        until_closed(&mut fourth).await,
        "",
        "closed without an answer"
    );
    // Another network is served meanwhile.
    let mut other = connect_from(&server, [127, 0, 0, 6]).await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    assert!(until_closed(&mut other).await.starts_with("HTTP/1.1 200"));
    drop(held);
}

#[tokio::test]
async fn a_full_store_refuses_new_verifications_and_says_so_on_readyz() {
    let mut config = config("");
    config.server.max_verifications = 2;
    config.server.max_pending_per_site = 2;
    let server = TestServer::start(config).await;
    assert_eq!(
        server.admin.get("/readyz", None).await,
        (200, json!("ready"))
    );
    let body = create_body(SITE_B, false);
    assert_eq!(create_from(&server, "198.51.100.7", &body).await.0, 200);
    // A finished verification takes room too (and is no pending challenge).
    let mut bypass = create_body(SITE_A, false);
    bypass["widget"]["bypassToken"] = json!(BYPASS_A);
    assert_eq!(create_from(&server, "203.0.113.9", &bypass).await.0, 201);
    let (status, answer, _) = create_from(&server, "192.0.2.1", &body).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (503, Some("store_full"))
    );
    assert_eq!(
        server.admin.get("/readyz", None).await,
        (503, json!("store full"))
    );
    assert_eq!(
        server.get("/healthz", None).await.0,
        200,
        "alive, only not ready"
    );
}

#[tokio::test]
async fn a_body_that_keeps_coming_too_slowly_is_cut_off_with_408() {
    use tokio::io::AsyncWriteExt as _;
    // The total body timeout is far away; the minimum rate (100 bytes/s after 2 s) is not.
    let server = TestServer::start(config(
        "body_read_timeout_secs = 300\nmin_body_bytes_per_sec = 100",
    ))
    .await;
    let mut slow = connect_from(&server, [127, 0, 0, 1]).await;
    slow.write_all(
        b"POST /v2/verifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
    )
    .await
    .expect("send");
    // One byte every half second for two seconds, a client far below 100 bytes per second;
    // then nothing more, and the server must give up on it long before the total timeout.
    for _ in 0..4 {
        slow.write_all(b" ").await.expect("send");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let answer = until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn a_few_networks_cannot_spend_a_sites_hourly_quota_and_blocked_visitors_spend_none() {
    let mut config = config("");
    // Site "lists" blocks 127.0.0.9; site "b" is open.
    config.sites[3].hourly_quota = Some(3);
    config.sites[1].hourly_quota = Some(10);
    let server = TestServer::start(config).await;
    let finish_from = async |client: &str, site: &str| {
        let (status, created, _) = create_from(&server, client, &create_body(site, false)).await;
        if status != 200 {
            return status;
        }
        server.finish(&created["challenge"]).await;
        201
    };
    for _ in 0..6 {
        assert_eq!(finish_from("127.0.0.9", SITE_LISTS).await, 201);
    }
    // Three visitors of three blocks (the site allows 127.0.0.0/8) spend the three.
    for visitor in ["127.0.0.10", "127.0.1.10", "127.0.2.10"] {
        assert_eq!(
            finish_from(visitor, SITE_LISTS).await,
            201,
            "the blocked visitor spent nothing"
        );
    }
    assert_eq!(
        finish_from("127.0.3.10", SITE_LISTS).await,
        402,
        "now it is spent"
    );

    // One /24, many networks: half of the hour goes first come, then the block is held to its
    // share, and another block's visitor still gets in.
    let mut finished = 0;
    for host in 1..=20 {
        if finish_from(&format!("198.51.100.{host}"), SITE_B).await == 201 {
            finished += 1;
        }
    }
    assert_eq!(finished, 5, "the first half");
    assert_eq!(finish_from("203.0.113.9", SITE_B).await, 201);
    assert_eq!(finish_from("2001:db8:77::1", SITE_B).await, 201);
}

#[tokio::test]
async fn an_unfinished_head_is_held_to_a_bound_and_refused_past_it() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = TestServer::start(config("")).await;
    let mut stream = connect_from(&server, [127, 0, 0, 1]).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send");
    // 128 KiB of one header, never finished: past the bound, the server answers and closes
    // instead of buffering what a client keeps sending.
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1024));
    for _ in 0..128 {
        if stream.write_all(filler.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}
