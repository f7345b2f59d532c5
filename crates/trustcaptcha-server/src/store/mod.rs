//! Where verifications live between the widget's create, its submission and the backend's
//! fetches. [`Store`] is the seam for other backends; [`memory::MemoryStore`] is the bounded
//! in-memory one.
//!
//! A verification moves through three states: *pending* (challenge handed out), *submitting*
//! (one submission has claimed it; any other gets 404), *finished* (result ready). Each
//! transition, and each counted fetch, is atomic.

pub mod memory;

use std::net::IpAddr;

use time::OffsetDateTime;
use trustcaptcha::VerificationResult;
use uuid::Uuid;

use crate::pow::TaskInput;
use crate::rules::AccessRule;
use crate::scoring::Signals;

/// A challenge handed out and not yet solved.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The site it belongs to.
    pub site_key: Uuid,
    /// One random input per task.
    pub inputs: Vec<TaskInput>,
    /// The difficulty the tasks were issued with.
    pub difficulty: u8,
    /// When the challenge was handed out.
    pub created_at: OffsetDateTime,
    /// When the challenge stops being accepted.
    pub expires_at: OffsetDateTime,
    /// What the result will say about the client.
    pub client: ClientInfo,
    /// Scoring rules that fired at create time.
    pub signals: Signals,
    /// An allow or block list entry that matched the client.
    pub access_rule: Option<AccessRule>,
}

/// What a result reports about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// The page's origin.
    pub origin: String,
    /// Two-letter country code, or empty.
    pub country_code: String,
    /// Device family from the User-Agent.
    pub device_family: String,
    /// Operating system from the User-Agent.
    pub operating_system: String,
    /// Browser from the User-Agent.
    pub browser: String,
}

/// A finished verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The result as it will be served; the fetch timestamps are filled in per fetch.
    pub result: VerificationResult,
    /// The site it belongs to.
    pub site_key: Uuid,
    /// How often it may be fetched.
    pub max_retrievals: u32,
}

/// The answer to a fetch.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// The result, with this fetch counted and its timestamps set.
    Found(Box<VerificationResult>),
    /// No such verification (or it was evicted).
    NotFound,
    /// The verification belongs to a site the caller's key is not for.
    WrongSite,
    /// Not finished yet.
    NotFinished,
    /// Past its lifetime.
    Expired,
    /// Fetched as often as allowed.
    LimitReached,
}

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store holds as many verifications as it may.
    #[error("the store is full")]
    Full,
    /// The id is already taken.
    #[error("the verification id is already in use")]
    Duplicate,
    /// The backend failed (e.g. a remote store is unreachable).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// Verification storage.
pub trait Store: Send + Sync + 'static {
    /// Stores a new pending verification.
    ///
    /// # Errors
    ///
    /// [`StoreError::Full`] when at capacity even after evicting expired entries.
    fn insert_pending(
        &self,
        id: Uuid,
        pending: Pending,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Claims a pending, unexpired verification for its one submission. Returns `None` when it
    /// does not exist, has expired, or was already claimed.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn claim_pending(&self, id: Uuid, now: OffsetDateTime) -> Result<Option<Pending>, StoreError>;

    /// Stores the result of a verification (claimed or new, e.g. by bypass key); it expires at
    /// `finished.result.result_expires_at`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Full`] when a new entry does not fit.
    fn finish(&self, id: Uuid, finished: Finished, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Forgets a verification (a failed submission).
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn discard(&self, id: Uuid) -> Result<(), StoreError>;

    /// Fetches a result for a caller whose key is valid for the sites in `authorized`, counting
    /// the retrieval atomically.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    fn fetch(
        &self,
        id: Uuid,
        authorized: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<Fetched, StoreError>;

    /// Drops entries that can no longer be used; returns how many.
    fn evict_expired(&self, now: OffsetDateTime) -> usize;

    /// How many verifications are held.
    fn len(&self) -> usize;

    /// Whether no verification is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the store can serve requests.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when it cannot.
    fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
