//! Exports of a site's history on the admin API, as JSON, CSV or JSON lines (`format`):
//!
//! * `GET /admin/series?site=NAME&range=…`: the statistics over a range (the console's
//!   ranges, [`super::statistics::Range`]), one row per bucket and event that was counted;
//! * `GET /admin/events?site=NAME&decision=…&signal=…&from=…&to=…&limit=…`: the event log.
//!
//! A CSV starts with its header; a JSON line is one object per row.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use serde_json::json;

use super::events::EventQuery;
use super::statistics::{Range, chosen_site, table};
use crate::api::error::ApiError;
use crate::state::AppState;
use crate::statistics::log::Logged;
use crate::store::catalog::rfc3339;

/// How an export is written.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    /// One JSON document.
    #[default]
    Json,
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// The site and the format of an export; the range or filters are read apart (serde's
/// `flatten` would read every number in a query as text).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Export {
    site: Option<String>,
    #[serde(default)]
    format: Format,
}

fn named(site: Option<String>, state: &AppState) -> Result<String, ApiError> {
    match site {
        None => Err(ApiError::bad_request("name the site: site=NAME")),
        Some(site) => chosen_site(state, Some(site))?
            .ok_or_else(|| ApiError::not_found("no site has that name")),
    }
}

/// `GET /admin/series`.
pub(crate) async fn series(
    State(state): State<AppState>,
    Query(query): Query<Export>,
    Query(range): Query<Range>,
) -> Result<Response, ApiError> {
    let site = named(query.site, &state)?;
    let span = range.span(&state, state.clock.now())?;
    let table = table(&state, &site, span).await?;
    let at = |bucket: i64| {
        time::OffsetDateTime::from_unix_timestamp(bucket)
            .map(rfc3339)
            .unwrap_or_default()
    };
    let rows = || {
        table
            .buckets
            .iter()
            .enumerate()
            .flat_map(|(index, bucket)| {
                table.counts.iter().filter_map(move |(event, counts)| {
                    let count = counts.get(index).copied().unwrap_or(0);
                    (count > 0).then_some((*bucket, event.as_str(), count))
                })
            })
    };
    let resolution = table.resolution.name();
    match query.format {
        Format::Json => Ok(axum::Json(json!({
            "site": site,
            "resolution": resolution,
            "buckets": table.buckets.iter().map(|bucket| at(*bucket)).collect::<Vec<_>>(),
            "counts": table.counts,
        }))
        .into_response()),
        Format::Jsonl => Ok(lines(
            rows().map(|(bucket, event, count)| {
                json!({"bucket": at(bucket), "resolution": resolution, "event": event, "count": count})
            }),
            &format!("{site}-statistics"),
        )),
        Format::Csv => csv(
            ["bucket", "resolution", "event", "count"],
            rows().map(|(bucket, event, count)| {
                vec![at(bucket), resolution.to_owned(), event.to_owned(), count.to_string()]
            }),
            &format!("{site}-statistics"),
        ),
    }
}

/// `GET /admin/events`.
pub(crate) async fn events(
    State(state): State<AppState>,
    Query(query): Query<Export>,
    Query(filters): Query<EventQuery>,
) -> Result<Response, ApiError> {
    let site = named(query.site, &state)?;
    let filters = filters.query(1_000)?;
    let entries = super::events::read(&state, &site, &filters).await?;
    let name = format!("{site}-events");
    match query.format {
        Format::Json => Ok(axum::Json(json!({ "site": site, "events": entries })).into_response()),
        Format::Jsonl => Ok(lines(entries.iter().map(|entry| json!(entry)), &name)),
        Format::Csv => csv(EVENT_COLUMNS, entries.iter().map(event_row), &name),
    }
}

const EVENT_COLUMNS: [&str; 14] = [
    "id",
    "at",
    "decision",
    "how",
    "score",
    "signals",
    "rule",
    "origin",
    "country",
    "browser",
    "system",
    "network",
    "started_at",
    "solve_ms",
];

fn event_row(entry: &Logged) -> Vec<String> {
    vec![
        entry.id.to_string(),
        rfc3339(entry.at),
        entry.decision.clone(),
        entry.how.clone(),
        format!("{:.2}", entry.score),
        entry.signals.join(" "),
        entry.rule.clone().unwrap_or_default(),
        entry.origin.clone(),
        entry.country.clone(),
        entry.browser.clone(),
        entry.system.clone(),
        entry.network.clone(),
        entry.started_at.map(rfc3339).unwrap_or_default(),
        entry.solve_ms.to_string(),
    ]
}

/// An attachment named `name` with its extension.
fn attachment(body: Vec<u8>, content_type: &'static str, name: &str, extension: &str) -> Response {
    // The name is a site's name: only letters, digits, dots, dashes and underscores survive.
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{extension}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn lines(rows: impl Iterator<Item = serde_json::Value>, name: &str) -> Response {
    let mut body = Vec::new();
    for row in rows {
        body.extend_from_slice(row.to_string().as_bytes());
        body.push(b'\n');
    }
    attachment(body, "application/x-ndjson", name, "jsonl")
}

fn csv<const N: usize>(
    header: [&str; N],
    rows: impl Iterator<Item = Vec<String>>,
    name: &str,
) -> Result<Response, ApiError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let write = |error: csv::Error| {
        tracing::error!(%error, "an export was not written");
        ApiError::internal()
    };
    writer.write_record(header).map_err(write)?;
    for row in rows {
        writer
            .write_record(row.iter().map(|field| spreadsheet_safe(field).into_owned()))
            .map_err(write)?;
    }
    let body = writer
        .into_inner()
        .map_err(|error| write(error.into_error().into()))?;
    Ok(attachment(body, "text/csv; charset=utf-8", name, "csv"))
}

/// A field a spreadsheet will not run as a formula: text a visitor controls (an origin, a
/// browser's name) starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading
/// apostrophe.
fn spreadsheet_safe(field: &str) -> std::borrow::Cow<'_, str> {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r']) && field.parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{field}"))
    } else {
        std::borrow::Cow::Borrowed(field)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_field_that_would_be_a_formula_is_not_one() {
        assert_eq!(
            super::spreadsheet_safe("=HYPERLINK(\"x\")"),
            "'=HYPERLINK(\"x\")"
        );
        assert_eq!(super::spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(
            super::spreadsheet_safe("-0.5"),
            "-0.5",
            "a number stays one"
        );
        assert_eq!(
            super::spreadsheet_safe("https://shop.example"),
            "https://shop.example"
        );
    }
}
