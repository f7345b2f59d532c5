//! The console's pages and the forms they post: each handler reads its form, calls the
//! catalog's operation (the same one the JSON API calls), and answers with the page again:
//! after a change, a redirect to it (so that reloading does not post twice); with a new key, the
//! page showing it once; with problems, the page listing them (422).

use std::collections::HashMap;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Caller;
use super::inputs::{AuditQuery, KeyToMake, NewSite, PasswordChange, Revision, Rotation, Settings};
use super::pages::{self, Notice};
use crate::api::error::ApiError;
use crate::catalog::sites::{self, KeyKind};
use crate::catalog::{Refused, Role, audit, users};
use crate::state::AppState;
use crate::store::{Collection, Store as _};

/// A refusal as the notice on the page.
pub(super) fn problems(refused: Refused) -> Notice {
    match refused {
        Refused::Invalid(error) => Notice {
            problems: error.problems,
            ..Notice::default()
        },
        // The store's reason may name internals (addresses, paths): it is logged, not shown.
        Refused::Store(_) => Notice::problem("the store is unavailable: try again shortly"),
        other => Notice::problem(other.to_string()),
    }
}

pub(super) fn status_of(refused: &Refused) -> StatusCode {
    match refused {
        Refused::NotFound(_) => StatusCode::NOT_FOUND,
        Refused::Conflict => StatusCode::CONFLICT,
        Refused::FromFile => StatusCode::FORBIDDEN,
        Refused::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        Refused::Invalid(_) | Refused::BadRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// When each console key was last used, by key id (this server's latest uses written first,
/// as the statistics page does with its counts).
async fn last_uses(state: &AppState) -> HashMap<String, String> {
    state.flush_key_uses().await;
    let entries = state
        .store
        .entries(Collection::KeyUses, state.clock.now())
        .await
        .unwrap_or_default();
    entries
        .into_iter()
        .filter_map(|entry| {
            let value: serde_json::Value = serde_json::from_str(&entry.value).ok()?;
            let at = time::OffsetDateTime::parse(
                value.get("at")?.as_str()?,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()?;
            Some((entry.id, pages::when(at)))
        })
        .collect()
}

/// The site's page with `notice`, answered with `status`.
async fn site_page(
    state: &AppState,
    caller: &Caller,
    site_key: Uuid,
    notice: &Notice,
    status: StatusCode,
) -> Response {
    let uses = last_uses(state).await;
    match pages::site(state, caller, site_key, notice, &uses) {
        Some(page) => pages::respond(status, page),
        None => ApiError::not_found("no site has that key").into_response(),
    }
}

/// After a change of a site: back to its page, or the page with the problems.
async fn after_change(
    state: &AppState,
    caller: &Caller,
    site_key: Uuid,
    outcome: Result<(), Refused>,
) -> Response {
    match outcome {
        Ok(()) => Redirect::to(&format!("/sites/{site_key}")).into_response(),
        Err(refused) => {
            let status = status_of(&refused);
            site_page(state, caller, site_key, &problems(refused), status).await
        }
    }
}

/// `GET /`: the sites.
pub(crate) async fn sites(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    pages::respond(
        StatusCode::OK,
        pages::sites(&state, &caller, &Notice::default()),
    )
}

/// `GET /sites/{site_key}`.
pub(crate) async fn site(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site_key): Path<Uuid>,
) -> Response {
    site_page(
        &state,
        &caller,
        site_key,
        &Notice::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /sites`: makes a site and shows its page with its first API key, once.
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<NewSite>,
) -> Response {
    match sites::create(&state, &caller.actor, &form.name).await {
        Ok((site_key, key)) => {
            let notice = Notice {
                new_key: Some((KeyKind::Api, "default".into(), key.secret)),
                ..Notice::default()
            };
            site_page(&state, &caller, site_key, &notice, StatusCode::CREATED).await
        }
        Err(refused) => {
            let status = status_of(&refused);
            pages::respond(status, pages::sites(&state, &caller, &problems(refused)))
        }
    }
}

/// The settings form's fields. Check boxes are sent only when checked.
#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    revision: Option<u64>,
    #[serde(default)]
    allowed_origins: String,
    difficulty: String,
    tasks: String,
    score_threshold: String,
    #[serde(default)]
    hourly_quota: String,
    locked: Option<String>,
    minimal_data_mode: Option<String>,
    risk_scoring: Option<String>,
    #[serde(default)]
    allow_ips: String,
    #[serde(default)]
    block_ips: String,
    #[serde(default)]
    countries_allowed: String,
    #[serde(default)]
    countries_blocked: String,
}

/// The words of `text` (split at white space and commas) as a TOML array of strings.
fn words(text: &str) -> toml::Value {
    toml::Value::Array(
        text.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|word| !word.is_empty())
            .map(|word| toml::Value::String(word.to_owned()))
            .collect(),
    )
}

/// A number field as a TOML value: an integer, a float, or text the check will name.
fn number(text: &str) -> toml::Value {
    let text = text.trim();
    text.parse::<i64>()
        .map(toml::Value::Integer)
        .or_else(|_| text.parse::<f64>().map(toml::Value::Float))
        .unwrap_or_else(|_| toml::Value::String(text.to_owned()))
}

/// `POST /sites/{site_key}/settings`.
pub(crate) async fn settings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site_key): Path<Uuid>,
    Form(form): Form<SettingsForm>,
) -> Response {
    let outcome = sites::edit_settings(&state, &caller.actor, site_key, form.revision, |table| {
        table.insert("allowed_origins".into(), words(&form.allowed_origins));
        table.insert("difficulty".into(), number(&form.difficulty));
        table.insert("tasks".into(), number(&form.tasks));
        table.insert("score_threshold".into(), number(&form.score_threshold));
        if form.hourly_quota.trim().is_empty() {
            table.remove("hourly_quota");
        } else {
            table.insert("hourly_quota".into(), number(&form.hourly_quota));
        }
        for (key, value) in [
            ("locked", &form.locked),
            ("minimal_data_mode", &form.minimal_data_mode),
            ("risk_scoring", &form.risk_scoring),
        ] {
            table.insert(key.into(), toml::Value::Boolean(value.is_some()));
        }
        for (key, text) in [
            ("allow_ips", &form.allow_ips),
            ("block_ips", &form.block_ips),
            ("countries_allowed", &form.countries_allowed),
            ("countries_blocked", &form.countries_blocked),
        ] {
            table.insert(key.into(), words(text));
        }
        Ok(())
    })
    .await;
    after_change(&state, &caller, site_key, outcome).await
}

/// `POST /sites/{site_key}/toml`: every setting at once, as the file writes them.
pub(crate) async fn settings_toml(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site_key): Path<Uuid>,
    Form(form): Form<Settings>,
) -> Response {
    let outcome = sites::set_settings(
        &state,
        &caller.actor,
        site_key,
        form.revision,
        form.settings,
    )
    .await;
    after_change(&state, &caller, site_key, outcome).await
}

/// The rules form: an operation on the list, and a new rule's fields for `add`.
#[derive(Deserialize)]
pub(crate) struct RuleForm {
    revision: Option<u64>,
    op: String,
    index: Option<usize>,
    action: Option<String>,
    #[serde(default)]
    networks: String,
    #[serde(default)]
    countries: String,
    #[serde(default)]
    browsers: String,
    #[serde(default)]
    operating_systems: String,
    #[serde(default)]
    difficulty: String,
}

/// `POST /sites/{site_key}/rules`: add, move up or down, remove.
pub(crate) async fn rules(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site_key): Path<Uuid>,
    Form(form): Form<RuleForm>,
) -> Response {
    let outcome = sites::edit_settings(&state, &caller.actor, site_key, form.revision, |table| {
        let rules = table
            .entry("rules")
            .or_insert_with(|| toml::Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or("`rules` is not a list")?;
        let index = form.index.unwrap_or(usize::MAX);
        match form.op.as_str() {
            "add" => {
                let mut rule = toml::Table::new();
                rule.insert(
                    "action".into(),
                    form.action.clone().unwrap_or_default().into(),
                );
                for (key, text) in [
                    ("networks", &form.networks),
                    ("countries", &form.countries),
                    ("browsers", &form.browsers),
                    ("operating_systems", &form.operating_systems),
                ] {
                    let list = words(text);
                    if list.as_array().is_some_and(|list| !list.is_empty()) {
                        rule.insert(key.into(), list);
                    }
                }
                if !form.difficulty.trim().is_empty() {
                    rule.insert("difficulty".into(), number(&form.difficulty));
                }
                rules.push(toml::Value::Table(rule));
            }
            "up" if index > 0 && index < rules.len() => rules.swap(index - 1, index),
            "down" if index + 1 < rules.len() => rules.swap(index, index + 1),
            "remove" if index < rules.len() => {
                rules.remove(index);
            }
            _ => return Err("no such rule or operation".to_owned()),
        }
        Ok(())
    })
    .await;
    after_change(&state, &caller, site_key, outcome).await
}

/// `POST /sites/{site_key}/delete`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site_key): Path<Uuid>,
    Form(form): Form<Revision>,
) -> Response {
    match sites::delete(&state, &caller.actor, site_key, form.revision).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(refused) => {
            let status = status_of(&refused);
            site_page(&state, &caller, site_key, &problems(refused), status).await
        }
    }
}

/// `POST /sites/{site_key}/keys`: a new key, shown once.
pub(crate) async fn add_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site_key): Path<Uuid>,
    Form(form): Form<KeyToMake>,
) -> Response {
    let outcome = sites::add_key(&state, &caller.actor, site_key, form.kind, &form.name).await;
    shown_once(
        &state,
        &caller,
        site_key,
        outcome,
        form.kind,
        form.name.trim(),
    )
    .await
}

/// The site's page with a new key shown once, or with why there is none.
async fn shown_once(
    state: &AppState,
    caller: &Caller,
    site_key: Uuid,
    outcome: Result<sites::NewKey, Refused>,
    kind: KeyKind,
    name: &str,
) -> Response {
    match outcome {
        Ok(key) => {
            let notice = Notice {
                new_key: Some((kind, name.to_owned(), key.secret)),
                ..Notice::default()
            };
            site_page(state, caller, site_key, &notice, StatusCode::OK).await
        }
        Err(refused) => {
            let status = status_of(&refused);
            site_page(state, caller, site_key, &problems(refused), status).await
        }
    }
}

/// `POST /sites/{site_key}/keys/{key_id}/rotate`: the new key, shown once.
pub(crate) async fn rotate_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((site_key, key_id)): Path<(Uuid, Uuid)>,
    Form(form): Form<Rotation>,
) -> Response {
    let index = state.site_index();
    let old = index
        .lookup(site_key)
        .and_then(|(_, entry)| entry)
        .and_then(|entry| entry.stored.keys.iter().find(|key| key.id == key_id))
        .map(|key| (key.kind, key.name.clone()));
    let (kind, name) = old.unwrap_or((KeyKind::Api, String::new()));
    let overlap = Duration::from_secs(form.overlap_secs);
    let outcome = sites::rotate_key(&state, &caller.actor, site_key, key_id, overlap).await;
    shown_once(&state, &caller, site_key, outcome, kind, &name).await
}

/// `POST /sites/{site_key}/keys/{key_id}/revoke`.
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((site_key, key_id)): Path<(Uuid, Uuid)>,
) -> Response {
    let outcome = sites::revoke_key(&state, &caller.actor, site_key, key_id).await;
    after_change(&state, &caller, site_key, outcome).await
}

/// `GET /audit`.
pub(crate) async fn audit_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let page = query
        .limit
        .unwrap_or(200)
        .clamp(1, crate::store::catalog::AUDIT_PAGE);
    match audit::read(&state, query.after, page).await {
        Ok(entries) => pages::respond(
            StatusCode::OK,
            pages::audit(&caller, &entries, query.after, page),
        ),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// `GET /users`.
pub(crate) async fn users_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    users_answer(&state, &caller, &Notice::default(), StatusCode::OK).await
}

async fn users_answer(
    state: &AppState,
    caller: &Caller,
    notice: &Notice,
    status: StatusCode,
) -> Response {
    match users::list(state).await {
        Ok(list) => pages::respond(status, pages::users(caller, &list, notice)),
        Err(error) => ApiError::from(error).into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct UserForm {
    name: String,
    role: String,
    #[serde(default)]
    password: String,
}

/// `POST /users`.
pub(crate) async fn add_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<UserForm>,
) -> Response {
    let Some(role) = Role::parse(&form.role) else {
        return users_answer(
            &state,
            &caller,
            &Notice::problem("the role is admin or viewer"),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let password = Some(form.password).filter(|password| !password.is_empty());
    match users::add(&state, &caller.actor, form.name.trim(), role, password).await {
        Ok(()) => Redirect::to("/users").into_response(),
        Err(refused) => {
            let status = status_of(&refused);
            users_answer(&state, &caller, &problems(refused), status).await
        }
    }
}

/// `POST /password`: the signed-in user's own password.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<PasswordChange>,
) -> Response {
    let outcome =
        users::change_password(&state, &caller.actor.name, form.current, form.password).await;
    let notice = match outcome {
        Ok(()) => Notice::said("Your password was changed."),
        Err(refused) => problems(refused),
    };
    let status = if notice.problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    users_answer(&state, &caller, &notice, status).await
}

/// `POST /users/{name}/remove`.
pub(crate) async fn remove_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    match users::remove(&state, &caller.actor, &name).await {
        Ok(()) => Redirect::to("/users").into_response(),
        Err(refused) => {
            let status = status_of(&refused);
            users_answer(&state, &caller, &problems(refused), status).await
        }
    }
}
