//! `GET /statistics`: one site's statistics over a range (the last 24 hours, 7, 30 or 90 days,
//! or the days chosen), from the store, so every instance's: verifications and refusals as
//! lines over time, the detection signals as stacked areas, and the range's totals as bars.
//! Drawn on the server ([`super::charts`]): the page loads nothing else, and works offline and
//! without JavaScript. The range's rules ([`Range`]) are the exports' too.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use time::OffsetDateTime;

use super::auth::Caller;
use super::charts::{self, Line};
use super::pages::{self, urlencode};
use crate::api::error::ApiError;
use crate::state::AppState;
use crate::statistics::series::{self, Table};
use crate::statistics::{self};
use crate::store::{Resolution, StoreError};

/// Which part of a site's history to show or export.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct Range {
    /// `24h`, `7d`, `30d`, `90d` or `custom` (with `from` and `to`); `24h` when left out.
    range: Option<String>,
    /// The first day (`YYYY-MM-DD`) of a custom range.
    from: Option<String>,
    /// The last day of a custom range.
    to: Option<String>,
    /// `hour` or `day`; by default hours up to seven days, days beyond.
    resolution: Option<String>,
}

/// A range made concrete.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub(crate) resolution: Resolution,
    pub(crate) from: OffsetDateTime,
    pub(crate) to: OffsetDateTime,
}

pub(crate) fn day(text: &str, field: &str) -> Result<OffsetDateTime, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, format)
        .map(|date| date.midnight().assume_utc())
        .map_err(|_| ApiError::bad_request(format!("{field} must be a day, YYYY-MM-DD")))
}

impl Range {
    /// The range's name as the page's links write it.
    fn name(&self) -> &str {
        self.range.as_deref().unwrap_or("24h")
    }

    /// The span at `now`: hourly buckets only as far back as they are kept.
    pub(crate) fn span(&self, state: &AppState, now: OffsetDateTime) -> Result<Span, ApiError> {
        let days = |days: i64| time::Duration::days(days);
        let (from, to) = match self.name() {
            "24h" => (now - time::Duration::hours(23), now),
            "7d" => (now - days(7) + time::Duration::hours(1), now),
            "30d" => (now - days(29), now),
            "90d" => (now - days(89), now),
            "custom" => {
                let from = day(self.from.as_deref().unwrap_or_default(), "from")?;
                let to = day(self.to.as_deref().unwrap_or_default(), "to")? + days(1)
                    - time::Duration::SECOND;
                if to < from {
                    return Err(ApiError::bad_request("to must not be before from"));
                }
                (from, to.min(now))
            }
            _ => {
                return Err(ApiError::bad_request(
                    "range must be 24h, 7d, 30d, 90d or custom",
                ));
            }
        };
        let resolution = match self.resolution.as_deref() {
            None if to - from <= days(7) => Resolution::Hour,
            None => Resolution::Day,
            Some(name) => Resolution::named(name)
                .ok_or_else(|| ApiError::bad_request("resolution must be hour or day"))?,
        };
        let kept = i64::from(match resolution {
            Resolution::Hour => state.settings().hourly_statistics_days,
            Resolution::Day => state.settings().daily_statistics_days,
        });
        let buckets = (to - from).whole_seconds() / resolution.seconds() + 1;
        if from < now - days(kept)
            || usize::try_from(buckets).unwrap_or(usize::MAX) > series::MAX_BUCKETS
        {
            return Err(ApiError::bad_request(format!(
                "{} statistics are kept {kept} days and read {} buckets at most",
                resolution.name(),
                series::MAX_BUCKETS
            )));
        }
        Ok(Span {
            resolution,
            from,
            to,
        })
    }

    /// The query string that names this range (for links to exports).
    pub(crate) fn query(&self) -> String {
        let mut query = format!("range={}", urlencode(self.name()));
        for (key, value) in [
            ("from", &self.from),
            ("to", &self.to),
            ("resolution", &self.resolution),
        ] {
            if let Some(value) = value {
                query.push_str(&format!("&{key}={}", urlencode(value)));
            }
        }
        query
    }
}

/// The site asked for: a configured name; the first site when left out.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SiteQuery {
    pub(crate) site: Option<String>,
}

/// The site `name` names, or the first one when none is named.
pub(crate) fn chosen_site(
    state: &AppState,
    name: Option<String>,
) -> Result<Option<String>, ApiError> {
    let names: Vec<String> = state.site_index().site_names().map(str::to_owned).collect();
    match name {
        None => Ok(names.into_iter().next()),
        Some(name) if names.contains(&name) => Ok(Some(name)),
        Some(_) => Err(ApiError::not_found("no site has that name")),
    }
}

/// Reads `site`'s table over `span`, this instance's latest counts included.
pub(crate) async fn table(state: &AppState, site: &str, span: Span) -> Result<Table, ApiError> {
    let unavailable = |_| ApiError::from(StoreError::Unavailable(String::new()));
    state.flush_statistics().await.map_err(unavailable)?;
    series::read(
        &state.store,
        site,
        span.resolution,
        (span.from, span.to),
        state.clock.now(),
    )
    .await
    .map_err(unavailable)
}

/// `GET /statistics`.
pub(crate) async fn page(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(query): Query<SiteQuery>,
    Query(range): Query<Range>,
) -> Result<Response, ApiError> {
    let Some(site) = chosen_site(&state, query.site)? else {
        let body = html! { p { "No sites are configured." } };
        return Ok(pages::respond(
            StatusCode::OK,
            pages::layout("Statistics", Some(&caller), body),
        ));
    };
    let span = range.span(&state, state.clock.now())?;
    let table = table(&state, &site, span).await?;
    let names: Vec<String> = state.site_index().site_names().map(str::to_owned).collect();
    let body = html! {
        (navigation(&names, &site, &range))
        (over_time(&table))
        (totals(&table))
    };
    Ok(pages::respond(
        StatusCode::OK,
        pages::layout("Statistics", Some(&caller), body),
    ))
}

fn navigation(names: &[String], site: &str, range: &Range) -> Markup {
    let link = |site: &str, range: &str| format!("?site={}&range={range}", urlencode(site));
    let export = |what: &str, format: &str| {
        format!(
            "/admin/{what}?site={}&{}&format={format}",
            urlencode(site),
            range.query()
        )
    };
    html! {
        div.stats {
            nav {
                @for name in names.iter().take(200) {
                    a.current[name == site] href=(link(name, range.name())) { (name) } " "
                }
            }
            nav {
                @for (name, label) in [("24h", "last 24 hours"), ("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days")] {
                    a.current[name == range.name()] href=(link(site, name)) { (label) } " "
                }
            }
            form.inline method="get" action="/statistics" {
                input type="hidden" name="site" value=(site);
                input type="hidden" name="range" value="custom";
                label { "From " input type="date" name="from" value=(range.from.clone().unwrap_or_default()) required; }
                " "
                label { "to " input type="date" name="to" value=(range.to.clone().unwrap_or_default()) required; }
                " "
                button type="submit" { "Show" }
            }
            h1 { (site) }
            p.muted {
                "Export: statistics as "
                a href=(export("series", "csv")) { "CSV" } " or "
                a href=(export("series", "jsonl")) { "JSON lines" }
                "; the event log as "
                a href=(export("events", "csv")) { "CSV" } " or "
                a href=(export("events", "jsonl")) { "JSON lines" }
                " · "
                a href={"/events?site=" (urlencode(site))} { "Event log" }
            }
        }
        style { (maud::PreEscaped(STYLE)) }
    }
}

/// The lines of verifications and refusals, and the stacked signals.
fn over_time(table: &Table) -> Markup {
    let line = |event: &str, label: &str, counts: Vec<u64>| Line {
        event: event.to_owned(),
        label: label.to_owned(),
        counts,
    };
    let outcomes = [
        line("created", "created", table.of("created")),
        line("passed", "passed", table.of("passed")),
        line(
            "blocked:score",
            "blocked by score",
            table.of("blocked:score"),
        ),
        line("blocked:rule", "blocked by rule", table.of("blocked:rule")),
        line("refused", "refused requests", table.sum_of("refused:")),
        line("retrieval:ok", "results fetched", table.of("retrieval:ok")),
        line(
            "retrieval:failover",
            "failover results",
            table.of("retrieval:failover"),
        ),
    ];
    let signals: Vec<Line> = crate::signals::Signals::all_names()
        .filter_map(|name| {
            let event = format!("signal:{name}");
            table
                .counts
                .get(&event)
                .map(|counts| line(&event, name, counts.clone()))
        })
        .collect();
    html! {
        (charts::lines("over-time", "Verifications over time", &table.buckets, table.resolution, &outcomes))
        (charts::stacked("signals-over-time", "Detection signals over time", &table.buckets, table.resolution, &signals))
    }
}

/// The range's totals as bars.
fn totals(table: &Table) -> Markup {
    let counts: BTreeMap<String, u64> = table
        .counts
        .iter()
        .map(|(event, counts)| (event.clone(), counts.iter().sum()))
        .collect();
    let get = |event: &str| counts.get(event).copied().unwrap_or(0);
    let reported = statistics::reported_events();
    // In the order the events are reported (score and solve-time buckets ascending).
    let with_prefix = |prefix: &str, all: bool| -> Vec<(String, u64)> {
        reported
            .iter()
            .filter_map(|event| {
                let label = event.strip_prefix(prefix)?;
                let count = get(event);
                (all || count > 0).then(|| (label.to_owned(), count))
            })
            .collect()
    };
    let top = |prefix: &str| {
        let mut entries: Vec<(String, u64)> = counts
            .iter()
            .filter(|(_, count)| **count > 0)
            .filter_map(|(event, count)| Some((event.strip_prefix(prefix)?.to_owned(), *count)))
            .collect();
        entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        entries.truncate(8);
        entries
    };
    let (solved, passed) = (get("solved"), get("passed"));
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
    let charts = [
        ("verifications", "Verifications", outcomes),
        (
            "retrievals",
            "Result retrievals",
            with_prefix("retrieval:", false),
        ),
        (
            "refusals",
            "Refused requests",
            with_prefix("refused:", false),
        ),
        (
            "unserved",
            "Not served (the store failed)",
            with_prefix("unserved:", false),
        ),
        ("scores", "Score", with_prefix("score:", true)),
        (
            "signals",
            "Detection signals",
            with_prefix("signal:", false),
        ),
        ("solve-times", "Solve time", with_prefix("solve:", true)),
        ("countries", "Top countries", top("country:")),
        ("browsers", "Browsers", top("browser:")),
        ("systems", "Operating systems", top("os:")),
    ];
    html! {
        h2 { "Totals" }
        p #pass-rate { (pass_rate) }
        div.grid {
            @for (id, title, entries) in &charts {
                (charts::bars(id, title, entries))
            }
        }
    }
}

/// The charts' own style, inside the console's page.
const STYLE: &str = r"
.stats nav a{margin-right:.6rem;color:#2456a6;text-decoration:none}
.stats nav a.current{font-weight:600;text-decoration:underline}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(460px,100%),1fr));gap:1rem}
figure{margin:0 0 1rem;padding:.8rem;border:1px solid #dde3ec;border-radius:6px;background:#fff;overflow-x:auto}
figure.chart svg.plot{width:100%;height:auto;max-width:900px}
.stats form label{display:inline-block;margin-right:.6rem}
figcaption{font-weight:600;margin-bottom:.4rem}
.bar rect{fill:#3b7dd8}text{font-size:12px;fill:#1d2430}.count{fill:#4a5568}
.tick{font-size:10px;fill:#4a5568}line.rule{stroke:#e2e7ef}
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4rem 1rem;margin:.4rem 0}
table.numbers{border-collapse:collapse;font-size:.8rem}table.numbers td,table.numbers th{padding:.1rem .5rem;border-bottom:1px solid #e2e7ef;text-align:right}
#pass-rate{font-size:1.2rem}
";
