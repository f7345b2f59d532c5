//! `[store]`: where verifications are kept, named by a URL whose grammar is checked here
//! without opening anything, and how a shared Redis acknowledges a write.

use std::time::Duration;

use serde::Deserialize;

/// Where verifications are kept (`[store] url`, or `TRUSTCAPTCHA_STORE__URL`). Its `Debug`
/// output shows only the URL's scheme, since the URL may carry credentials.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `sqlite://PATH`, `redis://[USER:PASSWORD@]HOST:PORT[/DB]`,
    /// `redis+cluster://HOST:PORT[,HOST:PORT…]` or `memory://` (see [`crate::store::open`]).
    /// `None` (a configuration made in code) keeps them in memory; [`load`](super::load)
    /// defaults to a SQLite file beside the configuration file.
    pub url: Option<String>,
    /// Redis only: how many replicas must have a write that decides a verification (a challenge
    /// stored, a result stored or counted as fetched, a site or key changed) before the server
    /// acknowledges it; 0 (the default) acknowledges what the primary holds. Redis replicates
    /// asynchronously, so without it a primary that dies can take acknowledged writes with it;
    /// with it each such write waits for `WAIT`.
    pub wait_for_replicas: u32,
    /// How long a write waits for [`wait_for_replicas`](Self::wait_for_replicas) replicas (at
    /// most 1500 ms, within the 2-s bound of a store call); a write they did not acknowledge in
    /// time is answered as the store being unavailable (503).
    #[serde(
        rename = "replica_timeout_ms",
        deserialize_with = "crate::clock::millis"
    )]
    pub replica_timeout: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            url: None,
            wait_for_replicas: 0,
            replica_timeout: Duration::from_millis(500),
        }
    }
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.url.as_deref().map(|url| {
            url.split_once("://")
                .map_or("<invalid>", |(scheme, _)| scheme)
        });
        f.debug_struct("StoreSettings")
            .field("scheme", &scheme)
            .field("wait_for_replicas", &self.wait_for_replicas)
            .field("replica_timeout", &self.replica_timeout)
            .finish()
    }
}

impl StoreSettings {
    /// Every problem with the URL, as `(field, message)`: whether it names a store
    /// [`crate::store::open`] can open, judged without opening it (no file is made, no server is
    /// reached). Messages leave the URL's credentials out.
    pub(super) fn check(&self) -> Vec<(String, String)> {
        let mut problems = self.check_url();
        let redis = self
            .url
            .as_deref()
            .is_some_and(|url| url.starts_with("redis://") || url.starts_with("redis+cluster://"));
        if self.wait_for_replicas > 0 && !redis {
            problems.push((
                "wait_for_replicas".to_owned(),
                "replicas are waited for on a Redis store only".to_owned(),
            ));
        }
        if self.replica_timeout.is_zero() || self.replica_timeout > Duration::from_millis(1500) {
            problems.push((
                "replica_timeout_ms".to_owned(),
                "must be between 1 and 1500 (a store call gives up after 2 s)".to_owned(),
            ));
        }
        problems
    }

    fn check_url(&self) -> Vec<(String, String)> {
        let Some(url) = self.url.as_deref() else {
            return Vec::new();
        };
        let problem = |message: String| vec![("url".to_owned(), message)];
        if url == "memory://"
            || url
                .strip_prefix("sqlite://")
                .is_some_and(|path| !path.is_empty())
        {
            return Vec::new();
        }
        if url.starts_with("redis://") || url.starts_with("redis+cluster://") {
            #[cfg(feature = "redis")]
            return if redis_nodes(url).is_some() {
                Vec::new()
            } else {
                problem(format!(
                    "`{}` is not a Redis URL: redis://[USER:PASSWORD@]HOST:PORT[/DB]",
                    redacted(url)
                ))
            };
            #[cfg(not(feature = "redis"))]
            return problem("this build has no Redis store (feature `redis`)".to_owned());
        }
        problem(format!(
            "`{}` is not a store URL: use sqlite://PATH, redis://HOST:PORT, \
             redis+cluster://HOST:PORT,… or memory://",
            redacted(url)
        ))
    }
}

/// The connection details of each Redis node a `redis://` or `redis+cluster://` URL names (a
/// cluster's node list shares its credentials), or `None` when one is not a Redis URL.
#[cfg(feature = "redis")]
pub(crate) fn redis_nodes(url: &str) -> Option<Vec<redis::ConnectionInfo>> {
    use redis::IntoConnectionInfo as _;
    let nodes = match url.strip_prefix("redis+cluster://") {
        Some(nodes) => {
            let (credentials, hosts) = match nodes.rsplit_once('@') {
                Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
                None => (String::new(), nodes),
            };
            hosts
                .split(',')
                .map(|host| format!("redis://{credentials}{host}"))
                .collect()
        }
        None => vec![url.to_owned()],
    };
    nodes
        .into_iter()
        .map(|node| node.into_connection_info().ok())
        .collect()
}

/// A store URL as it may be shown: without the user and password it may carry.
#[must_use]
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_shown_url_carries_no_credentials() {
        assert_eq!(
            redacted("redis://user:hunter2@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(
            redacted("redis+cluster://:p%40ss@a:1,b:2"),
            "redis+cluster://***@a:1,b:2"
        );
        assert_eq!(
            redacted("sqlite:///var/lib/x@y.db"),
            "sqlite:///var/lib/x@y.db"
        );
        assert_eq!(redacted("memory://"), "memory://");
    }
}
