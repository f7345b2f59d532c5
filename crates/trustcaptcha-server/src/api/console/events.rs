//! A site's event log in the console: `GET /events` lists its most recent verifications,
//! filtered by decision, signal and time, a page at a time; `GET /events/{at}/{id}` tells one
//! verification's whole story. The same entries are exported by `GET /admin/events`
//! ([`super::exports`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::auth::Caller;
use super::pages::{self, urlencode};
use super::statistics::chosen_site;
use crate::api::error::ApiError;
use crate::signals::Signals;
use crate::state::AppState;
use crate::statistics::log::{self, Logged};
use crate::store::StoreError;

/// Entries one page shows by default, and at most.
const PAGE: usize = 200;
const MOST: usize = 10_000;

/// The filters of the event log.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct EventQuery {
    /// The site's name (the first site when left out).
    pub(crate) site: Option<String>,
    /// `pass` or `block`.
    decision: Option<String>,
    /// A signal's name.
    signal: Option<String>,
    /// The first day shown (`YYYY-MM-DD`).
    from: Option<String>,
    /// The last day shown.
    to: Option<String>,
    /// Entries before this time (milliseconds): the next page.
    before: Option<i64>,
    /// How many, at most.
    limit: Option<usize>,
}

impl EventQuery {
    /// The store query these filters make; `None` fields are left out.
    pub(crate) fn query(&self, default_limit: usize) -> Result<log::Query, ApiError> {
        let empty = |value: &Option<String>| value.clone().filter(|value| !value.is_empty());
        let decision = empty(&self.decision);
        if decision
            .as_deref()
            .is_some_and(|decision| !matches!(decision, "pass" | "block"))
        {
            return Err(ApiError::bad_request("decision must be pass or block"));
        }
        let signal = empty(&self.signal);
        if signal
            .as_ref()
            .is_some_and(|signal| !Signals::all_names().any(|name| name == *signal))
        {
            return Err(ApiError::bad_request("signal must name a detection signal"));
        }
        let millis =
            |day: Option<String>, field: &str, end: bool| -> Result<Option<i64>, ApiError> {
                let Some(day) = day else { return Ok(None) };
                let at = super::statistics::day(&day, field)?;
                let at = if end {
                    at + time::Duration::days(1)
                } else {
                    at
                };
                Ok(Some(crate::store::millis(at)))
            };
        let to = millis(empty(&self.to), "to", true)?.unwrap_or(i64::MAX);
        let to = self.before.map_or(to, |before| before.min(to));
        Ok(log::Query {
            decision,
            signal,
            from: millis(empty(&self.from), "from", false)?.unwrap_or(0),
            to,
            limit: self.limit.unwrap_or(default_limit).clamp(1, MOST),
        })
    }
}

/// Reads `site`'s entries for `query`, this instance's latest included.
pub(crate) async fn read(
    state: &AppState,
    site: &str,
    query: &log::Query,
) -> Result<Vec<Logged>, ApiError> {
    let unavailable = |_| ApiError::from(StoreError::Unavailable(String::new()));
    state.flush_statistics().await.map_err(unavailable)?;
    log::read(&state.store, site, query)
        .await
        .map_err(unavailable)
}

/// `GET /events`.
pub(crate) async fn page(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(filters): Query<EventQuery>,
) -> Result<Response, ApiError> {
    let Some(site) = chosen_site(&state, filters.site.clone())? else {
        let body = html! { p { "No sites are configured." } };
        return Ok(pages::respond(
            StatusCode::OK,
            pages::layout("Event log", Some(&caller), body),
        ));
    };
    let query = filters.query(PAGE)?;
    let entries = read(&state, &site, &query).await?;
    let next = (entries.len() == query.limit)
        .then(|| entries.last().map(|last| crate::store::millis(last.at)))
        .flatten();
    Ok(pages::respond(
        StatusCode::OK,
        pages::layout(
            "Event log",
            Some(&caller),
            list(&site, &filters, &entries, next),
        ),
    ))
}

fn list(site: &str, filters: &EventQuery, entries: &[Logged], next: Option<i64>) -> Markup {
    let chosen = |value: &Option<String>, option: &str| value.as_deref() == Some(option);
    let filter_query = |before: Option<i64>| {
        let mut query = format!("site={}", urlencode(site));
        for (key, value) in [
            ("decision", &filters.decision),
            ("signal", &filters.signal),
            ("from", &filters.from),
            ("to", &filters.to),
        ] {
            if let Some(value) = value.as_ref().filter(|value| !value.is_empty()) {
                query.push_str(&format!("&{key}={}", urlencode(value)));
            }
        }
        if let Some(before) = before {
            query.push_str(&format!("&before={before}"));
        }
        query
    };
    html! {
        h1 { "Event log — " (site) }
        p.muted {
            "The most recent verifications, newest first. "
            a href={"/statistics?site=" (urlencode(site))} { "Statistics" }
            " · export as "
            a href={"/admin/events?" (filter_query(None)) "&format=csv"} { "CSV" } " or "
            a href={"/admin/events?" (filter_query(None)) "&format=jsonl"} { "JSON lines" }
        }
        form.inline method="get" action="/events" {
            input type="hidden" name="site" value=(site);
            label { "Decision "
                select name="decision" {
                    option value="" { "any" }
                    option value="pass" selected[chosen(&filters.decision, "pass")] { "pass" }
                    option value="block" selected[chosen(&filters.decision, "block")] { "block" }
                }
            }
            " "
            label { "Signal "
                select name="signal" {
                    option value="" { "any" }
                    @for name in Signals::all_names() {
                        option value=(name) selected[chosen(&filters.signal, name)] { (name) }
                    }
                }
            }
            " "
            label { "From " input type="date" name="from" value=(filters.from.clone().unwrap_or_default()); }
            " "
            label { "to " input type="date" name="to" value=(filters.to.clone().unwrap_or_default()); }
            " "
            button type="submit" { "Filter" }
        }
        @if entries.is_empty() {
            p #no-events { "No verification matches." }
        } @else {
            div.scroll {
                table #events {
                    thead { tr {
                        th { "Time" } th { "Decision" } th { "Score" } th { "Signals" } th { "Rule" }
                        th { "Country" } th { "Browser" } th { "System" } th { "Network" }
                    } }
                    tbody {
                        @for entry in entries {
                            tr.event data-id=(entry.id) data-decision=(entry.decision) {
                                td { a href={"/events/" (crate::store::millis(entry.at)) "/" (entry.id) "?site=" (urlencode(site))} { (pages::when(entry.at)) } }
                                td { strong { (entry.decision) } }
                                td { (format!("{:.2}", entry.score)) }
                                td { (entry.signals.join(", ")) }
                                td { (entry.rule.clone().unwrap_or_default()) }
                                td { (entry.country) }
                                td { (entry.browser) }
                                td { (entry.system) }
                                td { code { (entry.network) } }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                p { a #older href={"/events?" (filter_query(Some(next)))} { "Older" } }
            }
        }
    }
}

/// `GET /events/{at}/{id}`: one verification's story.
pub(crate) async fn story(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path((at, id)): Path<(i64, String)>,
    Query(filters): Query<EventQuery>,
) -> Result<Response, ApiError> {
    let Some(site) = chosen_site(&state, filters.site)? else {
        return Err(ApiError::not_found("no site has that name"));
    };
    let unavailable = |_| ApiError::from(StoreError::Unavailable(String::new()));
    state.flush_statistics().await.map_err(unavailable)?;
    let Some(entry) = log::find(&state.store, &site, at, &id)
        .await
        .map_err(unavailable)?
    else {
        return Err(ApiError::not_found(
            "no such verification in the event log (it may have left it)",
        ));
    };
    let body = html! {
        h1 { "Verification " code { (entry.id) } }
        p { a href={"/events?site=" (urlencode(&site))} { "Back to the event log" } }
        dl.story {
            dt { "Site" } dd { (site) }
            dt { "Challenge handed out" } dd { (entry.started_at.map(pages::when).unwrap_or_default()) }
            dt { "Finished" } dd { (pages::when(entry.at)) " (" (entry.how.replace('_', " ")) ", " (entry.solve_ms) " ms after the challenge)" }
            dt { "Decision" } dd { strong { (entry.decision) } }
            dt { "Score" } dd { (format!("{:.2}", entry.score)) }
            dt { "Access rule" } dd { (entry.rule.clone().unwrap_or_else(|| "none".into())) }
            dt { "Page" } dd { (entry.origin) }
            dt { "Country" } dd { (entry.country) }
            dt { "Browser" } dd { (entry.browser) }
            dt { "System" } dd { (entry.system) }
            dt { "Network" } dd { code { (entry.network) } }
        }
        h2 { "Signals" }
        @if entry.signals.is_empty() {
            p { "No detection signal fired." }
        } @else {
            table #signals {
                thead { tr { th { "Signal" } th { "Weight" } } }
                tbody {
                    @for signal in &entry.signals {
                        tr { td { (signal) } td { (Signals::weight_of(signal).map(|weight| format!("{weight:.1}")).unwrap_or_default()) } }
                    }
                }
            }
            p.muted { "The score is the sum of the weights, at most 1; the operators' guide describes each signal (“Detection”)." }
        }
    };
    Ok(pages::respond(
        StatusCode::OK,
        pages::layout("Verification", Some(&caller), body),
    ))
}
