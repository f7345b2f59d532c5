//! The console and its admin API against a real server: sites made at run time serve widgets
//! and backends, changes are checked as the file is, keys rotate and revoke, sign-in, roles,
//! CSRF, the proxy's user header, the audit log, and a second server on the same store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use trustcaptcha_server::store::Store;
use trustcaptcha_server::testing::{RedisServer, TestServer};

use crate::fixtures::{KEY_A, SITE_A, config};

/// An admin request: the status and the JSON body (or the text), with `headers`.
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = server
        .admin
        .http
        .request(method, format!("{}{path}", server.admin.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Makes a site through the API (on a loopback listener with no users: open); its site key and
/// API key.
async fn make_site(server: &TestServer, name: &str) -> (String, String) {
    let (status, made) = call(
        server,
        Method::POST,
        "/admin/sites",
        Some(json!({"name": name})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{made}");
    (
        made["site_key"].as_str().expect("site key").to_owned(),
        made["api_key"]["key"].as_str().expect("key").to_owned(),
    )
}

/// Two text fields of each object in the JSON array `list`.
fn pairs<'v>(list: &'v Value, first: &str, second: &str) -> Vec<(&'v str, &'v str)> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|item| {
            (
                item[first].as_str().unwrap_or(""),
                item[second].as_str().unwrap_or(""),
            )
        })
        .collect()
}

/// Adds a user with a password, as the `user add` command does.
async fn add_user(server: &TestServer, name: &str, role: &str, password: &str) {
    trustcaptcha_server::add_user(&server.state, name, role, Some(password.to_owned()))
        .await
        .expect("a new user");
}

/// The id of a console site's first key.
async fn first_key_id(server: &TestServer, site_key: &str) -> String {
    let (_, site) = call(
        server,
        Method::GET,
        &format!("/admin/sites/{site_key}"),
        None,
        &[],
    )
    .await;
    site["keys"][0]["id"].as_str().expect("a key id").to_owned()
}

/// Rotates a key through the API, the old one working for `overlap_secs`.
async fn rotate(
    server: &TestServer,
    site_key: &str,
    key_id: &str,
    overlap_secs: u64,
) -> (u16, Value) {
    let path = format!("/admin/sites/{site_key}/keys/{key_id}/rotate");
    call(
        server,
        Method::POST,
        &path,
        Some(json!({ "overlap_secs": overlap_secs })),
        &[],
    )
    .await
}

/// Sets a console site's settings (TOML) through the API.
async fn set(server: &TestServer, site_key: &str, settings: &str) -> (u16, Value) {
    call(
        server,
        Method::PUT,
        &format!("/admin/sites/{site_key}/settings"),
        Some(json!({ "settings": settings })),
        &[],
    )
    .await
}

fn settings(name: &str, site_key: &str, more: &str) -> String {
    format!(
        "name = \"{name}\"\nsite_key = \"{site_key}\"\ndifficulty = 2\ntasks = 1\n\
         allowed_origins = [\"{}\"]\n{more}",
        trustcaptcha_server::testing::ORIGIN
    )
}

#[tokio::test]
async fn a_site_made_at_run_time_serves_widgets_and_its_key_fetches_results() {
    let server = TestServer::start(config("")).await;
    let (site_key, api_key) = make_site(&server, "shop").await;
    assert!(
        api_key.starts_with("ak_") && api_key.len() == 52,
        "{api_key}"
    );
    assert_eq!(
        set(&server, &site_key, &settings("shop", &site_key, ""))
            .await
            .0,
        200
    );

    let token = server.solve(&site_key).await;
    let result = server.fetch(&api_key, &token).await;
    assert!(result.verification_passed);
    // Its key is its own: site a's verification is not its to read, nor its to site a's key.
    let other = server.solve(SITE_A).await;
    assert!(
        server
            .client(&api_key)
            .get_verification_result(&other)
            .await
            .is_err()
    );
    assert!(
        server
            .client(KEY_A)
            .get_verification_result(&server.solve(&site_key).await)
            .await
            .is_err()
    );

    // Listed with its source; no key, and no digest of one, is ever shown again.
    let (status, listed) = call(&server, Method::GET, "/admin/sites", None, &[]).await;
    assert_eq!(status, 200);
    let text = listed.to_string();
    assert!(
        !text.contains(&api_key) && !text.contains("sha256:"),
        "{text}"
    );
    let sources = pairs(&listed["sites"], "name", "source");
    assert!(
        sources.contains(&("a", "file")) && sources.contains(&("shop", "console")),
        "{sources:?}"
    );

    // A page no other site may frame, running no script but its own, kept by no cache.
    let page = server
        .admin
        .http
        .get(format!("{}/sites/{site_key}", server.admin.url))
        .send()
        .await
        .expect("page");
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("cache-control"), "no-store");
    let policy = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "script-src 'sha256-",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }

    // File sites change only in the file.
    let (status, body) = set(&server, SITE_A, &settings("a", SITE_A, "")).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("from_file")));

    // Deleted: its widgets and its key stop at once.
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/admin/sites/{site_key}"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(server.flow(&site_key).await, Err(404));
    assert!(
        server
            .client(&api_key)
            .get_verification_result(&token)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_change_is_checked_as_the_file_is_and_a_stale_one_loses_nothing() {
    let server = TestServer::start(config("")).await;
    let (site_key, _) = make_site(&server, "shop").await;
    let problems = |body: &Value| -> Vec<String> {
        body["problems"]
            .as_array()
            .map(|problems| {
                problems
                    .iter()
                    .map(|problem| problem["location"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    // Every problem at once, by field, in the file's words.
    let (status, body) = set(
        &server,
        &site_key,
        &settings(
            "shop",
            &site_key,
            "score_threshold = 2.0\nmax_retrievals = 0\n",
        )
        .replace("tasks = 1", "tasks = 40"),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let located = problems(&body);
    for field in ["tasks", "max_retrievals", "score_threshold"] {
        assert!(
            located.iter().any(|location| location == field),
            "{field}: {located:?}"
        );
    }
    // A value of the wrong shape is named by its line, as in a file.
    let (status, body) = set(
        &server,
        &site_key,
        &settings("shop", &site_key, "max_retrievals = \"many\"\n"),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["problems"][0]["location"]
            .as_str()
            .unwrap_or("")
            .starts_with("line "),
        "{body}"
    );
    // Keys are not settings; the site key stays; a name a file site reads as is taken.
    for (more, expected) in [
        (
            "api_keys = [\"ak_smuggled_in_key_0123456789\"]\n",
            "settings",
        ),
        ("", "name"),
    ] {
        let text = if expected == "name" {
            settings("A", &site_key, more)
        } else {
            settings("shop", &site_key, more)
        };
        let (status, body) = set(&server, &site_key, &text).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(problems(&body), [expected], "{body}");
    }
    let moved = settings("shop", SITE_A, "");
    assert_eq!(set(&server, &site_key, &moved).await.0, 422);

    // Two editors: the one who read an older revision is refused, and nothing is lost.
    let (_, site) = call(
        &server,
        Method::GET,
        &format!("/admin/sites/{site_key}"),
        None,
        &[],
    )
    .await;
    let revision = site["revision"].as_u64().expect("revision");
    assert_eq!(
        set(
            &server,
            &site_key,
            &settings("shop", &site_key, "locked = true\n")
        )
        .await
        .0,
        200
    );
    let (status, body) = call(
        &server,
        Method::PUT,
        &format!("/admin/sites/{site_key}/settings"),
        Some(json!({"revision": revision, "settings": settings("shop", &site_key, "")})),
        &[],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
    assert_eq!(server.flow(&site_key).await, Err(423), "still locked");
}

#[tokio::test]
async fn a_rotated_key_works_for_its_overlap_then_stops_and_a_revoked_one_at_once() {
    let server = TestServer::start(config("")).await;
    let (site_key, old_key) = make_site(&server, "shop").await;
    assert_eq!(
        set(
            &server,
            &site_key,
            &settings(
                "shop",
                &site_key,
                "max_retrievals = 10\nresult_lifetime_secs = 7200\n"
            )
        )
        .await
        .0,
        200
    );
    let old_id = first_key_id(&server, &site_key).await;

    let (status, rotated) = rotate(&server, &site_key, &old_id, 3600).await;
    assert_eq!(status, 201, "{rotated}");
    let new_key = rotated["key"].as_str().expect("key").to_owned();
    let token = server.solve(&site_key).await;
    server.fetch(&old_key, &token).await;
    server.fetch(&new_key, &token).await;

    server.clock.advance(Duration::from_secs(3601));
    let refused = server
        .client(&old_key)
        .get_verification_result(&token)
        .await;
    assert_eq!(
        refused.expect_err("stopped").status().map(|s| s.as_u16()),
        Some(403)
    );
    server.fetch(&new_key, &token).await;

    // A bypass key, then revoked: refused at once (the widget's bypass is checked on create).
    let (status, bypass) = call(
        &server,
        Method::POST,
        &format!("/admin/sites/{site_key}/keys"),
        Some(json!({"kind": "bypass", "name": "ci"})),
        &[],
    )
    .await;
    assert_eq!(status, 201);
    let new_id = rotated["id"].as_str().expect("id");
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/admin/sites/{site_key}/keys/{new_id}"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 422, "the last API key stays: a site needs one");
    let bypass_id = bypass["id"].as_str().expect("id");
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/admin/sites/{site_key}/keys/{bypass_id}"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/admin/sites/{site_key}/keys"),
        Some(json!({"kind": "api", "name": "second"})),
        &[],
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/admin/sites/{site_key}/keys/{new_id}"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
    let refused = server
        .client(&new_key)
        .get_verification_result(&token)
        .await;
    assert_eq!(
        refused.expect_err("revoked").status().map(|s| s.as_u16()),
        Some(403)
    );
}

/// `fields` as a form's body.
fn form_body(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// Signs in; the session cookie (name=value).
async fn sign_in(server: &TestServer, name: &str, password: &str) -> (u16, Option<String>) {
    let response = server
        .admin
        .http
        .post(format!("{}/sign-in", server.admin.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("name", name), ("password", password)]))
        .send()
        .await
        .expect("sign in");
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if let Some(cookie) = &cookie {
        for attribute in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Max-Age=43200",
            "Path=/",
        ] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        assert!(cookie.starts_with("__Host-trustcaptcha-session="));
    }
    (
        status,
        cookie.map(|cookie| cookie.split(';').next().unwrap_or("").to_owned()),
    )
}

#[tokio::test]
async fn sign_in_roles_and_csrf_decide_who_changes_what() {
    let server = TestServer::start(config("")).await;
    add_user(&server, "alice", "admin", "correct horse battery").await;
    add_user(&server, "victor", "viewer", "viewer password 1").await;
    assert!(
        trustcaptcha_server::add_user(&server.state, "alice", "viewer", None)
            .await
            .is_err(),
        "taken"
    );
    assert!(
        trustcaptcha_server::add_user(&server.state, "bob", "admin", Some("short".into()))
            .await
            .is_err()
    );

    // With users, loopback is no longer open: sign in (pages) or 403 (the API).
    assert_eq!(
        call(&server, Method::GET, "/admin/sites", None, &[])
            .await
            .0,
        403
    );
    let (status, _) = call(&server, Method::GET, "/", None, &[("accept", "text/html")]).await;
    assert_eq!(status, 303, "sent to the sign-in page");
    assert_eq!(
        call(&server, Method::GET, "/metrics", None, &[]).await.0,
        200,
        "metrics stay open on loopback"
    );

    assert_eq!(
        sign_in(&server, "alice", "wrong password here").await,
        (401, None)
    );
    assert_eq!(
        sign_in(&server, "nobody", "correct horse battery").await,
        (401, None)
    );
    let (status, cookie) = sign_in(&server, "alice", "correct horse battery").await;
    assert_eq!(status, 303);
    let cookie = cookie.expect("a session");
    let (status, me) = call(
        &server,
        Method::GET,
        "/admin/session",
        None,
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(
        (status, me["name"].as_str(), me["role"].as_str()),
        (200, Some("alice"), Some("admin"))
    );
    let csrf = me["csrf_token"].as_str().expect("csrf").to_owned();

    // A stolen cookie without the CSRF token changes nothing; nor with a wrong one, nor from
    // another site's page.
    let wrong = "x".repeat(43);
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![
            ("cookie", cookie.as_str()),
            ("x-csrf-token", wrong.as_str()),
        ],
        vec![
            ("cookie", cookie.as_str()),
            ("x-csrf-token", csrf.as_str()),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![
            ("cookie", cookie.as_str()),
            ("x-csrf-token", csrf.as_str()),
            ("origin", "https://evil.example"),
        ],
    ] {
        let (status, body) = call(
            &server,
            Method::POST,
            "/admin/sites",
            Some(json!({"name": "shop"})),
            &headers,
        )
        .await;
        assert_eq!(status, 403, "{headers:?}: {body}");
    }
    // A form post carries the token as a field.
    let form = server
        .admin
        .http
        .post(format!("{}/sites", server.admin.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("name", "shop-form")]))
        .send()
        .await
        .expect("form");
    assert_eq!(form.status().as_u16(), 403);
    let form = server
        .admin
        .http
        .post(format!("{}/sites", server.admin.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("name", "shop-form"), ("csrf", &csrf)]))
        .send()
        .await
        .expect("form");
    assert_eq!(form.status().as_u16(), 201);
    let page = form.text().await.expect("page");
    assert!(
        page.contains("shown only this once") && page.contains("id=\"new-key\">ak_"),
        "{page}"
    );
    let headers = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let (status, made) = call(
        &server,
        Method::POST,
        "/admin/sites",
        Some(json!({"name": "shop"})),
        &headers,
    )
    .await;
    assert_eq!(status, 201, "{made}");

    // A viewer sees, and changes nothing: the server refuses, whatever the page shows.
    let (_, viewer) = sign_in(&server, "victor", "viewer password 1").await;
    let viewer = viewer.expect("a session");
    let (_, me) = call(
        &server,
        Method::GET,
        "/admin/session",
        None,
        &[("cookie", &viewer)],
    )
    .await;
    let viewer_csrf = me["csrf_token"].as_str().expect("csrf").to_owned();
    let (status, listed) = call(
        &server,
        Method::GET,
        "/admin/sites",
        None,
        &[("cookie", &viewer)],
    )
    .await;
    assert_eq!(status, 200);
    assert!(!listed.to_string().contains("ak_"));
    let site_key = made["site_key"].as_str().expect("site key");
    for (method, path, body) in [
        (
            Method::POST,
            "/admin/sites".to_owned(),
            Some(json!({"name": "mine"})),
        ),
        (Method::DELETE, format!("/admin/sites/{site_key}"), None),
        (
            Method::PUT,
            format!("/admin/sites/{site_key}/settings"),
            Some(json!({"settings": ""})),
        ),
        (
            Method::POST,
            "/admin/users".to_owned(),
            Some(json!({"name": "eve", "role": "admin"})),
        ),
        (Method::POST, "/admin/reload".to_owned(), None),
    ] {
        let headers = [
            ("cookie", viewer.as_str()),
            ("x-csrf-token", viewer_csrf.as_str()),
        ];
        let (status, body) = call(&server, method, &path, body, &headers).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let page = call(
        &server,
        Method::GET,
        &format!("/sites/{site_key}"),
        None,
        &[("cookie", &viewer)],
    )
    .await
    .1;
    let page = page.as_str().expect("html");
    assert!(
        page.contains("Settings") && !page.contains("Rotate") && !page.contains("Save settings")
    );

    // Signed out: the cookie opens nothing any more; a removed user's session ends too.
    let (status, _) = call(
        &server,
        Method::POST,
        "/sign-out",
        None,
        &[("cookie", &viewer)],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        call(
            &server,
            Method::GET,
            "/admin/sites",
            None,
            &[("cookie", &viewer)]
        )
        .await
        .0,
        403
    );
    trustcaptcha_server::remove_user(&server.state, "alice")
        .await
        .expect("removed");
    assert_eq!(
        call(
            &server,
            Method::GET,
            "/admin/sites",
            None,
            &[("cookie", &cookie)]
        )
        .await
        .0,
        403
    );

    // The admin token still works for automation, with no cookie and no CSRF token.
    let mut with_token = config("");
    with_token.server.admin_token = Some(trustcaptcha_server::secret::KeyHash::of(
        "admin-token-for-automation",
    ));
    let automated = TestServer::start(with_token).await;
    trustcaptcha_server::add_user(&automated.state, "carol", "viewer", None)
        .await
        .expect("carol");
    let (status, _) = call(
        &automated,
        Method::POST,
        "/admin/sites",
        Some(json!({"name": "robot"})),
        &[("authorization", "Bearer admin-token-for-automation")],
    )
    .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn failed_sign_ins_lock_their_network_out_even_for_the_right_password() {
    let server = TestServer::start(config("")).await;
    add_user(&server, "alice", "admin", "correct horse battery").await;
    for _ in 0..10 {
        assert_eq!(
            sign_in(&server, "alice", "a guess at the password").await.0,
            401
        );
    }
    assert_eq!(
        sign_in(&server, "alice", "correct horse battery").await,
        (429, None)
    );
    server.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(
        sign_in(&server, "alice", "correct horse battery").await.0,
        303
    );
}

#[tokio::test]
async fn a_trusted_proxys_user_header_signs_in_a_known_user_and_nobody_else_can_send_it() {
    // The tests' trusted proxy is 127.0.0.2; the admin client connects from 127.0.0.1.
    let proxied = TestServer::start(config("console_user_header = \"x-forwarded-user\"")).await;
    trustcaptcha_server::add_user(&proxied.state, "sso-admin", "admin", None)
        .await
        .expect("user");
    let headers = [("x-forwarded-user", "sso-admin")];
    let (status, _) = call(&proxied, Method::GET, "/admin/session", None, &headers).await;
    assert_eq!(
        status, 403,
        "127.0.0.1 is not a trusted proxy: its header is a claim"
    );

    let mut config = config("console_user_header = \"x-forwarded-user\"");
    config.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
    let proxied = TestServer::start(config).await;
    trustcaptcha_server::add_user(&proxied.state, "sso-admin", "admin", None)
        .await
        .expect("user");
    trustcaptcha_server::add_user(&proxied.state, "sso-viewer", "viewer", None)
        .await
        .expect("user");
    let (status, me) = call(&proxied, Method::GET, "/admin/session", None, &headers).await;
    assert_eq!((status, me["name"].as_str()), (200, Some("sso-admin")));
    let (status, _) = call(
        &proxied,
        Method::GET,
        "/admin/session",
        None,
        &[("x-forwarded-user", "stranger")],
    )
    .await;
    assert_eq!(status, 403, "the proxy names no user of the console");
    let (status, _) = call(
        &proxied,
        Method::POST,
        "/admin/sites",
        Some(json!({"name": "sso"})),
        &headers,
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &proxied,
        Method::POST,
        "/admin/sites",
        Some(json!({"name": "sso2"})),
        &[
            ("x-forwarded-user", "sso-admin"),
            ("sec-fetch-site", "cross-site"),
        ],
    )
    .await;
    assert_eq!(status, 403, "no change from another site's page");
    let (status, _) = call(
        &proxied,
        Method::POST,
        "/admin/sites",
        Some(json!({"name": "v"})),
        &[("x-forwarded-user", "sso-viewer")],
    )
    .await;
    assert_eq!(status, 403);
    // A user without a password cannot sign in with one.
    assert_eq!(sign_in(&proxied, "sso-admin", "").await.0, 401);
}

#[tokio::test]
async fn every_change_is_in_the_audit_log_without_a_secret() {
    let server = TestServer::start(config("")).await;
    let (site_key, api_key) = make_site(&server, "shop").await;
    assert_eq!(
        set(&server, &site_key, &settings("shop", &site_key, ""))
            .await
            .0,
        200
    );
    let key_id = first_key_id(&server, &site_key).await;
    let (_, rotated) = rotate(&server, &site_key, &key_id, 0).await;
    add_user(&server, "alice", "viewer", "alice's password").await;

    let (status, _) = call(
        &server,
        Method::GET,
        "/admin/audit",
        None,
        &[("authorization", "Bearer none")],
    )
    .await;
    assert_eq!(status, 403, "with a user, the log wants a credential");
    let (_, cookie) = sign_in(&server, "alice", "alice's password").await;
    let cookie = cookie.expect("session");
    let (status, log) = call(
        &server,
        Method::GET,
        "/admin/audit",
        None,
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(status, 200);
    let actions = pairs(&log["entries"], "actor", "action");
    assert_eq!(
        actions,
        [
            ("(loopback)", "site.create"),
            ("(loopback)", "site.change"),
            ("(loopback)", "key.rotate"),
            ("(command line)", "user.add"),
        ]
    );
    let change = &log["entries"][1];
    assert!(
        change["before"]["settings"].as_str().is_some()
            && change["after"]["settings"]
                .as_str()
                .unwrap_or("")
                .contains("difficulty = 2")
    );
    let export = server
        .admin
        .http
        .get(format!("{}/admin/audit.jsonl", server.admin.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("lines");
    assert_eq!(export.lines().count(), 4);
    for line in export.lines() {
        let entry: Value = serde_json::from_str(line).expect("a JSON line");
        assert!(entry["at"].is_string() && entry["number"].is_u64());
    }
    let secret = rotated["key"].as_str().expect("key");
    for text in [export.as_str(), &log.to_string()] {
        assert!(!text.contains(&api_key) && !text.contains(secret) && !text.contains("sha256:"));
        assert!(!text.contains("$argon2"), "no password hash either");
    }
}

#[tokio::test]
async fn a_second_server_on_the_same_redis_serves_a_new_site_within_a_poll() {
    let redis = RedisServer::start();
    let open = |_| {
        Some(Arc::new(
            trustcaptcha_server::store::redis::RedisStore::open(&redis.url()).expect("redis"),
        ) as Arc<dyn Store>)
    };
    let first = TestServer::start_with(config(""), open).await;
    let second = TestServer::start_with(config(""), open).await;
    let (site_key, api_key) = make_site(&first, "shared").await;
    let made = Instant::now();
    // The second server polls the catalog's revision; wait (bounded) until it serves the site.
    let served = loop {
        match second.flow(&site_key).await {
            Ok(token) => break token,
            Err(404) if made.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(status) => panic!("{status} after {:?}", made.elapsed()),
        }
    };
    eprintln!(
        "the second server served the new site after {:?}",
        made.elapsed()
    );
    // A verification made on the second is read on the first with the new key.
    assert!(first.fetch(&api_key, &served).await.verification_passed);

    // A revocation on the first stops the key on the second at once: the second reads the
    // catalog's revision before it takes a console key.
    let token = second.solve(&site_key).await;
    let key_id = first_key_id(&first, &site_key).await;
    let (_, rotated) = rotate(&first, &site_key, &key_id, 0).await;
    assert!(rotated["key"].is_string());
    let refused = second
        .client(&api_key)
        .get_verification_result(&token)
        .await;
    assert_eq!(
        refused.expect_err("revoked").status().map(|s| s.as_u16()),
        Some(403)
    );

    // So is a bypass key: taken by the second as soon as it is made, refused as soon as it is
    // revoked.
    let (status, bypass) = call(
        &first,
        Method::POST,
        &format!("/admin/sites/{site_key}/keys"),
        Some(json!({"kind": "bypass", "name": "ci"})),
        &[],
    )
    .await;
    assert_eq!(status, 201);
    let mut body = trustcaptcha_server::testing::create_body(&site_key, false);
    body["widget"]["bypassToken"] = json!(bypass["key"]);
    assert_eq!(second.create(&body).await.0, 201);
    let bypass_id = bypass["id"].as_str().expect("id");
    let path = format!("/admin/sites/{site_key}/keys/{bypass_id}");
    assert_eq!(call(&first, Method::DELETE, &path, None, &[]).await.0, 204);
    assert_eq!(second.create(&body).await.0, 403);
}

/// A console form posted as a browser would (on a loopback listener with no users: open).
async fn post_form(server: &TestServer, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let response = server
        .admin
        .http
        .post(format!("{}{path}", server.admin.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(fields))
        .send()
        .await
        .expect("form");
    let status = response.status().as_u16();
    (status, response.text().await.expect("page"))
}

#[tokio::test]
async fn the_pages_forms_change_settings_and_rules_and_show_a_keys_last_use() {
    let server = TestServer::start(config("")).await;
    let (site_key, api_key) = make_site(&server, "shop").await;
    let path = format!("/sites/{site_key}");
    let (status, _) = post_form(
        &server,
        &format!("{path}/settings"),
        &[
            (
                "allowed_origins",
                &format!(
                    "https://*.shop.example\n{}",
                    trustcaptcha_server::testing::ORIGIN
                ),
            ),
            ("difficulty", "9"),
            ("tasks", "3"),
            ("score_threshold", "0.7"),
            ("hourly_quota", "500"),
            ("locked", "true"),
            ("block_ips", "192.0.2.0/24, 198.51.100.7"),
            ("countries_blocked", "ru kp"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let site = || async {
        call(
            &server,
            Method::GET,
            &format!("/admin/sites/{site_key}"),
            None,
            &[],
        )
        .await
        .1
    };
    let read = site().await;
    let settings: toml::Table = read["settings"]
        .as_str()
        .expect("settings")
        .parse()
        .expect("toml");
    assert_eq!(settings["difficulty"].as_integer(), Some(9));
    assert_eq!(settings["locked"].as_bool(), Some(true));
    assert_eq!(
        settings["risk_scoring"].as_bool(),
        Some(false),
        "an unchecked box is off"
    );
    assert_eq!(
        settings["countries_blocked"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(read["hourly_quota"], 500);
    let (status, body) = server
        .create(&trustcaptcha_server::testing::create_body(&site_key, false))
        .await;
    assert_eq!(status, 423, "locked from the form: {body} {read}");

    // Rules: two added, the second moved up, the (new) first removed.
    for (action, more) in [
        ("block", ("countries", "CN")),
        ("adjust", ("difficulty", "2")),
    ] {
        let (status, page) = post_form(
            &server,
            &format!("{path}/rules"),
            &[("op", "add"), ("action", action), more],
        )
        .await;
        assert_eq!(status, 303, "{page}");
    }
    let rules = || async {
        let read = site().await;
        let settings: toml::Table = read["settings"]
            .as_str()
            .expect("settings")
            .parse()
            .expect("toml");
        settings["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|rule| rule["action"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(rules().await, ["block", "adjust"]);
    assert_eq!(
        post_form(
            &server,
            &format!("{path}/rules"),
            &[("op", "up"), ("index", "1")]
        )
        .await
        .0,
        303
    );
    assert_eq!(rules().await, ["adjust", "block"]);
    assert_eq!(
        post_form(
            &server,
            &format!("{path}/rules"),
            &[("op", "remove"), ("index", "0")]
        )
        .await
        .0,
        303
    );
    assert_eq!(rules().await, ["block"]);
    // A rule the check refuses is named, and nothing changes.
    let (status, page) = post_form(
        &server,
        &format!("{path}/rules"),
        &[("op", "add"), ("action", "adjust")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(page.contains("rules[1].action"), "{page}");
    assert_eq!(rules().await, ["block"]);
    let (status, _) = post_form(
        &server,
        &format!("{path}/rules"),
        &[("op", "down"), ("index", "0")],
    )
    .await;
    assert_eq!(status, 422, "nothing below the last rule");

    // Unlocked again through the settings' TOML; a key's use shows on its page.
    let mut settings: toml::Table = site().await["settings"]
        .as_str()
        .expect("settings")
        .parse()
        .expect("toml");
    settings.insert("locked".into(), false.into());
    settings.insert("difficulty".into(), 2.into());
    settings.insert(
        "allowed_origins".into(),
        vec![trustcaptcha_server::testing::ORIGIN].into(),
    );
    let revision = site().await["revision"].to_string();
    let text = toml::to_string(&settings).expect("toml");
    let (status, page) = post_form(
        &server,
        &format!("{path}/toml"),
        &[("revision", &revision), ("settings", &text)],
    )
    .await;
    assert_eq!(status, 303, "{page}");
    let (_, page) = call(&server, Method::GET, &path, None, &[]).await;
    assert!(page.as_str().expect("html").contains(">never<"));
    let token = server.solve(&site_key).await;
    server.fetch(&api_key, &token).await;
    let (_, page) = call(&server, Method::GET, &path, None, &[]).await;
    let page = page.as_str().expect("html");
    assert!(!page.contains(">never<"), "the key's last use is shown");
    assert!(!page.contains(&api_key));
}

#[tokio::test]
async fn every_user_changes_their_own_password_knowing_the_current_one() {
    let server = TestServer::start(config("")).await;
    add_user(&server, "victor", "viewer", "viewer password 1").await;
    let (_, cookie) = sign_in(&server, "victor", "viewer password 1").await;
    let cookie = cookie.expect("session");
    let (_, me) = call(
        &server,
        Method::GET,
        "/admin/session",
        None,
        &[("cookie", &cookie)],
    )
    .await;
    let csrf = me["csrf_token"].as_str().expect("csrf").to_owned();
    let headers = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let change = |current: &str, password: &str| json!({"current": current, "password": password});
    let path = "/admin/session/password";
    let (status, body) = call(
        &server,
        Method::PUT,
        path,
        Some(change("a wrong guess here", "a new viewer password")),
        &headers,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = call(
        &server,
        Method::PUT,
        path,
        Some(change("viewer password 1", "short")),
        &headers,
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = call(
        &server,
        Method::PUT,
        path,
        Some(change("viewer password 1", "a new viewer password")),
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(status, 403, "the CSRF token is wanted here too");
    let (status, _) = call(
        &server,
        Method::PUT,
        path,
        Some(change("viewer password 1", "a new viewer password")),
        &headers,
    )
    .await;
    assert_eq!(status, 204, "a viewer changes their own password");
    assert_eq!(sign_in(&server, "victor", "viewer password 1").await.0, 401);
    assert_eq!(
        sign_in(&server, "victor", "a new viewer password").await.0,
        303
    );
    // The page's form does the same.
    let (status, page) = post_form(
        &server,
        "/password",
        &[
            ("current", "a new viewer password"),
            ("password", "a third viewer password"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(status, 403, "{page}: the form needs the session's cookie");
    let form = server
        .admin
        .http
        .post(format!("{}/password", server.admin.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("current", "a new viewer password"),
            ("password", "a third viewer password"),
            ("csrf", &csrf),
        ]))
        .send()
        .await
        .expect("form");
    assert_eq!(form.status(), 200);
    assert!(
        form.text()
            .await
            .expect("page")
            .contains("Your password was changed.")
    );
    assert_eq!(
        sign_in(&server, "victor", "a third viewer password")
            .await
            .0,
        303
    );
    let (_, log) = call(
        &server,
        Method::GET,
        "/admin/audit",
        None,
        &[("cookie", &cookie)],
    )
    .await;
    let text = log.to_string();
    assert!(
        text.contains("user.password") && !text.contains("third viewer"),
        "{text}"
    );
}
