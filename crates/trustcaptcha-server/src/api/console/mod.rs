//! The console on the admin listener: pages a team runs the server from in a browser, and the
//! same actions as a JSON API under `/admin/`. Every request but health passes the [`auth`]
//! guard, which resolves who is asking and refuses what their role may not do; handlers then
//! extract, call the catalog (`crate::catalog`), and render ([`pages`], [`json`]).
//!
//! * [`auth`]: the guard, sign-in and sign-out;
//! * [`forms`]: the pages and the forms they post;
//! * [`json`]: the admin API;
//! * [`inputs`]: what both read;
//! * [`statistics`]: a site's statistics over time, as charts ([`charts`]);
//! * [`events`]: a site's event log;
//! * [`exports`]: statistics and event logs as JSON, CSV or JSON lines;
//! * [`webhooks`]: where alerts go, and how their deliveries went;
//! * [`pages`]: the HTML.

pub(crate) mod auth;
pub(crate) mod charts;
pub(crate) mod events;
pub(crate) mod exports;
pub(crate) mod forms;
pub(crate) mod inputs;
pub(crate) mod json;
pub(crate) mod pages;
pub(crate) mod statistics;
pub(crate) mod webhooks;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::state::AppState;

const SITES: &str = "/admin/sites";
const SITE: &str = "/admin/sites/{site_key}";
const SETTINGS: &str = "/admin/sites/{site_key}/settings";
const KEYS: &str = "/admin/sites/{site_key}/keys";
const ROTATE: &str = "/admin/sites/{site_key}/keys/{key_id}/rotate";
const KEY: &str = "/admin/sites/{site_key}/keys/{key_id}";
const USERS: &str = "/admin/users";
const USER: &str = "/admin/users/{name}";
const AUDIT: &str = "/admin/audit";
const AUDIT_EXPORT: &str = "/admin/audit.jsonl";
const SESSION: &str = "/admin/session";
const PASSWORD: &str = "/admin/session/password";
const SERIES: &str = "/admin/series";
const EVENTS: &str = "/admin/events";
const WEBHOOKS: &str = "/admin/webhooks";
const WEBHOOK: &str = "/admin/webhooks/{id}";
const WEBHOOK_TEST: &str = "/admin/webhooks/{id}/test";
const WEBHOOK_DELIVERIES: &str = "/admin/webhooks/{id}/deliveries";

/// The admin API's catalog endpoints, as `docs/admin-openapi.json` documents them.
#[cfg(any(test, feature = "test-support"))]
pub(crate) const API_ROUTES: [&str; 18] = [
    SITES,
    SITE,
    SETTINGS,
    KEYS,
    ROTATE,
    KEY,
    USERS,
    USER,
    AUDIT,
    AUDIT_EXPORT,
    SESSION,
    PASSWORD,
    SERIES,
    EVENTS,
    WEBHOOKS,
    WEBHOOK,
    WEBHOOK_TEST,
    WEBHOOK_DELIVERIES,
];

/// The console's routes: its pages and forms, and the admin API's catalog endpoints.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/sign-in", get(auth::sign_in_page).post(auth::sign_in))
        .route("/sign-out", post(auth::sign_out))
        .route("/", get(forms::sites))
        .route("/statistics", get(statistics::page))
        .route("/events", get(events::page))
        .route("/events/{at}/{id}", get(events::story))
        .route("/webhooks", get(webhooks::page).post(webhooks::add))
        .route("/webhooks/{id}", get(webhooks::deliveries_page))
        .route("/webhooks/{id}/remove", post(webhooks::remove))
        .route("/webhooks/{id}/test", post(webhooks::send_test))
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
        .route(SESSION, get(json::session))
        .route(PASSWORD, put(json::change_password))
        .route("/password", post(forms::change_password))
        .route(SITES, get(json::list).post(json::create))
        .route(SITE, get(json::get).delete(json::delete))
        .route(SETTINGS, put(json::set_settings))
        .route(KEYS, post(json::add_key))
        .route(ROTATE, post(json::rotate_key))
        .route(KEY, delete(json::revoke_key))
        .route(USERS, get(json::list_users).post(json::add_user))
        .route(USER, delete(json::remove_user))
        .route(AUDIT, get(json::audit_entries))
        .route(AUDIT_EXPORT, get(json::audit_export))
        .route(SERIES, get(exports::series))
        .route(EVENTS, get(exports::events))
        .route(WEBHOOKS, get(webhooks::list).post(webhooks::create))
        .route(WEBHOOK, delete(webhooks::delete))
        .route(WEBHOOK_TEST, post(webhooks::test))
        .route(WEBHOOK_DELIVERIES, get(webhooks::deliveries))
}
