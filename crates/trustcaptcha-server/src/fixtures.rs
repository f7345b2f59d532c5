//! The sandbox site's fixtures: the answers the official client test suites expect for fixed
//! verification ids, as the hosted service gives them. Served only for a site with
//! `sandbox_fixtures` (`serve --sandbox`), and named `fixture` in the metrics.

use time::OffsetDateTime;
use trustcaptcha::{DecisionAction, DecisionType, VerificationResult};
use uuid::Uuid;

use crate::config::Site;
use crate::store::{Found, Retrieval};

/// The fixture `id` names, if it names one, as the store would answer it: `…0000` a passed
/// result, `…0001` not found (404), `…0002` not finished (423), `…0003` expired (410), `…0004`
/// retrieved as often as allowed (429).
pub(crate) fn answer(site: &Site, id: Uuid, now: OffsetDateTime) -> Option<Retrieval> {
    Some(match id.as_u128() {
        0 => Retrieval::Found(Box::new(Found {
            access_rule: None,
            result: VerificationResult {
                captcha_id: site.captcha_id(),
                verification_id: id,
                verification_passed: true,
                score: 0.0,
                decision_type: DecisionType::Standard,
                decision_action: DecisionAction::Allow,
                gateway_failover_active: false,
                risk_scoring_enabled: site.risk_scoring,
                minimal_data_mode_enabled: site.minimal_data_mode,
                origin: "https://sandbox.trustcaptcha.invalid/".to_owned(),
                ip_address: "127.0.0.1".to_owned(),
                country_code: String::new(),
                device_family: "Other".to_owned(),
                operating_system: "Other".to_owned(),
                browser: "Other".to_owned(),
                verification_started_at: Some(now),
                verification_finished_at: Some(now),
                result_expires_at: Some(now + site.result_lifetime),
                result_first_fetched_at: Some(now),
                result_last_fetched_at: Some(now),
            },
        })),
        1 => Retrieval::NotFound,
        2 => Retrieval::NotFinished,
        3 => Retrieval::Expired,
        4 => Retrieval::LimitReached,
        _ => return None,
    })
}
