//! The console's users: a name, a role, and a password hashed with Argon2id (the `argon2`
//! crate's defaults, a salt of its own per password) or none, for a user who signs in only
//! through a trusted proxy. The first user is added from the shell (`trustcaptcha-server user
//! add`); admins add more in the console.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::{Actor, Refused, Role, audit};
use crate::state::AppState;
use crate::store::{Collection, Expect, Store as _, StoreError};

/// Passwords are at least this long.
pub(crate) const MIN_PASSWORD_CHARS: usize = 12;

/// Passwords longer than this are refused before hashing, so that hashing stays bounded.
const MAX_PASSWORD_BYTES: usize = 1024;

/// A user as the catalog keeps it.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) role: Role,
    /// The password's Argon2 hash (PHC string); none for a user who signs in only through a
    /// trusted proxy.
    password: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl User {
    /// Whether the user has a password (otherwise they sign in only through a trusted proxy).
    pub(crate) fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The user as the console's actors name them.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            role: self.role,
        }
    }
}

/// Whether `name` can name a user: 1 to 64 letters, digits and `.`, `_`, `-`, `@`.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

/// The Argon2id hash of `password`, on the blocking pool (it takes tens of milliseconds).
async fn hash(password: String) -> Result<String, Refused> {
    tokio::task::spawn_blocking(move || {
        SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .and_then(|salt| {
                argon2::Argon2::default()
                    .hash_password(password.as_bytes(), &salt)
                    .map(|hash| hash.to_string())
            })
            .map_err(|_| Refused::BadRequest("the password cannot be hashed".into()))
    })
    .await
    .map_err(|_| Refused::BadRequest("the password cannot be hashed".into()))?
}

/// A hash of a password nobody has, checked when the name is unknown, so that the answer takes
/// as long as for a known name.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .and_then(|salt| {
                argon2::Argon2::default()
                    .hash_password(b"decoy password that no one has", &salt)
                    .map(|hash| hash.to_string())
            })
            .unwrap_or_default()
    })
}

/// Adds a user (`password` none: proxy sign-in only). `by` is recorded in the audit log.
///
/// # Errors
///
/// A name or password that is not valid, a name that is taken, or the store's failure.
pub(crate) async fn add(
    state: &AppState,
    by: &Actor,
    name: &str,
    role: Role,
    password: Option<String>,
) -> Result<(), Refused> {
    if !valid_name(name) {
        return Err(Refused::BadRequest(
            "a user name is 1 to 64 letters, digits, `.`, `_`, `-` or `@`".into(),
        ));
    }
    if let Some(password) = &password
        && !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_BYTES).contains(&password.chars().count())
    {
        return Err(Refused::BadRequest(format!(
            "a password has at least {MIN_PASSWORD_CHARS} characters (and at most {MAX_PASSWORD_BYTES})"
        )));
    }
    let password = match password {
        Some(password) => Some(hash(password).await?),
        None => None,
    };
    let now = state.clock.now();
    let user = User {
        name: name.to_owned(),
        role,
        password,
        created_at: now,
    };
    let value =
        serde_json::to_string(&user).map_err(|_| Refused::BadRequest("unreadable".into()))?;
    match state
        .store
        .put_entry(Collection::Users, name, value, Expect::Absent, None, now)
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict) => {
            return Err(Refused::BadRequest(format!("a user named `{name}` exists")));
        }
        Err(error) => return Err(error.into()),
    }
    audit::record(
        state,
        by,
        "user.add",
        name,
        None,
        Some(json!({"role": role.name(), "password": user.has_password()})),
    )
    .await;
    Ok(())
}

/// Removes a user; their sessions end with them (a session names a user who must exist).
///
/// # Errors
///
/// An unknown user, or the store's failure.
pub(crate) async fn remove(state: &AppState, by: &Actor, name: &str) -> Result<(), Refused> {
    let now = state.clock.now();
    let Some(user) = find(state, name).await? else {
        return Err(Refused::NotFound("user"));
    };
    if !state
        .store
        .delete_entry(Collection::Users, name, Expect::Anything, now)
        .await?
    {
        return Err(Refused::NotFound("user"));
    }
    audit::record(
        state,
        by,
        "user.remove",
        name,
        Some(json!({"role": user.role.name()})),
        None,
    )
    .await;
    Ok(())
}

/// Changes `name`'s password to `password`, if `current` is their password now: a stolen
/// session alone cannot take the account over.
///
/// # Errors
///
/// A wrong current password, a new one that is not valid, or the store's failure.
pub(crate) async fn change_password(
    state: &AppState,
    name: &str,
    current: String,
    password: String,
) -> Result<(), Refused> {
    let Some(user) = sign_in(state, name, current).await? else {
        return Err(Refused::BadRequest(
            "the current password is not right".into(),
        ));
    };
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(Refused::BadRequest(format!(
            "a password has at least {MIN_PASSWORD_CHARS} characters (and at most {MAX_PASSWORD_BYTES} bytes)"
        )));
    }
    let changed = User {
        password: Some(hash(password).await?),
        ..user
    };
    let value =
        serde_json::to_string(&changed).map_err(|_| Refused::BadRequest("unreadable".into()))?;
    let now = state.clock.now();
    state
        .store
        .put_entry(Collection::Users, name, value, Expect::Anything, None, now)
        .await?;
    audit::record(state, &changed.actor(), "user.password", name, None, None).await;
    Ok(())
}

/// The user named `name`.
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn find(state: &AppState, name: &str) -> Result<Option<User>, StoreError> {
    if !valid_name(name) {
        return Ok(None);
    }
    let entry = state
        .store
        .entry(Collection::Users, name, state.clock.now())
        .await?;
    Ok(entry.and_then(|entry| serde_json::from_str(&entry.value).ok()))
}

/// Every user, by name.
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn list(state: &AppState) -> Result<Vec<User>, StoreError> {
    let entries = state
        .store
        .entries(Collection::Users, state.clock.now())
        .await?;
    Ok(entries
        .into_iter()
        .filter_map(|entry| serde_json::from_str(&entry.value).ok())
        .collect())
}

/// The user `name` if `password` is theirs. Takes as long for an unknown name or a user
/// without a password as for a wrong password.
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn sign_in(
    state: &AppState,
    name: &str,
    password: String,
) -> Result<Option<User>, StoreError> {
    let user = find(state, name).await?;
    let hash = user
        .as_ref()
        .and_then(|user| user.password.clone())
        .unwrap_or_else(|| decoy().to_owned());
    let matches = tokio::task::spawn_blocking(move || {
        password.len() <= MAX_PASSWORD_BYTES
            && PasswordHash::new(&hash).is_ok_and(|hash| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            })
    })
    .await
    .unwrap_or(false);
    Ok(user.filter(|user| matches && user.has_password()))
}
