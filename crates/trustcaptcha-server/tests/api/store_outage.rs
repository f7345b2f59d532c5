//! The server's own store failing, and downtime: a store that can be switched off stands in for
//! a remote store (e.g. Redis) becoming unreachable. Only downtime opens a failover window.

use std::time::Duration;

use crate::fixtures::*;
use trustcaptcha::{DecisionType, ErrorKind};
use trustcaptcha_server::testing::*;

#[tokio::test]
async fn a_store_outage_is_a_503_and_opens_no_failover_window() {
    let (server, store) = TestServer::with_fault_store(config("")).await;
    let clock = server.clock.clone();
    let http = reqwest::Client::new();
    let client = trustcaptcha::TrustCaptcha::builder(KEY_A)
        .api_host(&server.url)
        .build()
        .expect("client");
    let claimed = failover_claim("6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab");
    let lost = token_for("00000000-0000-4000-8000-000000000456", "");

    assert_eq!(
        client
            .get_verification_result(&claimed)
            .await
            .expect_err("no outage yet")
            .kind(),
        ErrorKind::ClientReportedServerUnreachable
    );

    store.layer().set_down(true);
    let ready = http
        .get(format!("{}/readyz", server.admin.url))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    let create = http
        .post(format!("{}/v2/verifications", server.url))
        .header("origin", ORIGIN)
        .json(&create_body(SITE_A, false))
        .send()
        .await
        .expect("create");
    assert_eq!(
        create.status(),
        503,
        "the widget sees an error status, never a fake success"
    );
    // The store cannot answer: 503, never a made-up pass (the backend's policy decides).
    let during = client
        .get_verification_result(&lost)
        .await
        .expect_err("store down");
    assert_eq!(during.status().map(|s| s.as_u16()), Some(503));
    assert!(!during.is_failover(), "not an outage of the API as a whole");

    clock.advance(Duration::from_secs(60));
    store.layer().set_down(false);
    assert_eq!(
        client
            .get_verification_result(&lost)
            .await
            .expect_err("unknown id")
            .kind(),
        ErrorKind::VerificationNotFound,
        "an id the store does not know never passes, outage or not"
    );
    // The server answered throughout (503, with CORS headers), and a widget fails over only
    // when its request throws: a claim now, or during the outage, is a page that chose not to
    // reach us.
    assert_eq!(
        client
            .get_verification_result(&claimed)
            .await
            .expect_err("no widget failed over")
            .kind(),
        ErrorKind::ClientReportedServerUnreachable
    );
    // The create the store could not take is counted as not served, not as a refusal of the
    // client.
    let counts = server.statistics("a", "hour").await["counts"].take();
    assert_eq!(counts["unserved:store_unavailable"], 1, "{counts}");
    assert!(
        counts.as_object().is_some_and(|counts| counts
            .iter()
            .all(|(event, count)| !event.starts_with("refused:") || count == 0)),
        "{counts}"
    );
    store.layer().set_down(true);
    clock.advance(Duration::from_secs(600));
    store.layer().set_down(false);
    let another_claim = failover_claim("7a2d3e4f-5b6c-4d7e-8f90-123456789abc");
    assert_eq!(
        client
            .get_verification_result(&another_claim)
            .await
            .expect_err("a long store outage is no downtime either")
            .kind(),
        ErrorKind::ClientReportedServerUnreachable
    );
}

#[tokio::test]
async fn a_client_that_disconnects_mid_submission_loses_neither_the_verification_nor_its_solution()
{
    use tokio::io::AsyncWriteExt as _;
    let (server, store) = TestServer::with_fault_store(config("")).await;
    let challenge = server.challenge(SITE_A).await;
    let id = challenge["verificationId"].as_str().expect("id").to_owned();
    let body = serde_json::to_vec(&submit_body(&answers(&challenge))).expect("json");

    // A raw connection sends the correct submission and goes away once the server has claimed
    // the verification, while storing the result is still under way.
    store.layer().stall_next_finish();
    let mut connection = tokio::net::TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .expect("connect");
    let head = format!(
        "POST /v2/verifications/{id}/challenges HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    connection
        .write_all(&[head.as_bytes(), &body].concat())
        .await
        .expect("send");
    // Bounded, so that a regression fails instead of hanging.
    let bound = Duration::from_secs(10);
    tokio::time::timeout(bound, store.layer().claimed())
        .await
        .expect("claimed");
    drop(connection);
    tokio::time::timeout(bound, store.layer().released())
        .await
        .expect("the abandoned claim is released");

    // The same solution, submitted again, finishes the verification.
    let token = server.finish(&challenge).await;
    let result = server.fetch(KEY_A, &token).await;
    assert_eq!(result.verification_id.to_string(), id);
    assert!(result.verification_passed);
}

#[tokio::test]
async fn downtime_is_on_record_only_when_the_stores_heartbeat_shows_it() {
    use trustcaptcha_server::store::{Mark, Store as _};
    let claim = failover_claim("6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab");
    let now = time::OffsetDateTime::now_utc();
    for (case, last_heartbeat, outage) in [
        ("a store no server used before", None, false),
        (
            "a server that beat 5 s ago",
            Some(now - Duration::from_secs(5)),
            false,
        ),
        (
            "a restart of 25 s, too short for a widget's user to give up",
            Some(now - Duration::from_secs(25)),
            false,
        ),
        (
            "no server for 10 minutes",
            Some(now - Duration::from_secs(600)),
            true,
        ),
    ] {
        let dir =
            std::env::temp_dir().join(format!("trustcaptcha-heartbeat-{}", uuid::Uuid::new_v4()));
        let path = dir.join("state.sqlite3");
        if let Some(at) = last_heartbeat {
            let store = trustcaptcha_server::store::sqlite::SqliteStore::open(
                &path,
                10,
                std::sync::Arc::new(trustcaptcha_server::clock::SystemClock),
            )
            .expect("open");
            store.mark(Mark::Heartbeat, at).await.expect("beat");
        }
        let mut config = config("");
        config.store.url = Some(format!("sqlite://{}", path.display()));
        let server = TestServer::start(config).await;
        let answer = server.client(KEY_A).get_verification_result(&claim).await;
        if outage {
            let result = answer.expect(case);
            assert_eq!(result.decision_type, DecisionType::Failover, "{case}");
            assert!(result.gateway_failover_active && result.verification_passed);
            // Site B allows 1 000 retrievals of its results; a claim is answered once.
            let claim_b = failover_claim("8b3e4f50-6c7d-4e8f-9a01-23456789abcd");
            let client_b = server.client(KEY_B);
            client_b
                .get_verification_result(&claim_b)
                .await
                .expect(case);
            assert_eq!(
                client_b
                    .get_verification_result(&claim_b)
                    .await
                    .expect_err("once")
                    .kind(),
                ErrorKind::VerificationResultRetrievalLimitReached
            );
            // The margin is bounded: the configured 300 s, then nothing.
            server.clock.advance(Duration::from_secs(301));
            let late = failover_claim("9c4f5061-7d8e-4f90-8b12-3456789abcde");
            assert_eq!(
                server
                    .client(KEY_A)
                    .get_verification_result(&late)
                    .await
                    .expect_err("after the margin")
                    .kind(),
                ErrorKind::ClientReportedServerUnreachable,
                "{case}"
            );
        } else {
            assert_eq!(
                answer.expect_err(case).kind(),
                ErrorKind::ClientReportedServerUnreachable,
                "{case}"
            );
        }
        drop(server);
        let _ = std::fs::remove_dir_all(dir);
    }
}
