//! The access line: what the log says about one request (method, route, status, the client's
//! network, latency, site, the reason of a refusal, the detection signals, the TLS client's
//! JA4), at info level under the target `trustcaptcha::access`.
//!
//! Every request logs one, so it is the log's hot path. Through `tracing_subscriber`'s
//! formatter a line cost about 2 µs of CPU: the event's fields visited one by one through
//! `fmt::Debug`, the timestamp computed from the calendar each time, the line copied twice.
//! When the command line's log is installed (`log_output`), it registers its buffer here with
//! [`write_to`], and [`AccessLine::log`] writes the line itself, byte for byte as that formatter
//! would in the text or JSON format (the tests compare the two): the date and time of day are
//! cached per second, the address's digits written directly. `RUST_LOG` still decides whether
//! the line is written at all. A line this writer was not made for (a site name that needs
//! escaping, say) and every line of a process without that log (a library's user with a
//! subscriber of its own, the tests) goes out as an ordinary `tracing` event.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::tls::Ja4;

/// The access log's target.
pub(crate) const TARGET: &str = "trustcaptcha::access";

/// What the access log says about one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AccessLine<'a> {
    /// `GET`, `POST`, `OPTIONS`, `HEAD` or `other`.
    pub(crate) method: &'static str,
    /// The route template (a closed set), or `unmatched`.
    pub(crate) route: &'static str,
    /// The answer's status.
    pub(crate) status: u16,
    /// The client's network as the limits count it, or only its block.
    pub(crate) network: Option<IpNet>,
    /// From the request to the answer.
    pub(crate) latency: Duration,
    /// The site's name, when known.
    pub(crate) site: Option<&'a str>,
    /// A refusal's error code.
    pub(crate) reason: Option<&'static str>,
    /// The detection signals of a finished verification, comma-separated.
    pub(crate) signals: Option<&'a str>,
    /// The JA4 fingerprint of a create request's TLS client.
    pub(crate) tls: Option<&'a Ja4>,
}

/// Where [`AccessLine::log`] writes lines itself, registered by the command line's log.
struct Output {
    json: bool,
    write: Box<dyn Fn(&[u8]) + Send + Sync>,
}

static OUTPUT: OnceLock<Output> = OnceLock::new();

/// Has [`AccessLine::log`] write lines itself with `write` (a buffered log's), in the JSON format
/// or the default text format of `tracing_subscriber::fmt` without colours, as the process's
/// global subscriber would. Once per process: a second call changes nothing.
pub(crate) fn write_to(json: bool, write: Box<dyn Fn(&[u8]) + Send + Sync>) {
    let _ = OUTPUT.set(Output { json, write });
}

thread_local! {
    /// The line being written on this thread.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(256));
    /// The timestamp's first 20 characters (`2026-12-04T11:12:35.`) and the second they are of.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl AccessLine<'_> {
    /// Logs the line, unless `RUST_LOG` turns the access log off.
    pub(crate) fn log(&self) {
        if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            return;
        }
        let written = OUTPUT.get().is_some_and(|output| {
            LINE.with_borrow_mut(|line| {
                line.clear();
                let rendered = self.render(line, SystemTime::now(), output.json);
                if rendered.is_some() {
                    (output.write)(line.as_bytes());
                }
                rendered.is_some()
            })
        });
        if !written {
            self.event();
        }
    }

    /// The line as a `tracing` event, for whatever subscriber the process has.
    fn event(&self) {
        tracing::info!(
            target: TARGET,
            method = self.method,
            route = self.route,
            status = self.status,
            network = self.network.map(tracing::field::display),
            latency_ms = millis(self.latency),
            site = self.site,
            reason = self.reason,
            signals = self.signals,
            tls = self.tls.map(tracing::field::display),
        );
    }

    /// Appends the line as [`Self::event`] would be written at `now`; `None` (with part of it
    /// appended) when a value would need the general formatter (escaping, say).
    fn render(&self, line: &mut String, now: SystemTime, json: bool) -> Option<()> {
        // Method, route and reason are this crate's own constants.
        let tls = self.tls.map(Ja4::as_str);
        for text in [self.site, self.signals, tls].into_iter().flatten() {
            plain(text).then_some(())?;
        }
        let form = if json { &JSON } else { &TEXT };
        line.push_str(form.start);
        timestamp(line, now)?;
        line.push_str(form.method);
        line.push_str(self.method);
        line.push_str(form.route);
        line.push_str(self.route);
        line.push_str(form.status);
        line.push_str(itoa::Buffer::new().format(self.status));
        if let Some(network) = self.network {
            line.push_str(form.network);
            write_network(line, network);
            line.push_str(form.display_end);
        }
        line.push_str(form.latency);
        write_millis(line, millis(self.latency))?;
        let texts = [
            (form.site, self.site),
            (form.reason, self.reason),
            (form.signals, self.signals),
        ];
        for (before, text) in texts {
            if let Some(text) = text {
                line.push_str(before);
                line.push_str(text);
                line.push('"');
            }
        }
        if let Some(tls) = tls {
            line.push_str(form.tls);
            line.push_str(tls);
            line.push_str(form.display_end);
        }
        line.push_str(form.end);
        Some(())
    }
}

/// The fixed text of a line in one format, around its values: strings quoted in both formats,
/// `Display` values (network, JA4) unquoted in text and strings in JSON, numbers bare.
struct Form {
    start: &'static str,
    /// After the timestamp, up to the method's value.
    method: &'static str,
    route: &'static str,
    status: &'static str,
    network: &'static str,
    /// After a `Display` value.
    display_end: &'static str,
    latency: &'static str,
    site: &'static str,
    reason: &'static str,
    signals: &'static str,
    tls: &'static str,
    end: &'static str,
}

/// `tracing_subscriber`'s default text format, without colours.
const TEXT: Form = Form {
    start: "",
    method: "  INFO trustcaptcha::access: method=\"",
    route: "\" route=\"",
    status: "\" status=",
    network: " network=",
    display_end: "",
    latency: " latency_ms=",
    site: " site=\"",
    reason: " reason=\"",
    signals: " signals=\"",
    tls: " tls=",
    end: "\n",
};

/// `tracing_subscriber`'s JSON format.
const JSON: Form = Form {
    start: "{\"timestamp\":\"",
    method: "\",\"level\":\"INFO\",\"fields\":{\"method\":\"",
    route: "\",\"route\":\"",
    status: "\",\"status\":",
    network: ",\"network\":\"",
    display_end: "\"",
    latency: ",\"latency_ms\":",
    site: ",\"site\":\"",
    reason: ",\"reason\":\"",
    signals: ",\"signals\":\"",
    tls: ",\"tls\":\"",
    end: "},\"target\":\"trustcaptcha::access\"}\n",
};

/// The latency in milliseconds to the microsecond: `as_secs_f64() * 1000.0` would write float
/// noise (0.058217000000000005).
fn millis(latency: Duration) -> f64 {
    (latency.as_secs_f64() * 1e6).round() / 1e3
}

/// Whether `text` is written the same quoted by `fmt::Debug` and by JSON, and as it is between
/// the quotes: printable ASCII without quotes or backslashes.
fn plain(text: &str) -> bool {
    text.bytes()
        .all(|byte| (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\')
}

/// `192.0.2.7/32` (an IPv6 network as `ipnet` writes it).
fn write_network(line: &mut String, network: IpNet) {
    match network.addr() {
        IpAddr::V4(address) => {
            for (index, octet) in address.octets().into_iter().enumerate() {
                if index > 0 {
                    line.push('.');
                }
                line.push_str(itoa::Buffer::new().format(octet));
            }
            line.push('/');
            line.push_str(itoa::Buffer::new().format(network.prefix_len()));
        }
        IpAddr::V6(_) => {
            let _ = write!(line, "{network}");
        }
    }
}

/// `2026-12-04T11:12:35.123456Z`, as `tracing_subscriber`'s system-time timer writes it, or
/// `None` before 1970 or after 9999.
fn timestamp(line: &mut String, now: SystemTime) -> Option<()> {
    let since = now.duration_since(UNIX_EPOCH).ok()?;
    let second = since.as_secs();
    SECOND.with_borrow_mut(|(cached, prefix)| {
        if *cached != second {
            let time = time::OffsetDateTime::from_unix_timestamp(i64::try_from(second).ok()?)
                .ok()
                .filter(|time| time.year() <= 9999)?;
            prefix.clear();
            write!(
                prefix,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                time.year(),
                u8::from(time.month()),
                time.day(),
                time.hour(),
                time.minute(),
                time.second()
            )
            .ok()?;
            *cached = second;
        }
        line.push_str(prefix);
        Some(())
    })?;
    write_digits(line, since.subsec_micros(), 6);
    line.push('Z');
    Some(())
}

/// The last `count` decimal digits of `value`, zero-padded.
fn write_digits(line: &mut String, value: u32, count: usize) {
    let mut digits = [b'0'; 10];
    let mut rest = value;
    for digit in digits[..count].iter_mut().rev() {
        // Below 10: a digit.
        *digit += u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
    }
    line.extend(digits[..count].iter().map(|&digit| char::from(digit)));
}

/// A number of milliseconds as [`millis`] makes it, `round(µs) / 1000`, written as its shortest
/// decimal (what `fmt::Debug` and JSON both write for it: `0.058`, `12.5`, `3.0`); `None` for
/// any other number.
fn write_millis(line: &mut String, millis: f64) -> Option<()> {
    if !(0.0..1e12).contains(&millis) {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "in range and not negative"
    )]
    let thousandths = (millis * 1000.0).round() as u64;
    #[expect(clippy::cast_precision_loss, reason = "below 2^53")]
    let exact = thousandths as f64 / 1000.0 == millis;
    exact.then_some(())?;
    let (whole, fraction) = (thousandths / 1000, thousandths % 1000);
    line.push_str(itoa::Buffer::new().format(whole));
    line.push('.');
    // The thousandths without trailing zeros, at least one digit.
    let (value, count) = match fraction {
        0 => (0, 1),
        _ if fraction % 100 == 0 => (fraction / 100, 1),
        _ if fraction % 10 == 0 => (fraction / 10, 2),
        _ => (fraction, 3),
    };
    write_digits(line, u32::try_from(value).unwrap_or(0), count);
    Some(())
}

#[cfg(all(test, feature = "test-support"))]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;
    use tracing::Subscriber;

    use super::*;
    use crate::testing::LogCapture;

    /// `line` as `tracing_subscriber`'s formatter writes its event (text or JSON, no colours),
    /// and as [`AccessLine::render`] writes it, each without its timestamp; `None` for the
    /// second when `render` hands the line on.
    fn both_ways(line: &AccessLine<'_>, json: bool) -> (String, Option<String>) {
        let capture = LogCapture::default();
        let writer = capture.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let subscriber: Box<dyn Subscriber + Send + Sync> = if json {
            Box::new(builder.json().finish())
        } else {
            Box::new(builder.finish())
        };
        tracing::subscriber::with_default(subscriber, || line.event());
        let without_time = |text: &str| {
            let cut = if json {
                text.find("\",\"level\"").expect("a timestamp")
            } else {
                text.find(' ').expect("a timestamp")
            };
            text[cut..].to_owned()
        };
        let mut fast = String::new();
        let rendered = line.render(&mut fast, SystemTime::now(), json);
        (
            without_time(&capture.text()),
            rendered.map(|()| without_time(&fast)),
        )
    }

    fn ja4() -> Ja4 {
        crate::tls::Ja4::parse("t13d1516h2_8daaf6152771_02713d6af862").expect("a JA4")
    }

    fn line<'a>(site: Option<&'a str>, latency: Duration, tls: Option<&'a Ja4>) -> AccessLine<'a> {
        AccessLine {
            method: "POST",
            route: "/v2/verifications/{id}/challenges",
            status: 201,
            network: Some(crate::networks::network(IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, 1, 2, 3, 4, 5, 6,
            )))),
            latency,
            site,
            reason: None,
            signals: Some("no_events,webdriver"),
            tls,
        }
    }

    #[test]
    fn an_access_line_is_written_as_the_general_formatter_writes_it() {
        let ja4 = ja4();
        let full = AccessLine {
            method: "GET",
            route: "/v2/verifications/{id}/results",
            status: 403,
            network: Some(crate::networks::block(IpAddr::V4(Ipv4Addr::new(
                192, 0, 2, 7,
            )))),
            latency: Duration::from_micros(58),
            site: Some("shop"),
            reason: Some("invalid_key"),
            signals: None,
            tls: None,
        };
        let bare = AccessLine {
            network: None,
            site: None,
            reason: None,
            ..full
        };
        let lines = [
            full,
            bare,
            line(Some("a"), Duration::from_millis(2), Some(&ja4)),
            line(None, Duration::ZERO, None),
        ];
        for line in lines {
            for json in [false, true] {
                let (general, fast) = both_ways(&line, json);
                assert_eq!(fast.as_ref(), Some(&general), "written fast, and the same");
            }
        }
    }

    #[test]
    fn what_needs_escaping_is_left_to_the_general_formatter() {
        for (site, micros) in [
            ("a \"quoted\" name", 12),
            ("caf\u{e9}", 12),
            ("line\nbreak", 12),
            ("back\\slash", 12),
            ("shop", u64::MAX),
        ] {
            let line = line(Some(site), Duration::from_micros(micros), None);
            for json in [false, true] {
                assert_eq!(both_ways(&line, json).1, None, "{site:?} {micros}");
            }
        }
    }

    #[test]
    fn the_timestamp_is_rfc_3339_to_the_microsecond() {
        for (seconds, micros) in [(0, 0), (1_764_846_755, 123_456), (253_402_300_799, 999_999)] {
            let now = UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(micros);
            let mut line = String::new();
            timestamp(&mut line, now).expect("in range");
            let expected = time::OffsetDateTime::from(now)
                .format(time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
                ))
                .expect("formatted");
            assert_eq!(line, expected);
        }
        let later = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert_eq!(timestamp(&mut String::new(), later), None, "after 9999");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any site name (a configured one can hold anything), latency and address: the line
        /// is the general formatter's, or is left to it.
        #[test]
        fn any_line_is_written_as_the_general_formatter_writes_it(
            site in proptest::option::of(".{0,12}"),
            micros in prop_oneof![0..5_000_u64, any::<u64>()],
            address in any::<IpAddr>(),
            json in any::<bool>(),
        ) {
            let mut line = line(site.as_deref(), Duration::from_micros(micros), None);
            line.network = Some(crate::networks::network(address));
            let (general, fast) = both_ways(&line, json);
            if let Some(fast) = fast {
                prop_assert_eq!(fast, general);
            }
        }
    }
}
