//! The widget's side of the protocol as the tests play it: a browser's headers, a create
//! request with plausible events, the work solved, and tokens made up as a widget (or an
//! attacker) could.

use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::ORIGIN;
use crate::integrity::{BrowserInformation, integrity_hash};
use crate::pow;
use crate::protocol::{
    Answer, Challenge, CreateRequest, HoneypotField, SubmitRequest, UserEvent, WidgetInfo,
};

/// The User-Agent of the browser the helpers play.
pub const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

/// The headers a browser's `fetch` from the test origin's page carries besides its
/// User-Agent: its languages and fetch metadata.
#[must_use]
pub fn browser_headers() -> reqwest::header::HeaderMap {
    [
        ("accept-language", "en-US,en;q=0.9"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-site", "cross-site"),
    ]
    .into_iter()
    .map(|(name, value)| {
        (
            reqwest::header::HeaderName::from_static(name),
            reqwest::header::HeaderValue::from_static(value),
        )
    })
    .collect()
}

/// What a person's hand leaves in the widget's event log on the way to the checkbox: a
/// pointer slowing down as it arrives (steps of varying length), then a click that is held
/// for 85 ms. Page time in milliseconds; the window sits at (10, 97) on the screen.
#[must_use]
pub fn human_events() -> Vec<UserEvent> {
    let mouse = |kind: &str, time: f64, (x, y): (f64, f64), detail: u8| {
        UserEvent(raw(&json!({
            "isTrusted": true, "timeStamp": time, "type": kind, "detail": detail,
            "x": x, "y": y, "screenX": x + 10.0, "screenY": y + 97.0,
        })))
    };
    let path = [
        (212.0, 340.0),
        (236.0, 331.0),
        (271.0, 318.0),
        (300.0, 309.0),
        (318.0, 305.0),
        (326.0, 303.0),
    ];
    let mut events: Vec<UserEvent> = path
        .iter()
        .zip(0u8..)
        .map(|(point, step)| {
            mouse(
                "mousemove",
                16.6f64.mul_add(f64::from(step), 1000.0),
                *point,
                0,
            )
        })
        .collect();
    let target = path[path.len() - 1];
    events.push(mouse("mousedown", 1180.0, target, 1));
    events.push(mouse("mouseup", 1265.0, target, 1));
    events.push(mouse("click", 1265.0, target, 1));
    events
}

/// A create request shaped like the widget's (standard or minimal mode), with a correct
/// integrity hash, clean honeypots, human-like timing and, in standard mode, the events of
/// [`human_events`].
pub fn create_request(site_key: &str, minimal: bool) -> CreateRequest {
    let info: BrowserInformation = [
        ("window-navigator-userAgent", json!(USER_AGENT)),
        ("window-origin", json!(ORIGIN)),
        (
            "window-location-href",
            json!(format!("{ORIGIN}/signup?step=2#form")),
        ),
        ("window-navigator-languages", json!(["en-US", "en"])),
        ("window-devicePixelRatio", json!(1.25)),
        ("dom-automationNote", json!(false)),
        ("window-navigator-webdriver", json!(false)),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), raw(&value)))
    .collect();
    let now = OffsetDateTime::now_utc();
    let events = if minimal { Vec::new() } else { human_events() };
    CreateRequest {
        site_key: site_key.to_owned(),
        widget: WidgetInfo {
            box_creation_timestamp: Some(now - time::Duration::seconds(3)),
            start_solving_timestamp: Some(now),
            minimal_data_mode: minimal,
            bypass_key: Some(String::new()),
        },
        integrity_hash: integrity_hash(&info),
        browser_information: info,
        honeypot_fields: HoneypotField::untouched(),
        user_events: events,
        fingerprints: fingerprints(),
    }
}

/// The device fingerprints of [`create_request`]'s browser (made-up hashes of the right form).
fn fingerprints() -> crate::protocol::Fingerprints {
    let hash = |what: &str| {
        use sha2::Digest as _;
        Some(hex::encode(sha2::Sha256::digest(what.as_bytes())))
    };
    crate::protocol::Fingerprints {
        audio: hash("audio"),
        canvas: hash("canvas"),
        webgl: hash("webgl"),
        fonts: hash("fonts"),
        navigator: hash("navigator"),
        screen: hash("screen"),
    }
}

/// [`create_request`] as JSON, for tests that change it the way a bot or a proxy might.
pub fn create_body(site_key: &str, minimal: bool) -> Value {
    serde_json::to_value(create_request(site_key, minimal)).expect("serializable")
}

/// The least time a browser needs to find `tasks` (answers as JSON): its largest nonce counted
/// up to at the fastest rate a browser's worker reaches, plus a millisecond.
#[must_use]
pub fn browser_time(tasks: &Value) -> std::time::Duration {
    let largest = tasks
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|task| {
            task["nonce"]
                .as_str()?
                .strip_prefix("tcn")?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    std::time::Duration::from_secs_f64(
        f64::from(largest) / crate::detection::BROWSER_ATTEMPTS_PER_SECOND,
    ) + std::time::Duration::from_millis(1)
}

/// A submission of `tasks` (answers as JSON) with plausible timing: solving claimed to have
/// taken 300 ms, or what a browser needs for these answers if that is longer.
pub fn submit_body(tasks: &Value) -> Value {
    let now = OffsetDateTime::now_utc();
    let claimed = browser_time(tasks).max(std::time::Duration::from_millis(300));
    let request = SubmitRequest {
        start_solving_timestamp: Some(now - claimed),
        solved_timestamp: Some(now),
        tasks: serde_json::from_value(tasks.clone()).unwrap_or_default(),
        honeypot_fields: HoneypotField::untouched(),
        user_events: Vec::new(),
    };
    let mut body = serde_json::to_value(request).expect("serializable");
    // Tests also submit malformed answers; send them as they are.
    body["tasks"] = tasks.clone();
    body
}

/// Correct answers to every task of `challenge` (a challenge as JSON).
pub fn answers(challenge: &Value) -> Value {
    let challenge: Challenge = serde_json::from_value(challenge.clone()).expect("a challenge");
    let answers: Vec<Answer> = challenge
        .tasks
        .iter()
        .map(|task| {
            let input = base64::engine::general_purpose::STANDARD
                .decode(&task.input)
                .expect("standard base64");
            Answer {
                number: task.number,
                nonce: pow::solve(&input, challenge.difficulty),
            }
        })
        .collect();
    serde_json::to_value(answers).expect("serializable")
}

fn raw(value: &Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(value.to_string()).expect("valid JSON")
}

/// The token a widget with `failover-enabled` makes up when it cannot reach the server (or a
/// page that blocked the request claims to have made): `id` with `clientFailover: true`.
pub fn failover_claim(id: &str) -> String {
    token_for(id, r#","clientFailover":true"#)
}

/// A token for any id, as a widget or attacker could make it.
pub fn token_for(id: &str, extra: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(format!(r#"{{"verificationId":"{id}"{extra}}}"#))
}
