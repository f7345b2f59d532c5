//! Who is asking, for every request to the admin listener but health: the guard resolves a
//! [`Caller`] and lets through only what its role may do.
//!
//! A caller is, in this order: the bearer of the admin token (automation; an admin); a
//! signed-in user (the session cookie); a user a trusted proxy names in
//! `server.console_user_header` (single sign-on); or, on a loopback listener while no user
//! exists, whoever connects (an admin, as before users existed). Nobody else gets past
//! `/sign-in`, except to `/readyz` (for probes, on any listener) and `/metrics` on a loopback
//! listener.
//!
//! Changes (every method but `GET` and `HEAD`; but one's own password) need an admin, and a
//! browser's change must come
//! from the console's own pages: a session's change carries the session's CSRF token (the form
//! field `csrf`, or the header `x-csrf-token`), and no change is taken from a request a browser
//! marks as cross-site (`Sec-Fetch-Site`, or an `Origin` that is not the listener's own).

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Form, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq as _;

use crate::api::AdminAccess;
use crate::api::error::ApiError;
use crate::api::extract::{ClientIp, bearer};
use crate::catalog::sessions::{self, Session};
use crate::catalog::{Actor, Role, users};
use crate::secret::KeyHash;
use crate::state::AppState;
use crate::store::{Collection, Store as _};
use crate::verification::Refusal;

/// The caller of a request, for its handler.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) actor: Actor,
    /// The session's CSRF token, which the pages put in their forms (none for a caller whose
    /// changes are not made through a cookie).
    pub(crate) csrf: Option<String>,
}

/// How the caller was recognised.
enum Credential {
    Token,
    Session(Session),
    Proxy(users::User),
    Loopback,
}

/// The session cookie's name: `__Host-` binds it to this host over HTTPS.
pub(crate) fn cookie_name(state: &AppState) -> &'static str {
    if state.settings.console_secure_cookie {
        "__Host-trustcaptcha-session"
    } else {
        "trustcaptcha-session"
    }
}

/// The most a change's form may hold: the settings' TOML with room to spare.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// The guard: resolves the caller, refuses who may not do what the request asks.
pub(crate) async fn guard(
    state: AppState,
    access: AdminAccess,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let loopback_open = matches!(access, AdminAccess::Open);
    if path == "/sign-in" {
        // Another site's page must not sign a browser in, even to an account of its own.
        if request.method() == Method::POST && cross_site(request.headers()) {
            return ApiError::forbidden("sign in from the console's own page").into_response();
        }
        return next.run(request).await;
    }
    // Probes carry no credentials: a balancer's health check or a kubelet asks `/readyz` on
    // whatever address the listener has. It tells whether to send traffic, nothing more.
    if path == "/readyz" || (loopback_open && path == "/metrics") {
        return next.run(request).await;
    }
    if matches!(access, AdminAccess::Closed) {
        return ApiError::forbidden(
            "the admin listener is reachable beyond loopback and no admin token is set",
        )
        .into_response();
    }
    let token = match access {
        AdminAccess::Token(token) => Some(token),
        AdminAccess::Open => state.settings.admin_token,
        AdminAccess::Closed => None,
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|peer| peer.0);
    let credential = match credential(&state, loopback_open, token, peer, request.headers()).await {
        Ok(credential) => credential,
        Err(refused) => return refused.into_response(),
    };
    let Some(credential) = credential else {
        return if wants_page(&request) {
            Redirect::to("/sign-in").into_response()
        } else {
            ApiError::forbidden("sign in, or send Authorization: Bearer <admin token>")
                .into_response()
        };
    };
    let (actor, csrf) = match &credential {
        Credential::Token => (
            Actor {
                name: "(admin token)".into(),
                role: Role::Admin,
            },
            None,
        ),
        Credential::Loopback => (
            Actor {
                name: "(loopback)".into(),
                role: Role::Admin,
            },
            None,
        ),
        Credential::Session(session) => (session.user.actor(), Some(session.csrf.clone())),
        Credential::Proxy(user) => (user.actor(), None),
    };
    let mut request = request;
    if !matches!(*request.method(), Method::GET | Method::HEAD) && path != "/sign-out" {
        // Changing one's own password is every user's; everything else is an admin's.
        let own = matches!(path.as_str(), "/password" | "/admin/session/password");
        if actor.role != Role::Admin && !own {
            return ApiError::forbidden("a viewer changes nothing").into_response();
        }
        if !matches!(credential, Credential::Token) && cross_site(request.headers()) {
            return ApiError::forbidden("a change must come from the console's own pages")
                .into_response();
        }
        if let Some(expected) = &csrf {
            request = match with_csrf_checked(request, expected).await {
                Ok(request) => request,
                Err(refused) => return refused.into_response(),
            };
        }
    }
    request.extensions_mut().insert(Caller { actor, csrf });
    next.run(request).await
}

/// Whether the request is a page view (a browser's navigation), which is sent to sign in.
fn wants_page(request: &Request) -> bool {
    request.method() == Method::GET
        && !request.uri().path().starts_with("/admin/")
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// Whether a browser says the request comes from another site's page.
fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok());
    if let Some(site) = fetch_site {
        return !matches!(site, "same-origin" | "none");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    match headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    {
        None => false,
        Some(origin) => origin
            .split_once("://")
            .is_none_or(|(_, authority)| Some(authority) != host),
    }
}

/// The caller's credential, if any; an answer instead when one was offered and is wrong.
async fn credential(
    state: &AppState,
    loopback_open: bool,
    token: Option<KeyHash>,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Result<Option<Credential>, ApiError> {
    let unavailable = |_| ApiError::from(crate::store::StoreError::Unavailable(String::new()));
    if let Some(offered) = bearer(headers) {
        return check_token(state, peer, headers, offered, token).map(|()| Some(Credential::Token));
    }
    if let Some(token) = cookie(headers, cookie_name(state)) {
        let session = sessions::find(state, token).await.map_err(unavailable)?;
        if let Some(session) = session {
            return Ok(Some(Credential::Session(session)));
        }
    }
    let proxied = state
        .settings
        .console_user_header
        .as_deref()
        .filter(|_| peer.is_some_and(|peer| state.settings.proxies().trusts(peer.ip())))
        .and_then(|name| headers.get(name))
        .and_then(|value| value.to_str().ok());
    if let Some(name) = proxied {
        let user = users::find(state, name.trim()).await.map_err(unavailable)?;
        return match user {
            Some(user) => Ok(Some(Credential::Proxy(user))),
            None => Err(ApiError::forbidden(
                "the proxy names no user of this console",
            )),
        };
    }
    if loopback_open {
        let now = state.clock.now();
        let users = state
            .store
            .entries(Collection::Users, now)
            .await
            .map_err(unavailable)?;
        if users.is_empty() {
            return Ok(Some(Credential::Loopback));
        }
    }
    Ok(None)
}

/// Compares an offered admin token in constant time. A wrong token is a failed key guess of its
/// network (the limits' hourly budget, shared with API and bypass keys) and is logged with the
/// network; a network past its budget is refused before its token is looked at.
fn check_token(
    state: &AppState,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    offered: KeyHash,
    expected: Option<KeyHash>,
) -> Result<(), ApiError> {
    let refused =
        || ApiError::forbidden("the admin listener wants Authorization: Bearer <admin token>");
    let ClientIp(ip) = ClientIp::of(state, peer, headers);
    let now = state.clock.now();
    if let Err(limited) = state.limits.guessing(ip, now) {
        return Err(ApiError::from(Refusal::Limited(limited)));
    }
    let Some(expected) = expected else {
        return Err(refused());
    };
    if offered.is_among(std::slice::from_ref(&expected)) {
        return Ok(());
    }
    state.limits.failed_guess(ip, now);
    let network = ip.map(crate::networks::network);
    tracing::warn!(
        network = network.map(tracing::field::display),
        "a wrong admin token"
    );
    Err(refused())
}

/// The value of cookie `name`.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The request, once its CSRF token (the `x-csrf-token` header, or a form's `csrf` field) is
/// the session's. A form's body is read here (bounded) and handed on as it came.
async fn with_csrf_checked(request: Request, expected: &str) -> Result<Request, ApiError> {
    let matches = |offered: &str| bool::from(offered.as_bytes().ct_eq(expected.as_bytes()));
    let refused = || ApiError::forbidden("the change carries no valid CSRF token: reload the page");
    if let Some(offered) = request
        .headers()
        .get("x-csrf-token")
        .and_then(|value| value.to_str().ok())
    {
        return if matches(offered) {
            Ok(request)
        } else {
            Err(refused())
        };
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(refused());
    }
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| ApiError::payload_too_large())?;
    let offered = form_urlencoded::parse(&bytes)
        .find(|(key, _)| key == "csrf")
        .map(|(_, value)| value.into_owned());
    match offered {
        Some(offered) if matches(&offered) => Ok(Request::from_parts(parts, Body::from(bytes))),
        _ => Err(refused()),
    }
}

/// The sign-in form's fields.
#[derive(serde::Deserialize)]
pub(crate) struct SignIn {
    name: String,
    password: String,
}

/// Failed sign-ins one client network may make per window before it must wait.
const SIGN_IN_FAILURES: u64 = 10;

/// The window failed sign-ins are counted in.
const SIGN_IN_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// `GET /sign-in`.
pub(crate) async fn sign_in_page() -> Response {
    super::pages::sign_in(None, StatusCode::OK)
}

/// `POST /sign-in`: a session cookie and the console, or the form again. Failed attempts are
/// counted per client network in the store (so across servers); past
/// [`SIGN_IN_FAILURES`] in [`SIGN_IN_WINDOW`] the network waits, whatever it sends.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Form(form): Form<SignIn>,
) -> Response {
    let counter = format!(
        "console-sign-in:{}",
        ip.map(crate::networks::network)
            .map_or_else(|| "unknown".to_owned(), |network| network.to_string())
    );
    let now = state.clock.now();
    let failures = match state.store.counts(&counter, SIGN_IN_WINDOW, now).await {
        Ok(counts) => counts.sliding(SIGN_IN_WINDOW, now),
        Err(error) => return ApiError::from(error).into_response(),
    };
    if failures >= SIGN_IN_FAILURES {
        return super::pages::sign_in(
            Some("Too many failed sign-ins from your network: try again in 15 minutes."),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let user = match users::sign_in(&state, form.name.trim(), form.password).await {
        Ok(user) => user,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let Some(user) = user else {
        let _ = state.store.add(&counter, SIGN_IN_WINDOW, 1, now).await;
        tracing::warn!(
            network = ip
                .map(crate::networks::network)
                .map(tracing::field::display),
            "a failed console sign-in"
        );
        return super::pages::sign_in(
            Some("That name and password do not match."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let lifetime = state.settings.console_session_lifetime;
    let token = match sessions::start(&state, &user, lifetime).await {
        Ok(token) => token,
        Err(error) => return ApiError::from(error).into_response(),
    };
    tracing::info!(user = %user.name, "signed in to the console");
    with_cookie(&state, Redirect::to("/"), &token, lifetime.as_secs())
}

/// `answer` setting the session cookie to `value` for `max_age` seconds (0 clears it).
fn with_cookie(state: &AppState, answer: impl IntoResponse, value: &str, max_age: u64) -> Response {
    let secure = if state.settings.console_secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        cookie_name(state)
    );
    let mut response = answer.into_response();
    if let Ok(value) = cookie.parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /sign-out`: ends the session and clears the cookie.
pub(crate) async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, cookie_name(&state))
        && let Ok(Some(session)) = sessions::find(&state, token).await
    {
        let _ = sessions::end(&state, &session).await;
    }
    with_cookie(&state, Redirect::to("/sign-in"), "", 0)
}
