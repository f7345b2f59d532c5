//! The memory store's compact form of an open (pending or claimed) verification: one boxed byte
//! string instead of a record, a boxed [`Pending`] and its texts' own allocations. A server
//! holding a million pending verifications holds a million of these, so every byte counts; the
//! form is unpacked only when a submission claims the verification (or a retrieval asks for it
//! early), and the sweeper reads only its [`Clock`], the first few bytes.
//!
//! The form is [`Open`] in `postcard`: variable-length integers, texts as length and bytes, times
//! as Unix nanoseconds in UTC. It is never written anywhere: only the process that packed a
//! verification unpacks it, so the layout may change between versions.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::record::{self, Record, State};
use super::{Lease, Pending};
use crate::access::AccessRule;
use crate::pow::Tasks;
use crate::signals::Signals;
use crate::visitor::Visitor;

/// The largest form packed on the stack; a verification whose form is longer (texts are
/// bounded well below this) is kept unpacked.
const MAX_PACKED: usize = 1_024;

/// An open verification, borrowing its texts from the record being packed or the bytes being
/// unpacked.
#[derive(Serialize, Deserialize)]
struct Open<'a> {
    /// First, so that the sweeper decodes it alone.
    clock: Clock,
    site_key: [u8; 16],
    seed: [u8; 16],
    tasks: u8,
    difficulty: u8,
    ip: Option<IpAddr>,
    origin: &'a str,
    country_code: &'a str,
    device_family: &'a str,
    operating_system: &'a str,
    browser: &'a str,
    /// [`Signals::bits`].
    signals: u16,
    access_rule: Option<AccessRule>,
    /// [`Pending::request`], as fixed bytes: a digest takes the five bytes of a variable-length
    /// integer most of the time.
    request: [u8; 4],
}

/// The times of an open verification: what decides when it may be forgotten.
#[derive(Serialize, Deserialize)]
struct Clock {
    created_at: i128,
    /// Nanoseconds from `created_at`: a few bytes where a second time takes nine.
    lifetime: i128,
    /// The lease's token and until.
    lease: Option<(u64, i128)>,
}

impl Clock {
    fn expires_at(&self) -> Option<OffsetDateTime> {
        time(self.created_at.checked_add(self.lifetime)?)
    }

    fn lease(&self) -> Result<Option<Lease>, time::error::ComponentRange> {
        self.lease
            .map(|(token, until)| {
                let until = OffsetDateTime::from_unix_timestamp_nanos(until)?;
                Ok(Lease { token, until })
            })
            .transpose()
    }
}

/// The packed form of `record`, if it is open and fits the form (UTC times, tasks made from a
/// seed); `None` keeps it as it is.
pub(crate) fn pack(record: &Record) -> Option<Box<[u8]>> {
    let State::Open { pending, lease } = &record.state else {
        return None;
    };
    let (seed, tasks) = pending.tasks.seed()?;
    let visitor = &pending.visitor;
    let created_at = nanos(pending.created_at)?;
    let open = Open {
        clock: Clock {
            created_at,
            lifetime: nanos(pending.expires_at)? - created_at,
            lease: match lease {
                Some(lease) => Some((lease.token, nanos(lease.until)?)),
                None => None,
            },
        },
        site_key: record.site_key.into_bytes(),
        seed,
        tasks,
        difficulty: pending.difficulty,
        ip: visitor.ip,
        origin: &visitor.origin,
        country_code: &visitor.country_code,
        device_family: &visitor.device_family,
        operating_system: &visitor.operating_system,
        browser: &visitor.browser,
        signals: pending.signals.bits(),
        access_rule: pending.access_rule,
        request: pending.request.to_le_bytes(),
    };
    let mut buffer = [0; MAX_PACKED];
    let packed = postcard::to_slice(&open, &mut buffer).ok()?;
    Some((*packed).into())
}

/// When the packed verification may be forgotten; `None` if the bytes are not a packed form
/// (never for what [`pack`] made).
pub(crate) fn forgettable_after(packed: &[u8]) -> Option<OffsetDateTime> {
    let (clock, _) = postcard::take_from_bytes::<Clock>(packed).ok()?;
    Some(record::open_forgettable_after(
        clock.expires_at()?,
        clock.lease().ok()?,
    ))
}

/// The record `packed` was made from; `None` if the bytes are not a packed form (never for
/// what [`pack`] made).
pub(crate) fn unpack(packed: &[u8]) -> Option<Record> {
    let open: Open<'_> = postcard::from_bytes(packed).ok()?;
    let site_key = Uuid::from_bytes(open.site_key);
    let pending = Pending {
        site_key,
        tasks: Tasks::seeded(open.seed, open.tasks),
        difficulty: open.difficulty,
        created_at: time(open.clock.created_at)?,
        expires_at: open.clock.expires_at()?,
        visitor: Visitor {
            ip: open.ip,
            origin: open.origin.into(),
            country_code: open.country_code.into(),
            device_family: open.device_family.into(),
            operating_system: open.operating_system.into(),
            browser: open.browser.into(),
        },
        signals: Signals::from_bits_truncate(open.signals),
        access_rule: open.access_rule,
        request: u32::from_le_bytes(open.request),
    };
    Some(Record {
        site_key,
        state: State::Open {
            pending: Box::new(pending),
            lease: open.clock.lease().ok()?,
        },
    })
}

/// `at` in Unix nanoseconds, if it is in UTC (the only offset the form keeps).
fn nanos(at: OffsetDateTime) -> Option<i128> {
    (at.offset() == UtcOffset::UTC).then(|| at.unix_timestamp_nanos())
}

fn time(nanos: i128) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;
    use proptest::prelude::*;
    use std::time::Duration;

    fn record(pending: Pending, lease: Option<Lease>) -> Record {
        Record {
            site_key: pending.site_key,
            state: State::Open {
                pending: Box::new(pending),
                lease,
            },
        }
    }

    /// What a record holds, to compare (`Record` is not `PartialEq`).
    fn parts(record: &Record) -> (Uuid, Pending, Option<Lease>) {
        let State::Open { pending, lease } = &record.state else {
            panic!("not open");
        };
        (record.site_key, (**pending).clone(), *lease)
    }

    proptest! {
        #[test]
        fn an_open_record_unpacks_to_what_was_packed(
            seed in any::<[u8; 16]>(),
            tasks in any::<u8>(),
            difficulty in any::<u8>(),
            lifetime in 0..u64::from(u32::MAX),
            nanos in 0..1_000_000_000_u32,
            ip in any::<Option<IpAddr>>(),
            origin in ".{0,300}",
            names in proptest::array::uniform3(".{0,40}"),
            signals in any::<u16>(),
            blocked in any::<bool>(),
            leased in any::<Option<u64>>(),
            request in any::<u32>(),
        ) {
            let created_at = conformance::T0 + time::Duration::nanoseconds(i64::from(nanos));
            let [device_family, operating_system, browser] = names;
            let pending = Pending {
                tasks: Tasks::seeded(seed, tasks),
                difficulty,
                created_at,
                expires_at: created_at + Duration::from_secs(lifetime),
                visitor: Visitor {
                    ip,
                    origin: origin.into(),
                    country_code: "DE".into(),
                    device_family: device_family.into(),
                    operating_system: operating_system.into(),
                    browser: browser.into(),
                },
                signals: Signals::from_bits_truncate(signals),
                access_rule: blocked.then_some(AccessRule::Blocked),
                request,
                ..conformance::pending(Duration::from_secs(60))
            };
            let lease = leased.map(|token| Lease { token, until: created_at + Duration::from_secs(30) });
            let record = record(pending, lease);
            let packed = pack(&record).expect("packs");
            let unpacked = unpack(&packed).expect("unpacks");
            prop_assert_eq!(parts(&unpacked), parts(&record));
            prop_assert_eq!(forgettable_after(&packed), Some(record.forgettable_after()));
        }

        #[test]
        fn no_bytes_unpack_to_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = unpack(&bytes);
            let _ = forgettable_after(&bytes);
        }
    }

    #[test]
    fn what_the_form_cannot_hold_is_not_packed() {
        let pending = conformance::pending(Duration::from_secs(60));
        let offset = UtcOffset::from_hms(2, 0, 0).expect("offset");
        let elsewhere = Pending {
            created_at: pending.created_at.to_offset(offset),
            ..pending.clone()
        };
        assert!(pack(&record(elsewhere, None)).is_none());
        let finished = Record::finished(conformance::finished(
            Uuid::new_v4(),
            1,
            Duration::from_secs(60),
        ));
        assert!(pack(&finished).is_none());
        assert!(pack(&record(pending, None)).is_some());
    }
}
