//! `countryCode` from a MaxMind-format database, written for the test with `mmdb-writer` and
//! read by the server through `maxminddb`, as a GeoLite2-Country file would be; the layouts a
//! country database may have, and the refusal of one the server cannot read.

use crate::fixtures::*;
use serde::Serialize;
use trustcaptcha_server::testing::*;

#[derive(Serialize)]
struct Country {
    iso_code: &'static str,
}

#[derive(Serialize)]
struct Record {
    country: Country,
}

/// Writes a country database mapping each network to its country code, as a
/// GeoLite2-Country file would; `name` keeps the files of concurrent tests apart.
pub(crate) fn geoip_database(name: &str, entries: &[(&str, &'static str)]) -> std::path::PathBuf {
    database_of(name, "GeoLite2-Country", entries, |code| Record {
        country: Country { iso_code: code },
    })
}

/// Writes a database of `kind` whose record for each network `record` makes from its value.
pub(crate) fn database_of<V: Copy, R: Serialize>(
    name: &str,
    kind: &str,
    entries: &[(&str, V)],
    record: impl Fn(V) -> R,
) -> std::path::PathBuf {
    let mut writer = mmdb_writer::Writer::new(kind);
    for (network, code) in entries {
        writer
            .insert(
                network.parse::<ipnet::IpNet>().expect("net"),
                &record(*code),
            )
            .expect("insert");
    }
    let path = std::env::temp_dir().join(format!(
        "trustcaptcha-geoip-{}-{name}.mmdb",
        std::process::id()
    ));
    std::fs::write(&path, writer.to_bytes().expect("mmdb")).expect("write");
    path
}

#[tokio::test]
async fn the_country_comes_from_the_configured_database() {
    let path = geoip_database("country", &[("127.0.0.0/24", "DE")]);

    let server = TestServer::start(config(&format!(
        "geoip_database = {:?}",
        path.display().to_string()
    )))
    .await;
    let token = server.solve(SITE_A).await;
    let result = server.fetch(KEY_A, &token).await;
    assert_eq!(result.ip_address, "127.0.0.1");
    assert_eq!(result.country_code, "DE");
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_missing_database_is_a_start_up_error() {
    let mut config = config("");
    config.server.geoip_database = Some("/nonexistent/GeoLite2-Country.mmdb".into());
    assert!(
        trustcaptcha_server::AppState::builder(config)
            .build()
            .is_err()
    );
}

#[derive(Serialize)]
struct TopLevel {
    country_code: &'static str,
    country_name: &'static str,
}

#[derive(Serialize)]
struct CityOnly {
    city: &'static str,
}

#[tokio::test]
async fn a_database_with_the_code_at_the_top_level_is_read_too() {
    let path = database_of(
        "top-level",
        "IP2LOCATION-LITE-DB1",
        &[("127.0.0.0/24", "at")],
        |code| TopLevel {
            country_code: code,
            country_name: "Austria",
        },
    );
    let mut config = config("");
    config.server.geoip_database = Some(path.clone());
    config.sites[0].countries_blocked = vec!["AT".into()];
    let server = TestServer::start(config).await;
    let token = server.solve(SITE_A).await;
    let result = server.fetch(KEY_A, &token).await;
    assert_eq!(result.country_code, "AT");
    assert!(!result.verification_passed, "the country list applies");
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_database_the_server_cannot_read_a_country_from_is_refused_at_start() {
    // Read as "no country", it would let everyone past countries_blocked.
    let path = database_of("cities", "Some-City-Only", &[("127.0.0.0/24", "x")], |_| {
        CityOnly { city: "Vienna" }
    });
    let mut config = config("");
    config.server.geoip_database = Some(path.clone());
    let error = trustcaptcha_server::AppState::builder(config)
        .build()
        .expect_err("refused");
    let (location, problem) = &error.problems[0];
    assert_eq!(location, "server.geoip_database");
    assert!(problem.contains(&path.display().to_string()), "{problem}");
    assert!(problem.contains("country_code"), "{problem}");
    let _ = std::fs::remove_file(path);
}

/// A country list's block reads as `GEOBLOCKING` in the older results API (v2 calls it a
/// custom access rule, as it does an IP list's block, which stays `CUSTOM_BLOCK_LIST`).
#[tokio::test]
async fn a_blocked_country_is_geoblocking_in_the_older_api() {
    let path = geoip_database("geoblocking", &[("127.0.0.0/24", "AT")]);
    let mut config = config("");
    config.server.geoip_database = Some(path.clone());
    config.sites[0].max_retrievals = 2;
    config.sites[0].countries_blocked = vec!["AT".into()];
    let server = TestServer::start(config.clone()).await;
    let assess = |server: &TestServer, token: &str| {
        let id = trustcaptcha::VerificationToken::decode(token)
            .expect("token")
            .verification_id;
        let request = server
            .http
            .get(format!("{}/verifications/{id}/assessments", server.url))
            .header("tc-authorization", KEY_A);
        async move {
            let answer: serde_json::Value = request
                .send()
                .await
                .expect("assessment")
                .json()
                .await
                .expect("json");
            answer
        }
    };
    let token = server.solve(SITE_A).await;
    let result = server.fetch(KEY_A, &token).await;
    assert_eq!(
        (result.decision_type, result.verification_passed),
        (trustcaptcha::DecisionType::CustomAccessRule, false)
    );
    let older = assess(&server, &token).await;
    assert_eq!(older["reason"], "GEOBLOCKING", "{older}");
    assert_eq!(
        (
            older["verificationPassed"].as_bool(),
            older["score"].as_f64()
        ),
        (Some(false), Some(1.0))
    );

    // The same visitor on an IP block list as well: the IP list decides first.
    config.sites[0].block_ips =
        trustcaptcha_server::networks::NetworkSet::parse("127.0.0.0/8").expect("set");
    let server = TestServer::start(config).await;
    let token = server.solve(SITE_A).await;
    assert_eq!(assess(&server, &token).await["reason"], "CUSTOM_BLOCK_LIST");
    let _ = std::fs::remove_file(path);
}
