//! MaxMind-format databases (`.mmdb`): the country database and the ASN database. Free
//! databases of one kind keep their value at different places in their records (a layout); the
//! layout of a file is learnt from its first records, and a file that holds the value in no
//! known layout is refused rather than read as "no value" for every address.

use std::net::IpAddr;
use std::path::Path;

/// How many of a database's records are looked at to learn its layout.
const LAYOUT_PROBES: usize = 10_000;

/// A place in a database's records where one kind of database keeps its value.
pub(crate) trait Layout: Copy + 'static {
    /// What the database tells about an address.
    type Value;
    /// Every layout of this kind of database, the most common first.
    const ALL: &'static [Self];
    /// What a database of this kind must hold, for the error about one that holds nothing.
    const WANTED: &'static str;
    /// The value this layout finds in a record, when it is there and well-formed.
    fn read(self, found: &maxminddb::LookupResult<'_, Vec<u8>>) -> Option<Self::Value>;
}

/// An open database and its records' layout.
pub(crate) struct Database<L> {
    reader: maxminddb::Reader<Vec<u8>>,
    layout: L,
}

impl<L: Layout> Database<L> {
    /// Opens the database at `path` and learns its layout.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened, is not a MaxMind DB, or holds the value in no known
    /// layout in its first records.
    pub(crate) fn open(path: &Path) -> Result<Self, String> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|error| {
            format!(
                "{} cannot be opened as a MaxMind DB file: {error}",
                path.display()
            )
        })?;
        let layout = reader
            .networks(maxminddb::WithinOptions::default())
            .ok()
            .and_then(|records| {
                records
                    .take(LAYOUT_PROBES)
                    .filter_map(Result::ok)
                    .find_map(|found| {
                        L::ALL
                            .iter()
                            .copied()
                            .find(|layout| layout.read(&found).is_some())
                    })
            })
            .ok_or_else(|| {
                format!(
                    "{} ({}) keeps no {} in its first {LAYOUT_PROBES} networks: use a database of \
                     one of these layouts",
                    path.display(),
                    reader.metadata().database_type,
                    L::WANTED,
                )
            })?;
        Ok(Database { reader, layout })
    }

    /// What the database holds for `ip`.
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<L::Value> {
        self.layout.read(&self.reader.lookup(ip).ok()?)
    }
}
