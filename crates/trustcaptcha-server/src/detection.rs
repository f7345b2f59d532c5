//! Finding the signals that [`crate::scoring`] weighs: what tells a person's browser from a
//! script.
//!
//! The widget's code is public, so what it *says* about the browser can be reproduced by anyone.
//! The detectors therefore prefer what the server observes itself, or what must agree with it:
//!
//! * the submission against the create request ([`request_fingerprint`]): a browser's two
//!   `fetch`es from one page send the same User-Agent, client hints, fetch metadata,
//!   `Accept-Language` and `Origin`; a replaying client that dresses only its create request
//!   does not;
//! * the HTTP request against the page's claims ([`request_inconsistent`]): a browser's `fetch`
//!   carries its own `User-Agent`, an `Accept-Language` led by its first language, fetch
//!   metadata (`Sec-Fetch-*`) in every current engine, and in Chromium client hints that name
//!   the same brands as `navigator.userAgentData`. Absent client hints are never held against a
//!   browser (Firefox and Safari send none; some Chromium builds turn them off), only hints that
//!   disagree, or a Chromium page whose request lacks the hints its page reports;
//! * a browser that declares itself headless ([`headless`]), or whose window has no browser UI
//!   around the page on a desktop ([`windowless`]: headless browsers, and also a person in
//!   full-screen mode, so it weighs little alone);
//! * the recorded input events ([`Events`]): mostly events a script dispatched
//!   (`isTrusted: false`), event types the widget never records, time running backwards (by more
//!   than a second), events spread over more time than passed; and input that no hand produces:
//!   a click with no pointer movement before it, or a long pointer movement along a perfectly
//!   straight line;
//! * the proof-of-work's duration against the work its nonces show ([`solved_too_fast`]): each
//!   task is solved by one browser worker counting nonces up from zero, one WebCrypto digest per
//!   attempt, so the largest nonce bounds from below how long a browser needed. A native solver
//!   is two orders of magnitude faster;
//! * the client network's recent solves ([`busy_network`]).

use std::borrow::Cow;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::adaptive::AdaptiveDifficulty;
use crate::integrity::{BrowserInformation, integrity_hash};
use crate::protocol::{Answer, CreateRequest, HoneypotField, SubmitRequest, UserEvent};
use crate::signals::Signals;
use crate::tls::Ja4;

/// Faster than this from the box appearing to solving is not a person.
const MIN_HUMAN_START: Duration = Duration::from_millis(100);

/// Allowance for clock resolution and network time between the widget and the server.
const TIMING_SLACK: Duration = Duration::from_secs(5);

/// Proof-of-work attempts per second that no browser's worker exceeds: the widget awaits one
/// WebCrypto digest per attempt, which headless Chromium on the 2-core benchmark machine does
/// some 125 000 times a second per worker (`BENCHMARKS.md`, "Detection"). Eight times that
/// leaves room for the fastest desktops; a native solver does 10–20 million.
pub(crate) const BROWSER_ATTEMPTS_PER_SECOND: f64 = 1_000_000.0;

/// The event types the widget records besides [`INPUT_EVENTS`]; anything of neither kind was
/// not produced by it.
const OTHER_RECORDED_EVENTS: [&str; 5] = ["resize", "scroll", "visibilitychange", "focus", "blur"];

/// The recorded event types a person's hand makes: a pointer, a touch, a key, the wheel, the
/// clipboard. The others the widget records (`focus`, `blur`, `scroll`, `resize`,
/// `visibilitychange`) a script causes as easily (`element.focus()`, `scrollTo`), so they show
/// no person.
const INPUT_EVENTS: [&str; 17] = [
    "click",
    "mousedown",
    "mouseup",
    "mousemove",
    "touchstart",
    "touchend",
    "touchmove",
    "touchcancel",
    "keydown",
    "keyup",
    "copy",
    "paste",
    "wheel",
    "pointerdown",
    "pointermove",
    "pointerup",
    "pointercancel",
];

/// Solves by one network in the adaptive window beyond this many times the free ones make the
/// network busy.
const BUSY_FACTOR: u64 = 3;

/// The signals of a create request of a scored site (standard mode). `headers` are the
/// request's own.
#[must_use]
pub(crate) fn at_create(request: &CreateRequest, headers: &HeaderMap) -> Signals {
    let info = &request.browser_information;
    let widget = &request.widget;
    // Every recorded event happened between the box's creation and the start of solving.
    let span = match (
        widget.box_creation_timestamp,
        widget.start_solving_timestamp,
    ) {
        (Some(created), Some(started)) => (started - created).try_into().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let events = Events::read(&request.user_events, span);
    [
        (
            Signals::HONEYPOT,
            honeypot_touched(&request.honeypot_fields),
        ),
        (
            Signals::INTEGRITY,
            integrity_broken(info, request.integrity_hash.as_deref()),
        ),
        (Signals::AUTOMATION, automation_flagged(info)),
        (
            Signals::TIMING,
            create_timing_implausible(
                widget.box_creation_timestamp,
                widget.start_solving_timestamp,
            ),
        ),
        (Signals::NO_EVENTS, !events.input),
        (Signals::HEADLESS, headless(headers, info)),
        (Signals::REQUEST, request_inconsistent(headers, info)),
        (Signals::WINDOW, windowless(info)),
        (Signals::SCREEN, larger_than_screen(info)),
        (Signals::EVENTS, events.implausible),
        (Signals::SYNTHETIC, events.teleported || events.mechanical),
    ]
    .into_iter()
    .filter(|(_, fired)| *fired)
    .fold(Signals::empty(), |signals, (signal, _)| signals | signal)
}

/// The signals after a submission that solved the proof-of-work: those of the create request
/// and what the submission adds. `observed` is the time the server saw pass since it handed out
/// the challenge; `same_request` whether the submission came with the create request's
/// [`request_fingerprint`].
#[must_use]
pub(crate) fn at_submit(
    before: Signals,
    request: &SubmitRequest,
    observed: Duration,
    same_request: bool,
) -> Signals {
    let claimed = match (request.start_solving_timestamp, request.solved_timestamp) {
        (Some(start), Some(solved)) => (solved - start).try_into().ok(),
        _ => None,
    };
    // Events recorded since the create request, read for their plausibility only: the click
    // that started the widget came before it.
    let events = (!request.user_events.is_empty())
        .then(|| Events::read(&request.user_events, observed + TIMING_SLACK));
    let mut signals = before;
    signals.set(
        Signals::NO_EVENTS,
        before.contains(Signals::NO_EVENTS) && !events.as_ref().is_some_and(|events| events.input),
    );
    for (signal, fired) in [
        (Signals::REQUEST, !same_request),
        (
            Signals::HONEYPOT,
            honeypot_touched(&request.honeypot_fields),
        ),
        (
            Signals::TIMING,
            submit_timing_implausible(
                request.start_solving_timestamp,
                request.solved_timestamp,
                observed,
            ),
        ),
        (
            Signals::EVENTS,
            events.as_ref().is_some_and(|events| events.implausible),
        ),
        (
            Signals::SYNTHETIC,
            events.as_ref().is_some_and(|events| events.mechanical),
        ),
        (
            Signals::TOO_FAST,
            solved_too_fast(&request.tasks, observed, claimed),
        ),
    ] {
        if fired {
            signals |= signal;
        }
    }
    signals
}

/// The headers a browser sends alike on every `fetch` of one page to one server.
const SAME_ON_EVERY_FETCH: [&str; 9] = [
    "user-agent",
    "accept-language",
    "origin",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "sec-fetch-site",
    "sec-fetch-mode",
    "sec-fetch-dest",
];

/// A digest of the headers a browser sends alike on every request of one page
/// ([`SAME_ON_EVERY_FETCH`]) and of its TLS library's cipher suites (when known), so that a submission can be held against its create request
/// without keeping the headers. SHA-256, not a seeded hasher: instances of different releases
/// sharing a store must agree on it. 32 bits: a client whose headers differ passes for the same
/// with odds of one in four billion, and every pending verification keeps it (4 bytes keep the
/// memory store's packed form in its allocation class). Never 0, which marks a verification
/// stored by a release that kept none.
#[must_use]
pub(crate) fn request_fingerprint(headers: &HeaderMap, tls: Option<&Ja4>) -> u32 {
    use sha2::Digest as _;
    let mut digest = sha2::Sha256::new();
    // Only the cipher suites: a resumed session adds an extension, so the whole JA4 of a
    // browser's second connection may differ from its first.
    if let Some(ja4) = tls {
        digest.update(ja4.ciphers().as_bytes());
    }
    for name in SAME_ON_EVERY_FETCH {
        for value in headers.get_all(name) {
            digest.update(value.as_bytes());
            digest.update([1]);
        }
        digest.update([0]);
    }
    let digest = digest.finalize();
    let mut first = [0u8; 4];
    first.copy_from_slice(&digest[..4]);
    u32::from_le_bytes(first).max(1)
}

/// The JA4 cipher hashes of the browsers' TLS libraries: Chromium's BoringSSL (Chrome, Edge,
/// Opera, Brave, Samsung Internet, on every system but iOS), Firefox's NSS, and Apple's (Safari,
/// and every browser on iOS and iPadOS, which must use WebKit). Each is the hash of the cipher
/// suites that library offers; they have been stable across many releases.
const CHROMIUM_CIPHERS: &str = "8daaf6152771";
const FIREFOX_CIPHERS: &str = "5b57614c22b0";
const SAFARI_CIPHERS: &str = "a09f3c656075";

/// Whether the TLS client `ja4` is not the browser `user_agent` names: it offers no TLS 1.3 or
/// no HTTP/2 (every current browser offers both), or cipher suites other than that browser
/// family's (or one of `more`, the operator's). A User-Agent of no known browser family is not
/// judged.
#[must_use]
pub(crate) fn tls_unlike_browser(ja4: &Ja4, user_agent: Option<&str>, more: &[String]) -> bool {
    let Some(user_agent) = user_agent else {
        return false;
    };
    let apple = ["iPhone", "iPad", "iPod"]
        .iter()
        .any(|m| user_agent.contains(m));
    let family = if apple {
        SAFARI_CIPHERS
    } else if user_agent.contains("Firefox/") {
        FIREFOX_CIPHERS
    } else if user_agent.contains("Chrome/") || user_agent.contains("Chromium/") {
        CHROMIUM_CIPHERS
    } else if user_agent.contains("Safari/") && user_agent.contains("Version/") {
        SAFARI_CIPHERS
    } else {
        return false;
    };
    let known = ja4.ciphers() == family
        || more
            .iter()
            .any(|hash| hash.eq_ignore_ascii_case(ja4.ciphers()));
    ja4.version() != "13" || ja4.alpn() != "h2" || !known
}

/// What the page reports that tells one device set-up from another beside the six fingerprint
/// hashes (which alone name little more than a system, a graphics stack and a screen size,
/// shared by many people): the exact browser version, languages, pixel ratio, processor count
/// and memory, and the window's and the screen's usable sizes, which differ with each person's
/// windows and bars. A farm that runs one browser build runs it alike everywhere.
const DEVICE_FACTS: [&str; 11] = [
    "window-navigator-userAgent",
    "window-navigator-languages",
    "window-devicePixelRatio",
    "window-navigator-hardwareConcurrency",
    "window-navigator-deviceMemory",
    "window-innerWidth",
    "window-innerHeight",
    "window-outerWidth",
    "window-outerHeight",
    "window-screen-availWidth",
    "window-screen-availHeight",
];

/// One fingerprint of the device set-up a create request describes: the first 64 bits of the
/// SHA-256 of its six fingerprint hashes and its [`DEVICE_FACTS`]; `None` when the page sent no
/// fingerprint at all.
#[must_use]
pub(crate) fn device_fingerprint(request: &CreateRequest) -> Option<u64> {
    use sha2::Digest as _;
    let prints = &request.fingerprints;
    let hashes = [
        &prints.audio,
        &prints.canvas,
        &prints.webgl,
        &prints.fonts,
        &prints.navigator,
        &prints.screen,
    ];
    if hashes.iter().all(|hash| hash.is_none()) {
        return None;
    }
    let mut digest = sha2::Sha256::new();
    for hash in hashes {
        digest.update(hash.as_deref().unwrap_or_default().as_bytes());
        digest.update([0]);
    }
    for key in DEVICE_FACTS {
        let value = request.browser_information.get(key);
        digest.update(value.map(|raw| raw.get()).unwrap_or_default().as_bytes());
        digest.update([0]);
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.finalize()[..8]);
    Some(u64::from_le_bytes(first))
}

/// Whether any honeypot was filled or touched.
#[must_use]
pub(crate) fn honeypot_touched(fields: &[HoneypotField]) -> bool {
    fields.iter().any(|f| {
        f.value.as_deref().is_some_and(|v| !v.is_empty()) || f.first_interaction_event.is_some()
    })
}

/// Whether `claimed` is missing or differs from the hash of `info`.
#[must_use]
pub(crate) fn integrity_broken(info: &BrowserInformation, claimed: Option<&str>) -> bool {
    match (claimed, integrity_hash(info)) {
        (Some(claimed), Some(actual)) => !claimed.eq_ignore_ascii_case(&actual),
        _ => true,
    }
}

/// Whether the browser's automation probes said `true`.
#[must_use]
pub(crate) fn automation_flagged(info: &BrowserInformation) -> bool {
    ["dom-automationNote", "window-navigator-webdriver"]
        .iter()
        .any(|key| info.get(*key).is_some_and(|v| v.get() == "true"))
}

/// Whether the create request's timestamps are impossible for a person.
#[must_use]
pub(crate) fn create_timing_implausible(
    box_created: Option<OffsetDateTime>,
    start_solving: Option<OffsetDateTime>,
) -> bool {
    match (box_created, start_solving) {
        (Some(created), Some(start)) => start < created || start - created < MIN_HUMAN_START,
        _ => true,
    }
}

/// Whether a submission's claimed solving time is impossible given what the server observed
/// between handing out the challenge and receiving the answer.
#[must_use]
pub(crate) fn submit_timing_implausible(
    start_solving: Option<OffsetDateTime>,
    solved: Option<OffsetDateTime>,
    observed: Duration,
) -> bool {
    match (start_solving, solved) {
        (Some(start), Some(solved)) => solved < start || solved - start > observed + TIMING_SLACK,
        _ => true,
    }
}

/// Whether the browser says it is headless, in its request or in what its page reports.
#[must_use]
pub(crate) fn headless(headers: &HeaderMap, info: &BrowserInformation) -> bool {
    let said = |text: Option<&str>| text.is_some_and(|text| text.contains("HeadlessChrome"));
    said(header_text(headers, header::USER_AGENT))
        || said(header_text(headers, "sec-ch-ua"))
        || said(text(info, "window-navigator-userAgent").as_deref())
        || said(text(info, "window-navigator-userAgentData-brands").as_deref())
}

/// Whether the request disagrees with the browser the page describes (see the module docs).
#[must_use]
pub(crate) fn request_inconsistent(headers: &HeaderMap, info: &BrowserInformation) -> bool {
    let Some(user_agent) = text(info, "window-navigator-userAgent") else {
        // Every browser has one, and the widget always reports it.
        return true;
    };
    if header_text(headers, header::USER_AGENT) != Some(user_agent.as_str()) {
        return true;
    }
    let first_language = strings(info, "window-navigator-languages")
        .into_iter()
        .next()
        .or_else(|| text(info, "window-navigator-language"));
    match (
        header_text(headers, header::ACCEPT_LANGUAGE),
        first_language,
    ) {
        (None, _) => return true,
        (Some(accepted), Some(first)) if primary_language(accepted) != primary_language(&first) => {
            return true;
        }
        _ => {}
    }
    match header_text(headers, "sec-fetch-mode") {
        // The widget's requests are CORS fetches, also when the page and server share an origin.
        Some(mode)
            if mode != "cors"
                || header_text(headers, "sec-fetch-dest").is_some_and(|d| d != "empty") =>
        {
            return true;
        }
        None if sends_fetch_metadata(&user_agent) => return true,
        _ => {}
    }
    let brands = text(info, "window-navigator-userAgentData-brands");
    match (header_text(headers, "sec-ch-ua"), brands) {
        (Some(hint), Some(brands)) => {
            let mut said = hint_brands(hint);
            let mut reported: Vec<String> = brands.split('|').map(str::to_owned).collect();
            said.sort_unstable();
            reported.sort_unstable();
            if said != reported {
                return true;
            }
        }
        (Some(_), None) | (None, Some(_)) => return true,
        (None, None) => {}
    }
    let mobile = info
        .get("window-navigator-userAgentData-mobile")
        .map(|raw| raw.get());
    matches!(
        (header_text(headers, "sec-ch-ua-mobile"), mobile),
        (Some("?1"), Some("false")) | (Some("?0"), Some("true"))
    )
}

/// Whether the page describes a touch device: a phone or tablet User-Agent, a mobile client
/// hint, or a "Macintosh" with touch points (iPadOS Safari calls itself a Mac). Touch points
/// claimed beside another desktop User-Agent are not believed: a script sets them with one
/// option, and a desktop's window checks must not be switched off by it.
fn touch_device(info: &BrowserInformation) -> bool {
    let user_agent = text(info, "window-navigator-userAgent").unwrap_or_default();
    let touch_points = number(info, "window-navigator-maxTouchPoints").unwrap_or_default();
    info.get("window-navigator-userAgentData-mobile")
        .is_some_and(|raw| raw.get() == "true")
        || ["Mobile", "Android", "iPhone", "iPad"]
            .iter()
            .any(|marker| user_agent.contains(marker))
        || (user_agent.contains("Macintosh") && touch_points > 1.0)
}

/// A window's size, in pixels, when the page reported a positive one.
fn size(info: &BrowserInformation, width: &str, height: &str) -> Option<(f64, f64)> {
    let positive = |key| number(info, key).filter(|n| *n > 0.0);
    Some((positive(width)?, positive(height)?))
}

/// Whether a desktop browser's window has no browser UI around the page: outer and inner
/// sizes equal, as in a headless browser (or a full-screen window).
#[must_use]
pub(crate) fn windowless(info: &BrowserInformation) -> bool {
    let outer = size(info, "window-outerWidth", "window-outerHeight");
    let inner = size(info, "window-innerWidth", "window-innerHeight");
    !touch_device(info) && outer.is_some() && outer == inner
}

/// How far (pixels) a desktop window may reach beyond its screen: a maximised window on
/// Windows reports its invisible resize borders, 8 px a side.
const SCREEN_SLACK: f64 = 32.0;

/// Whether a desktop browser's window is larger than the screen it is on, in both width and
/// height: a headless browser given a window size keeps its default 800×600 screen. A window
/// can reach past its screen in one direction, stretched over two monitors side by side or
/// stacked (or when a privacy mode reports the window as the screen); past both, it would need
/// four. (The outer size, which page zoom does not change.)
#[must_use]
pub(crate) fn larger_than_screen(info: &BrowserInformation) -> bool {
    let outer = size(info, "window-outerWidth", "window-outerHeight");
    let screen = size(info, "window-screen-width", "window-screen-height");
    match (outer, screen) {
        (Some((width, height)), Some((screen_width, screen_height))) => {
            !touch_device(info)
                && width > screen_width + SCREEN_SLACK
                && height > screen_height + SCREEN_SLACK
        }
        _ => false,
    }
}

/// Whether the submission came sooner, or claims to have been solved sooner, than a browser
/// could have counted up to its largest nonce.
#[must_use]
pub(crate) fn solved_too_fast(
    answers: &[Answer],
    observed: Duration,
    claimed: Option<Duration>,
) -> bool {
    let Some(largest) = answers
        .iter()
        .filter_map(|answer| answer.nonce.strip_prefix("tcn")?.parse::<u64>().ok())
        .max()
    else {
        return false;
    };
    #[allow(clippy::cast_precision_loss)] // nonces stay far below 2^52
    let least = Duration::from_secs_f64((largest as f64 + 1.0) / BROWSER_ATTEMPTS_PER_SECOND);
    observed < least || claimed.is_some_and(|claimed| claimed < least)
}

/// Whether a network solved far more than its free share in the adaptive window.
#[must_use]
pub(crate) fn busy_network(solved: u64, adaptive: &AdaptiveDifficulty) -> bool {
    solved > BUSY_FACTOR * u64::from(adaptive.free_solves.max(1))
}

/// What one request's recorded events show.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Events {
    /// Whether any is input a hand makes ([`INPUT_EVENTS`]).
    pub input: bool,
    /// Events the widget cannot have recorded (see the module docs).
    pub implausible: bool,
    /// A press where nothing moved before it: a click without two mouse moves, a tap in a
    /// session without a swipe, a pen press without the pen's hovering moves.
    pub teleported: bool,
    /// A long pointer movement along a perfectly straight line.
    pub mechanical: bool,
}

/// The fields of a recorded event the detectors read.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "isTrusted")]
    trusted: Option<bool>,
    #[serde(rename = "timeStamp")]
    time: Option<f64>,
    x: Option<f64>,
    y: Option<f64>,
    detail: Option<f64>,
}

/// A pointer movement (moves without a pause longer than [`MOVEMENT_PAUSE_MS`]) of at least
/// this many recorded positions …
const MECHANICAL_POSITIONS: usize = 5;
/// … covering at least this many pixels …
const MECHANICAL_DISTANCE: f64 = 100.0;
/// … whose positions all lie this close (pixels) to the straight line from its first to its
/// last position was drawn by a program: a hand's path bends.
const MECHANICAL_DEVIATION: f64 = 1.5;
/// A pause (milliseconds) that ends one pointer movement.
const MOVEMENT_PAUSE_MS: f64 = 100.0;
/// How far (milliseconds) an event's time may lie before the latest one seen: input events
/// carry the time the operating system took them, others (scroll, focus) the time they were
/// dispatched, so a person's queued input can come out slightly behind.
const TIME_REORDERING_MS: f64 = 1_000.0;

impl Events {
    /// Reads `events`, which all happened within `span` (plus slack for clock resolution).
    pub(crate) fn read(events: &[UserEvent], span: Duration) -> Events {
        let mut report = Events::default();
        let mut first_time: Option<f64> = None;
        let mut last_time = f64::NEG_INFINITY;
        let (mut trusted, mut dispatched) = (0usize, 0usize);
        // What moved before a press: a hand moves a pointer of the kind it presses with, and
        // a driver's `click()` or `tap()` presses where it never moved.
        let (mut mouse_moves, mut touch_moves, mut pen_moves) = (0usize, 0usize, 0usize);
        let mut tapped = false;
        let mut movement: Vec<(f64, f64)> = Vec::new();
        let mut last_move_time = f64::NEG_INFINITY;
        for event in events {
            let Ok(event) = serde_json::from_str::<Event<'_>>(event.0.get()) else {
                report.implausible = true;
                continue;
            };
            let kind = event.kind.as_deref().unwrap_or_default();
            let time = event.time.filter(|t| t.is_finite() && *t >= 0.0);
            if INPUT_EVENTS.contains(&kind) {
                report.input = true;
            } else if !OTHER_RECORDED_EVENTS.contains(&kind) {
                report.implausible = true;
            }
            // A page's own scripts may dispatch an event now and then (`element.click()`); a
            // session made mostly of dispatched events was driven by one.
            if event.trusted == Some(true) {
                trusted += 1;
            } else {
                dispatched += 1;
            }
            match time {
                Some(time) if time >= last_time - TIME_REORDERING_MS => {
                    first_time = Some(first_time.map_or(time, |first| first.min(time)));
                    last_time = last_time.max(time);
                }
                _ => report.implausible = true,
            }
            match kind {
                "mousemove" => {
                    mouse_moves += 1;
                    if let (Some(x), Some(y), Some(time)) = (event.x, event.y, time) {
                        if time - last_move_time > MOVEMENT_PAUSE_MS {
                            report.mechanical |= drawn(&movement);
                            movement.clear();
                        }
                        movement.push((x, y));
                        last_move_time = time;
                    }
                }
                // A click with `detail` 0 came from a key (Enter or Space on the checkbox). A tap
                // makes a click after its touch, with at most one compatibility `mousemove`.
                "click" if event.detail.is_some_and(|d| d >= 1.0) => {
                    report.teleported |=
                        mouse_moves < 2 && !(tapped && touch_moves > 0) && pen_moves < 2;
                }
                "touchmove" => touch_moves += 1,
                "touchstart" | "touchend" => tapped = true,
                // The widget records pointer events of pens only.
                "pointermove" => pen_moves += 1,
                "pointerdown" => report.teleported |= pen_moves < 2,
                _ => {}
            }
        }
        report.mechanical |= drawn(&movement);
        if dispatched > 0 && dispatched >= trusted {
            report.implausible = true;
        }
        if let Some(first) = first_time {
            let spread = Duration::from_secs_f64(((last_time - first) / 1000.0).max(0.0));
            if spread > span + TIMING_SLACK {
                report.implausible = true;
            }
        }
        report
    }
}

/// Whether a pointer movement is long and perfectly straight (see [`MECHANICAL_DEVIATION`]).
fn drawn(movement: &[(f64, f64)]) -> bool {
    let (Some(&(x0, y0)), Some(&(x1, y1))) = (movement.first(), movement.last()) else {
        return false;
    };
    let length = (x1 - x0).hypot(y1 - y0);
    movement.len() >= MECHANICAL_POSITIONS
        && length >= MECHANICAL_DISTANCE
        && movement.iter().all(|&(x, y)| {
            // The distance from the chord: the cross product over the chord's length.
            (x1 - x0).mul_add(y0 - y, -((x0 - x) * (y1 - y0))).abs() / length
                <= MECHANICAL_DEVIATION
        })
}

/// A header's text, if present and readable.
fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A string value of `browserInformation`, if present and not empty.
#[must_use]
pub(crate) fn text(info: &BrowserInformation, key: &str) -> Option<String> {
    info.get(key)
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .filter(|s| !s.is_empty())
}

/// A numeric value of `browserInformation`.
fn number(info: &BrowserInformation, key: &str) -> Option<f64> {
    info.get(key)
        .and_then(|raw| serde_json::from_str::<f64>(raw.get()).ok())
}

/// An array of strings in `browserInformation` (empty when absent or of another shape).
fn strings(info: &BrowserInformation, key: &str) -> Vec<String> {
    info.get(key)
        .and_then(|raw| serde_json::from_str::<Vec<String>>(raw.get()).ok())
        .unwrap_or_default()
}

/// `en` of `en-US,en;q=0.9` (lowercase).
fn primary_language(tags: &str) -> String {
    tags.split([',', ';', '-', '_'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// `["Brand;8", "Chromium;156"]` of `"Brand";v="8", "Chromium";v="156"`, in the form the widget
/// reports `navigator.userAgentData.brands`.
fn hint_brands(hint: &str) -> Vec<String> {
    hint.split(',')
        .filter_map(|item| {
            let (brand, version) = item.split_once(";v=")?;
            Some(format!(
                "{};{}",
                brand.trim().trim_matches('"'),
                version.trim().trim_matches('"')
            ))
        })
        .collect()
}

/// Whether the engine a User-Agent names sends fetch metadata: Chromium since 80, Firefox
/// since 90, Safari since 16.4 (taken as 17). Unknown engines are given the benefit of the
/// doubt.
fn sends_fetch_metadata(user_agent: &str) -> bool {
    let major = |marker: &str| {
        let at = user_agent.find(marker)? + marker.len();
        user_agent[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse::<u32>()
            .ok()
    };
    if let Some(version) = major("Chrome/").or_else(|| major("Chromium/")) {
        return version >= 80;
    }
    if let Some(version) = major("Firefox/") {
        return version >= 90;
    }
    if user_agent.contains("Safari/") {
        return major("Version/").is_some_and(|version| version >= 17);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_request_fingerprint_covers_what_a_browser_repeats_and_nothing_else() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, value.parse().expect("value"));
            }
            map
        };
        let browser = [
            ("user-agent", "Mozilla/5.0 Chrome/131.0.0.0"),
            ("accept-language", "de-DE,de;q=0.9"),
            ("origin", "https://shop.example"),
            ("sec-fetch-mode", "cors"),
        ];
        let base = request_fingerprint(&headers(&browser), None);
        assert_ne!(base, 0, "0 marks a record without one");
        // What a browser sends differently on its next fetch does not count.
        let mut next = browser.to_vec();
        next.push(("content-length", "1234"));
        next.push(("cookie", "session=1"));
        assert_eq!(request_fingerprint(&headers(&next), None), base);
        for changed in [
            ("user-agent", "python-requests/2.32"),
            ("accept-language", "en-US"),
            ("origin", "https://elsewhere.example"),
            ("sec-fetch-mode", "navigate"),
        ] {
            let other: Vec<_> = browser
                .iter()
                .map(|&(name, value)| {
                    if name == changed.0 {
                        changed
                    } else {
                        (name, value)
                    }
                })
                .collect();
            assert_ne!(
                request_fingerprint(&headers(&other), None),
                base,
                "{changed:?}"
            );
        }
        // A header moved into another's place is another request.
        let shifted = [
            ("user-agent", ""),
            ("accept-language", "Mozilla/5.0 Chrome/131.0.0.0"),
        ];
        assert_ne!(
            request_fingerprint(&headers(&shifted), None),
            request_fingerprint(
                &headers(&[("user-agent", "Mozilla/5.0 Chrome/131.0.0.0")]),
                None
            )
        );
        // The TLS library's cipher suites count; the rest of its fingerprint may change
        // between a browser's connections (a resumed session).
        let chrome = Ja4::parse("t13d1516h2_8daaf6152771_d8a2da3f94cd").expect("ja4");
        let resumed = Ja4::parse("t13d1517h2_8daaf6152771_e5627efa2ab1").expect("ja4");
        let python = Ja4::parse("t13d3112h1_e8f1e7e78f70_b26ce05bbdd6").expect("ja4");
        let with = |tls| request_fingerprint(&headers(&browser), Some(tls));
        assert_eq!(with(&chrome), with(&resumed));
        assert_ne!(with(&chrome), with(&python));
    }

    #[test]
    fn a_device_fingerprint_is_the_set_up_the_page_describes() {
        let hash = |what: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(what));
        let mut request: CreateRequest = serde_json::from_value(serde_json::json!({
            "siteKey": "site",
            "browserInformation": {"window-navigator-userAgent": CHROME, "window-innerWidth": 1280},
            "fingerprints": {"audio": hash("a"), "canvas": hash("c"), "webgl": hash("w"),
                "fonts": hash("f"), "navigator": hash("n"), "screen": hash("s")},
        }))
        .expect("request");
        let base = device_fingerprint(&request).expect("fingerprints sent");
        assert_eq!(device_fingerprint(&request), Some(base), "the same set-up");
        let mut wider = serde_json::to_value(&request).expect("json");
        wider["browserInformation"]["window-innerWidth"] = 1211.into();
        let wider: CreateRequest = serde_json::from_value(wider).expect("request");
        assert_ne!(device_fingerprint(&wider), Some(base), "another window");
        request.fingerprints.canvas = Some("0".repeat(64));
        assert_ne!(
            device_fingerprint(&request),
            Some(base),
            "another graphics stack"
        );
        request.fingerprints = crate::protocol::Fingerprints::default();
        assert_eq!(device_fingerprint(&request), None, "none sent");
    }

    #[test]
    fn a_tls_client_unlike_the_browser_its_user_agent_names() {
        let ja4 = |text| Ja4::parse(text).expect("ja4");
        let chrome = ja4("t13d1516h2_8daaf6152771_d8a2da3f94cd");
        let firefox = ja4("t13d1717h2_5b57614c22b0_3cbfd9057e0d");
        let safari = ja4("t13d2014h2_a09f3c656075_14788d8d241b");
        let python = ja4("t13d3112h1_e8f1e7e78f70_b26ce05bbdd6");
        let go = ja4("t13d1312h2_f57a46bbacb6_ab7e3b40a677");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0 Mobile/15E148 Safari/604.1";
        let mac_safari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15";
        let unlike = |ja4: &Ja4, user_agent| tls_unlike_browser(ja4, Some(user_agent), &[]);
        // Each browser with its own library.
        assert!(!unlike(&chrome, CHROME));
        assert!(!unlike(&firefox, FIREFOX));
        assert!(!unlike(&safari, mac_safari));
        assert!(
            !unlike(&safari, iphone),
            "Chrome on iOS uses WebKit's library"
        );
        // Another library under a browser's name.
        assert!(unlike(&python, CHROME));
        assert!(unlike(&go, CHROME));
        assert!(unlike(&chrome, FIREFOX));
        assert!(unlike(&chrome, iphone));
        // No HTTP/2 or no TLS 1.3 offered: no current browser.
        assert!(unlike(&ja4("t13d1516h1_8daaf6152771_d8a2da3f94cd"), CHROME));
        assert!(unlike(&ja4("t12d1516h2_8daaf6152771_d8a2da3f94cd"), CHROME));
        // What no browser family names is not judged; the operator can add a library.
        assert!(!unlike(&python, "python-requests/2.32.3"));
        assert!(!tls_unlike_browser(&python, None, &[]));
        assert!(!tls_unlike_browser(
            &ja4("t13d3112h2_e8f1e7e78f70_b26ce05bbdd6"),
            Some(CHROME),
            &["E8F1E7E78F70".to_owned()]
        ));
    }

    const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";

    fn info(json: serde_json::Value) -> BrowserInformation {
        serde_json::from_value(json).expect("json")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    axum::http::HeaderName::from_static(name),
                    value.parse().expect("header value"),
                )
            })
            .collect()
    }

    fn chrome_headers() -> Vec<(&'static str, &'static str)> {
        vec![
            ("user-agent", CHROME),
            ("accept-language", "en-US,en;q=0.9"),
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-dest", "empty"),
            ("sec-ch-ua", r#""Not:A-Brand";v="8", "Chromium";v="156""#),
            ("sec-ch-ua-mobile", "?0"),
        ]
    }

    fn chrome_page() -> serde_json::Value {
        serde_json::json!({
            "window-navigator-userAgent": CHROME,
            "window-navigator-languages": ["en-US", "en"],
            "window-navigator-userAgentData-brands": "Not:A-Brand;8|Chromium;156",
            "window-navigator-userAgentData-mobile": false,
        })
    }

    #[test]
    fn a_browsers_own_request_is_consistent() {
        assert!(!request_inconsistent(
            &headers(&chrome_headers()),
            &info(chrome_page())
        ));
        // Firefox: no client hints, another Accept-Language weighting.
        let firefox = headers(&[
            ("user-agent", FIREFOX),
            ("accept-language", "de-DE,de;q=0.8,en-US;q=0.5"),
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-dest", "empty"),
        ]);
        let page = info(serde_json::json!({
            "window-navigator-userAgent": FIREFOX,
            "window-navigator-languages": ["de-DE", "de", "en-US"],
            "window-navigator-userAgentData-brands": null,
        }));
        assert!(!request_inconsistent(&firefox, &page));
        // Chromium with client hints turned off reports no brands and sends no hints.
        let mut no_hints = chrome_page();
        no_hints["window-navigator-userAgentData-brands"] = serde_json::Value::Null;
        no_hints["window-navigator-userAgentData-mobile"] = serde_json::Value::Null;
        let without: Vec<_> = chrome_headers()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("sec-ch"))
            .collect();
        assert!(!request_inconsistent(&headers(&without), &info(no_hints)));
    }

    #[test]
    fn a_request_that_disagrees_with_its_page_is_inconsistent() {
        let page = info(chrome_page());
        let without = |dropped: &str| -> HeaderMap {
            headers(
                &chrome_headers()
                    .into_iter()
                    .filter(|(name, _)| *name != dropped)
                    .collect::<Vec<_>>(),
            )
        };
        let replaced = |name: &'static str, value: &'static str| -> HeaderMap {
            let mut pairs = chrome_headers();
            pairs.retain(|(n, _)| *n != name);
            pairs.push((name, value));
            headers(&pairs)
        };
        for (case, request) in [
            ("no user-agent", without("user-agent")),
            (
                "a library's user-agent",
                replaced("user-agent", "python-requests/2.32"),
            ),
            ("no accept-language", without("accept-language")),
            (
                "another language",
                replaced("accept-language", "ru-RU,ru;q=0.9"),
            ),
            ("no fetch metadata from chrome", without("sec-fetch-mode")),
            ("a navigation", replaced("sec-fetch-mode", "navigate")),
            (
                "no client hints from a page with brands",
                without("sec-ch-ua"),
            ),
            (
                "other brands",
                replaced("sec-ch-ua", r#""Google Chrome";v="120""#),
            ),
            (
                "mobile hint on a desktop page",
                replaced("sec-ch-ua-mobile", "?1"),
            ),
        ] {
            assert!(request_inconsistent(&request, &page), "{case}");
        }
        let no_user_agent = info(serde_json::json!({"window-navigator-languages": ["en-US"]}));
        assert!(request_inconsistent(
            &headers(&chrome_headers()),
            &no_user_agent
        ));
    }

    #[test]
    fn headless_is_read_from_the_request_and_the_page() {
        let headless_ua = CHROME.replace("Chrome/", "HeadlessChrome/");
        assert!(headless(
            &headers(&[("user-agent", headless_ua.as_str())]),
            &info(serde_json::json!({}))
        ));
        assert!(headless(
            &HeaderMap::new(),
            &info(
                serde_json::json!({"window-navigator-userAgentData-brands": "HeadlessChrome;156"})
            )
        ));
        assert!(!headless(&headers(&chrome_headers()), &info(chrome_page())));
    }

    #[test]
    fn windowless_desktops_only() {
        let sizes = |outer: (u32, u32), inner: (u32, u32), extra: serde_json::Value| {
            let mut page = serde_json::json!({
                "window-navigator-userAgent": CHROME,
                "window-outerWidth": outer.0, "window-outerHeight": outer.1,
                "window-innerWidth": inner.0, "window-innerHeight": inner.1,
                "window-navigator-maxTouchPoints": 0,
            });
            for (key, value) in extra.as_object().expect("object") {
                page[key] = value.clone();
            }
            info(page)
        };
        let none = serde_json::json!({});
        assert!(windowless(&sizes((1280, 720), (1280, 720), none.clone())));
        assert!(!windowless(&sizes((1050, 780), (1050, 637), none.clone())));
        // Touch points claimed beside a desktop User-Agent switch nothing off …
        let touch = serde_json::json!({"window-navigator-maxTouchPoints": 5});
        assert!(windowless(&sizes((1280, 720), (1280, 720), touch.clone())));
        // … beside a phone's, or a Mac's (iPadOS Safari), they describe a tablet or phone.
        let phone = serde_json::json!({"window-navigator-maxTouchPoints": 5,
            "window-navigator-userAgent": "Mozilla/5.0 (Linux; Android 14) Mobile Safari/537.36"});
        assert!(!windowless(&sizes((390, 844), (390, 844), phone)));
        let ipad = serde_json::json!({"window-navigator-maxTouchPoints": 5,
            "window-navigator-userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15"});
        assert!(!windowless(&sizes((1024, 1366), (1024, 1366), ipad)));
        assert!(!windowless(&sizes(
            (390, 844),
            (390, 844),
            serde_json::json!({"window-navigator-userAgentData-mobile": true})
        )));
        assert!(!windowless(&info(serde_json::json!({}))), "unknown sizes");
    }

    #[test]
    fn a_desktop_window_larger_than_its_screen() {
        let page = |outer: (u32, u32), screen: (u32, u32), user_agent: &str| {
            info(serde_json::json!({
                "window-navigator-userAgent": user_agent,
                "window-outerWidth": outer.0, "window-outerHeight": outer.1,
                "window-screen-width": screen.0, "window-screen-height": screen.1,
            }))
        };
        // Headless Chromium given a window size keeps its 800×600 screen.
        assert!(larger_than_screen(&page((1366, 768), (800, 600), CHROME)));
        // Past the screen in one direction only: stretched over two monitors.
        assert!(!larger_than_screen(&page(
            (1280, 1400),
            (1920, 1080),
            CHROME
        )));
        assert!(!larger_than_screen(&page(
            (3800, 1050),
            (1920, 1080),
            CHROME
        )));
        // A maximised window on Windows reaches 8 px beyond each side.
        assert!(!larger_than_screen(&page(
            (1936, 1056),
            (1920, 1080),
            CHROME
        )));
        assert!(!larger_than_screen(&page(
            (1280, 720),
            (1920, 1080),
            CHROME
        )));
        // Phones report the screen in one orientation whatever the window's.
        let phone = "Mozilla/5.0 (Linux; Android 14) Mobile Safari/537.36";
        assert!(!larger_than_screen(&page((844, 390), (390, 844), phone)));
        assert!(
            !larger_than_screen(&info(serde_json::json!({}))),
            "unknown sizes"
        );
    }

    fn event(json: serde_json::Value) -> UserEvent {
        UserEvent(serde_json::value::to_raw_value(&json).expect("raw"))
    }

    fn mouse(kind: &str, time: f64, x: f64, y: f64) -> UserEvent {
        event(serde_json::json!({
            "type": kind, "isTrusted": true, "timeStamp": time, "detail": u8::from(kind != "mousemove"),
            "x": x, "y": y, "screenX": x + 10.0, "screenY": y + 97.0,
        }))
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_hands_events_are_plausible_and_not_synthetic() {
        let events: Vec<UserEvent> = [
            (212.0, 340.0),
            (236.0, 331.0),
            (271.0, 318.0),
            (300.0, 309.0),
            (318.0, 305.0),
        ]
        .iter()
        .zip(0u8..)
        .map(|((x, y), i)| mouse("mousemove", 17.0f64.mul_add(f64::from(i), 100.0), *x, *y))
        .chain([
            mouse("mousedown", 300.0, 318.0, 305.0),
            mouse("mouseup", 380.0, 318.0, 305.0),
            mouse("click", 380.0, 318.0, 305.0),
            event(serde_json::json!({"type": "keydown", "isTrusted": true, "timeStamp": 900.0})),
        ])
        .collect();
        // Input a hand makes, and nothing else.
        let person = Events {
            input: true,
            ..Events::default()
        };
        assert_eq!(Events::read(&events, SECOND), person);
        // A touch screen taps where it touches, after the finger moved the page.
        let tap = [
            event(serde_json::json!({"type": "touchstart", "isTrusted": true, "timeStamp": 10.0})),
            event(serde_json::json!({"type": "touchmove", "isTrusted": true, "timeStamp": 40.0})),
            event(serde_json::json!({"type": "touchend", "isTrusted": true, "timeStamp": 90.0})),
            event(serde_json::json!({"type": "touchstart", "isTrusted": true, "timeStamp": 300.0})),
            event(serde_json::json!({"type": "touchend", "isTrusted": true, "timeStamp": 380.0})),
            mouse("mousemove", 385.0, 50.0, 60.0),
            mouse("click", 390.0, 50.0, 60.0),
        ];
        assert_eq!(Events::read(&tap, SECOND), person);
        // A pen hovers before it presses.
        let pen = |kind: &str, time: f64| {
            event(
                serde_json::json!({"type": kind, "isTrusted": true, "timeStamp": time,
                "pointerType": "pen", "x": 40.0, "y": time / 10.0}),
            )
        };
        let drawn = [
            pen("pointermove", 10.0),
            pen("pointermove", 26.0),
            pen("pointermove", 42.0),
            pen("pointerdown", 60.0),
            pen("pointerup", 120.0),
            mouse("click", 121.0, 40.0, 4.0),
        ];
        assert_eq!(Events::read(&drawn, SECOND), person);
        // A keyboard user activates the checkbox without a pointer (detail 0).
        let keyboard = [event(
            serde_json::json!({"type": "click", "isTrusted": true, "timeStamp": 10.0, "detail": 0}),
        )];
        assert_eq!(Events::read(&keyboard, SECOND), person);
        // Focus and scroll a script causes as easily: recorded, plausible, no input.
        let caused = [
            event(serde_json::json!({"type": "focus", "isTrusted": true, "timeStamp": 10.0})),
            event(serde_json::json!({"type": "scroll", "isTrusted": true, "timeStamp": 20.0})),
        ];
        assert_eq!(Events::read(&caused, SECOND), Events::default());
    }

    #[test]
    fn made_up_events_are_implausible() {
        let implausible = |events: &[UserEvent], span| Events::read(events, span).implausible;
        let dispatched =
            event(serde_json::json!({"type": "click", "isTrusted": false, "timeStamp": 5.0}));
        assert!(implausible(&[dispatched], SECOND), "dispatched by a script");
        let unknown =
            event(serde_json::json!({"type": "dblclick", "isTrusted": true, "timeStamp": 5.0}));
        assert!(
            implausible(&[unknown], SECOND),
            "not recorded by the widget"
        );
        assert!(
            implausible(&[event(serde_json::json!([1, 2]))], SECOND),
            "not an event"
        );
        let backwards = [
            mouse("mousemove", 5_000.0, 1.0, 1.0),
            mouse("mousemove", 40.0, 9.0, 9.0),
        ];
        assert!(implausible(&backwards, SECOND), "time ran backwards");
        let spread = [
            mouse("mousemove", 0.0, 1.0, 1.0),
            mouse("mousemove", 60_000.0, 9.0, 9.0),
        ];
        assert!(
            implausible(&spread, SECOND),
            "a minute of events in one second"
        );
        // Queued input may come out a little behind a dispatched event; a person's session may
        // hold an event the page's own script dispatched.
        let person = [
            mouse("mousemove", 100.0, 10.0, 10.0),
            event(serde_json::json!({"type": "scroll", "isTrusted": true, "timeStamp": 130.0})),
            mouse("mousemove", 118.0, 14.0, 12.0),
            event(
                serde_json::json!({"type": "click", "isTrusted": false, "timeStamp": 140.0, "detail": 0}),
            ),
            mouse("mousemove", 150.0, 20.0, 15.0),
        ];
        assert!(!implausible(&person, SECOND));
    }

    #[test]
    fn scripted_pointers_are_synthetic() {
        // One move to the target, then the click: a driver's `click()`.
        let teleport = [
            mouse("mousemove", 10.0, 300.0, 200.0),
            mouse("mousedown", 12.0, 300.0, 200.0),
            mouse("mouseup", 14.0, 300.0, 200.0),
            mouse("click", 14.0, 300.0, 200.0),
        ];
        assert!(Events::read(&teleport, SECOND).teleported);
        // A driver's `tap()`: a touch where no finger moved.
        let tap = [
            event(serde_json::json!({"type": "touchstart", "isTrusted": true, "timeStamp": 10.0})),
            event(serde_json::json!({"type": "touchend", "isTrusted": true, "timeStamp": 20.0})),
            mouse("mousemove", 21.0, 300.0, 200.0),
            mouse("click", 22.0, 300.0, 200.0),
        ];
        assert!(Events::read(&tap, SECOND).teleported);
        // A pen pressed where it never hovered.
        let pen = [event(
            serde_json::json!({"type": "pointerdown", "isTrusted": true,
            "timeStamp": 10.0, "pointerType": "pen", "x": 300.0, "y": 200.0}),
        )];
        assert!(Events::read(&pen, SECOND).teleported);
        // Equal steps along a line: a driver's `move(…, {steps})`; steps lost to the widget's
        // throttling leave a line a line.
        let along_line = |steps: &[u8]| -> Vec<UserEvent> {
            steps
                .iter()
                .map(|&i| {
                    let i = f64::from(i);
                    mouse(
                        "mousemove",
                        16.0 * i,
                        31.0f64.mul_add(i, 10.0),
                        18.0f64.mul_add(i, 10.0),
                    )
                })
                .collect()
        };
        let read = Events::read(&along_line(&[0, 1, 2, 3, 4, 5]), SECOND);
        assert!(read.mechanical && !read.implausible);
        let gappy = along_line(&[0, 1, 3, 4, 5, 7]);
        assert!(Events::read(&gappy, SECOND).mechanical);
        // A hand's path bends, even when its speed is steady for a while.
        let curved: Vec<UserEvent> = (0..10u8)
            .map(|i| {
                let t = f64::from(i) / 9.0;
                mouse(
                    "mousemove",
                    16.0 * f64::from(i),
                    300.0f64.mul_add(t, 10.0),
                    (40.0 * t).mul_add(-t, 40.0f64.mul_add(t, 10.0)),
                )
            })
            .collect();
        assert!(!Events::read(&curved, SECOND).mechanical);
        // Short movements prove nothing.
        let short: Vec<UserEvent> = (0..6u8)
            .map(|i| mouse("mousemove", 16.0 * f64::from(i), 10.0 + f64::from(i), 10.0))
            .collect();
        assert!(!Events::read(&short, SECOND).mechanical);
    }

    fn answers(nonces: &[u64]) -> Vec<Answer> {
        nonces
            .iter()
            .zip(0u32..)
            .map(|(nonce, number)| Answer {
                number,
                nonce: format!("tcn{nonce}"),
            })
            .collect()
    }

    #[test]
    fn proof_of_work_faster_than_a_browser_is_too_fast() {
        let work = answers(&[4_000, 9_999]);
        // 10 000 attempts need at least 10 ms in a browser.
        let ms = Duration::from_millis;
        assert!(!solved_too_fast(&work, ms(400), Some(ms(300))));
        assert!(
            solved_too_fast(&work, ms(2), Some(ms(300))),
            "arrived too soon"
        );
        assert!(
            solved_too_fast(&work, ms(400), Some(ms(1))),
            "claims too little"
        );
        assert!(
            !solved_too_fast(&answers(&[3]), ms(1), None),
            "lucky nonces prove nothing"
        );
        assert!(!solved_too_fast(&[], Duration::ZERO, None));
    }

    #[test]
    fn busy_networks() {
        let adaptive = AdaptiveDifficulty::default();
        assert!(!busy_network(30, &adaptive));
        assert!(busy_network(31, &adaptive));
    }

    #[test]
    fn honeypot_rule() {
        assert!(!honeypot_touched(&HoneypotField::untouched()));
        let clean = HoneypotField::untouched().remove(0);
        let filled = HoneypotField {
            value: Some("bot@example.com".into()),
            ..clean.clone()
        };
        assert!(honeypot_touched(&[clean.clone(), filled]));
        let focused = HoneypotField {
            first_interaction_event: Some("focus".into()),
            ..clean
        };
        assert!(honeypot_touched(&[focused]));
    }

    #[test]
    fn integrity_rule() {
        let data = info(serde_json::json!({"a": 1, "b": "x"}));
        let good = integrity_hash(&data).expect("shallow");
        assert!(!integrity_broken(&data, Some(&good)));
        assert!(!integrity_broken(&data, Some(&good.to_uppercase())));
        assert!(integrity_broken(&data, None));
        let altered = info(serde_json::json!({"a": 2, "b": "x"}));
        assert!(integrity_broken(&altered, Some(&good)));
        let deep = info(serde_json::json!({"a": [[[[[1]]]]]}));
        assert!(integrity_broken(&deep, Some(&good)), "too deep to hash");
    }

    #[test]
    fn automation_rule() {
        assert!(automation_flagged(&info(
            serde_json::json!({"dom-automationNote": true})
        )));
        assert!(automation_flagged(&info(
            serde_json::json!({"window-navigator-webdriver": true})
        )));
        assert!(!automation_flagged(&info(
            serde_json::json!({"dom-automationNote": false, "window-navigator-webdriver": null})
        )));
        assert!(!automation_flagged(&info(serde_json::json!({}))));
    }

    #[test]
    fn timing_rules() {
        let t = datetime!(2026-01-01 12:00:00 UTC);
        let ms = |n: i64| time::Duration::milliseconds(n);
        assert!(!create_timing_implausible(Some(t), Some(t + ms(2500))));
        assert!(create_timing_implausible(Some(t), Some(t + ms(20))));
        assert!(create_timing_implausible(Some(t + ms(1)), Some(t)));
        assert!(create_timing_implausible(None, Some(t)));

        let observed = Duration::from_millis(900);
        assert!(!submit_timing_implausible(
            Some(t),
            Some(t + ms(800)),
            observed
        ));
        assert!(submit_timing_implausible(
            Some(t + ms(800)),
            Some(t),
            observed
        ));
        assert!(submit_timing_implausible(
            Some(t),
            Some(t + ms(60_000)),
            observed
        ));
        assert!(submit_timing_implausible(Some(t), None, observed));
    }
}
