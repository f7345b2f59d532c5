//! The durable embedded store: one SQLite file (bundled SQLite, WAL journal), owned by one
//! server process. Writes go to one writer thread that commits them in groups: it takes every
//! operation waiting (up to [`MAX_BATCH`]), runs each in a savepoint of one transaction (an
//! operation that fails rolls back alone), commits, and only then answers them, so a result the
//! server acknowledged (the widget's 201, the backend's 200) was committed and survives the
//! process being killed (`kill -9`); it is never lost or served twice after a restart. When the
//! commit fails, or SQLite abandons the transaction on its own (an I/O error, a full disk), every
//! operation of the group is answered with an error, none is left committing by itself, and the
//! count of verifications and the counters are read again from the file. Reads run
//! on a second connection on Tokio's blocking pool (WAL lets them proceed beside the writer).
//! Nothing blocks an async worker.
//!
//! A verification is one row: its id, when it can be forgotten (indexed, for the sweeper), and
//! its record as JSON. Open and finished verifications live in `verifications`, the rows the
//! capacity counts; a spent one moves to `spent`, shrunk to what later answers need (rows there
//! are bounded by the retrieval rate times the result lifetime). Ids
//! begin with their creation time, so both tables grow at one end: a commit writes a few pages,
//! not one random page per operation, and the pages `spent` fills stay full, where shrinking
//! rows in place would leave them mostly empty. The transitions are the ones every backend
//! shares (`store/record.rs`). The schema version is SQLite's `user_version`; a newer file than
//! this server knows is refused, an older one migrated.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::catalog::{AUDIT_ENTRIES, AUDIT_PAGE};
use super::counter::Counter;
use super::history::JOURNAL_PAGE;
use super::record::{self, Record, Records};
use super::{
    Collection, Counts, Entry as CatalogEntry, Expect, Finished, JournalBound, JournalEntry, Lease,
    Mark, Pending, Resolution, Retrieval, SeriesAdd, SeriesPoint, Store, StoreError, from_millis,
    millis,
};
use crate::clock::Clock;

/// The schema this server writes.
const SCHEMA_VERSION: i64 = 7;

/// How often the sweeper deletes rows no answer depends on.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The most operations one commit takes.
pub const MAX_BATCH: usize = 256;

/// The statements that write a verification's row (see [`put`]).
const INSERT: &str =
    "INSERT OR IGNORE INTO verifications (id, forget_after, record) VALUES (?1, ?2, ?3)";
const UPDATE: &str = "UPDATE verifications SET forget_after = ?2, record = ?3 WHERE id = ?1";
const INSERT_SPENT: &str = "INSERT INTO spent (id, forget_after, record) VALUES (?1, ?2, ?3)";
const UPDATE_SPENT: &str = "UPDATE spent SET forget_after = ?2, record = ?3 WHERE id = ?1";

/// Operations waiting for the writer at most; further callers wait to hand theirs over.
const QUEUE: usize = 4096;

/// A durable [`Store`] in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    shared: Arc<Shared>,
    writer: mpsc::Sender<Job>,
    sweeper: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// The reading connection; the writer thread owns the other.
    reader: Mutex<Connection>,
    /// Rows in `verifications` (pending or finished), counted once at open and kept in step by
    /// every insert, spending retrieval and delete (only this process writes the file).
    len: AtomicUsize,
    capacity: usize,
    /// Every counter, loaded at open and written through (only this process writes the file),
    /// so that reading one costs no query.
    counters: Mutex<HashMap<String, Counter>>,
    /// The file's path and identity at open: a file deleted or replaced under the server takes
    /// every write after it into a file no one will open again.
    file: (std::path::PathBuf, Option<FileIdentity>),
}

/// What tells one file from another at the same path.
type FileIdentity = (u64, u64);

fn identity(path: &Path) -> Option<FileIdentity> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(path)
            .ok()
            .map(|meta| (meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|_| (0, 0))
    }
}

/// One write operation: runs in the writer's transaction and returns how to answer its caller
/// once the commit's outcome is known.
type Job = Box<dyn FnOnce(&Connection, &Shared) -> Reply + Send>;

/// Answers a caller: with the operation's own outcome when the commit succeeded, otherwise
/// with the commit's error.
type Reply = Box<dyn FnOnce(Option<&StoreError>) + Send>;

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`, holding at most `capacity` verifications. Inside
    /// a Tokio runtime it starts its sweeper, judging expiry by `clock`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the file cannot be opened or has a newer schema.
    pub fn open(path: &Path, capacity: usize, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(unavailable)?;
        }
        let mut writing = connect(path)?;
        migrate(&mut writing)?;
        let len = count(&writing)?;
        let counters = load_counters(&writing)?;
        let shared = Arc::new(Shared {
            reader: Mutex::new(connect(path)?),
            len: AtomicUsize::new(len),
            capacity,
            counters: Mutex::new(counters),
            file: (path.to_owned(), identity(path)),
        });
        let (writer, jobs) = mpsc::channel(QUEUE);
        let writing_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("trustcaptcha-sqlite-writer".into())
            .spawn(move || write(writing, &writing_shared, jobs))
            .map_err(unavailable)?;
        let sweeper = tokio::runtime::Handle::try_current()
            .ok()
            .map(|runtime| runtime.spawn(sweep(writer.downgrade(), clock)));
        Ok(SqliteStore {
            shared,
            writer,
            sweeper,
        })
    }

    /// Runs `work` as one operation of the writer's next commit; answers once it is committed.
    async fn transaction<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection, &Shared) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        submit(&self.writer, work).await
    }

    /// Runs `work` in one reading transaction (it takes no write lock) on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let mut connection = shared.reader.lock();
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(unavailable)?;
            let value = work(&transaction)?;
            transaction.commit().map_err(unavailable)?;
            Ok(value)
        })
        .await
        .map_err(unavailable)?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(sweeper) = self.sweeper.take() {
            sweeper.abort();
        }
    }
}

fn encode(record: &Record) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(unavailable)
}

/// Writes `record` as the row of `id` with `statement`, an insert or update of either table
/// that takes the id as `?1`, the time it can be forgotten as `?2` and the record as `?3`;
/// returns the rows written.
fn put(tx: &Connection, statement: &str, id: Uuid, record: &Record) -> Result<usize, StoreError> {
    tx.prepare_cached(statement)
        .map_err(unavailable)?
        .execute(params![
            id.as_bytes(),
            millis(record.forgettable_after()),
            encode(record)?
        ])
        .map_err(unavailable)
}

/// Deletes the open or finished verification `id`.
fn delete(tx: &Connection, id: Uuid) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM verifications WHERE id = ?1")
        .map_err(unavailable)?
        .execute(params![id.as_bytes()])
        .map_err(unavailable)
        .map(drop)
}

/// The record of `id`, spent or not.
fn load(tx: &Connection, id: Uuid) -> Result<Option<Record>, StoreError> {
    let bytes: Option<Vec<u8>> = tx
        .prepare_cached(
            "SELECT record FROM verifications WHERE id = ?1
             UNION ALL SELECT record FROM spent WHERE id = ?1",
        )
        .map_err(unavailable)?
        .query_row(params![id.as_bytes()], |row| row.get(0))
        .optional()
        .map_err(unavailable)?;
    bytes
        .map(|bytes| serde_json::from_slice(&bytes).map_err(unavailable))
        .transpose()
}

fn load_counters(connection: &Connection) -> Result<HashMap<String, Counter>, StoreError> {
    let mut statement = connection
        .prepare("SELECT name, window, length, current, previous FROM counters")
        .map_err(unavailable)?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                Counter {
                    window: row.get(1)?,
                    length: row.get(2)?,
                    current: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                    previous: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                },
            ))
        })
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

/// Creates the schema, or brings an older one up to date.
fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(unavailable)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "the store file has schema version {version}; this server knows up to {SCHEMA_VERSION}"
        )));
    }
    if version < 1 {
        connection
            .execute_batch(
                "BEGIN;
                 CREATE TABLE verifications (
                     id BLOB PRIMARY KEY,
                     forget_after INTEGER NOT NULL,
                     record BLOB NOT NULL
                 ) WITHOUT ROWID;
                 CREATE INDEX verifications_forget_after ON verifications (forget_after);
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
            .map_err(unavailable)?;
    }
    if version < 2 {
        connection
            .execute_batch(
                "BEGIN;
                 CREATE TABLE heartbeat (
                     id INTEGER PRIMARY KEY CHECK (id = 1),
                     at INTEGER NOT NULL
                 );
                 PRAGMA user_version = 2;
                 COMMIT;",
            )
            .map_err(unavailable)?;
    }
    if version < 3 {
        connection
            .execute_batch(
                "BEGIN;
                 CREATE TABLE marks (name TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
                 INSERT INTO marks (name, at) SELECT 'heartbeat', at FROM heartbeat;
                 DROP TABLE heartbeat;
                 CREATE TABLE counters (
                     name TEXT PRIMARY KEY,
                     window INTEGER NOT NULL,
                     length INTEGER NOT NULL,
                     current INTEGER NOT NULL,
                     previous INTEGER NOT NULL,
                     forget_at INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 CREATE INDEX counters_forget_at ON counters (forget_at);
                 PRAGMA user_version = 3;
                 COMMIT;",
            )
            .map_err(unavailable)?;
    }
    if version < 4 {
        // Spent verifications leave the capacity; the column tells them apart without reading
        // the records.
        connection
            .execute_batch(
                "BEGIN;
                 ALTER TABLE verifications ADD COLUMN spent INTEGER NOT NULL DEFAULT 0;
                 UPDATE verifications SET spent = 1
                     WHERE CAST(record AS TEXT) LIKE '%\"Spent\"%';
                 PRAGMA user_version = 4;
                 COMMIT;",
            )
            .map_err(unavailable)?;
    }
    if version < 5 {
        // Spent verifications get a table of their own (see the module's documentation).
        connection
            .execute_batch(
                "BEGIN;
                 CREATE TABLE spent (
                     id BLOB PRIMARY KEY,
                     forget_after INTEGER NOT NULL,
                     record BLOB NOT NULL
                 ) WITHOUT ROWID;
                 CREATE INDEX spent_forget_after ON spent (forget_after);
                 INSERT INTO spent (id, forget_after, record)
                     SELECT id, forget_after, record FROM verifications WHERE spent = 1;
                 DELETE FROM verifications WHERE spent = 1;
                 ALTER TABLE verifications DROP COLUMN spent;
                 PRAGMA user_version = 5;
                 COMMIT;",
            )
            .map_err(unavailable)?;
    }
    if version < 6 {
        // The console's catalog (see `store/catalog.rs`) and its audit log.
        connection
            .execute_batch(
                "BEGIN;
                 CREATE TABLE catalog (
                     collection TEXT NOT NULL,
                     id TEXT NOT NULL,
                     revision INTEGER NOT NULL,
                     expires_at INTEGER,
                     value TEXT NOT NULL,
                     PRIMARY KEY (collection, id)
                 ) WITHOUT ROWID;
                 CREATE TABLE catalog_revisions (
                     collection TEXT PRIMARY KEY,
                     revision INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 CREATE TABLE audit (
                     number INTEGER PRIMARY KEY AUTOINCREMENT,
                     entry TEXT NOT NULL
                 );
                 PRAGMA user_version = 6;
                 COMMIT;",
            )
            .map_err(unavailable)?;
    }
    if version < 7 {
        // History (see `store/history.rs`): series (a bucket is one row, its counts a JSON
        // object of event to count, in a rowid table: a busy site's 85 events take 2.1 kB that
        // way, 5 kB in a table without rowid, whose pages hold few rows this long, and 17 kB
        // as a row each) and journals, each row with the time the sweeper may forget it.
        connection
            .execute_batch(
                "BEGIN;
                 CREATE TABLE series (
                     site TEXT NOT NULL,
                     resolution INTEGER NOT NULL,
                     bucket INTEGER NOT NULL,
                     counts TEXT NOT NULL,
                     forget_at INTEGER NOT NULL,
                     PRIMARY KEY (site, resolution, bucket)
                 );
                 CREATE INDEX series_forget_at ON series (forget_at);
                 CREATE TABLE journal (
                     name TEXT NOT NULL,
                     at INTEGER NOT NULL,
                     id TEXT NOT NULL,
                     value TEXT NOT NULL,
                     forget_at INTEGER NOT NULL,
                     PRIMARY KEY (name, at, id)
                 ) WITHOUT ROWID;
                 CREATE INDEX journal_forget_at ON journal (forget_at);
                 PRAGMA user_version = 7;
                 COMMIT;",
            )
            .map_err(unavailable)?;
    }
    Ok(())
}

/// The revision of the live entry `id` of `collection`, if there is one.
fn live_revision(
    tx: &Connection,
    collection: Collection,
    id: &str,
    now: i64,
) -> Result<Option<u64>, StoreError> {
    let revision: Option<i64> = tx
        .prepare_cached(
            "SELECT revision FROM catalog WHERE collection = ?1 AND id = ?2
             AND (expires_at IS NULL OR expires_at > ?3)",
        )
        .and_then(|mut statement| {
            statement
                .query_row(params![collection.name(), id, now], |row| row.get(0))
                .optional()
        })
        .map_err(unavailable)?;
    Ok(revision.and_then(|revision| u64::try_from(revision).ok()))
}

/// How many entries `collection` holds, expired ones included.
fn held(tx: &Connection, collection: Collection) -> Result<usize, StoreError> {
    let held: i64 = tx
        .prepare_cached("SELECT count(*) FROM catalog WHERE collection = ?1")
        .and_then(|mut statement| statement.query_row(params![collection.name()], |row| row.get(0)))
        .map_err(unavailable)?;
    Ok(usize::try_from(held).unwrap_or(usize::MAX))
}

/// Takes `collection`'s next revision.
fn next_revision(tx: &Connection, collection: Collection) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO catalog_revisions (collection, revision) VALUES (?1, 1)
         ON CONFLICT (collection) DO UPDATE SET revision = revision + 1
         RETURNING revision",
    )
    .and_then(|mut statement| statement.query_row(params![collection.name()], |row| row.get(0)))
    .map_err(unavailable)
}

/// The live entries of `collection` (only `id`'s, when given), by id.
fn catalog_entries(
    tx: &Connection,
    collection: Collection,
    id: Option<&str>,
    now: i64,
) -> Result<Vec<CatalogEntry>, StoreError> {
    let mut statement = tx
        .prepare_cached(
            "SELECT id, revision, expires_at, value FROM catalog
             WHERE collection = ?1 AND (?2 IS NULL OR id = ?2)
             AND (expires_at IS NULL OR expires_at > ?3) ORDER BY id",
        )
        .map_err(unavailable)?;
    let rows = statement
        .query_map(params![collection.name(), id, now], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .map_err(unavailable)?;
    rows.map(|row| {
        let (id, revision, expires_at, value) = row.map_err(unavailable)?;
        Ok(CatalogEntry {
            id,
            revision: u64::try_from(revision).map_err(unavailable)?,
            expires_at: expires_at.and_then(from_millis),
            value,
        })
    })
    .collect()
}

/// Opens a connection to the file: WAL (readers never wait for the writer), `synchronous =
/// NORMAL` (a commit survives the process dying; an operating-system crash may lose the last
/// commits, never corrupt the file).
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(unavailable)?;
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .map_err(unavailable)?;
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(unavailable)?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(unavailable)?;
    Ok(connection)
}

/// Hands `work` to the writer and waits for its committed outcome.
async fn submit<T: Send + 'static>(
    writer: &mpsc::Sender<Job>,
    work: impl FnOnce(&Connection, &Shared) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let (answer, answered) = oneshot::channel();
    let job: Job = Box::new(move |connection, shared| {
        let outcome = run_in_savepoint(connection, shared, work);
        Box::new(move |commit_failed| {
            let _ = answer.send(match commit_failed {
                None => outcome,
                Some(error) => Err(error.clone()),
            });
        })
    });
    writer
        .send(job)
        .await
        .map_err(|_| unavailable("the SQLite writer has stopped"))?;
    answered
        .await
        .map_err(|_| unavailable("the SQLite writer could not start a transaction"))?
}

/// Runs `work` in a savepoint, so that an operation that fails undoes only its own writes.
fn run_in_savepoint<T>(
    connection: &Connection,
    shared: &Shared,
    work: impl FnOnce(&Connection, &Shared) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    execute(connection, "SAVEPOINT operation")?;
    let outcome = work(connection, shared);
    if outcome.is_err() {
        execute(connection, "ROLLBACK TO operation")?;
    }
    execute(connection, "RELEASE operation")?;
    outcome
}

/// Runs a statement without parameters through the connection's statement cache.
fn execute(connection: &Connection, sql: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(drop)
        .map_err(unavailable)
}

/// The writer thread: commits the waiting operations in groups until the store is dropped.
fn write(connection: Connection, shared: &Shared, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        // Jobs dropped unanswered (when no transaction starts) answer their callers with an
        // error through their closed channels.
        if execute(&connection, "BEGIN IMMEDIATE").is_err() {
            batch.clear();
            continue;
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        for job in batch.drain(..) {
            if connection.is_autocommit() {
                // SQLite rolled the transaction back on its own (an I/O error, a full disk):
                // what follows would commit by itself, behind the failing commit below. The
                // jobs left are dropped unanswered.
                break;
            }
            replies.push(job(&connection, shared));
        }
        let committed = execute(&connection, "COMMIT");
        if committed.is_err() {
            let _ = execute(&connection, "ROLLBACK");
            // The batch's operations kept the count and the counters in step with writes that
            // are now undone: read both again from what the file holds.
            if let Err(error) = resync(&connection, shared) {
                tracing::error!(%error, "the SQLite store could not re-read its counts");
            }
        }
        for reply in replies {
            reply(committed.as_ref().err());
        }
    }
}

/// Sets the count of verifications and the counters to what the file holds.
fn resync(connection: &Connection, shared: &Shared) -> Result<(), StoreError> {
    shared.len.store(count(connection)?, Ordering::Release);
    *shared.counters.lock() = load_counters(connection)?;
    Ok(())
}

/// The open and finished verifications in the file (the ones the capacity counts).
fn count(connection: &Connection) -> Result<usize, StoreError> {
    connection
        .query_row("SELECT COUNT(*) FROM verifications", [], |row| {
            row.get::<_, i64>(0)
        })
        .map(|len| usize::try_from(len).unwrap_or(usize::MAX))
        .map_err(unavailable)
}

/// The sweeper: holds only a weak handle on the writer, so it never keeps a dropped store alive.
async fn sweep(writer: mpsc::WeakSender<Job>, clock: Arc<dyn Clock>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(writer) = writer.upgrade() else {
            return;
        };
        let forgotten = forget(&writer, clock.now()).await;
        if forgotten > 0 {
            tracing::debug!(forgotten, "forgot expired verifications");
        }
    }
}

/// Rows one operation of the sweeper deletes at most from each table: a fraction of a
/// millisecond of the writer's time, which the operations committed with it wait for.
const FORGET_AT_ONCE: usize = 100;

/// The sweeper's pause after each operation. Without it every commit of a long sweep carried a
/// slice of deletes, and every request waited for one: while 800 000 verifications were
/// forgotten in slices of 500, requests' p99.9 was 3× that of a quiet run (`expiry-bench`).
const FORGET_PAUSE: Duration = Duration::from_millis(4);

/// Deletes every row no answer depends on at `now`, [`FORGET_AT_ONCE`] per table and operation,
/// pausing [`FORGET_PAUSE`] between operations (a busy store forgets some 150 000 rows every
/// sweep, which in one operation would hold every write for a good part of a second); returns
/// the rows deleted.
async fn forget(writer: &mpsc::Sender<Job>, now: OffsetDateTime) -> usize {
    let now = millis(now);
    let mut forgotten = 0;
    loop {
        let deleted = submit(writer, move |connection, shared| {
            let delete = |table: &str| {
                connection
                    .prepare_cached(&format!(
                        "DELETE FROM {table} WHERE id IN
                         (SELECT id FROM {table} WHERE forget_after <= ?1 LIMIT {FORGET_AT_ONCE})"
                    ))
                    .map_err(unavailable)?
                    .execute(params![now])
                    .map_err(unavailable)
            };
            let (unspent, spent) = (delete("verifications")?, delete("spent")?);
            shared.len.fetch_sub(unspent, Ordering::AcqRel);
            Ok((unspent, spent))
        })
        .await;
        let Ok((unspent, spent)) = deleted else {
            break;
        };
        forgotten += unspent + spent;
        if unspent < FORGET_AT_ONCE && spent < FORGET_AT_ONCE {
            break;
        }
        tokio::time::sleep(FORGET_PAUSE).await;
    }
    let _ = submit(writer, move |connection, shared| {
        for table in ["counters", "series", "journal"] {
            connection
                .prepare_cached(&format!("DELETE FROM {table} WHERE forget_at <= ?1"))
                .map_err(unavailable)?
                .execute(params![now])
                .map_err(unavailable)?;
        }
        shared
            .counters
            .lock()
            .retain(|_, counter| counter.forgettable_at() > now);
        Ok(())
    })
    .await;
    forgotten
}

#[async_trait::async_trait]
impl Records for SqliteStore {
    async fn insert(&self, id: Uuid, record: Record) -> Result<(), StoreError> {
        self.transaction(move |tx, shared| {
            if shared.len.load(Ordering::Acquire) >= shared.capacity {
                return Err(StoreError::Full);
            }
            let spent = tx
                .prepare_cached("SELECT 1 FROM spent WHERE id = ?1")
                .map_err(unavailable)?
                .exists(params![id.as_bytes()])
                .map_err(unavailable)?;
            if spent || put(tx, INSERT, id, &record)? == 0 {
                return Err(StoreError::Duplicate);
            }
            shared.len.fetch_add(1, Ordering::AcqRel);
            Ok(())
        })
        .await
    }

    async fn update<T: Send + 'static>(
        &self,
        id: Uuid,
        transition: impl for<'r> FnOnce(&'r mut Record) -> T + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        self.transaction(move |tx, shared| {
            let Some(mut record) = load(tx, id)? else {
                return Ok(None);
            };
            let was_spent = record.spent_until().is_some();
            let outcome = transition(&mut record);
            match (was_spent, record.spent_until().is_some()) {
                (true, _) => put(tx, UPDATE_SPENT, id, &record)?,
                (false, false) => put(tx, UPDATE, id, &record)?,
                (false, true) => {
                    // A spent verification leaves the capacity for its small row in `spent`.
                    delete(tx, id)?;
                    shared.len.fetch_sub(1, Ordering::AcqRel);
                    put(tx, INSERT_SPENT, id, &record)?
                }
            };
            Ok(Some(outcome))
        })
        .await
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn insert_pending(
        &self,
        id: Uuid,
        pending: Pending,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        record::insert_pending(self, id, pending).await
    }

    async fn claim(
        &self,
        id: Uuid,
        lease: Lease,
        now: OffsetDateTime,
    ) -> Result<Option<Pending>, StoreError> {
        record::claim(self, id, lease, now).await
    }

    async fn finish_claimed(
        &self,
        id: Uuid,
        lease: Lease,
        finished: Finished,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        record::finish_claimed(self, id, lease, finished).await
    }

    async fn insert_finished(
        &self,
        id: Uuid,
        finished: Finished,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        record::insert_finished(self, id, finished).await
    }

    async fn release(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        record::release(self, id, lease).await
    }

    async fn abandon(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.transaction(move |tx, shared| {
            if !load(tx, id)?.is_some_and(|record| record.held_by(lease)) {
                return Err(StoreError::NotClaimant);
            }
            delete(tx, id)?;
            shared.len.fetch_sub(1, Ordering::AcqRel);
            Ok(())
        })
        .await
    }

    async fn retrieve(
        &self,
        id: Uuid,
        authorized: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<Retrieval, StoreError> {
        let authorized = authorized.to_vec();
        Ok(self
            .update(id, move |record| record.retrieve(&authorized, now))
            .await?
            .unwrap_or(Retrieval::NotFound))
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.shared.len.load(Ordering::Acquire))
    }

    async fn mark(&self, mark: Mark, at: OffsetDateTime) -> Result<(), StoreError> {
        let at = millis(at);
        self.transaction(move |tx, _| {
            tx.prepare_cached(
                "INSERT INTO marks (name, at) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET at = max(at, excluded.at)",
            )
            .map_err(unavailable)?
            .execute(params![mark.name(), at])
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn latest(&self, mark: Mark) -> Result<Option<OffsetDateTime>, StoreError> {
        let at: Option<i64> = self
            .read(move |tx| {
                tx.prepare_cached("SELECT at FROM marks WHERE name = ?1")
                    .map_err(unavailable)?
                    .query_row(params![mark.name()], |row| row.get(0))
                    .optional()
                    .map_err(unavailable)
            })
            .await?;
        Ok(at.and_then(from_millis))
    }

    async fn add(
        &self,
        counter: &str,
        length: Duration,
        by: u64,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let name = counter.to_owned();
        self.transaction(move |connection, shared| {
            // Only this thread changes the counters: the new value is kept once it is written.
            let mut counter = shared
                .counters
                .lock()
                .get(&name)
                .copied()
                .unwrap_or_else(|| Counter::new(length, now));
            counter.add(by, now);
            connection
                .prepare_cached(
                    "INSERT OR REPLACE INTO counters
                     (name, window, length, current, previous, forget_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(unavailable)?
                .execute(params![
                    name,
                    counter.window,
                    counter.length,
                    i64::try_from(counter.current).unwrap_or(i64::MAX),
                    i64::try_from(counter.previous).unwrap_or(i64::MAX),
                    counter.forgettable_at()
                ])
                .map_err(unavailable)?;
            let current = counter.current;
            shared.counters.lock().insert(name, counter);
            Ok(current)
        })
        .await
    }

    async fn counts(
        &self,
        counter: &str,
        _length: Duration,
        now: OffsetDateTime,
    ) -> Result<Counts, StoreError> {
        let counters = self.shared.counters.lock();
        Ok(counters
            .get(counter)
            .map(|counter| counter.counts(now))
            .unwrap_or_default())
    }

    async fn put_entry(
        &self,
        collection: Collection,
        id: &str,
        value: String,
        expect: Expect,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let id = id.to_owned();
        let now = millis(now);
        self.transaction(move |tx, _| {
            let found = live_revision(tx, collection, &id, now)?;
            if !expect.holds(found) {
                return Err(StoreError::Conflict);
            }
            // Expired entries are swept only when they stand in the way of a new one.
            if found.is_none() && held(tx, collection)? >= collection.limit() {
                tx.prepare_cached("DELETE FROM catalog WHERE collection = ?1 AND expires_at <= ?2")
                    .and_then(|mut statement| statement.execute(params![collection.name(), now]))
                    .map_err(unavailable)?;
                if held(tx, collection)? >= collection.limit() {
                    return Err(StoreError::Full);
                }
            }
            let revision = next_revision(tx, collection)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO catalog (collection, id, revision, expires_at, value)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    collection.name(),
                    id,
                    revision,
                    expires_at.map(millis),
                    value
                ])
            })
            .map_err(unavailable)?;
            u64::try_from(revision).map_err(unavailable)
        })
        .await
    }

    async fn entry(
        &self,
        collection: Collection,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<CatalogEntry>, StoreError> {
        let id = id.to_owned();
        let now = millis(now);
        self.read(move |tx| Ok(catalog_entries(tx, collection, Some(&id), now)?.pop()))
            .await
    }

    async fn entries(
        &self,
        collection: Collection,
        now: OffsetDateTime,
    ) -> Result<Vec<CatalogEntry>, StoreError> {
        let now = millis(now);
        self.read(move |tx| catalog_entries(tx, collection, None, now))
            .await
    }

    async fn delete_entry(
        &self,
        collection: Collection,
        id: &str,
        expect: Expect,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let now = millis(now);
        self.transaction(move |tx, _| {
            let found = live_revision(tx, collection, &id, now)?;
            if !expect.holds(found) {
                return Err(StoreError::Conflict);
            }
            tx.prepare_cached("DELETE FROM catalog WHERE collection = ?1 AND id = ?2")
                .and_then(|mut statement| statement.execute(params![collection.name(), id]))
                .map_err(unavailable)?;
            if found.is_some() {
                next_revision(tx, collection)?;
            }
            Ok(found.is_some())
        })
        .await
    }

    async fn revision(&self, collection: Collection) -> Result<u64, StoreError> {
        let revision: Option<i64> = self
            .read(move |tx| {
                tx.prepare_cached("SELECT revision FROM catalog_revisions WHERE collection = ?1")
                    .and_then(|mut statement| {
                        statement
                            .query_row(params![collection.name()], |row| row.get(0))
                            .optional()
                    })
                    .map_err(unavailable)
            })
            .await?;
        Ok(revision
            .and_then(|revision| u64::try_from(revision).ok())
            .unwrap_or(0))
    }

    async fn append_audit(&self, entry: String) -> Result<u64, StoreError> {
        self.transaction(move |tx, _| {
            tx.prepare_cached("INSERT INTO audit (entry) VALUES (?1)")
                .and_then(|mut statement| statement.execute(params![entry]))
                .map_err(unavailable)?;
            let number = tx.last_insert_rowid();
            let keep = i64::try_from(AUDIT_ENTRIES).unwrap_or(i64::MAX);
            tx.prepare_cached("DELETE FROM audit WHERE number <= ?1")
                .and_then(|mut statement| statement.execute(params![number - keep]))
                .map_err(unavailable)?;
            u64::try_from(number).map_err(unavailable)
        })
        .await
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit.min(AUDIT_PAGE)).unwrap_or(0);
        self.read(move |tx| {
            let mut statement = tx
                .prepare_cached(
                    "SELECT number, entry FROM audit WHERE number > ?1 ORDER BY number LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = statement
                .query_map(params![after, limit], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(unavailable)?;
            rows.map(|row| {
                let (number, entry) = row.map_err(unavailable)?;
                Ok((u64::try_from(number).map_err(unavailable)?, entry))
            })
            .collect()
        })
        .await
    }

    async fn add_series(
        &self,
        adds: Vec<SeriesAdd>,
        _now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // Each bucket read, added to and written once, however many of its events the batch
        // holds.
        let mut buckets: BTreeMap<(String, Resolution, i64), (i64, BTreeMap<String, u64>)> =
            BTreeMap::new();
        for add in adds {
            let (forget_at, counts) = buckets
                .entry((add.site, add.resolution, add.bucket))
                .or_default();
            *forget_at = (*forget_at).max(millis(add.forget_at));
            let count = counts.entry(add.event).or_default();
            *count = count.saturating_add(add.by);
        }
        self.transaction(move |tx, _| {
            let mut read = tx
                .prepare_cached(
                    "SELECT counts, forget_at FROM series
                     WHERE site = ?1 AND resolution = ?2 AND bucket = ?3",
                )
                .map_err(unavailable)?;
            let mut write = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO series (site, resolution, bucket, counts, forget_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(unavailable)?;
            for ((site, resolution, bucket), (mut forget_at, mut counts)) in buckets {
                let stored: Option<(String, i64)> = read
                    .query_row(params![site, resolution.number(), bucket], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()
                    .map_err(unavailable)?;
                if let Some((json, stored_forget_at)) = stored {
                    forget_at = forget_at.max(stored_forget_at);
                    let stored: BTreeMap<String, u64> =
                        serde_json::from_str(&json).map_err(unavailable)?;
                    for (event, count) in stored {
                        let sum = counts.entry(event).or_default();
                        *sum = sum.saturating_add(count);
                    }
                }
                let json = serde_json::to_string(&counts).map_err(unavailable)?;
                write
                    .execute(params![site, resolution.number(), bucket, json, forget_at])
                    .map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn series(
        &self,
        site: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        let (site, now) = (site.to_owned(), millis(now));
        self.read(move |tx| {
            let mut statement = tx
                .prepare_cached(
                    "SELECT bucket, counts FROM series
                     WHERE site = ?1 AND resolution = ?2 AND bucket >= ?3 AND bucket < ?4
                         AND forget_at > ?5
                     ORDER BY bucket",
                )
                .map_err(unavailable)?;
            let rows = statement
                .query_map(params![site, resolution.number(), from, to, now], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(unavailable)?;
            let mut points = Vec::new();
            for row in rows {
                let (bucket, json) = row.map_err(unavailable)?;
                let counts: BTreeMap<String, u64> =
                    serde_json::from_str(&json).map_err(unavailable)?;
                points.extend(counts.into_iter().filter(|(_, count)| *count > 0).map(
                    |(event, count)| SeriesPoint {
                        bucket,
                        event,
                        count,
                    },
                ));
            }
            Ok(points)
        })
        .await
    }

    async fn append_journal(
        &self,
        journal: &str,
        entries: Vec<JournalEntry>,
        bound: JournalBound,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let journal = journal.to_owned();
        let age = i64::try_from(bound.age.as_millis()).unwrap_or(i64::MAX);
        let oldest = bound.oldest(now);
        self.transaction(move |tx, _| {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO journal (name, at, id, value, forget_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(unavailable)?;
            for entry in entries {
                insert
                    .execute(params![
                        journal,
                        entry.at,
                        entry.id,
                        entry.value,
                        entry.at.saturating_add(age)
                    ])
                    .map_err(unavailable)?;
            }
            tx.prepare_cached("DELETE FROM journal WHERE name = ?1 AND at < ?2")
                .and_then(|mut statement| statement.execute(params![journal, oldest]))
                .map_err(unavailable)?;
            // The oldest beyond the bound: everything before the newest `entries`.
            tx.prepare_cached(
                "DELETE FROM journal WHERE name = ?1 AND (at, id) <= (
                     SELECT at, id FROM journal WHERE name = ?1
                     ORDER BY at DESC, id DESC LIMIT 1 OFFSET ?2)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    journal,
                    i64::try_from(bound.entries).unwrap_or(i64::MAX)
                ])
            })
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn journal(
        &self,
        journal: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let journal = journal.to_owned();
        let limit = i64::try_from(limit.min(JOURNAL_PAGE)).unwrap_or(0);
        self.read(move |tx| {
            let mut statement = tx
                .prepare_cached(
                    "SELECT at, id, value FROM journal WHERE name = ?1 AND at >= ?2 AND at < ?3
                     ORDER BY at DESC, id DESC LIMIT ?4",
                )
                .map_err(unavailable)?;
            let rows = statement
                .query_map(params![journal, from, to, limit], |row| {
                    Ok(JournalEntry {
                        at: row.get(0)?,
                        id: row.get(1)?,
                        value: row.get(2)?,
                    })
                })
                .map_err(unavailable)?;
            rows.map(|row| row.map_err(unavailable)).collect()
        })
        .await
    }

    /// Also checks that the file is still the one opened, and that a write commits (a full
    /// disk fails it, while reads still work).
    async fn ping(&self) -> Result<(), StoreError> {
        let (path, opened) = &self.shared.file;
        match identity(path) {
            None => {
                return Err(unavailable(format!(
                    "the file {} is gone: every write since went nowhere",
                    path.display()
                )));
            }
            now if now != *opened => {
                return Err(unavailable(format!(
                    "the file {} was replaced by another: this server writes into the old one",
                    path.display()
                )));
            }
            _ => {}
        }
        self.transaction(|tx, _| {
            tx.prepare_cached(
                "INSERT INTO marks (name, at) VALUES ('ready', 0)
                 ON CONFLICT (name) DO UPDATE SET at = at + 1",
            )
            .map_err(unavailable)?
            .execute([])
            .map_err(unavailable)?;
            Ok(())
        })
        .await?;
        if self.shared.len.load(Ordering::Acquire) >= self.shared.capacity {
            return Err(StoreError::Full);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::conformance;

    /// A fresh file under the build directory (so that test runs leave nothing elsewhere).
    fn fresh_path() -> std::path::PathBuf {
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-stores");
        std::fs::create_dir_all(&directory).expect("a directory for test stores");
        directory.join(format!("{}.sqlite3", Uuid::new_v4()))
    }

    /// A store in a fresh file of its own.
    fn store(capacity: usize) -> SqliteStore {
        let path = fresh_path();
        SqliteStore::open(
            &path,
            capacity,
            Arc::new(ManualClock::new(conformance::T0)) as Arc<dyn Clock>,
        )
        .expect("open")
    }

    conformance::suite!(store);

    #[tokio::test]
    async fn forgetting_deletes_in_slices_everything_expired_and_nothing_else() {
        let store = store(10_000);
        let (short, long) = (Duration::from_secs(60), Duration::from_secs(2 * 86_400));
        let retrieve = |id| store.retrieve(id, &[conformance::SITE], conformance::T0);
        let (mut expired, mut live) = (Vec::new(), Vec::new());
        // Every other result is retrieved (spent); a few of each kind live on. More of each
        // kind expire than one slice deletes.
        for n in 0..FORGET_AT_ONCE * 2 + 23 {
            let id = Uuid::new_v4();
            let lives = n % 250 < 2;
            let lifetime = if lives { long } else { short };
            let finished = conformance::finished(id, 1, lifetime);
            store
                .insert_finished(id, finished, conformance::T0)
                .await
                .expect("insert");
            if n % 2 == 0 {
                assert!(matches!(retrieve(id).await, Ok(Retrieval::Found(_))));
            }
            if lives {
                live.push(id)
            } else {
                expired.push(id)
            }
        }
        let unspent_live = live.len() / 2;
        let forgotten = forget(&store.writer, conformance::T0 + Duration::from_secs(86_400)).await;
        assert_eq!(forgotten, expired.len());
        assert_eq!(
            store.count().await,
            Ok(unspent_live),
            "live unspent results stay counted"
        );
        for id in expired {
            assert_eq!(retrieve(id).await, Ok(Retrieval::NotFound));
        }
        for id in live {
            assert_ne!(
                retrieve(id).await,
                Ok(Retrieval::NotFound),
                "live ones stay"
            );
        }
    }

    #[tokio::test]
    async fn a_transaction_sqlite_abandons_fails_every_operation_in_it_and_leaves_true_counts() {
        let store = Arc::new(store(10));
        let hour = Duration::from_secs(3600);
        // The writer is held, so that the operations below wait for it together and share one
        // transaction, in which the second rolls everything back, as SQLite does on an I/O
        // error or a full disk.
        let (taken, writer_held) = oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let writer = store.writer.clone();
        let holder = tokio::spawn(async move {
            submit(&writer, move |_, _| {
                let _ = taken.send(());
                let _ = released.recv();
                Ok(())
            })
            .await
        });
        writer_held
            .await
            .expect("the writer takes the first operation");
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let insert = |id| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let finished = conformance::finished(id, 1, hour);
                store.insert_finished(id, finished, conformance::T0).await
            })
        };
        let inserted = insert(first);
        let counted = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.add("quota", hour, 1, conformance::T0).await })
        };
        let abandoned = {
            let writer = store.writer.clone();
            tokio::spawn(async move {
                submit(&writer, |connection, _| execute(connection, "ROLLBACK")).await
            })
        };
        let after = insert(second);
        while store.writer.max_capacity() - store.writer.capacity() < 4 {
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release the writer");
        assert_eq!(holder.await.expect("holder"), Ok(()));
        for outcome in [inserted, after] {
            assert!(outcome.await.expect("insert").is_err());
        }
        assert!(counted.await.expect("add").is_err());
        assert!(abandoned.await.expect("rollback").is_err());
        // Nothing of the batch is in the file, and the counts say so.
        let retrieve = |id| store.retrieve(id, &[conformance::SITE], conformance::T0);
        assert_eq!(retrieve(first).await, Ok(Retrieval::NotFound));
        assert_eq!(retrieve(second).await, Ok(Retrieval::NotFound));
        assert_eq!(store.count().await, Ok(0));
        let quota = store.counts("quota", hour, conformance::T0).await;
        assert_eq!(quota.map(|counts| counts.current), Ok(0));
        // And the store goes on.
        insert(first).await.expect("insert").expect("stored");
        assert_eq!(store.count().await, Ok(1));
    }

    #[tokio::test]
    async fn a_file_of_schema_4_keeps_its_verifications_when_spent_ones_move() {
        let path = fresh_path();
        let (open, spent) = (Uuid::new_v4(), Uuid::new_v4());
        let lifetime = Duration::from_secs(60);
        {
            let mut old = Connection::open(&path).expect("create");
            old.execute_batch(
                "CREATE TABLE verifications (
                     id BLOB PRIMARY KEY, forget_after INTEGER NOT NULL, record BLOB NOT NULL,
                     spent INTEGER NOT NULL DEFAULT 0
                 ) WITHOUT ROWID;
                 CREATE INDEX verifications_forget_after ON verifications (forget_after);
                 CREATE TABLE marks (name TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
                 CREATE TABLE counters (
                     name TEXT PRIMARY KEY, window INTEGER NOT NULL, length INTEGER NOT NULL,
                     current INTEGER NOT NULL, previous INTEGER NOT NULL, forget_at INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 CREATE INDEX counters_forget_at ON counters (forget_at);
                 PRAGMA user_version = 4;",
            )
            .expect("schema 4");
            let mut used_up = Record::finished(conformance::finished(spent, 1, lifetime));
            used_up.retrieve(&[conformance::SITE], conformance::T0);
            let rows = old.transaction().expect("transaction");
            for (id, record) in [
                (
                    open,
                    Record::finished(conformance::finished(open, 1, lifetime)),
                ),
                (spent, used_up),
            ] {
                rows.execute(
                    "INSERT INTO verifications (id, forget_after, record, spent)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        id.as_bytes(),
                        millis(record.forgettable_after()),
                        encode(&record).expect("encode"),
                        record.spent_until().is_some()
                    ],
                )
                .expect("insert");
            }
            rows.commit().expect("commit");
        }
        let clock = Arc::new(ManualClock::new(conformance::T0)) as Arc<dyn Clock>;
        let store = SqliteStore::open(&path, 10, clock).expect("migrate");
        assert_eq!(store.count().await, Ok(1), "only the unspent one counts");
        let retrieve = |id| store.retrieve(id, &[conformance::SITE], conformance::T0);
        assert_eq!(retrieve(spent).await, Ok(Retrieval::LimitReached));
        assert!(matches!(retrieve(open).await, Ok(Retrieval::Found(_))));
        assert_eq!(retrieve(open).await, Ok(Retrieval::LimitReached));
        assert_eq!(store.count().await, Ok(0));
        drop(store);
        remove(&path);
    }

    #[tokio::test]
    async fn what_was_stored_is_there_after_reopening_and_counted() {
        let path = fresh_path();
        let clock = || Arc::new(ManualClock::new(conformance::T0)) as Arc<dyn Clock>;
        let id = Uuid::new_v4();
        {
            let store = SqliteStore::open(&path, 10, clock()).expect("open");
            store
                .insert_finished(
                    id,
                    conformance::finished(id, 1, Duration::from_secs(60)),
                    conformance::T0,
                )
                .await
                .expect("insert");
            store
                .add("quota", Duration::from_secs(3600), 3, conformance::T0)
                .await
                .expect("count");
        }
        let store = SqliteStore::open(&path, 10, clock()).expect("reopen");
        assert_eq!(store.count().await, Ok(1));
        assert_eq!(
            store
                .counts("quota", Duration::from_secs(3600), conformance::T0)
                .await
                .map(|counts| counts.current),
            Ok(3),
            "counters are kept too"
        );
        assert!(matches!(
            store
                .retrieve(id, &[conformance::SITE], conformance::T0)
                .await,
            Ok(Retrieval::Found(_))
        ));
        assert_eq!(
            store
                .retrieve(id, &[conformance::SITE], conformance::T0)
                .await,
            Ok(Retrieval::LimitReached)
        );
        drop(store);
        remove(&path);
    }

    /// Removes a store's file and its journal.
    fn remove(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
