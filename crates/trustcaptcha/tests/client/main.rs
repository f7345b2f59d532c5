//! The client's tests against real servers on loopback: the self-hosted server for whole
//! flows, and small results APIs that answer as each test needs (statuses, bodies, stalls) for
//! what a real server would never do. One test binary; `tracing.rs` has its own process.

mod actix;
mod axum;
mod blocking;
mod properties;
mod retrieval;
mod support;
