//! Back doors for benchmarks: a server's state filled without the HTTP round trips, to measure
//! what a full store or full limits cost.

use time::OffsetDateTime;
use uuid::Uuid;

use super::ORIGIN;
use crate::AppState;
use crate::pow;
use crate::store::{Pending, Store, StoreError};

/// A pending verification of `site_key` handed out at `now`, expiring at `expires_at`, shaped as
/// a create stores it: for filling a store in benchmarks without the HTTP round trips.
#[must_use]
pub fn pending_for(site_key: Uuid, now: OffsetDateTime, expires_at: OffsetDateTime) -> Pending {
    Pending {
        site_key,
        tasks: pow::Tasks::generate(1),
        difficulty: 1,
        created_at: now,
        expires_at,
        visitor: crate::visitor::Visitor {
            ip: Some(std::net::IpAddr::from([192, 0, 2, 1])),
            origin: ORIGIN.into(),
            country_code: "DE".into(),
            device_family: "Other".into(),
            operating_system: "Linux".into(),
            browser: "Chrome 131.0.0.0".into(),
        },
        signals: crate::signals::Signals::default(),
        access_rule: None,
        request: 1,
    }
}

/// Counts one solve for each of `networks` client networks (IPv4 addresses from 10.0.0.0 on)
/// in `store`, for the adaptive-difficulty window `window`, as that many submissions would.
///
/// # Errors
///
/// When the store refuses.
pub async fn track_networks(
    store: &dyn Store,
    networks: u32,
    window: std::time::Duration,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for network in 0..networks {
        let ip = std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + network));
        store
            .add(&crate::counters::solves_counter(ip, window), window, 1, now)
            .await?;
    }
    Ok(())
}

/// Records one pending challenge for `site` from each of `networks` client networks
/// (10.0.0.0 onwards) in `state`'s limits, handed out at `now` and expiring at `expires_at`, as
/// that many create requests would. Returns how many were recorded: fewer when the site's
/// `max_pending_per_site` is reached.
pub fn hand_out_challenges(
    state: &AppState,
    networks: u32,
    site: Uuid,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> u32 {
    let mut recorded = 0;
    for network in 0..networks {
        let ip = std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + network));
        if state
            .limits
            .hand_out(Some(ip), site, now, expires_at)
            .is_ok()
        {
            recorded += 1;
        }
    }
    recorded
}

/// Records one failed key guess from each of `networks` client networks (10.0.0.0 onwards) at
/// `now`, as that many requests with a wrong key would: fills the guess record for benchmarks.
pub fn fail_guesses(state: &AppState, networks: u32, now: OffsetDateTime) {
    for network in 0..networks {
        let ip = std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + network));
        state.limits.failed_guess(Some(ip), now);
    }
}

/// One pass of the limits' housekeeping (forgetting expired pending challenges and full
/// rate budgets, with its pauses), as the server runs it every 30 s on the blocking pool; for
/// benchmarks that must see it at a known moment. Blocks for as long as the pass takes.
pub fn limits_housekeeping(state: &AppState, now: OffsetDateTime) {
    state.limits.housekeeping(now);
}
