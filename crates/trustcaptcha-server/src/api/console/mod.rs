//! The console on the admin listener: pages a team runs the server from in a browser, and the
//! same actions as a JSON API under `/admin/`. Every request but health passes the [`auth`]
//! guard, which resolves who is asking and refuses what their role may not do; handlers then
//! extract, call the catalog (`crate::catalog`), and render ([`pages`], [`json`]).
//!
//! * [`auth`]: the guard, sign-in and sign-out;
//! * [`forms`]: the pages and the forms they post;
//! * [`json`]: the admin API;
//! * [`statistics`]: a site's statistics as charts;
//! * [`pages`]: the HTML.

pub(crate) mod auth;
pub(crate) mod forms;
pub(crate) mod json;
pub(crate) mod pages;
pub(crate) mod statistics;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::state::AppState;

/// The console's routes: its pages and forms, and the admin API's catalog endpoints.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/sign-in", get(auth::sign_in_page).post(auth::sign_in))
        .route("/sign-out", post(auth::sign_out))
        .route("/", get(forms::sites))
        .route("/statistics", get(statistics::page))
        .route("/sites", post(forms::create))
        .route("/sites/{site_key}", get(forms::site))
        .route("/sites/{site_key}/settings", post(forms::settings))
        .route("/sites/{site_key}/toml", post(forms::settings_toml))
        .route("/sites/{site_key}/rules", post(forms::rules))
        .route("/sites/{site_key}/delete", post(forms::delete))
        .route("/sites/{site_key}/keys", post(forms::add_key))
        .route(
            "/sites/{site_key}/keys/{key_id}/rotate",
            post(forms::rotate_key),
        )
        .route(
            "/sites/{site_key}/keys/{key_id}/revoke",
            post(forms::revoke_key),
        )
        .route("/audit", get(forms::audit_page))
        .route("/users", get(forms::users_page).post(forms::add_user))
        .route("/users/{name}/remove", post(forms::remove_user))
        .route("/admin/session", get(json::session))
        .route("/admin/sites", get(json::list).post(json::create))
        .route(
            "/admin/sites/{site_key}",
            get(json::get).delete(json::delete),
        )
        .route("/admin/sites/{site_key}/settings", put(json::set_settings))
        .route("/admin/sites/{site_key}/keys", post(json::add_key))
        .route(
            "/admin/sites/{site_key}/keys/{key_id}/rotate",
            post(json::rotate_key),
        )
        .route(
            "/admin/sites/{site_key}/keys/{key_id}",
            delete(json::revoke_key),
        )
        .route("/admin/users", get(json::list_users).post(json::add_user))
        .route("/admin/users/{name}", delete(json::remove_user))
        .route("/admin/audit", get(json::audit_entries))
        .route("/admin/audit.jsonl", get(json::audit_export))
}
