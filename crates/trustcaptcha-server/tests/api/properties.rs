//! Properties over arbitrary input: the parsers and checkers that see client data never panic.

use proptest::prelude::*;
use trustcaptcha_server::integrity::{BrowserInformation, canonical_string, integrity_hash};
use trustcaptcha_server::pow;
use trustcaptcha_server::protocol::Answer;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn the_integrity_string_is_defined_for_any_browser_information(
        map in proptest::collection::btree_map("[a-z-]{1,12}", json_value(), 0..8)
    ) {
        let json = serde_json::to_string(&map).expect("json");
        let info: BrowserInformation = serde_json::from_str(&json).expect("round trip");
        // Defined (no panic) for any shape of value (the generator nests at most 3 deep, within
        // the bound); values may themselves contain ", ", so the item structure is checked on
        // plain strings below.
        let text = canonical_string(&info).expect("within the nesting bound");
        if let Some(first) = info.keys().next() {
            prop_assert!(text.starts_with(&format!("{first}=")), "{}", text);
        }
        let hash = integrity_hash(&info).expect("within the nesting bound");
        prop_assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn plain_string_values_are_written_as_they_are(
        map in proptest::collection::btree_map("[a-z-]{1,12}", "[A-Za-z0-9 ./:]{0,20}", 0..8)
    ) {
        let info: BrowserInformation =
            serde_json::from_str(&serde_json::to_string(&map).expect("json")).expect("map");
        let expected: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
        prop_assert_eq!(canonical_string(&info).expect("flat"), expected.join(", "));
    }

    #[test]
    fn verifying_arbitrary_answers_never_panics_and_never_passes_wrong_work(
        answers in proptest::collection::vec((any::<u32>(), ".{0,40}"), 0..6)
    ) {
        let inputs = pow::Tasks::generate(3);
        let answers: Vec<Answer> = answers.into_iter().map(|(number, nonce)| Answer { number, nonce }).collect();
        // At difficulty 32 a random nonce passes with probability 2^-32 per task.
        prop_assert!(pow::verify(&inputs, 32, &answers).is_err());
    }

    #[test]
    fn the_config_parser_reports_instead_of_panicking(text in ".{0,300}") {
        if let Err(error) = trustcaptcha_server::config::parse(&text) {
            prop_assert!(!error.problems.is_empty());
        }
    }

    /// Well-formed TOML of the right shape with values in and out of range: the parser gets
    /// past the syntax and exercises validation; what it accepts it keeps as written, and what
    /// it refuses it refuses with a located problem.
    #[test]
    fn structurally_valid_configs_are_kept_or_refused_with_locations(
        sites in proptest::collection::vec(site(), 1..4),
        max_connections in 0usize..3,
    ) {
        let mut text = format!("[server]\nmax_connections = {max_connections}\n");
        for site in &sites {
            text.push_str(&site.toml());
        }
        match trustcaptcha_server::config::parse(&text) {
            Ok(config) => {
                prop_assert_eq!(config.sites.len(), sites.len());
                for (parsed, written) in config.sites.iter().zip(&sites) {
                    prop_assert_eq!(&*parsed.name, written.name.as_str());
                    prop_assert_eq!(parsed.difficulty, written.difficulty);
                    prop_assert_eq!(parsed.tasks, written.tasks);
                    prop_assert_eq!(parsed.max_retrievals, written.max_retrievals);
                }
            }
            Err(error) => {
                prop_assert!(!error.problems.is_empty());
                for (location, problem) in &error.problems {
                    // A validation problem names its place; a value of the wrong shape its line
                    // and its place.
                    prop_assert!(
                        location.starts_with("sites[")
                            || location.starts_with("server.")
                            || (location.starts_with("line ")
                                && (location.contains("(sites[") || location.contains("(server."))),
                        "{location}: {problem}"
                    );
                    prop_assert!(!problem.is_empty());
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct SiteSpec {
    name: String,
    site_key: u128,
    difficulty: u8,
    tasks: u8,
    max_retrievals: u32,
    score_threshold: f64,
    origin: &'static str,
}

impl SiteSpec {
    fn toml(&self) -> String {
        format!(
            "[[sites]]\nname = \"{}\"\nsite_key = \"{}\"\napi_keys = [\"ak_{}_0123456789abcdef\"]\n\
             allowed_origins = [\"{}\"]\ndifficulty = {}\ntasks = {}\nmax_retrievals = {}\n\
             score_threshold = {:?}\n",
            self.name,
            uuid::Uuid::from_u128(self.site_key),
            self.name,
            self.origin,
            self.difficulty,
            self.tasks,
            self.max_retrievals,
            self.score_threshold,
        )
    }
}

fn site() -> impl Strategy<Value = SiteSpec> {
    (
        "[a-z]{1,8}",
        any::<u128>(),
        0u8..40,
        0u8..12,
        0u32..4,
        -0.5f64..1.5,
        prop_oneof![
            Just("*"),
            Just("https://shop.example"),
            Just("https://*.example.com"),
            Just("shop.example"),
            Just("ftp://x"),
        ],
    )
        .prop_map(
            |(name, site_key, difficulty, tasks, max_retrievals, score_threshold, origin)| {
                SiteSpec {
                    name,
                    site_key,
                    difficulty,
                    tasks,
                    max_retrievals,
                    score_threshold,
                    origin,
                }
            },
        )
}
