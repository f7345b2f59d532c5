//! The console's pages, rendered on the server with `maud` (every value escaped): the sites,
//! one site with its keys, settings, rules and integration snippets, the audit log, the users
//! and the sign-in form. They load nothing from elsewhere, work without JavaScript (one small
//! inline script copies a snippet to the clipboard), are plain forms a keyboard can drive, and
//! fit a phone's width.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use uuid::Uuid;

use super::auth::Caller;
use crate::catalog::Role;
use crate::catalog::audit::AuditEntry;
use crate::catalog::sites::{CatalogSite, KeyKind};
use crate::catalog::users::User;
use crate::config::Site;
use crate::state::AppState;

/// What a page says above its content. Its `Debug` output never shows a new key.
#[derive(Default)]
pub(crate) struct Notice {
    /// Problems that stopped a change, each with where.
    pub(crate) problems: Vec<(String, String)>,
    /// A key made just now, shown once: its kind, name and the key.
    pub(crate) new_key: Option<(KeyKind, String, String)>,
    /// What was done, when it needs saying.
    pub(crate) done: Option<String>,
}

impl std::fmt::Debug for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notice")
            .field("problems", &self.problems)
            .field(
                "new_key",
                &self.new_key.as_ref().map(|(kind, name, _)| (kind, name)),
            )
            .field("done", &self.done)
            .finish()
    }
}

impl Notice {
    pub(crate) fn problem(message: impl Into<String>) -> Self {
        Notice {
            problems: vec![(String::new(), message.into())],
            ..Notice::default()
        }
    }

    pub(crate) fn said(message: impl Into<String>) -> Self {
        Notice {
            done: Some(message.into()),
            ..Notice::default()
        }
    }
}

const STYLE: &str = r"
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f7f9fc}
header{background:#1d2430;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center}
header a{color:#fff;text-decoration:none}header a:hover,header a:focus{text-decoration:underline}
header .who{margin-left:auto;font-size:.9rem}
main{padding:1rem;max-width:1100px;margin:auto}
section{background:#fff;border:1px solid #dde3ec;border-radius:6px;padding:1rem;margin:0 0 1rem}
h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:0 0 .6rem}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.35rem .4rem;border-bottom:1px solid #eef1f6;vertical-align:top}
.scroll{overflow-x:auto}
label{display:block;margin:.4rem 0 .1rem;font-weight:600}
input,select,textarea{font:inherit;padding:.35rem;border:1px solid #b8c2d3;border-radius:4px;max-width:100%}
textarea{width:100%;min-height:5rem;font-family:ui-monospace,monospace;font-size:.85rem}
button{font:inherit;padding:.35rem .8rem;border-radius:4px;border:1px solid #2456a6;background:#2f6fd6;color:#fff;cursor:pointer}
button.quiet{background:#fff;color:#2456a6}button.danger{background:#b42318;border-color:#912018}
:focus-visible{outline:3px solid #f5a524;outline-offset:2px}
.inline{display:inline}.row{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end}
.badge{display:inline-block;padding:0 .45rem;border-radius:9px;font-size:.8rem;background:#e6ecf7}
.badge.locked{background:#fde2e1}.badge.file{background:#eef1f6}
.problems{background:#fde2e1;border:1px solid #f1a7a1}.secret{background:#e3f6e8;border:1px solid #8fd1a1}
code,pre{font-family:ui-monospace,monospace;font-size:.85rem}pre{background:#f2f5fa;padding:.6rem;overflow-x:auto;white-space:pre}
.muted{color:#5b6678}
";

/// A page of the console.
pub(crate) fn layout(title: &str, caller: Option<&Caller>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · trustcaptcha-server" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "trustcaptcha-server" }
                    @if let Some(caller) = caller {
                        nav {
                            a href="/" { "Sites" } " · "
                            a href="/statistics" { "Statistics" } " · "
                            a href="/events" { "Event log" } " · "
                            a href="/webhooks" { "Webhooks" } " · "
                            a href="/audit" { "Audit log" } " · "
                            a href="/users" { "Users" }
                        }
                        span.who {
                            (caller.actor.name) " (" (caller.actor.role.name()) ") "
                            @if caller.csrf.is_some() {
                                form.inline method="post" action="/sign-out" {
                                    (csrf_field(caller))
                                    button.quiet type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page as an answer that no cache keeps (pages may show a key once), that no other site may
/// frame (its buttons change things), and that runs no script but the copy button's.
pub(crate) fn respond(status: StatusCode, page: Markup) -> Response {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let script = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(COPY_SCRIPT.as_bytes()));
        format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script}'; \
             img-src 'self' data:; connect-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    });
    let mut response = (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page.into_string(),
    )
        .into_response();
    if let Ok(value) = policy.parse() {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

pub(crate) fn csrf_field(caller: &Caller) -> Markup {
    html! {
        @if let Some(token) = &caller.csrf {
            input type="hidden" name="csrf" value=(token);
        }
    }
}

pub(crate) fn is_admin(caller: &Caller) -> bool {
    caller.actor.role == Role::Admin
}

pub(crate) fn notice(notice: &Notice) -> Markup {
    html! {
        @if !notice.problems.is_empty() {
            section.problems role="alert" {
                h2 { "Not changed" }
                ul {
                    @for (location, problem) in &notice.problems {
                        li { @if !location.is_empty() { code { (location) } ": " } (problem) }
                    }
                }
            }
        }
        @if let Some(done) = &notice.done {
            section.secret role="status" { p { (done) } }
        }
        @if let Some((kind, name, secret)) = &notice.new_key {
            section.secret role="status" {
                h2 { "New " (kind.name()) " key “" (name) "”" }
                p { "Copy it now: it is shown only this once (the server keeps only its digest)." }
                pre id="new-key" { (secret) }
                button.quiet type="button" data-copy="new-key" { "Copy" }
            }
        }
    }
}

/// The sign-in form.
pub(crate) fn sign_in(problem: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        section style="max-width:24rem;margin:3rem auto" {
            h1 { "Sign in" }
            @if let Some(problem) = problem { p.problems role="alert" style="padding:.5rem" { (problem) } }
            form method="post" action="/sign-in" {
                label for="name" { "Name" }
                input id="name" name="name" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                p { button type="submit" { "Sign in" } }
            }
        }
    };
    respond(status, layout("Sign in", None, body))
}

/// The list of sites, and the form that makes one.
/// A time as the pages show it: to the second, in UTC.
pub(crate) fn when(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

pub(crate) fn sites(state: &AppState, caller: &Caller, shown: &Notice) -> Markup {
    let index = state.site_index();
    let file_sites = index.file_sites();
    let body = html! {
        h1 { "Sites" }
        (notice(shown))
        section.scroll {
            table {
                thead { tr { th { "Name" } th { "Site key" } th { "State" } th { "From" } } }
                tbody {
                    @for site in file_sites {
                        (site_row(site, "file"))
                    }
                    @for entry in &index.catalog.sites {
                        (site_row(&entry.site, "console"))
                    }
                }
            }
        }
        @if is_admin(caller) {
            section {
                h2 { "New site" }
                form.row method="post" action="/sites" {
                    (csrf_field(caller))
                    div { label for="new-name" { "Name" } input id="new-name" name="name" required maxlength="64"; }
                    div { button type="submit" { "Create" } }
                }
                p.muted { "It gets a random site key and an API key (shown once); set its origins next." }
            }
        }
    };
    layout("Sites", Some(caller), body)
}

fn site_row(site: &Site, from: &str) -> Markup {
    html! {
        tr {
            td { a href={ "/sites/" (site.site_key) } { (site.name) } }
            td { code { (site.site_key) } }
            td {
                @if site.locked { span.badge.locked { "locked" } " " }
                @if site.minimal_data_mode { span.badge { "minimal data" } " " }
                @if let Some(quota) = site.hourly_quota { span.badge { (quota) " per hour" } " " }
                @if !site.locked { span.badge { "serving" } }
            }
            td { span.badge.file { (from) } }
        }
    }
}

/// One site: its keys, settings, rules, integration snippets.
pub(crate) fn site(
    state: &AppState,
    caller: &Caller,
    site_key: Uuid,
    shown: &Notice,
    last_uses: &std::collections::HashMap<String, String>,
) -> Option<Markup> {
    let index = state.site_index();
    let (site, catalog) = index.lookup(site_key)?;
    let admin = is_admin(caller) && catalog.is_some();
    let body = html! {
        h1 {
            (site.name) " "
            @if site.locked { span.badge.locked { "locked" } }
            @if catalog.is_none() { span.badge.file { "from the configuration file: read-only here" } }
        }
        (notice(shown))
        section {
            p { "Site key: " code id="site-key" { (site.site_key) } " "
                button.quiet type="button" data-copy="site-key" { "Copy" } }
            p { a href={ "/statistics?site=" (urlencode(&site.name)) } { "Statistics" } }
        }
        @if let Some(entry) = &catalog { (keys(caller, entry, admin, last_uses)) }
        (settings(caller, site, catalog, admin))
        @if let Some(entry) = &catalog { (rules(caller, entry, admin)) }
        (snippets(state, site))
        @if let Some(entry) = &catalog {
            @if admin {
                section {
                    h2 { "Settings as TOML" }
                    p.muted { "Every setting of the site's " code { "[[sites]]" } " table, checked as the configuration file is. Keys are not settings: make them above." }
                    form method="post" action={ "/sites/" (site_key) "/toml" } {
                        (csrf_field(caller))
                        input type="hidden" name="revision" value=(entry.revision);
                        label for="settings-toml" { "Settings" }
                        textarea id="settings-toml" name="settings" rows="14" { (entry.stored.settings) }
                        p { button type="submit" { "Save" } }
                    }
                }
                section {
                    h2 { "Delete" }
                    form method="post" action={ "/sites/" (site_key) "/delete" } {
                        (csrf_field(caller))
                        input type="hidden" name="revision" value=(entry.revision);
                        button.danger type="submit" { "Delete this site" }
                        span.muted { " Its widgets stop at once, on every server." }
                    }
                }
            }
        }
        script { (PreEscaped(COPY_SCRIPT)) }
    };
    Some(layout(&site.name, Some(caller), body))
}

/// Copies the text of the element a `data-copy` button names; without JavaScript the text is
/// there to select.
const COPY_SCRIPT: &str = r"document.querySelectorAll('[data-copy]').forEach(b=>b.addEventListener('click',()=>{const t=document.getElementById(b.dataset.copy);if(t&&navigator.clipboard){navigator.clipboard.writeText(t.textContent.trim()).then(()=>{b.textContent='Copied'})}}));";

fn keys(
    caller: &Caller,
    entry: &CatalogSite,
    admin: bool,
    last_uses: &std::collections::HashMap<String, String>,
) -> Markup {
    let site_key = entry.site.site_key;
    html! {
        section.scroll id="keys" {
            h2 { "Keys" }
            table {
                thead { tr { th { "Name" } th { "Kind" } th { "Made" } th { "Last used" } th { "Stops" } @if admin { th { "" } } } }
                tbody {
                    @for key in &entry.stored.keys {
                        tr data-key-id=(key.id) {
                            td { (key.name) }
                            td { (key.kind.name()) }
                            td { (when(key.created_at)) }
                            td { (last_uses.get(&key.id.to_string()).map_or("never", String::as_str)) }
                            td { (key.expires_at.map_or_else(|| "—".to_owned(), when)) }
                            @if admin {
                                td {
                                    @if key.expires_at.is_none() {
                                        form.inline method="post" action={ "/sites/" (site_key) "/keys/" (key.id) "/rotate" } {
                                            (csrf_field(caller))
                                            label.inline for={ "overlap-" (key.id) } { "old key works for " }
                                            select id={ "overlap-" (key.id) } name="overlap_secs" {
                                                option value="0" { "no longer" }
                                                option value="3600" selected { "1 hour" }
                                                option value="86400" { "1 day" }
                                                option value="604800" { "7 days" }
                                            }
                                            " " button.quiet type="submit" { "Rotate" }
                                        }
                                        " "
                                    }
                                    form.inline method="post" action={ "/sites/" (site_key) "/keys/" (key.id) "/revoke" } {
                                        (csrf_field(caller))
                                        button.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if admin {
                form.row method="post" action={ "/sites/" (site_key) "/keys" } {
                    (csrf_field(caller))
                    div { label for="key-kind" { "Kind" }
                        select id="key-kind" name="kind" { option value="api" { "API key (backend)" } option value="bypass" { "bypass key (tests)" } } }
                    div { label for="key-name" { "Name" } input id="key-name" name="name" required maxlength="64"; }
                    div { button type="submit" { "Make a key" } }
                }
            }
        }
    }
}

fn lines<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn settings(caller: &Caller, site: &Site, catalog: Option<&CatalogSite>, admin: bool) -> Markup {
    let origins = lines(site.allowed_origins.iter().map(origin_text));
    let action = format!("/sites/{}/settings", site.site_key);
    let table: toml::Table = catalog
        .and_then(|entry| entry.stored.settings.parse().ok())
        .unwrap_or_default();
    let list = |key: &str| -> String {
        table
            .get(key)
            .and_then(toml::Value::as_array)
            .map(|items| lines(items.iter().filter_map(toml::Value::as_str)))
            .unwrap_or_default()
    };
    html! {
        section id="settings" {
            h2 { "Settings" }
            form method="post" action=(action) {
                (csrf_field(caller))
                @if let Some(entry) = catalog { input type="hidden" name="revision" value=(entry.revision); }
                fieldset disabled[!admin] style="border:0;padding:0;margin:0" {
                    label for="allowed_origins" { "Allowed origins (one per line; " code { "*" } " for any)" }
                    textarea id="allowed_origins" name="allowed_origins" rows="3" { (origins) }
                    div.row {
                        div { label for="difficulty" { "Difficulty (bits)" } input id="difficulty" name="difficulty" type="number" min="0" max="32" value=(site.difficulty); }
                        div { label for="tasks" { "Tasks" } input id="tasks" name="tasks" type="number" min="1" max="32" value=(site.tasks); }
                        div { label for="score_threshold" { "Risk threshold" } input id="score_threshold" name="score_threshold" type="number" min="0" max="1" step="0.05" value=(site.score_threshold); }
                        div { label for="hourly_quota" { "Hourly quota" } input id="hourly_quota" name="hourly_quota" type="number" min="1" placeholder="none" value=[site.hourly_quota]; }
                    }
                    div.row {
                        label { input type="checkbox" name="locked" value="true" checked[site.locked]; " Locked" }
                        label { input type="checkbox" name="minimal_data_mode" value="true" checked[site.minimal_data_mode]; " Minimal-data mode" }
                        label { input type="checkbox" name="risk_scoring" value="true" checked[site.risk_scoring]; " Risk scoring" }
                    }
                    div.row {
                        div style="flex:1 1 14rem" { label for="allow_ips" { "Allow list (addresses, networks)" } textarea id="allow_ips" name="allow_ips" rows="3" { (list("allow_ips")) } }
                        div style="flex:1 1 14rem" { label for="block_ips" { "Block list" } textarea id="block_ips" name="block_ips" rows="3" { (list("block_ips")) } }
                    }
                    div.row {
                        div { label for="countries_allowed" { "Countries allowed (codes)" } input id="countries_allowed" name="countries_allowed" value=(site.countries_allowed.join(" ")); }
                        div { label for="countries_blocked" { "Countries blocked" } input id="countries_blocked" name="countries_blocked" value=(site.countries_blocked.join(" ")); }
                    }
                    @if admin { p { button type="submit" { "Save settings" } } }
                }
            }
        }
    }
}

fn origin_text(pattern: &crate::origin::OriginPattern) -> String {
    use crate::origin::OriginPattern;
    match pattern {
        OriginPattern::Any => "*".to_owned(),
        OriginPattern::Exact(origin) => origin.clone(),
        OriginPattern::Subdomains { scheme, suffix } => format!("{scheme}://*{suffix}"),
    }
}

fn rules(caller: &Caller, entry: &CatalogSite, admin: bool) -> Markup {
    let table: toml::Table = entry.stored.settings.parse().unwrap_or_default();
    let rules: Vec<String> = table
        .get("rules")
        .and_then(toml::Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .map(|rule| {
                    toml::to_string(rule)
                        .unwrap_or_default()
                        .trim()
                        .replace('\n', ", ")
                })
                .collect()
        })
        .unwrap_or_default();
    let action = format!("/sites/{}/rules", entry.site.site_key);
    let count = rules.len();
    html! {
        section.scroll id="rules" {
            h2 { "Rules" }
            p.muted { "In order: the first rule that matches a visitor applies." }
            @if rules.is_empty() { p { "No rules." } }
            ol {
                @for (index, rule) in rules.iter().enumerate() {
                    li {
                        code { (rule) } " "
                        @if admin {
                            @for (op, label, enabled) in [("up", "Up", index > 0), ("down", "Down", index + 1 < count), ("remove", "Remove", true)] {
                                @if enabled {
                                    form.inline method="post" action=(action) {
                                        (csrf_field(caller))
                                        input type="hidden" name="revision" value=(entry.revision);
                                        input type="hidden" name="op" value=(op);
                                        input type="hidden" name="index" value=(index);
                                        button.quiet type="submit" aria-label={ (label) " rule " (index + 1) } { (label) }
                                    }
                                    " "
                                }
                            }
                        }
                    }
                }
            }
            @if admin {
                h2 { "Add a rule" }
                form method="post" action=(action) {
                    (csrf_field(caller))
                    input type="hidden" name="revision" value=(entry.revision);
                    input type="hidden" name="op" value="add";
                    div.row {
                        div { label for="rule-action" { "Action" }
                            select id="rule-action" name="action" { option value="block" { "block" } option value="allow" { "allow" } option value="adjust" { "adjust" } } }
                        div { label for="rule-networks" { "Networks" } input id="rule-networks" name="networks" placeholder="203.0.113.0/24"; }
                        div { label for="rule-countries" { "Countries" } input id="rule-countries" name="countries" placeholder="DE FR"; }
                        div { label for="rule-browsers" { "Browsers" } input id="rule-browsers" name="browsers" placeholder="Chrome"; }
                        div { label for="rule-systems" { "Operating systems" } input id="rule-systems" name="operating_systems" placeholder="Linux"; }
                        div { label for="rule-difficulty" { "Extra bits (adjust)" } input id="rule-difficulty" name="difficulty" type="number" min="-32" max="32"; }
                    }
                    p { button type="submit" { "Add rule" } }
                }
            }
        }
    }
}

fn snippets(state: &AppState, site: &Site) -> Markup {
    let url = state
        .settings
        .public_url
        .clone()
        .or_else(|| state.bound_url.get().cloned())
        .unwrap_or_else(|| format!("http://{}", state.settings.listen));
    let widget = format!(
        "<script src=\"{url}/widget/dist/bundles/trustcaptcha.umd.min.js\"></script>\n\n\
         <form method=\"post\" action=\"/sign-up\">\n  \
         <trustcaptcha-component sitekey=\"{}\" api-url=\"{url}\"></trustcaptcha-component>\n  \
         <button type=\"submit\">Send</button>\n</form>",
        site.site_key
    );
    let rust = format!(
        "// Cargo.toml: trustcaptcha-rs = {{ version = \"…\" }}\n\
         use trustcaptcha::TrustCaptcha;\n\n\
         let trust_captcha = TrustCaptcha::builder(std::env::var(\"TRUSTCAPTCHA_API_KEY\")?)\n    \
         .api_host(\"{url}\")\n    .build()?;\n\
         // The token the widget put in the form's `tc-verification-token` field:\n\
         let result = trust_captcha.get_verification_result(&token).await?;\n\
         if !result.verification_passed || result.score > {} {{\n    \
         // refuse the sign-up\n}}",
        site.score_threshold
    );
    html! {
        section id="integration" {
            h2 { "Integration" }
            p { "The page (the widget is served by this server when " code { "widget_dir" } " is set):" }
            pre id="snippet-widget" { (widget) }
            button.quiet type="button" data-copy="snippet-widget" { "Copy" }
            p { "The backend, in Rust with the " code { "trustcaptcha" } " crate (the API key is the one shown when it was made):" }
            pre id="snippet-rust" { (rust) }
            button.quiet type="button" data-copy="snippet-rust" { "Copy" }
        }
    }
}

/// The audit log, newest last, a page at a time.
pub(crate) fn audit(
    caller: &Caller,
    entries: &[AuditEntry],
    after: u64,
    page_size: usize,
) -> Markup {
    // A full page may have more after it.
    let next = entries
        .last()
        .filter(|_| entries.len() >= page_size)
        .map(|entry| entry.number);
    let body = html! {
        h1 { "Audit log" }
        p { a href="/admin/audit.jsonl" { "Export as JSON lines" } }
        section.scroll {
            table {
                thead { tr { th { "#" } th { "When" } th { "Who" } th { "What" } th { "Target" } th { "Change" } } }
                tbody {
                    @for entry in entries {
                        tr {
                            td { (entry.number) }
                            td { (when(entry.at)) }
                            td { (entry.actor) }
                            td { code { (entry.action) } }
                            td { code { (entry.target) } }
                            td {
                                details {
                                    summary { "before / after" }
                                    pre { (entry.before.as_ref().map(|value| serde_json::to_string_pretty(value).unwrap_or_default()).unwrap_or_default()) }
                                    pre { (entry.after.as_ref().map(|value| serde_json::to_string_pretty(value).unwrap_or_default()).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
            @if entries.is_empty() { p { "Nothing after entry " (after) "." } }
        }
        @if let Some(next) = next { p { a href={ "/audit?after=" (next) } { "Later entries" } } }
    };
    layout("Audit log", Some(caller), body)
}

/// The users, and (for admins) the forms that add and remove them.
pub(crate) fn users(caller: &Caller, users: &[User], shown: &Notice) -> Markup {
    let admin = is_admin(caller);
    let body = html! {
        h1 { "Users" }
        (notice(shown))
        section.scroll {
            table {
                thead { tr { th { "Name" } th { "Role" } th { "Signs in with" } th { "Made" } @if admin { th { "" } } } }
                tbody {
                    @for user in users {
                        tr {
                            td { (user.name) }
                            td { (user.role.name()) }
                            td { @if user.has_password() { "password" } @else { "the proxy only" } }
                            td { (when(user.created_at)) }
                            @if admin {
                                td {
                                    form.inline method="post" action={ "/users/" (urlencode(&user.name)) "/remove" } {
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
        @if caller.csrf.is_some() {
            section {
                h2 { "Your password" }
                form.row method="post" action="/password" {
                    (csrf_field(caller))
                    div { label for="current" { "Current password" } input id="current" name="current" type="password" autocomplete="current-password" required; }
                    div { label for="new-password" { "New password" } input id="new-password" name="password" type="password" autocomplete="new-password" minlength="12" required; }
                    div { button type="submit" { "Change" } }
                }
            }
        }
        @if admin {
            section {
                h2 { "Add a user" }
                form.row method="post" action="/users" {
                    (csrf_field(caller))
                    div { label for="user-name" { "Name" } input id="user-name" name="name" required maxlength="64" autocomplete="off"; }
                    div { label for="user-role" { "Role" } select id="user-role" name="role" { option value="viewer" { "viewer" } option value="admin" { "admin" } } }
                    div { label for="user-password" { "Password (empty: the proxy only)" } input id="user-password" name="password" type="password" autocomplete="new-password" minlength="12"; }
                    div { button type="submit" { "Add" } }
                }
            }
        }
    };
    layout("Users", Some(caller), body)
}

/// `text` for a URL's path or query.
pub(crate) fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
