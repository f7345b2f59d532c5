//! Signed-in sessions. The cookie holds a random token (256 bits); the store keeps only its
//! SHA-256 digest, with the user's name, the session's CSRF token and its expiry, so that a copy
//! of the store signs nobody in. Every request looks the user up again: a removed user or a
//! changed role takes effect at once, on every server.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::users::{self, User};
use crate::state::AppState;
use crate::store::{Collection, Expect, Store as _, StoreError};

/// A session as the catalog keeps it.
#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    user: String,
    csrf: String,
}

/// A live session: its user as they are now, and the token its changes must carry.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) user: User,
    pub(crate) csrf: String,
    /// The digest of the cookie's token: the session's id in the store.
    id: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user.name)
            .finish_non_exhaustive()
    }
}

fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn id_of(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Starts a session for `user` that ends after `lifetime`; the cookie's token.
///
/// # Errors
///
/// When the store fails, or holds as many sessions as it may.
pub(crate) async fn start(
    state: &AppState,
    user: &User,
    lifetime: std::time::Duration,
) -> Result<String, StoreError> {
    let token = random_token();
    let stored = Stored {
        user: user.name.clone(),
        csrf: random_token(),
    };
    let now = state.clock.now();
    let value =
        serde_json::to_string(&stored).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    state
        .store
        .put_entry(
            Collection::Sessions,
            &id_of(&token),
            value,
            Expect::Absent,
            Some(now + lifetime),
            now,
        )
        .await?;
    Ok(token)
}

/// The session a cookie's token names, if it is live and its user still exists.
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn find(state: &AppState, token: &str) -> Result<Option<Session>, StoreError> {
    if token.len() != 43 {
        return Ok(None);
    }
    let id = id_of(token);
    let now: OffsetDateTime = state.clock.now();
    let Some(entry) = state.store.entry(Collection::Sessions, &id, now).await? else {
        return Ok(None);
    };
    let Ok(stored) = serde_json::from_str::<Stored>(&entry.value) else {
        return Ok(None);
    };
    let Some(user) = users::find(state, &stored.user).await? else {
        return Ok(None);
    };
    Ok(Some(Session {
        user,
        csrf: stored.csrf,
        id,
    }))
}

/// Ends `session` (signing out).
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn end(state: &AppState, session: &Session) -> Result<(), StoreError> {
    state
        .store
        .delete_entry(
            Collection::Sessions,
            &session.id,
            Expect::Anything,
            state.clock.now(),
        )
        .await
        .map(|_| ())
}
