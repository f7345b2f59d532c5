//! Webhooks in the console and the admin API: list, make (the signing secret shown once),
//! remove, send a test, and read a webhook's delivery log. The operations are
//! `catalog::webhooks` (the catalog, audited) and `crate::webhooks` (delivery).
//!
//! * pages: `GET /webhooks`, `POST /webhooks`, `POST /webhooks/{id}/remove`,
//!   `POST /webhooks/{id}/test`, `GET /webhooks/{id}` (its deliveries);
//! * API: `GET|POST /admin/webhooks`, `DELETE /admin/webhooks/{id}`,
//!   `POST /admin/webhooks/{id}/test`, `GET /admin/webhooks/{id}/deliveries`.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Redirect, Response};
use axum::{Extension, Json};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::forms::{problems, status_of};
use super::json::{once, refused};
use super::pages::{self, Notice, csrf_field, is_admin, notice, urlencode, when};
use crate::alerts::Kind;
use crate::api::error::ApiError;
use crate::api::extract::JsonBody;
use crate::catalog::Refused;
use crate::catalog::webhooks::{self as catalog, Webhook};
use crate::state::AppState;
use crate::webhooks::{self as delivery, Attempt};

/// Deliveries a webhook's page shows.
const SHOWN: usize = 200;

/// A webhook to make.
#[derive(Debug, Deserialize)]
pub(crate) struct NewWebhook {
    url: String,
    /// A site's name; none (or empty): every site and the server's own alerts.
    #[serde(default)]
    site: Option<String>,
    /// The kinds wanted; none: every kind.
    #[serde(default)]
    events: Vec<String>,
}

fn attempt_json(attempt: &Attempt) -> Value {
    json!(attempt)
}

/// `GET /admin/webhooks`.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let webhooks = catalog::list(&state).await?;
    Ok(Json(json!({
        "webhooks": webhooks.iter().map(Webhook::shown).collect::<Vec<_>>(),
        "kinds": Kind::ALL.map(Kind::name),
    })))
}

/// `POST /admin/webhooks`: 201 with the webhook and its secret (shown once).
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<NewWebhook>,
) -> Response {
    let site = body.site.as_deref().filter(|site| !site.is_empty());
    match catalog::add(&state, &caller.actor, &body.url, site, &body.events).await {
        Ok(webhook) => {
            let mut shown = webhook.shown();
            shown["secret"] = json!(webhook.secret);
            once(StatusCode::CREATED, shown)
        }
        Err(error) => refused(error),
    }
}

/// `DELETE /admin/webhooks/{id}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    match catalog::remove(&state, &caller.actor, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => refused(error),
    }
}

/// `POST /admin/webhooks/{id}/test`: one attempt, now; how it went.
pub(crate) async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match delivery::test(&state, &id).await? {
        Some(attempt) => Ok(Json(attempt_json(&attempt))),
        None => Err(ApiError::not_found("no such webhook")),
    }
}

/// `GET /admin/webhooks/{id}/deliveries`: the latest attempts, newest first.
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if catalog::find(&state, &id).await?.is_none() {
        return Err(ApiError::not_found("no such webhook"));
    }
    let attempts = delivery::deliveries(&state, &id, delivery::LOG.entries).await?;
    Ok(Json(
        json!({ "deliveries": attempts.iter().map(attempt_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /webhooks`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    answer(&state, &caller, &Notice::default(), None, StatusCode::OK).await
}

async fn answer(
    state: &AppState,
    caller: &Caller,
    shown: &Notice,
    made: Option<&Webhook>,
    status: StatusCode,
) -> Response {
    match catalog::list(state).await {
        Ok(list) => {
            let sites: Vec<String> = state.site_index().site_names().map(str::to_owned).collect();
            pages::respond(status, list_page(caller, &list, &sites, shown, made))
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// `POST /webhooks`: the form's fields as pairs, since `events` repeats.
pub(crate) async fn add(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let events: Vec<String> = fields
        .iter()
        .filter(|(key, _)| key == "events")
        .map(|(_, value)| value.clone())
        .collect();
    let site = field("site").filter(|site| !site.is_empty());
    let url = field("url").unwrap_or_default();
    match catalog::add(&state, &caller.actor, url, site, &events).await {
        Ok(webhook) => {
            let said = Notice::said("The webhook was made.");
            answer(&state, &caller, &said, Some(&webhook), StatusCode::CREATED).await
        }
        Err(error) => {
            let status = status_of(&error);
            answer(&state, &caller, &problems(error), None, status).await
        }
    }
}

/// `POST /webhooks/{id}/remove`.
pub(crate) async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    match catalog::remove(&state, &caller.actor, &id).await {
        Ok(()) => Redirect::to("/webhooks").into_response(),
        Err(error) => {
            let status = status_of(&error);
            answer(&state, &caller, &problems(error), None, status).await
        }
    }
}

/// `POST /webhooks/{id}/test`: the webhook's page, with how the test went.
pub(crate) async fn send_test(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let notice = match delivery::test(&state, &id).await {
        Ok(Some(attempt)) if attempt.delivered() => Notice::said(format!(
            "The test was delivered: {} in {} ms.",
            attempt.status.unwrap_or_default(),
            attempt.millis
        )),
        Ok(Some(attempt)) => Notice::problem(format!(
            "The test was not taken: {}.",
            attempt.status.map_or_else(
                || attempt.error.unwrap_or_default(),
                |status| format!("status {status}")
            )
        )),
        Ok(None) => problems(Refused::NotFound("webhook")),
        Err(error) => problems(Refused::Store(error)),
    };
    deliveries_answer(&state, &caller, &id, &notice).await
}

/// `GET /webhooks/{id}`.
pub(crate) async fn deliveries_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    deliveries_answer(&state, &caller, &id, &Notice::default()).await
}

async fn deliveries_answer(
    state: &AppState,
    caller: &Caller,
    id: &str,
    shown: &Notice,
) -> Response {
    let webhook = match catalog::find(state, id).await {
        Ok(Some(webhook)) => webhook,
        Ok(None) => return ApiError::not_found("no such webhook").into_response(),
        Err(error) => return ApiError::from(error).into_response(),
    };
    match delivery::deliveries(state, id, SHOWN).await {
        Ok(attempts) => pages::respond(
            StatusCode::OK,
            deliveries_view(caller, &webhook, &attempts, shown),
        ),
        Err(error) => ApiError::from(error).into_response(),
    }
}

fn scope(webhook: &Webhook) -> String {
    webhook
        .site
        .clone()
        .unwrap_or_else(|| "every site and the server".to_owned())
}

fn kinds(webhook: &Webhook) -> String {
    if webhook.events.is_empty() {
        "every kind".to_owned()
    } else {
        webhook.events.join(", ")
    }
}

fn list_page(
    caller: &Caller,
    webhooks: &[Webhook],
    sites: &[String],
    shown: &Notice,
    made: Option<&Webhook>,
) -> Markup {
    let admin = is_admin(caller);
    let body = html! {
        h1 { "Webhooks" }
        (notice(shown))
        @if let Some(made) = made {
            section.secret role="status" {
                h2 { "Signing secret of " code { (made.id) } }
                p { "Copy it now: it is shown only this once. Receivers check each delivery's "
                    code { "trustcaptcha-signature" } " with it (see the operators' guide, “Webhooks”)." }
                pre id="new-key" { (made.secret) }
                button.quiet type="button" data-copy="new-key" { "Copy" }
            }
        }
        section.scroll {
            @if webhooks.is_empty() { p #no-webhooks { "No webhook yet." } }
            @else {
                table #webhooks {
                    thead { tr { th { "URL" } th { "For" } th { "Alerts" } th { "Made" } th { "" } } }
                    tbody {
                        @for webhook in webhooks {
                            tr data-id=(webhook.id) {
                                td { a href={ "/webhooks/" (urlencode(&webhook.id)) } { (webhook.url) } }
                                td { (scope(webhook)) }
                                td { (kinds(webhook)) }
                                td { (when(webhook.created_at)) }
                                td {
                                    @if admin {
                                        form.inline method="post" action={ "/webhooks/" (urlencode(&webhook.id)) "/test" } {
                                            (csrf_field(caller))
                                            button.quiet type="submit" { "Send a test" }
                                        }
                                        " "
                                        form.inline method="post" action={ "/webhooks/" (urlencode(&webhook.id)) "/remove" } {
                                            (csrf_field(caller))
                                            button.danger type="submit" { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if admin {
            section {
                h2 { "Add a webhook" }
                form method="post" action="/webhooks" {
                    (csrf_field(caller))
                    div.row {
                        div { label for="webhook-url" { "URL" } input id="webhook-url" name="url" type="url" required maxlength="2048" placeholder="https://hooks.example.com/trustcaptcha"; }
                        div { label for="webhook-site" { "For" }
                            select id="webhook-site" name="site" {
                                option value="" { "every site and the server" }
                                @for site in sites.iter().take(1_000) { option value=(site) { (site) } }
                            }
                        }
                    }
                    fieldset {
                        legend { "Alerts (none ticked: every kind)" }
                        @for kind in Kind::ALL.iter().filter(|kind| **kind != Kind::WebhookTest) {
                            label.inline { input type="checkbox" name="events" value=(kind.name()); " " (kind.name()) } " "
                        }
                    }
                    p { button type="submit" { "Add" } }
                }
            }
        }
    };
    pages::layout("Webhooks", Some(caller), body)
}

fn deliveries_view(
    caller: &Caller,
    webhook: &Webhook,
    attempts: &[Attempt],
    shown: &Notice,
) -> Markup {
    let body = html! {
        h1 { "Webhook " code { (webhook.id) } }
        p { a href="/webhooks" { "All webhooks" } }
        (notice(shown))
        dl {
            dt { "URL" } dd { (webhook.url) }
            dt { "For" } dd { (scope(webhook)) }
            dt { "Alerts" } dd { (kinds(webhook)) }
        }
        @if is_admin(caller) {
            form.inline method="post" action={ "/webhooks/" (urlencode(&webhook.id)) "/test" } {
                (csrf_field(caller))
                button.quiet type="submit" { "Send a test" }
            }
        }
        h2 { "Deliveries" }
        @if attempts.is_empty() { p #no-deliveries { "Nothing was sent yet." } }
        @else {
            div.scroll {
                table #deliveries {
                    thead { tr { th { "Time" } th { "Alert" } th { "Attempt" } th { "Answer" } th { "Took" } } }
                    tbody {
                        @for attempt in attempts {
                            tr data-delivered=(attempt.delivered()) {
                                td { (when(attempt.at)) }
                                td { (attempt.event) br; code { (attempt.delivery) } }
                                td { (attempt.attempt) }
                                td { @if let Some(status) = attempt.status { (status) } @else { (attempt.error.clone().unwrap_or_default()) } }
                                td { (attempt.millis) " ms" }
                            }
                        }
                    }
                }
            }
        }
    };
    pages::layout("Webhook", Some(caller), body)
}
