//! `GET /statistics`: one site's statistics (from the store, so every
//! instance's) over the last hour, day or week, as bar charts drawn on the server in SVG: the
//! page loads nothing else, and works offline and without JavaScript.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::Caller;
use super::pages::{self, urlencode};
use crate::api::error::ApiError;
use crate::state::AppState;
use crate::statistics::{self, Statistics, WINDOWS};
use crate::store::StoreError;

/// The query: `site` (a configured name; the first site when left out) and `window`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ConsoleQuery {
    site: Option<String>,
    #[serde(default = "day")]
    window: String,
}

fn day() -> String {
    "day".to_owned()
}

/// Two-letter country codes the console looks for (ISO 3166-1 alpha-2).
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW unknown";

/// Browser families as results name them (the first word).
const BROWSERS: &str =
    "Chrome Firefox Safari Edge Opera Vivaldi Internet Yandex Samsung UC Sleipnir Other unknown";

/// Operating-system families as results name them (the first word).
const SYSTEMS: &str =
    "Windows Mac iOS iPad iPhone Android Linux ChromeOS FreeBSD BlackBerry Other unknown";

/// `GET /`.
pub(crate) async fn page(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(query): Query<ConsoleQuery>,
) -> Result<Response, ApiError> {
    let layout = |navigation: &str, body: &str| {
        pages::layout(
            "Statistics",
            Some(&caller),
            maud::PreEscaped(format!("{STYLE}{navigation}{body}")),
        )
    };
    let names: Vec<String> = state.site_index().site_names().map(str::to_owned).collect();
    let Some(site) = query.site.or_else(|| names.first().cloned()) else {
        return Ok(pages::respond(
            StatusCode::OK,
            layout("No sites are configured.", ""),
        ));
    };
    if !names.contains(&site) {
        return Err(ApiError::not_found("no site has that name"));
    }
    if !WINDOWS.iter().any(|(name, _)| *name == query.window) {
        return Err(ApiError::bad_request("window must be hour, day or week"));
    }
    let now = state.clock.now();
    let unavailable = |_| ApiError::from(StoreError::Unavailable(String::new()));
    state
        .statistics
        .flush(&state.store, now)
        .await
        .map_err(unavailable)?;
    let named = |prefix: &str, names: &str| -> Vec<String> {
        names
            .split(' ')
            .map(|name| format!("{prefix}:{name}"))
            .collect()
    };
    let mut events = statistics::reported_events();
    events.extend(named("country", COUNTRIES));
    events.extend(named("browser", BROWSERS));
    events.extend(named("os", SYSTEMS));
    let counts = Statistics::read(&state.store, &site, &query.window, &events, now)
        .await
        .map_err(unavailable)?;
    Ok(pages::respond(
        StatusCode::OK,
        layout(&navigation(&names, &site, &query.window), &charts(&counts)),
    ))
}

fn navigation(names: &[String], site: &str, window: &str) -> String {
    let mut html = String::from("<div class=\"stats\"><nav>");
    for name in names.iter().take(200) {
        let class = if name == site {
            " class=\"current\""
        } else {
            ""
        };
        let _ = write!(
            html,
            "<a{class} href=\"?site={}&amp;window={window}\">{}</a> ",
            escape(&urlencode(name)),
            escape(name)
        );
    }
    html.push_str("</nav><nav>");
    for (name, _) in WINDOWS {
        let class = if name == window {
            " class=\"current\""
        } else {
            ""
        };
        let _ = write!(
            html,
            "<a{class} href=\"?site={}&amp;window={name}\">last {name}</a> ",
            escape(&urlencode(site))
        );
    }
    let _ = write!(
        html,
        "</nav><h1>{} — last {window}</h1></div>",
        escape(site)
    );
    html
}

fn charts(counts: &BTreeMap<String, u64>) -> String {
    let get = |event: &str| counts.get(event).copied().unwrap_or(0);
    let reported = statistics::reported_events();
    // In the order the events are reported (score and solve-time buckets ascending).
    let with_prefix = |prefix: &str| -> Vec<(String, u64)> {
        reported
            .iter()
            .filter_map(|event| {
                event
                    .strip_prefix(prefix)
                    .map(|label| (label.to_owned(), get(event)))
            })
            .collect()
    };
    let top = |prefix: &str| {
        let mut entries: Vec<(String, u64)> = counts
            .iter()
            .filter(|(_, count)| **count > 0)
            .filter_map(|(event, count)| {
                event
                    .strip_prefix(prefix)
                    .map(|label| (label.to_owned(), *count))
            })
            .collect();
        entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        entries.truncate(8);
        entries
    };
    let solved = get("solved");
    let passed = get("passed");
    let pass_rate = if solved == 0 {
        "no verification finished".to_owned()
    } else {
        format!(
            "{:.1} % passed ({passed} of {solved})",
            passed as f64 * 100.0 / solved as f64
        )
    };
    let outcomes: Vec<(String, u64)> = ["created", "solved", "passed", "blocked", "failed"]
        .iter()
        .map(|event| ((*event).to_owned(), get(event)))
        .collect();
    let nonzero = |entries: Vec<(String, u64)>| -> Vec<(String, u64)> {
        entries
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .collect()
    };
    let mut html = format!(
        "<p id=\"pass-rate\">{}</p><div class=\"grid\">",
        escape(&pass_rate)
    );
    for (id, title, entries) in [
        ("verifications", "Verifications", outcomes),
        (
            "retrievals",
            "Result retrievals",
            nonzero(with_prefix("retrieval:")),
        ),
        (
            "refusals",
            "Refused requests",
            nonzero(with_prefix("refused:")),
        ),
        (
            "unserved",
            "Not served (the store failed)",
            nonzero(with_prefix("unserved:")),
        ),
        ("scores", "Score", with_prefix("score:")),
        (
            "signals",
            "Detection signals",
            nonzero(with_prefix("signal:")),
        ),
        ("solve-times", "Solve time", with_prefix("solve:")),
        ("countries", "Top countries", top("country:")),
        ("browsers", "Browsers", top("browser:")),
        ("systems", "Operating systems", top("os:")),
    ] {
        html.push_str(&bars(id, title, &entries));
    }
    html.push_str("</div>");
    html
}

/// A horizontal bar chart in SVG; every bar carries its label and its count as text.
fn bars(id: &str, title: &str, entries: &[(String, u64)]) -> String {
    const ROW: usize = 22;
    const LABEL: usize = 120;
    const WIDTH: usize = 260;
    let max = entries
        .iter()
        .map(|(_, count)| *count)
        .max()
        .unwrap_or(0)
        .max(1);
    let height = ROW * entries.len().max(1) + 4;
    let mut svg = format!(
        "<figure id=\"{id}\"><figcaption>{title}</figcaption><svg role=\"img\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\">",
        LABEL + WIDTH + 60,
        LABEL + WIDTH + 60
    );
    if entries.is_empty() {
        svg.push_str("<text x=\"0\" y=\"16\" class=\"empty\">nothing yet</text>");
    }
    for (row, (label, count)) in entries.iter().enumerate() {
        let y = row * ROW + 2;
        let width = usize::try_from(*count * WIDTH as u64 / max).unwrap_or(WIDTH);
        let _ = write!(
            svg,
            "<g class=\"bar\" data-label=\"{label}\" data-count=\"{count}\"><text x=\"0\" y=\"{}\">{label}</text><rect x=\"{LABEL}\" y=\"{y}\" width=\"{width}\" height=\"{}\"/><text x=\"{}\" y=\"{}\" class=\"count\">{count}</text></g>",
            y + 15,
            ROW - 6,
            LABEL + width + 6,
            y + 15,
            label = escape(label),
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// The charts' own style, inside the console's page.
const STYLE: &str = r"<style>
.stats nav a{margin-right:.6rem;color:#2456a6;text-decoration:none}
.stats nav a.current{font-weight:600;text-decoration:underline}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(460px,100%),1fr));gap:1rem}
figure{margin:0;padding:.8rem;border:1px solid #dde3ec;border-radius:6px;background:#fff;overflow-x:auto}
figcaption{font-weight:600;margin-bottom:.4rem}
rect{fill:#3b7dd8}text{font-size:12px;fill:#1d2430}.count{fill:#4a5568}
#pass-rate{font-size:1.2rem}
</style>";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
