//! The server's tests against a real server on loopback: one test binary, one module per
//! area. `logs.rs` has its own binary (tracing's callsite cache is per process).

mod assessments;
mod cli;
mod console;
mod detection;
#[cfg(feature = "fuzz")]
mod fuzz_corpus;
mod geoip;
mod history;
mod hostile;
mod openapi;
mod ops;
mod properties;
mod redis;
mod results;
mod reverse_proxy;
mod scale_out;
mod security_rules;
mod store_outage;
mod tls;
mod webhooks;
mod widget;

mod fixtures;
