//! `trustcaptcha-server`: a self-hosted server that the official TrustCaptcha widget and backend
//! libraries work against.
//!
//! How one verification travels through the modules:
//!
//! 0. On the TLS listener ([`tls`]) the accept loop reads the connection's ClientHello first and
//!    tags every request with the client's JA4 fingerprint.
//! 1. The widget calls `POST /v2/verifications`. `api::widget` extracts the body (a
//!    [`protocol::CreateRequest`]), the visitor's address and TLS fingerprint, and calls
//!    `verification::create`, a sequence of steps. *Admit*: the site, mode, lock and hourly
//!    quota are checked against the [`config`], the page's origin against the site's [`origin`]
//!    patterns, and `limits` keeps each client network and block to its share (rates, open
//!    challenges, key guesses, fair shares of the pools and the quota). *Look at the visitor*:
//!    `visitor` describes the browser, [`access`] applies the site's security rules (IP and
//!    country lists, proof-of-work rules, the reputation lists, all as [`networks`] sets).
//!    Then a bypass key ([`secret`]) finishes at once, or *a challenge is made*: `detection`
//!    looks for signals (of the page, the request, the TLS client, the network's kind from
//!    `hosting`, one device set-up repeated across networks from `repetition`), the
//!    difficulty rises for networks that solve often and for suspicion ([`adaptive`]), [`pow`]
//!    makes the tasks; and *handed out*: the [`store`]
//!    (SQLite, Redis or memory) keeps it as pending.
//! 2. The widget solves it and calls `POST …/challenges`. `verification::submit` claims the
//!    pending verification in the store under a lease, [`pow`] verifies the answers,
//!    `detection` finds the signals of automation in both requests (what the page reports,
//!    checked against the HTTP requests, the input events, the proof-of-work's duration and
//!    [`integrity`]), `scoring` weighs the `signals` into the score, and the store marks it
//!    finished; the widget gets a verification token.
//! 3. The site's backend calls `GET …/results` (e.g. with the `trustcaptcha` crate).
//!    `verification::retrieve` checks the key, answers the sandbox's `fixtures`, and the store
//!    counts the retrieval atomically; `api::results` renders the 20-field result. A widget's
//!    own failover claim gets a flagged result only for a bounded margin after downtime on
//!    record (`failover`: a gap in the store's heartbeat; a store that fails is answered with
//!    503 and opens nothing).
//!
//! Every outcome of the core is counted once, through `events`, which feeds `metrics`
//! (`/metrics`) and `statistics` (per site: counts per hour and day and the event log of recent
//! verifications, in the store's history). A request is refused (the client's doing) or not
//! served (the store failed, 503); the two are counted apart. What an operator should hear of
//! (a refusal spike, a quota nearly spent, a store outage, a lock-out, a configuration change)
//! is raised as an alert (`alerts`) where it happens, and `webhooks` delivers it, signed.
//!
//! The client's address, which every limit and IP rule keys on, comes from one rule in
//! [`client_address`]: the peer, or the one header a trusted proxy sets.
//!
//! The console (`api::console`, on the admin listener) is how a team runs the server from a
//! browser: its guard resolves who is asking (a session, a trusted proxy's user header, the
//! admin token) and refuses what their role may not do or what lacks its CSRF token; its pages
//! and its JSON API call `catalog`, which changes sites, keys and users in the store's catalog
//! (`store::catalog`, revisioned), checks a site exactly as the file's are checked, records
//! the change in the audit log, and applies it to the site index at once. Every other server
//! sharing the store polls the catalog's revision (`tasks`) and reads the sites again.
//!
//! [`app()`] is exactly the service that [`serve`] serves (tests drive it directly or through
//! [`spawn`]); [`serve_admin`] serves health and metrics on a listener of their own; [`Server`]
//! binds both for a state and runs them, for `main` and [`spawn`] alike. `state` holds what
//! requests share; every store call goes through [`store::TrackedStore`], a store layer that logs the
//! store's failures and beats once it recovers; [`clock`] lets tests move time; `solve`
//! (feature `solve`) is the widget without a browser; [`testing`] (feature `test-support`)
//! starts embedded servers for tests; `fuzz` (feature `fuzz`) holds the fuzz targets' entry
//! points; [`log_output`] (feature `cli`) buffers the command line's log lines, and
//! `access_line` writes the access log's line (fast, into that buffer, when it is installed);
//! `background` is
//! the thread of the store's sweeper and the log's flusher; `tasks` is the work a serving
//! server does beside the requests (the start-up outage check, heartbeats, statistics flushes,
//! readiness pings, alert watching and webhook delivery).
//!
//! The modules form layers without cycles (`tests/architecture.rs` fails on one): [`config`]
//! and the leaves it is made of ([`networks`], [`origin`], [`adaptive`], [`secret`],
//! [`client_address`], [`clock`]) know nothing of requests or storage; the [`store`] knows the
//! records it keeps (the console's sites among them); the service core (`verification`,
//! `detection`, `scoring`, `limits`, `events`, `statistics`, and `alerts`, which knows nothing
//! but its queue) uses both; `state`, `catalog`, `tasks`, `webhooks`, the web layer (`api`)
//! and `server` sit on top.
//! `docs/glossary.md` says what each word names.

#![deny(missing_docs)]

pub mod access;
mod access_line;
pub mod adaptive;
mod alerts;
mod api;
mod background;
mod catalog;
pub mod client_address;
pub mod clock;
pub mod config;
mod counters;
mod detection;
mod events;
mod failover;
mod fixtures;
#[cfg(feature = "fuzz")]
pub mod fuzz;
mod hosting;
pub mod integrity;
mod limits;
#[cfg(feature = "cli")]
pub mod log_output;
mod metrics;
mod mmdb;
pub mod networks;
pub mod origin;
pub mod pow;
pub mod protocol;

mod repetition;
mod scoring;
pub mod secret;
mod server;
mod signals;
#[cfg(feature = "solve")]
pub mod solve;
mod state;
mod statistics;
pub mod store;
mod tasks;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tls;
mod verification;
mod visitor;
mod webhooks;

pub use api::{App, app};
pub use catalog::{add_user, remove_user};
pub use config::Config;
pub use server::{
    ServeError, Server, ServerBuilder, Spawned, serve, serve_admin, shutdown_signal, spawn,
};
pub use state::{AppState, AppStateBuilder};
