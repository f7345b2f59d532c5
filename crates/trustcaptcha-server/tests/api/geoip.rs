//! `countryCode` from a MaxMind-format database, written for the test with `mmdb-writer` and
//! read by the server through `maxminddb`, as a GeoLite2-Country file would be.

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
    let mut writer = mmdb_writer::Writer::new("GeoLite2-Country");
    for (network, code) in entries {
        writer
            .insert(
                network.parse::<ipnet::IpNet>().expect("net"),
                &Record {
                    country: Country { iso_code: code },
                },
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
