//! The widget's integrity hash over `browserInformation` (see `docs/protocol.md`): SHA-256 of
//! `key=value` items in key order, joined with `", "`, each value written as JavaScript's
//! `String()` would write it.
//!
//! Numbers are taken as their raw JSON text, which is what `JSON.stringify` produced from the
//! same JavaScript number, so no float formatting can disagree with the browser's.
//!
//! The widget's values are flat or arrays of plain values. A value nested deeper than
//! [`MAX_NESTING`] has no hash (the integrity check fails): the depth is measured by one linear
//! scan before any recursive work, so a hostile body cannot exhaust the stack or the CPU.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

/// The `browserInformation` map as received, values unparsed.
pub type BrowserInformation = BTreeMap<String, Box<RawValue>>;

/// The deepest nesting of arrays and objects in a value that is hashed; the widget's own values
/// are at most two deep.
pub const MAX_NESTING: usize = 4;

/// The lowercase hex SHA-256 the widget computes over `info`; `None` when a value nests deeper
/// than [`MAX_NESTING`].
#[must_use]
pub fn integrity_hash(info: &BrowserInformation) -> Option<String> {
    canonical_string(info).map(|text| hex::encode(Sha256::digest(text)))
}

/// The string the hash is computed over; `None` when a value nests deeper than
/// [`MAX_NESTING`].
#[must_use]
pub fn canonical_string(info: &BrowserInformation) -> Option<String> {
    if info
        .values()
        .any(|value| nesting(value.get()) > MAX_NESTING)
    {
        return None;
    }
    let items: Vec<String> = info
        .iter()
        .map(|(key, value)| format!("{key}={}", top_level(value)))
        .collect();
    Some(items.join(", "))
}

/// How deeply arrays and objects nest in the JSON text `raw`, found in one pass without
/// recursion (brackets inside strings do not count).
fn nesting(raw: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in raw.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// `String(value)` for a top-level value; arrays get the widget's own `[a, b]` form.
fn top_level(value: &RawValue) -> String {
    let raw = value.get();
    match raw.as_bytes().first() {
        Some(b'[') => {
            let elements: Vec<&RawValue> = serde_json::from_str(raw).unwrap_or_default();
            let parts: Vec<String> = elements.iter().map(|e| element(e)).collect();
            format!("[{}]", parts.join(", "))
        }
        _ => element_or_null(value, "null"),
    }
}

/// `String(value)` for an array element: `null` becomes the empty string and nested arrays are
/// joined with `,`, as `Array.prototype.join` does.
fn element(value: &RawValue) -> String {
    let raw = value.get();
    if raw.starts_with('[') {
        let elements: Vec<&RawValue> = serde_json::from_str(raw).unwrap_or_default();
        elements
            .iter()
            .map(|e| element(e))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        element_or_null(value, "")
    }
}

fn element_or_null(value: &RawValue, null: &str) -> String {
    let raw = value.get();
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(raw).unwrap_or_default(),
        Some(b'{') => "[object Object]".to_owned(),
        Some(b'n') => null.to_owned(),
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_has_no_hash_and_costs_one_scan() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let info: BrowserInformation = [(
            "a".to_owned(),
            serde_json::value::RawValue::from_string(deep).expect("valid JSON"),
        )]
        .into_iter()
        .collect();
        assert_eq!(integrity_hash(&info), None);
        let ok: BrowserInformation =
            serde_json::from_str(r#"{"a": [[1, [2]], "x"], "b": "[[[[[[not nesting"}"#)
                .expect("json");
        assert_eq!(nesting(ok["a"].get()), 3);
        assert_eq!(nesting(ok["b"].get()), 0);
        assert!(integrity_hash(&ok).is_some());
    }

    #[test]
    fn reproduces_the_widgets_test_vector() {
        let info: BrowserInformation = serde_json::from_str(
            r#"{
                "window-navigator-userAgent": "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/156.0.0.0",
                "window-devicePixelRatio": 1,
                "window-navigator-languages": ["en-US","en"],
                "window-navigator-deviceMemory": 8,
                "window-navigator-connection-downlink": 1.45,
                "window-navigator-connection-rtt": null,
                "dom-automationNote": false,
                "plugins": "PDF Viewer,Chrome PDF Viewer",
                "intl-locale": "en-US",
                "embedding-isInIframe": false,
                "embedding-ancestorOriginCount": 0,
                "document-visibilityState": "visible",
                "window-origin": "http://localhost:8080",
                "window-location-href": "http://localhost:8080/test.html"
            }"#,
        )
        .expect("json");
        assert_eq!(
            canonical_string(&info).expect("shallow"),
            "document-visibilityState=visible, dom-automationNote=false, embedding-ancestorOriginCount=0, embedding-isInIframe=false, intl-locale=en-US, plugins=PDF Viewer,Chrome PDF Viewer, window-devicePixelRatio=1, window-location-href=http://localhost:8080/test.html, window-navigator-connection-downlink=1.45, window-navigator-connection-rtt=null, window-navigator-deviceMemory=8, window-navigator-languages=[en-US, en], window-navigator-userAgent=Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/156.0.0.0, window-origin=http://localhost:8080"
        );
        assert_eq!(
            integrity_hash(&info).expect("shallow"),
            "7959ec8a07046471b30675f1d872ff231093d1cf8c0781b8700879249f4d3866"
        );
    }

    #[test]
    fn array_elements_follow_javascripts_join() {
        let info: BrowserInformation = serde_json::from_str(
            r#"{"a": ["x", null, 1e21, true, ["y", null, 2], {"k": 1}], "b": {"k": 1}}"#,
        )
        .expect("json");
        assert_eq!(
            canonical_string(&info).expect("shallow"),
            "a=[x, , 1e21, true, y,,2, [object Object]], b=[object Object]"
        );
    }
}
