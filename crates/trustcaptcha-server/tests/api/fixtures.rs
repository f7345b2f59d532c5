//! The sites, keys and configuration the tests share.

use trustcaptcha_server::config::{self, Config};
use trustcaptcha_server::testing::ORIGIN;

pub(crate) const SITE_A: &str = "0b6c6b8e-2f5a-4c1e-9a3d-5f7e8d9c0a1b";
pub(crate) const SITE_B: &str = "1c7d7c9f-3a6b-4d2f-8b4e-6a8f9e0d1b2c";
pub(crate) const SITE_MINIMAL: &str = "2d8e8da0-4b7c-4e3a-9c5f-7b9a0f1e2c3d";
pub(crate) const SITE_LISTS: &str = "3e9f9eb1-5c8d-4f4b-8d6a-8cab1a2f3d4e";
pub(crate) const KEY_A: &str = "ak_site_a_secret_0123456789";
pub(crate) const KEY_B: &str = "ak_site_b_secret_9876543210";
pub(crate) const BYPASS_A: &str = "bypass_secret_for_e2e_tests";

pub(crate) fn config_text(extra_server: &str) -> String {
    format!(
        r#"
        [server]
        trusted_proxies = ["127.0.0.2/32"]
        client_address_header = "x-forwarded-for"
        failover_grace_secs = 300
        # The tests make many requests from one address; the limits have tests of their own.
        widget_requests_per_minute = 60000
        widget_burst = 10000
        outage_before_start = false
        {extra_server}

        [[sites]]
        name = "a"
        site_key = "{SITE_A}"
        api_keys = ["{KEY_A}"]
        allowed_origins = ["{ORIGIN}"]
        difficulty = 4
        tasks = 3
        bypass_keys = ["sha256:{bypass}"]
        adaptive_difficulty = {{ window_secs = 60, free_solves = 3, step = 2, max_extra = 4 }}

        [[sites]]
        name = "b"
        site_key = "{SITE_B}"
        api_keys = ["{KEY_B}"]
        difficulty = 2
        tasks = 1
        max_retrievals = 1000

        [[sites]]
        name = "minimal"
        site_key = "{SITE_MINIMAL}"
        api_keys = ["{KEY_B}"]
        difficulty = 2
        tasks = 1
        minimal_data_mode = true

        [[sites]]
        name = "lists"
        site_key = "{SITE_LISTS}"
        api_keys = ["{KEY_B}"]
        difficulty = 2
        tasks = 1
        allow_ips = ["127.0.0.0/8"]
        block_ips = ["127.0.0.9"]
        "#,
        bypass = hex::encode(sha2_digest(BYPASS_A)),
    )
}

fn sha2_digest(key: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(key.as_bytes()).into()
}

pub(crate) fn config(extra_server: &str) -> Config {
    config::parse(&config_text(extra_server)).expect("test config is valid")
}
