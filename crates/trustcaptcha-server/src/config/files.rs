//! The files `[server]` names, read once: by `serve` when it starts (and, for the reputation
//! lists, when it reloads), and by `check-config`. Validation reads none of them.

use std::path::PathBuf;

use super::{ConfigError, ServerSettings};
use crate::hosting::Hosting;
use crate::networks::NetworkSet;
use crate::visitor::Inspector;

/// What the files `[server]` names hold.
#[derive(Debug)]
pub struct ServerFiles {
    /// The reputation lists, merged.
    pub(crate) reputation: NetworkSet,
    /// The User-Agent parser, with the country database when one is named.
    pub(crate) inspector: Inspector,
    /// The ASN database and the hosting list.
    pub(crate) hosting: Hosting,
    /// The public listener's certificate, when it serves TLS.
    pub(crate) tls: Option<crate::tls::Acceptor>,
}

impl ServerFiles {
    /// Reads every file `settings` names: the reputation lists, the country and ASN databases,
    /// the TLS certificate and key, and checks that the widget directory is one.
    ///
    /// # Errors
    ///
    /// Every file that cannot be read or is not what its key wants, with the key.
    pub fn read(settings: &ServerSettings) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let reputation = reputation_lists(&settings.reputation_lists)
            .map_err(|error| problems.extend(error.problems))
            .unwrap_or_default();
        let inspector = Inspector::new(settings.geoip_database.as_deref())
            .map_err(|error| problems.push(("server.geoip_database".to_owned(), error)))
            .ok();
        let hosting = Hosting::new(
            settings.asn_database.as_deref(),
            &settings.hosting_asns,
            settings.shipped_hosting_asns,
        )
        .map_err(|error| problems.push(("server.asn_database".to_owned(), error)))
        .ok();
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::Acceptor::new)
            .transpose()
            .map_err(|error| problems.push(("server.tls".to_owned(), error)))
            .ok()
            .flatten();
        if let Some(path) = settings.widget_dir.as_ref().filter(|path| !path.is_dir()) {
            problems.push((
                "server.widget_dir".to_owned(),
                format!("{} is not a directory", path.display()),
            ));
        }
        match (inspector, hosting) {
            (Some(inspector), Some(hosting)) if problems.is_empty() => Ok(ServerFiles {
                reputation,
                inspector,
                hosting,
                tls,
            }),
            _ => Err(ConfigError { problems }),
        }
    }
}

/// The reputation lists at `paths`, merged.
///
/// # Errors
///
/// Each list that cannot be read or parsed.
pub(crate) fn reputation_lists(paths: &[PathBuf]) -> Result<NetworkSet, ConfigError> {
    let mut sets = Vec::with_capacity(paths.len());
    let mut problems = Vec::new();
    for path in paths {
        match NetworkSet::read(path) {
            Ok(set) => sets.push(set),
            Err(error) => problems.push((
                "server.reputation_lists".to_owned(),
                format!("{}: {error}", path.display()),
            )),
        }
    }
    if problems.is_empty() {
        Ok(NetworkSet::union(sets))
    } else {
        Err(ConfigError { problems })
    }
}
