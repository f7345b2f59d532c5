//! The configuration's reading, check and environment overrides.

use std::time::Duration;

use uuid::Uuid;

use super::*;
use crate::secret::KeyHash;

#[test]
fn debug_shows_only_the_store_urls_scheme() {
    let config = Config {
        store: StoreSettings {
            url: Some("redis://user:hunter2@cache.internal:6379/0".into()),
            ..StoreSettings::default()
        },
        ..Config::new(vec![Site::sandbox()])
    };
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("cache.internal"),
        "{shown}"
    );
    assert!(shown.contains(r#"scheme: Some("redis")"#), "{shown}");
}

const VALID: &str = r#"
    [server]
    listen = "127.0.0.1:9000"
    trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
    client_address_header = "x-forwarded-for"

    [[sites]]
    name = "shop-eu"
    site_key = "0B6C6B8E-2F5A-4C1E-9A3D-5F7E8D9C0A1B"
    api_keys = ["ak_shop_0123456789abcdef"]
    allowed_origins = ["https://shop.example.com", "https://*.example.org"]
    difficulty = 10
    max_retrievals = 3
    block_ips = ["192.0.2.0/24"]
    adaptive_difficulty = { window_secs = 30, free_solves = 5, step = 1, max_extra = 4 }
"#;

#[test]
fn the_client_address_header_is_named_with_trusted_proxies_and_never_trusts_everyone() {
    let with = |server: &str| {
        let text = VALID.replace(
            "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n    client_address_header = \"x-forwarded-for\"",
            server,
        );
        parse(&text).map(|config| config.server.client_address_header)
    };
    let problem = |server: &str| {
        with(server)
            .expect_err(server)
            .problems
            .into_iter()
            .map(|(location, _)| location)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        problem("trusted_proxies = [\"127.0.0.1\"]"),
        ["server.client_address_header"]
    );
    assert_eq!(
        problem("client_address_header = \"x-real-ip\""),
        ["server.client_address_header"]
    );
    for everyone in ["0.0.0.0/0", "::/0"] {
        assert_eq!(
            problem(&format!(
                "trusted_proxies = [\"{everyone}\"]\nclient_address_header = \"forwarded\""
            )),
            ["server.trusted_proxies"],
            "{everyone}"
        );
    }
    assert!(with("client_address_header = \"x-forwarded\"").is_err());
    assert_eq!(
        with("trusted_proxies = [\"10.0.0.0/8\"]\nclient_address_header = \"forwarded\"")
            .expect("valid"),
        Some(ClientAddressHeader::Forwarded)
    );
}

#[test]
fn parses_a_valid_file_with_defaults() {
    let config = parse(VALID).expect("valid");
    assert_eq!(config.server.listen.port(), 9000);
    assert_eq!(config.server.trusted_proxies.len(), 2);
    assert_eq!(config.server.body_limit_bytes, 1024 * 1024);
    let site = &config.sites[0];
    assert_eq!(
        site.site_key.to_string(),
        "0b6c6b8e-2f5a-4c1e-9a3d-5f7e8d9c0a1b"
    );
    assert_eq!(site.captcha_id().get_version_num(), 4);
    assert!(KeyHash::of("ak_shop_0123456789abcdef").is_among(&site.api_keys));
    assert_eq!(site.difficulty, 10);
    assert_eq!(site.tasks, 4);
    assert_eq!(site.result_lifetime, Duration::from_secs(900));
    assert_eq!(site.max_retrievals, 3);
    assert_eq!(site.adaptive_difficulty.free_solves, 5);
    assert!(!format!("{config:?}").contains("ak_shop_0123456789abcdef"));
}

#[test]
fn the_shipped_example_is_valid_and_uses_the_defaults() {
    let config = parse(include_str!("../../server.example.toml")).expect("valid");
    let defaults = Site::new("x", Uuid::nil());
    let site = &config.sites[0];
    assert_eq!(site.difficulty, defaults.difficulty);
    assert_eq!(site.result_lifetime, defaults.result_lifetime);
    assert_eq!(site.adaptive_difficulty, defaults.adaptive_difficulty);
    assert_eq!(site.suspicion, defaults.suspicion);
    assert_eq!(site.repetition, defaults.repetition);
    assert_eq!(
        config.server.shipped_hosting_asns,
        ServerSettings::default().shipped_hosting_asns
    );
    assert_eq!(
        config.server.failover_grace,
        ServerSettings::default().failover_grace
    );
}

#[test]
fn environment_overrides_replace_secrets() {
    let env = [(
        "TRUSTCAPTCHA_SHOP_EU_API_KEYS".to_owned(),
        "ak_a_0123456789abcdef, ak_b_0123456789abcdef".to_owned(),
    )];
    let config = parse(&with_environment(VALID, env).expect("applied")).expect("valid");
    let keys = &config.sites[0].api_keys;
    assert_eq!(keys.len(), 2);
    assert!(KeyHash::of("ak_b_0123456789abcdef").is_among(keys));
    assert!(!KeyHash::of("ak_shop_0123456789abcdef").is_among(keys));
}

#[test]
fn reports_every_problem_with_its_location() {
    let text = r#"
        [server]
        body_limit_bytes = 10

        [[sites]]
        name = "a"
        site_key = "00000000-0000-4000-8000-000000000001"
        api_keys = []

        [[sites]]
        name = "b"
        site_key = "00000000-0000-4000-8000-000000000002"
        api_keys = ["ak_b_0123456789abcdef"]
        bypass_keys = ["ak_b_0123456789abcdef"]
        allowed_origins = []
        difficulty = 99
        score_threshold = 2.0
        allow_ips = ["0.0.0.0/1", "128.0.0.0/1"]
        rules = [{ action = "block", tasks = 2 }, { action = "adjust", browsers = ["Netscape"] }]

        [[sites]]
        name = "c"
        site_key = "00000000-0000-4000-8000-000000000001"
        api_keys = ["ak_c_0123456789abcdef"]

        [store]
        url = "postgres://db"
    "#;
    let error = parse(text).expect_err("invalid");
    let locations: Vec<&str> = error.problems.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        locations,
        [
            "server.body_limit_bytes",
            "sites[0].api_keys",
            "sites[1].bypass_keys",
            "sites[1].allowed_origins",
            "sites[1].allow_ips",
            "sites[1].difficulty",
            "sites[1].score_threshold",
            "sites[1].rules[0].action",
            "sites[1].rules[1].action",
            "sites[1].rules[1].browsers[0]",
            "sites[2].site_key",
            "store.url",
        ]
    );
    assert!(
        error
            .to_string()
            .starts_with("12 problems in the configuration\n")
    );
}

#[test]
fn a_value_of_the_wrong_shape_is_named_by_line_and_place() {
    let site = |line: &str| {
        format!(
            "[[sites]]\nname = \"a\"\nsite_key = \"00000000-0000-4000-8000-000000000001\"\n{line}\n"
        )
    };
    for (text, location, problem) in [
        (
            "[server]\nlisten = \"nowhere\"\n".to_owned(),
            "line 2, column 10 (server.listen)",
            "invalid socket address",
        ),
        (
            "[[sites]]\nname = \"a\"\nsite_key = \"not-a-uuid\"\n".to_owned(),
            "line 3, column 12 (sites[0].site_key)",
            "UUID",
        ),
        (
            site(r#"block_ips = ["10.0.0.1", "10.0.0.0/33"]"#),
            "(sites[0].block_ips[1])",
            "`10.0.0.0/33` is not an IP address or CIDR block",
        ),
        (
            site(r#"api_keys = ["short"]"#),
            "(sites[0].api_keys[0])",
            "shorter than 16 characters",
        ),
        (
            site(r#"allowed_origins = ["example.com"]"#),
            "(sites[0].allowed_origins[0])",
            "is not `*`, `null` or an origin",
        ),
        (
            site(r#"rules = [{ action = "maybe" }]"#),
            "(sites[0].rules[0].action)",
            "unknown variant `maybe`",
        ),
    ] {
        let error = parse(&text).expect_err(&text);
        let (at, message) = &error.problems[0];
        assert_eq!(error.problems.len(), 1, "{error}");
        assert!(at.contains(location), "{at} for {text}");
        assert!(message.contains(problem), "{message} for {text}");
    }
    // A secret of the wrong shape is named by its place, never shown.
    let secret = "ak_written_where_a_list_belongs_0123";
    for line in [
        format!("api_keys = \"{secret}\""),
        format!("api_keys = {secret}"),
        format!("bypass_keys = [[\"{secret}\"]]"),
    ] {
        let error = parse(&site(&line)).expect_err(&line);
        assert!(error.problems[0].0.contains("line 4"), "{error}");
        assert!(!error.to_string().contains(secret), "{error}");
    }
    for (text, place) in [
        (
            format!("[server]\nadmin_token = [\"{secret}\"]\n"),
            "admin_token",
        ),
        (
            format!("[store]\nurl = [\"redis://u:{secret}@h:1\"]\n"),
            "url",
        ),
    ] {
        let error = parse(&text).expect_err(&text);
        assert!(error.to_string().contains(place), "{error}");
        assert!(!error.to_string().contains(secret), "{error}");
    }
    let secret = "ak_short";
    let error = parse(&format!(
        "[[sites]]\nname = \"a\"\nsite_key = \"{}\"\napi_keys = [\"{secret}\"]\n",
        Uuid::nil()
    ))
    .expect_err("short");
    assert!(!error.to_string().contains(secret), "{error}");
}

#[test]
fn syntax_and_shape_errors_have_a_line_and_column() {
    let error = parse("[server]\nlisten = \n").expect_err("invalid");
    assert_eq!(error.problems[0].0, "line 2, column 10");
    let error = parse("[[sites]]\nname = \"a\"\nsite_key = \"x\"\ncolour = 1\n")
        .expect_err("unknown field");
    assert!(error.problems[0].0.starts_with("line 4"), "{error}");
    assert!(
        error.problems[0].1.contains("unknown field `colour`"),
        "{error}"
    );
}

#[test]
fn the_environment_overrides_any_key_of_the_server_the_store_and_a_named_site() {
    let text = "[server]\nmax_connections = 10\n\n[[sites]]\nname = \"web shop\"\nsite_key = \"0b6c6b8e-2f5a-4c1e-9a3d-5f7e8d9c0a1b\"\napi_keys = [\"ak_environment_test_key\"]\n";
    let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    };
    let text = with_environment(
        text,
        vars(&[
            ("TRUSTCAPTCHA_SERVER__MAX_CONNECTIONS", "2048"),
            ("TRUSTCAPTCHA_SERVER__LISTEN", "0.0.0.0:8080"),
            ("TRUSTCAPTCHA_STORE__URL", "memory://"),
            ("TRUSTCAPTCHA_SITE__WEB_SHOP__LOCKED", "true"),
            (
                "TRUSTCAPTCHA_SITE__WEB_SHOP__ALLOW_IPS",
                r#"["10.0.0.0/8"]"#,
            ),
            (
                "TRUSTCAPTCHA_SITE__WEB_SHOP__ADAPTIVE_DIFFICULTY",
                "{ window_secs = 30, free_solves = 5, step = 1, max_extra = 4 }",
            ),
            ("TRUSTCAPTCHA_LOG_FORMAT", "json"),
            ("PATH", "/usr/bin"),
        ]),
    )
    .expect("applied");
    let config = parse(&text).expect("valid");
    assert_eq!(config.server.max_connections, 2048);
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.store.url.as_deref(), Some("memory://"));
    let site = &config.sites[0];
    assert!(site.locked);
    assert!(site.allow_ips.contains("10.1.2.3".parse().expect("ip")));
    assert_eq!(site.adaptive_difficulty.free_solves, 5);

    let unknown_site =
        with_environment(&text, vars(&[("TRUSTCAPTCHA_SITE__NOPE__LOCKED", "true")]));
    assert!(
        unknown_site
            .expect_err("no such site")
            .to_string()
            .contains("NOPE")
    );
    let secret = "ak_must_never_be_echoed_0123";
    let unfit = with_environment(
        &text,
        vars(&[("TRUSTCAPTCHA_SERVER__MAX_CONNECTIONS", secret)]),
    )
    .expect_err("a string where a number belongs");
    let message = unfit.to_string();
    assert!(
        message.contains("TRUSTCAPTCHA_SERVER__MAX_CONNECTIONS"),
        "{message}"
    );
    assert!(!message.contains(secret), "{message}");
}

#[test]
fn replicas_are_waited_for_on_redis_only_and_within_a_store_calls_bound() {
    let site = format!(
        "[[sites]]\nname = \"a\"\nsite_key = \"{}\"\napi_keys = [\"ak_replica_test_key_0123\"]\n\n",
        Uuid::nil()
    );
    let redis = format!("{site}[store]\nurl = \"redis+cluster://127.0.0.1:7000\"\n");
    let config = parse(&format!("{redis}wait_for_replicas = 1\n")).expect("valid");
    assert_eq!(config.store.wait_for_replicas, 1);
    assert_eq!(
        config.store.replica_timeout,
        std::time::Duration::from_millis(500)
    );
    for (text, place) in [
        (
            format!("{site}[store]\nurl = \"sqlite:///tmp/x.db\"\nwait_for_replicas = 1\n"),
            "store.wait_for_replicas",
        ),
        (
            format!("{redis}wait_for_replicas = 1\nreplica_timeout_ms = 0\n"),
            "store.replica_timeout_ms",
        ),
        (
            format!("{redis}wait_for_replicas = 1\nreplica_timeout_ms = 2000\n"),
            "store.replica_timeout_ms",
        ),
    ] {
        let error = parse(&text).expect_err(&text);
        assert!(
            error.problems.iter().any(|(location, _)| location == place),
            "{error}"
        );
    }
}
