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
        // Defined (no panic) for any shape of value; values may themselves contain ", ", so the
        // item structure is checked on plain strings below.
        let text = canonical_string(&info);
        if let Some(first) = info.keys().next() {
            prop_assert!(text.starts_with(&format!("{first}=")), "{}", text);
        }
        let hash = integrity_hash(&info);
        prop_assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn plain_string_values_are_written_as_they_are(
        map in proptest::collection::btree_map("[a-z-]{1,12}", "[A-Za-z0-9 ./:]{0,20}", 0..8)
    ) {
        let info: BrowserInformation =
            serde_json::from_str(&serde_json::to_string(&map).expect("json")).expect("map");
        let expected: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
        prop_assert_eq!(canonical_string(&info), expected.join(", "));
    }

    #[test]
    fn verifying_arbitrary_answers_never_panics_and_never_passes_wrong_work(
        answers in proptest::collection::vec((any::<u32>(), ".{0,40}"), 0..6)
    ) {
        let inputs = pow::generate(3);
        let answers: Vec<Answer> = answers.into_iter().map(|(number, nonce)| Answer { number, nonce }).collect();
        // At difficulty 32 a random nonce passes with probability 2^-32 per task.
        prop_assert!(pow::verify(&inputs, 32, &answers).is_err());
    }

    #[test]
    fn the_config_parser_reports_instead_of_panicking(text in ".{0,300}") {
        if let Err(error) = trustcaptcha_server::config::parse(&text, &|_| None) {
            prop_assert!(!error.problems.is_empty());
        }
    }
}
