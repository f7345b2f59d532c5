//! The console's actions as a JSON API under `/admin/` (documented in `docs/admin-openapi.json`),
//! for automation with the admin token and for anyone who prefers `curl`: the same catalog
//! operations as the pages' forms, the same checks, the same audit log.

use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::Caller;
use super::forms::status_of;
use super::inputs::{AuditQuery, KeyToMake, NewSite, PasswordChange, Revision, Rotation, Settings};
use crate::api::error::ApiError;
use crate::api::extract::JsonBody;
use crate::catalog::sites::{self, CatalogSite, NewKey};
use crate::catalog::{Refused, Role, audit, users};
use crate::config::Site;
use crate::state::AppState;

/// A refusal as JSON: `{"error", "message", "problems": [{"location", "message"}]}`.
pub(super) fn refused(refused: Refused) -> Response {
    let status = status_of(&refused);
    let code = match &refused {
        Refused::NotFound(_) => "not_found",
        Refused::Conflict => "conflict",
        Refused::FromFile => "from_file",
        Refused::Store(_) => "store_unavailable",
        Refused::Invalid(_) => "invalid",
        Refused::BadRequest(_) => "bad_request",
    };
    let problems: Vec<Value> = match &refused {
        Refused::Invalid(error) => error
            .problems
            .iter()
            .map(|(location, message)| json!({"location": location, "message": message}))
            .collect(),
        _ => Vec::new(),
    };
    let message = match &refused {
        Refused::Store(_) => "the store is unavailable".to_owned(),
        other => other.to_string(),
    };
    (
        status,
        Json(json!({"error": code, "message": message, "problems": problems})),
    )
        .into_response()
}

/// A site as the API shows it: never a key's digest.
fn site_json(site: &Site, catalog: Option<&CatalogSite>) -> Value {
    let mut value = json!({
        "name": site.name,
        "site_key": site.site_key,
        "source": if catalog.is_some() { "console" } else { "file" },
        "locked": site.locked,
        "minimal_data_mode": site.minimal_data_mode,
        "hourly_quota": site.hourly_quota,
        "difficulty": site.difficulty,
        "tasks": site.tasks,
        "score_threshold": site.score_threshold,
    });
    if let Some(entry) = catalog {
        value["revision"] = json!(entry.revision);
        value["settings"] = json!(entry.stored.settings);
        value["keys"] = entry
            .stored
            .keys
            .iter()
            .map(sites::Key::public)
            .collect::<Vec<_>>()
            .into();
    }
    value
}

fn new_key_json(key: &NewKey) -> Value {
    json!({"id": key.id, "key": key.secret})
}

/// The answer that shows a secret: never cached.
pub(super) fn once(status: StatusCode, body: Value) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// `GET /admin/sites`.
pub(crate) async fn list(State(state): State<AppState>) -> Json<Value> {
    let index = state.site_index();
    let mut all: Vec<Value> = index
        .file_sites()
        .iter()
        .map(|site| site_json(site, None))
        .collect();
    all.extend(
        index
            .catalog
            .sites
            .iter()
            .map(|entry| site_json(&entry.site, Some(entry))),
    );
    Json(json!({ "sites": all }))
}

/// `GET /admin/sites/{site_key}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(site_key): Path<Uuid>,
) -> Result<Json<Value>, ApiError> {
    state
        .site_index()
        .lookup(site_key)
        .map(|(site, entry)| Json(site_json(site, entry)))
        .ok_or_else(|| ApiError::not_found("no site has that key"))
}

/// `POST /admin/sites`: 201 with the site key and its first API key (shown once).
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<NewSite>,
) -> Response {
    match sites::create(&state, &caller.actor, &body.name).await {
        Ok((site_key, key)) => once(
            StatusCode::CREATED,
            json!({"site_key": site_key, "api_key": new_key_json(&key)}),
        ),
        Err(error) => refused(error),
    }
}

/// `PUT /admin/sites/{site_key}/settings`.
pub(crate) async fn set_settings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site_key): Path<Uuid>,
    JsonBody(body): JsonBody<Settings>,
) -> Response {
    match sites::set_settings(
        &state,
        &caller.actor,
        site_key,
        body.revision,
        body.settings,
    )
    .await
    {
        Ok(()) => get(State(state), Path(site_key)).await.into_response(),
        Err(error) => refused(error),
    }
}

/// `DELETE /admin/sites/{site_key}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site_key): Path<Uuid>,
    Query(query): Query<Revision>,
) -> Response {
    match sites::delete(&state, &caller.actor, site_key, query.revision).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => refused(error),
    }
}

/// `POST /admin/sites/{site_key}/keys`: 201 with the key, shown once.
pub(crate) async fn add_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site_key): Path<Uuid>,
    JsonBody(body): JsonBody<KeyToMake>,
) -> Response {
    match sites::add_key(&state, &caller.actor, site_key, body.kind, &body.name).await {
        Ok(key) => once(StatusCode::CREATED, new_key_json(&key)),
        Err(error) => refused(error),
    }
}

/// `POST /admin/sites/{site_key}/keys/{key_id}/rotate`: 201 with the new key, shown once.
pub(crate) async fn rotate_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((site_key, key_id)): Path<(Uuid, Uuid)>,
    JsonBody(body): JsonBody<Rotation>,
) -> Response {
    let overlap = Duration::from_secs(body.overlap_secs);
    match sites::rotate_key(&state, &caller.actor, site_key, key_id, overlap).await {
        Ok(key) => once(StatusCode::CREATED, new_key_json(&key)),
        Err(error) => refused(error),
    }
}

/// `DELETE /admin/sites/{site_key}/keys/{key_id}`.
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((site_key, key_id)): Path<(Uuid, Uuid)>,
) -> Response {
    match sites::revoke_key(&state, &caller.actor, site_key, key_id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => refused(error),
    }
}

/// `GET /admin/users`.
pub(crate) async fn list_users(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = users::list(&state).await?;
    Ok(Json(json!({
        "users": list.iter().map(|user| json!({
            "name": user.name,
            "role": user.role.name(),
            "password": user.has_password(),
            "created_at": sites::rfc3339(user.created_at),
        })).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
pub(crate) struct NewUser {
    name: String,
    role: Role,
    password: Option<String>,
}

/// `POST /admin/users`.
pub(crate) async fn add_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<NewUser>,
) -> Response {
    match users::add(&state, &caller.actor, &body.name, body.role, body.password).await {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(error) => refused(error),
    }
}

/// `DELETE /admin/users/{name}`.
pub(crate) async fn remove_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    match users::remove(&state, &caller.actor, &name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => refused(error),
    }
}

/// `GET /admin/audit?after=N&limit=M`: the entries after number `after`, oldest first.
pub(crate) async fn audit_entries(
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let entries = audit::read(&state, query.after, query.limit.unwrap_or(100)).await?;
    Ok(Json(json!({ "entries": entries })))
}

/// `GET /admin/audit.jsonl`: the whole log kept, one JSON object per line, oldest first,
/// streamed a page at a time (memory stays one page, whatever the log's length).
pub(crate) async fn audit_export(State(state): State<AppState>) -> Response {
    let pages = futures_util::stream::unfold(Some(0), move |after| {
        let state = state.clone();
        async move {
            let after = after?;
            match audit::read(&state, after, crate::store::catalog::AUDIT_PAGE).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = page.last().map(|entry| entry.number);
                    let mut lines = String::new();
                    for entry in &page {
                        if let Ok(line) = serde_json::to_string(entry) {
                            lines.push_str(&line);
                            lines.push('\n');
                        }
                    }
                    Some((Ok::<_, std::io::Error>(lines), next))
                }
                // The export stops short; the client sees a truncated body, not a made-up end.
                Err(error) => Some((Err(std::io::Error::other(error.to_string())), None)),
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/jsonl; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"trustcaptcha-audit.jsonl\"",
            ),
        ],
        axum::body::Body::from_stream(pages),
    )
        .into_response()
}

/// `PUT /admin/session/password`: the signed-in user's own password, with the current one.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Response {
    match users::change_password(&state, &caller.actor.name, body.current, body.password).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => refused(error),
    }
}

/// `GET /admin/session`: who the caller is, and the CSRF token their changes carry.
pub(crate) async fn session(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(json!({
        "name": caller.actor.name,
        "role": caller.actor.role.name(),
        "csrf_token": caller.csrf,
    }))
}
