//! What happened over time: each site's statistics per hour and per day, its event log, and
//! their exports, through the real server.

use serde_json::Value;
use trustcaptcha_server::testing::*;

use crate::fixtures::*;

/// `path` on the admin listener: the status and the body as text.
async fn text(server: &TestServer, path: &str) -> (u16, String, String) {
    let response = server
        .admin
        .http
        .get(format!("{}{path}", server.admin.url))
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, response.text().await.expect("text"))
}

async fn json(server: &TestServer, path: &str) -> Value {
    let (status, _, body) = text(server, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

/// A create request the page says a program drives: finished, and blocked by its score.
fn driven_body(site_key: &str) -> Value {
    let mut body = create_body(site_key, false);
    body["browserInformation"]["window-navigator-webdriver"] = true.into();
    let info = serde_json::from_value(body["browserInformation"].clone()).expect("info");
    body["integrityHash"] = trustcaptcha_server::integrity::integrity_hash(&info).into();
    body
}

#[tokio::test]
async fn statistics_are_counted_per_hour_and_day_drawn_and_exported() {
    let server = TestServer::start(config("")).await;
    let start = trustcaptcha_server::clock::Clock::now(&*server.clock);
    for _ in 0..2 {
        let token = server.solve(SITE_A).await;
        server.fetch(KEY_A, &token).await;
    }
    // A create request from a page the site does not allow is refused and counted.
    let (status, _) = server
        .post(
            "/v2/verifications",
            &create_body(SITE_A, false),
            Some("http://elsewhere.example"),
        )
        .await;
    assert_eq!(status, 403);
    server
        .clock
        .advance(std::time::Duration::from_secs(2 * 3_600));
    server.solve(SITE_A).await;

    let hour = |at: time::OffsetDateTime| at.unix_timestamp().div_euclid(3_600) * 3_600;
    let table = json(&server, "/admin/series?site=a&range=24h").await;
    assert_eq!(table["resolution"], "hour");
    let buckets: Vec<i64> = table["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|at| {
            time::OffsetDateTime::parse(
                at.as_str().expect("text"),
                &time::format_description::well_known::Rfc3339,
            )
            .expect("a time")
            .unix_timestamp()
        })
        .collect();
    assert_eq!(
        buckets.len(),
        24,
        "the last 24 hours, the current one included"
    );
    let first = buckets
        .iter()
        .position(|bucket| *bucket == hour(start))
        .expect("the first hour is shown");
    let later = buckets
        .iter()
        .position(|bucket| *bucket == hour(trustcaptcha_server::clock::Clock::now(&*server.clock)))
        .expect("the current hour is shown");
    assert_eq!(later, buckets.len() - 1);
    let counts = |event: &str| -> Vec<u64> {
        table["counts"][event]
            .as_array()
            .map(|counts| {
                counts
                    .iter()
                    .map(|count| count.as_u64().expect("n"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(counts("created")[first], 2);
    assert_eq!(counts("created")[later], 1);
    assert_eq!(counts("created").iter().sum::<u64>(), 3);
    assert_eq!(counts("passed")[first], 2);
    assert_eq!(counts("retrieval:ok")[first], 2);
    assert_eq!(counts("refused:origin_not_allowed")[first], 1);

    // Days: every count lands in the day its hour belongs to.
    let days = json(&server, "/admin/series?site=a&range=30d").await;
    assert_eq!(days["resolution"], "day");
    let total: u64 = days["counts"]["created"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|count| count.as_u64().expect("n"))
        .sum();
    assert_eq!(total, 3);

    // CSV and JSON lines carry the same rows.
    let (status, kind, csv) = text(&server, "/admin/series?site=a&range=24h&format=csv").await;
    assert_eq!((status, kind.as_str()), (200, "text/csv; charset=utf-8"));
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("bucket,resolution,event,count"));
    let created: u64 = rows
        .filter_map(|row| {
            let fields: Vec<&str> = row.split(',').collect();
            (fields[2] == "created").then(|| fields[3].parse::<u64>().expect("count"))
        })
        .sum();
    assert_eq!(created, 3);
    let (_, kind, lines) = text(&server, "/admin/series?site=a&range=24h&format=jsonl").await;
    assert_eq!(kind, "application/x-ndjson");
    let passed: u64 = lines
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .filter(|row| row["event"] == "passed")
        .map(|row| row["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(passed, 3);

    // The console draws a point per hour, each where its count is.
    let (status, _, page) = text(&server, "/statistics?site=a&range=24h").await;
    assert_eq!(status, 200);
    let created_at_first = format!(r#"data-bucket="{}" data-count="2""#, buckets[first]);
    assert!(page.contains(&created_at_first), "{created_at_first}");
    assert!(page.contains(r#"data-event="refused""#));
    assert_eq!(
        page.matches("class=\"point\"").count(),
        7 * 24,
        "seven lines of 24 points"
    );

    // Bad ranges are refused with their reason, never a 500.
    for (query, reason) in [
        ("range=year", "range must be"),
        (
            "range=custom&from=2026-02-01&to=2026-01-01",
            "to must not be before from",
        ),
        ("range=custom&from=2020-01-01&to=2020-01-02", "kept"),
        ("range=custom&from=yesterday&to=2026-01-01", "YYYY-MM-DD"),
        ("range=24h&resolution=minute", "resolution must be"),
    ] {
        let (status, _, body) = text(&server, &format!("/admin/series?site=a&{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(body.contains(reason), "{query}: {body}");
    }
    assert_eq!(text(&server, "/admin/series?site=nope").await.0, 404);
    assert_eq!(text(&server, "/admin/series").await.0, 400);
}

#[tokio::test]
async fn the_event_log_tells_each_verifications_story_without_a_secret() {
    let server = TestServer::start(config("")).await;
    let passed = server.solve(SITE_A).await;
    server.fetch(KEY_A, &passed).await;
    let blocked = server.solve_body(&driven_body(SITE_A)).await;
    let result = server.fetch(KEY_A, &blocked).await;
    assert!(!result.verification_passed || result.score > 0.5);
    let minimal = server.solve_body(&create_body(SITE_MINIMAL, true)).await;

    let log = json(&server, "/admin/events?site=a").await;
    let events = log["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    let (newest, oldest) = (&events[0], &events[1]);
    assert_eq!(newest["decision"], "block", "newest first");
    assert_eq!(newest["signals"], serde_json::json!(["automation"]));
    assert_eq!(newest["how"], "proof_of_work");
    assert_eq!(
        newest["origin"],
        format!("{ORIGIN}/signup"),
        "the page, without its query"
    );
    assert_eq!(
        newest["network"], "127.0.0.0/24",
        "the network, not the address"
    );
    assert_eq!(oldest["decision"], "pass");
    assert_eq!(oldest["score"], 0.0);
    let everything = log.to_string();
    for secret in [passed.as_str(), blocked.as_str(), KEY_A, BYPASS_A] {
        assert!(!everything.contains(secret), "a secret in the log");
    }

    // Filters.
    let only = |query: &str| {
        let server = &server;
        let query = query.to_owned();
        async move {
            json(server, &format!("/admin/events?site=a&{query}")).await["events"]
                .as_array()
                .expect("events")
                .len()
        }
    };
    assert_eq!(only("decision=pass").await, 1);
    assert_eq!(only("decision=block").await, 1);
    assert_eq!(only("signal=automation").await, 1);
    assert_eq!(only("signal=headless").await, 0);
    assert_eq!(only("limit=1").await, 1);
    let today = trustcaptcha_server::clock::Clock::now(&*server.clock).date();
    let tomorrow = today.next_day().expect("a day");
    assert_eq!(only(&format!("from={today}&to={today}")).await, 2);
    assert_eq!(only(&format!("from={tomorrow}")).await, 0);
    for bad in ["decision=maybe", "signal=psychic", "from=soon"] {
        assert_eq!(
            text(&server, &format!("/admin/events?site=a&{bad}"))
                .await
                .0,
            400,
            "{bad}"
        );
    }

    // Minimal data: no address and no browser, as its results.
    let minimal_log = json(&server, "/admin/events?site=minimal").await;
    let entry = &minimal_log["events"][0];
    assert_eq!(entry["network"], "");
    assert!(!minimal_log.to_string().contains(&minimal));

    // CSV: one row each, a header first.
    let (_, _, csv) = text(&server, "/admin/events?site=a&format=csv").await;
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].starts_with("id,at,decision,how,score,signals,rule,origin"));
    assert!(rows[1].contains(",block,proof_of_work,"));

    // The page lists them, and each links to its story.
    let (status, _, page) = text(&server, "/events?site=a").await;
    assert_eq!(status, 200);
    assert_eq!(page.matches("<tr class=\"event\"").count(), 2);
    let link = page
        .split("href=\"/events/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to a story")
        .replace("&amp;", "&");
    let (status, _, story) = text(&server, &format!("/events/{link}")).await;
    assert_eq!(status, 200, "{story}");
    assert!(
        story.contains("automation") && story.contains("0.6"),
        "{story}"
    );
    assert!(story.contains(newest["id"].as_str().expect("id")));
    assert_eq!(
        text(
            &server,
            "/events/1/00000000-0000-0000-0000-000000000000?site=a"
        )
        .await
        .0,
        404
    );
    let (status, _, filtered) = text(&server, "/events?site=a&decision=pass").await;
    assert_eq!(status, 200);
    assert_eq!(filtered.matches("<tr class=\"event\"").count(), 1);
}
