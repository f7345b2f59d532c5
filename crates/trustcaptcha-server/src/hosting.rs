//! Whether a client's address belongs to a hosting or data-centre network: its autonomous
//! system (from an ASN database in MaxMind's format) on the hosting list (a shipped list of
//! well-known clouds and hosts, `data/hosting-asns.txt`, extended by the operator).
//!
//! People browse from homes, offices and phones; scripts run on rented servers. The page cannot
//! hide which network its requests come from, so this is one of the signals a script cannot
//! forge: only moving to a residential or mobile network (a proxy service, at a price) avoids
//! it. People on a commercial VPN, a company network hosted in a cloud, or a cloud desktop trip
//! it, which is why it weighs less than a refusal alone (`docs/operators.md`, "Detection").

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

use crate::mmdb::{self, Database};

/// The shipped hosting list: one ASN per line, `#` comments.
const SHIPPED: &str = include_str!("../data/hosting-asns.txt");

/// Where an ASN database keeps a network's number: MaxMind's layout
/// (`autonomous_system_number`, a number: GeoLite2-ASN, DB-IP and ip-location-db files), or
/// IPinfo's (`asn`, a text such as `AS15169`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AsnPath {
    MaxMind,
    Ipinfo,
}

impl mmdb::Layout for AsnPath {
    type Value = u32;
    const ALL: &'static [Self] = &[AsnPath::MaxMind, AsnPath::Ipinfo];
    const WANTED: &'static str = "autonomous system number as `autonomous_system_number` \
                                  (MaxMind's layout) or `asn` (\"AS…\", IPinfo's)";

    /// The number this layout finds in `found`.
    fn read(self, found: &maxminddb::LookupResult<'_, Vec<u8>>) -> Option<u32> {
        use maxminddb::PathElement::Key;
        match self {
            AsnPath::MaxMind => found
                .decode_path::<u32>(&[Key("autonomous_system_number")])
                .ok()
                .flatten(),
            AsnPath::Ipinfo => found
                .decode_path::<String>(&[Key("asn")])
                .ok()
                .flatten()?
                .strip_prefix("AS")?
                .parse()
                .ok(),
        }
    }
}

/// The ASN database and the hosting list.
pub(crate) struct Hosting {
    database: Option<Database<AsnPath>>,
    asns: HashSet<u32>,
}

impl std::fmt::Debug for Hosting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosting")
            .field("database", &self.database.is_some())
            .field("asns", &self.asns.len())
            .finish()
    }
}

impl Hosting {
    /// The hosting networks: `extra` ASNs, and the shipped list when `shipped`; looked up in
    /// the ASN database at `database` (without one, no address is a hosting network's).
    ///
    /// # Errors
    ///
    /// When the database cannot be opened, is not a MaxMind DB, or keeps no ASN where a known
    /// layout does (read as "no number", it would find no hosting network at all).
    pub(crate) fn new(
        database: Option<&Path>,
        extra: &[u32],
        shipped: bool,
    ) -> Result<Self, String> {
        let database = database.map(Database::open).transpose()?;
        let mut asns: HashSet<u32> = extra.iter().copied().collect();
        if shipped {
            asns.extend(shipped_asns());
        }
        Ok(Hosting { database, asns })
    }

    /// The autonomous system `ip` belongs to, when the database knows it.
    pub(crate) fn asn(&self, ip: IpAddr) -> Option<u32> {
        self.database.as_ref()?.lookup(ip)
    }

    /// Whether `ip` belongs to a hosting network.
    pub(crate) fn is_hosting(&self, ip: IpAddr) -> bool {
        self.asn(ip).is_some_and(|asn| self.asns.contains(&asn))
    }
}

/// The shipped list's numbers.
fn shipped_asns() -> impl Iterator<Item = u32> {
    SHIPPED.lines().filter_map(|line| {
        let number = line.split('#').next()?.trim();
        (!number.is_empty()).then(|| number.parse().expect("the shipped list holds numbers"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_reads_and_names_the_large_clouds() {
        let asns: HashSet<u32> = shipped_asns().collect();
        assert!(asns.len() >= 30);
        for cloud in [16509, 15169, 8075, 14061, 24940, 16276] {
            assert!(asns.contains(&cloud), "{cloud}");
        }
        // Networks that also carry people's privacy relays are not on it.
        assert!(!asns.contains(&13335));
    }

    #[test]
    fn without_a_database_no_address_is_hostings() {
        let hosting = Hosting::new(None, &[64_512], true).expect("no database");
        assert!(!hosting.is_hosting("3.5.140.2".parse().expect("ip")));
        assert_eq!(hosting.asn("3.5.140.2".parse().expect("ip")), None);
    }

    #[test]
    fn a_missing_database_is_an_error() {
        let error =
            Hosting::new(Some(Path::new("/nonexistent/asn.mmdb")), &[], true).expect_err("no file");
        assert!(error.contains("/nonexistent/asn.mmdb"), "{error}");
    }
}
