//! The shared store: Redis 7, one node or a Redis Cluster, for many server instances at once.
//!
//! A verification is one hash, `trustcaptcha:v:{ID}`: its site, its state (`o` open, `f`
//! finished, `s` spent), the expiry that state is judged by (milliseconds since the epoch), the
//! lease that claims it, its retrieval count and limit, and its pending challenge or finished
//! result as JSON. Its one key carries the id as a hash tag, so in a cluster everything about a
//! verification lives in one slot. Every transition and every counted retrieval is one Lua
//! script, so it is atomic across all the instances sharing the store; the order of answers is
//! the one the contract prescribes and `record.rs` implements for the in-process backends. Each
//! key expires (relative to the caller's `now`) when no answer can depend on it any more.
//!
//! The bound on what is stored is Redis's `maxmemory` under the `noeviction` policy: a full Redis
//! refuses new verifications ([`StoreError::Full`]) while those already stored can still be
//! claimed, finished and fetched (those scripts may run when Redis is out of memory). Any other
//! eviction policy could drop live verifications silently, so [`Store::prepare`] refuses
//! it.
//!
//! The catalog (`store/catalog.rs`) lives under one hash tag, `{catalog}`, so that its scripts
//! touch one slot: a collection is one hash (`trustcaptcha:catalog:{catalog}:sites`, field id,
//! value `REVISION:EXPIRY:JSON`, the expiry empty when there is none) with its revision counter
//! beside it, and the audit log a sorted set scored by entry number.
//!
//! History (`store/history.rs`) lives under the site's or journal's name as hash tag: a series
//! bucket is one hash (`trustcaptcha:series:{SITE}:hour:BUCKET`, field event, value count)
//! that expires at its `forget_at`, so a site's buckets are read in one pipeline; a journal
//! one sorted set (`trustcaptcha:journal:{NAME}`) scored by time, members `ID` and the entry
//! joined by a newline, trimmed on every append and expiring with its newest entry.
//!
//! Connections reconnect with exponential backoff; every call is bounded by [`CALL_TIMEOUT`].
//!
//! Redis replicates asynchronously: a primary acknowledges a write before its replicas have it,
//! and a primary that dies before they do takes the write with it. With `[store]
//! wait_for_replicas` set, each write the server acknowledges to a client as decided (a
//! challenge or result stored, a retrieval counted, a catalog entry changed) is sent in one
//! pipeline with `WAIT`, on the connection to the primary of its key's slot; fewer replicas
//! than asked for in `replica_timeout_ms` make it unavailable (503), never acknowledged. A
//! failover then promotes a replica that holds every acknowledged write (with one replica per
//! primary, the one that acknowledged; with more, Redis promotes the most up-to-date).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::catalog::{AUDIT_ENTRIES, AUDIT_PAGE};
use super::history::JOURNAL_PAGE;
use super::{
    Collection, Counts, Entry as CatalogEntry, Expect, Finished, Found, JournalBound, JournalEntry,
    Lease, Mark, Pending, Resolution, Retrieval, SeriesAdd, SeriesPoint, Store, StoreError,
    TOMBSTONE, from_millis, millis, window,
};

/// The longest one store call may take, reconnecting included; then it fails as unavailable.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long connecting to a node may take, and how long a sent command may wait for its reply.
const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// A [`Store`] in Redis, shared by every server instance that uses the same URL.
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    scripts: Arc<Scripts>,
    /// How many replicas must acknowledge a deciding write, and how long they get (`None`: the
    /// primary's acknowledgement is enough).
    replicas: Option<(u32, Duration)>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: it is not kept, and not shown.
        let kind = match self.connection {
            Connection::Node(_) => "node",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore")
            .field("kind", &kind)
            .field("replicas", &self.replicas)
            .finish()
    }
}

/// One node through a reconnecting manager, or a cluster through its slot-routing connection.
#[derive(Clone)]
enum Connection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Node(node) => node.req_packed_command(cmd),
            Connection::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Node(node) => node.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(node) => node.get_db(),
            Connection::Cluster(cluster) => cluster.get_db(),
        }
    }
}

/// The server-side scripts, one per transition. Times are milliseconds since the epoch, passed
/// as decimal strings and compared with `tonumber` (exact in Lua's doubles for the next few
/// hundred thousand years); a time computed in Lua is formatted with `%d`, never `tostring`.
struct Scripts {
    insert: Script,
    claim: Script,
    finish: Script,
    release: Script,
    abandon: Script,
    retrieve: Script,
    keep_max: Script,
    add: Script,
    put_entry: Script,
    delete_entry: Script,
    append_audit: Script,
}

/// Stores a new verification unless the id exists. Without flags, so a Redis over its
/// `maxmemory` refuses it with an OOM error.
const INSERT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 'duplicate' end
redis.call('HSET', KEYS[1], 'site', ARGV[1], 'st', ARGV[2], 'exp', ARGV[3], 'd', ARGV[4],
  'n', 0, 'm', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 'ok'
";

/// ARGV: now, lease token, lease until. Returns the pending challenge, or nil.
const CLAIM: &str = r"#!lua flags=allow-oom
local v = redis.call('HMGET', KEYS[1], 'st', 'exp', 'lu', 'd')
local now = tonumber(ARGV[1])
if v[1] ~= 'o' or tonumber(v[2]) <= now then return false end
if v[3] and tonumber(v[3]) > now then return false end
redis.call('HSET', KEYS[1], 'lt', ARGV[2], 'lu', ARGV[3])
local keep = math.max(tonumber(v[2]), tonumber(ARGV[3])) - now
redis.call('PEXPIRE', KEYS[1], string.format('%d', keep), 'GT')
return v[4]
";

/// The lease check shared by the scripts that move a claim: `ARGV[1]` token, `ARGV[2]` until.
const HELD: &str = r"#!lua flags=allow-oom
local v = redis.call('HMGET', KEYS[1], 'st', 'lt', 'lu')
if v[1] ~= 'o' or v[2] ~= ARGV[1] or v[3] ~= ARGV[2] then return 'not_claimant' end
";

/// ARGV: token, until, result JSON, result expiry, max retrievals, time to keep the key.
const FINISH: &str = r"
redis.call('HDEL', KEYS[1], 'lt', 'lu')
redis.call('HSET', KEYS[1], 'st', 'f', 'd', ARGV[3], 'exp', ARGV[4], 'n', 0, 'm', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 'ok'
";

const RELEASE: &str = r"
redis.call('HDEL', KEYS[1], 'lt', 'lu')
return 'ok'
";

const ABANDON: &str = r"
redis.call('DEL', KEYS[1])
return 'ok'
";

/// ARGV: now, tombstone time, now in nanoseconds, then the authorized site keys. Returns
/// `{answer}` or `{'found', result JSON, first retrieval in nanoseconds}`. The retrieval that
/// spends a result shortens its key's life to the result's (see `Record::forgettable_after`).
const RETRIEVE: &str = r"#!lua flags=allow-oom
local v = redis.call('HMGET', KEYS[1], 'site', 'st', 'exp', 'n', 'm', 'ff')
local st = v[2]
if not st then return {'not_found'} end
local now, exp = tonumber(ARGV[1]), tonumber(v[3])
if st == 'o' or st == 's' then
  if exp <= now then return {'not_found'} end
elseif exp + tonumber(ARGV[2]) <= now then
  return {'not_found'}
end
local authorized = false
for i = 4, #ARGV do
  if ARGV[i] == v[1] then authorized = true break end
end
if not authorized then return {'wrong_site'} end
if st == 'o' then return {'not_finished'} end
if exp <= now then return {'expired'} end
local n, m = tonumber(v[4]), tonumber(v[5])
if st == 's' or n >= m then return {'limit_reached'} end
n = n + 1
local first = v[6] or ARGV[3]
local result = redis.call('HGET', KEYS[1], 'd')
if n >= m then
  redis.call('HDEL', KEYS[1], 'd', 'ff')
  redis.call('HSET', KEYS[1], 'st', 's', 'n', n)
  redis.call('PEXPIRE', KEYS[1], exp - now)
else
  redis.call('HSET', KEYS[1], 'n', n, 'ff', first)
end
return {'found', result, first}
";

/// Keeps the larger of the stored and the given time.
const KEEP_MAX: &str = r"#!lua flags=allow-oom
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > stored then redis.call('SET', KEYS[1], ARGV[1]) end
return 'ok'
";

/// ARGV: how much to add, how long to keep the key. Returns the new count.
const ADD: &str = r"#!lua flags=allow-oom
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
return count
";

/// The live revision of a catalog entry (`found`), shared by the scripts that write one.
/// `KEYS[1]` the collection, `ARGV[1]` the id, `ARGV[2]` now; `ARGV[3]` and `ARGV[4]` what the
/// write expects (`any`, `absent`, or `rev` and the revision). Answers `conflict` when the
/// expectation does not hold.
const EXPECTED: &str = r"
local now = tonumber(ARGV[2])
local function live(v)
  if not v then return nil end
  local rev, exp = string.match(v, '^(%d+):(%d*):')
  if exp ~= '' and tonumber(exp) <= now then return nil end
  return rev
end
local found = live(redis.call('HGET', KEYS[1], ARGV[1]))
if ARGV[3] == 'absent' and found then return 'conflict' end
if ARGV[3] == 'rev' and found ~= ARGV[4] then return 'conflict' end
";

/// `KEYS[2]` the revision counter; `ARGV[5]` the value, `ARGV[6]` its expiry (empty for none),
/// `ARGV[7]` the collection's limit. Expired entries are swept when it is reached. Writes
/// refuse when Redis is full (`full`), as new verifications do.
const PUT_ENTRY: &str = r"
if not found and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[7]) then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if not live(all[i + 1]) then redis.call('HDEL', KEYS[1], all[i]) end
  end
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[7]) then return 'full' end
end
local rev = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], rev .. ':' .. ARGV[6] .. ':' .. ARGV[5])
return tostring(rev)
";

/// `KEYS[2]` the revision counter.
const DELETE_ENTRY: &str = r"
redis.call('HDEL', KEYS[1], ARGV[1])
if found then
  redis.call('INCR', KEYS[2])
  return 'deleted'
end
return 'absent'
";

/// `KEYS[1]` the log, `KEYS[2]` its numbering; `ARGV[1]` the entry, `ARGV[2]` how many are
/// kept. Members carry their number, so that equal entries stay apart.
const APPEND_AUDIT: &str = r"
local n = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], n, n .. ':' .. ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', n - tonumber(ARGV[2]))
return n
";

impl Scripts {
    fn new() -> Self {
        let held = |then: &str| Script::new(&format!("{HELD}{then}"));
        Scripts {
            insert: Script::new(INSERT),
            claim: Script::new(CLAIM),
            finish: held(FINISH),
            release: held(RELEASE),
            abandon: held(ABANDON),
            retrieve: Script::new(RETRIEVE),
            keep_max: Script::new(KEEP_MAX),
            add: Script::new(ADD),
            put_entry: Script::new(&format!("{EXPECTED}{PUT_ENTRY}")),
            // A delete frees memory: it runs when Redis is full too.
            delete_entry: Script::new(&format!("#!lua flags=allow-oom{EXPECTED}{DELETE_ENTRY}")),
            append_audit: Script::new(APPEND_AUDIT),
        }
    }
}

/// A verification to insert, in the script's terms.
struct New {
    /// `o` (pending) or `f` (finished).
    state: &'static str,
    site: Uuid,
    /// The expiry the state is judged by.
    expires_at: OffsetDateTime,
    /// The pending challenge or the result, as JSON.
    data: String,
    max_retrievals: u32,
    /// Milliseconds until the key may be forgotten.
    keep: i64,
}

fn key(id: Uuid) -> String {
    format!("trustcaptcha:v:{{{id}}}")
}

fn collection_key(collection: Collection) -> String {
    format!("trustcaptcha:catalog:{{catalog}}:{}", collection.name())
}

fn revision_key(collection: Collection) -> String {
    format!(
        "trustcaptcha:catalog:{{catalog}}:{}:revision",
        collection.name()
    )
}

const AUDIT_KEY: &str = "trustcaptcha:catalog:{catalog}:audit";
const AUDIT_NUMBER_KEY: &str = "trustcaptcha:catalog:{catalog}:audit:number";

/// A catalog entry as its collection's hash holds it (`REVISION:EXPIRY:JSON`), if it is live.
fn unpack(id: String, packed: &str, now: OffsetDateTime) -> Option<CatalogEntry> {
    let (revision, rest) = packed.split_once(':')?;
    let (expires_at, value) = rest.split_once(':')?;
    let expires_at = if expires_at.is_empty() {
        None
    } else {
        Some(from_millis(expires_at.parse().ok()?)?)
    };
    if expires_at.is_some_and(|at| at <= now) {
        return None;
    }
    Some(CatalogEntry {
        id,
        revision: revision.parse().ok()?,
        value: value.to_owned(),
        expires_at,
    })
}

/// A catalog write's call of `script` with what [`EXPECTED`] reads (the collection and its
/// revision counter, the id, now, and what the write expects); the script's own arguments
/// follow.
fn catalog_write<'s>(
    script: &'s Script,
    collection: Collection,
    id: &str,
    expect: Expect,
    now: OffsetDateTime,
) -> redis::ScriptInvocation<'s> {
    let (kind, revision) = match expect {
        Expect::Anything => ("any", 0),
        Expect::Absent => ("absent", 0),
        Expect::Revision(revision) => ("rev", revision),
    };
    let mut invocation = script.key(collection_key(collection));
    invocation
        .key(revision_key(collection))
        .arg(id)
        .arg(millis(now))
        .arg(kind)
        .arg(revision);
    invocation
}

fn series_key(site: &str, resolution: Resolution, bucket: i64) -> String {
    format!(
        "trustcaptcha:series:{{{site}}}:{}:{bucket}",
        resolution.name()
    )
}

/// The field of a series bucket that holds when it may be forgotten.
const FORGET_FIELD: &str = "~forget";

fn journal_key(journal: &str) -> String {
    format!("trustcaptcha:journal:{{{journal}}}")
}

fn mark_key(mark: Mark) -> String {
    format!("trustcaptcha:mark:{}", mark.name())
}

/// A counter's windows share a hash tag, so that both can be read in one call in a cluster.
fn counter_key(counter: &str, window: i64) -> String {
    format!("trustcaptcha:c:{{{counter}}}:{window}")
}

/// How long from `now` until `at`, in whole milliseconds, at least one (Redis refuses zero).
fn ttl_millis(now: OffsetDateTime, at: OffsetDateTime) -> i64 {
    i64::try_from((at - now).whole_milliseconds())
        .unwrap_or(i64::MAX)
        .max(1)
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}

/// A script's `ok`, or the one refusal it can answer otherwise.
fn done(answer: &str, refusal: StoreError) -> Result<(), StoreError> {
    if answer == "ok" { Ok(()) } else { Err(refusal) }
}

/// The URL is not shown: it may carry a password.
fn malformed() -> StoreError {
    unavailable("the URL is not a valid Redis URL")
}

fn failed(error: &redis::RedisError) -> StoreError {
    // A pipeline's errors (a script sent with `WAIT`) are kept per command.
    let out_of_memory = error.code() == Some("OOM")
        || error
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, error)| error.code() == "OOM"));
    if out_of_memory {
        StoreError::Full
    } else {
        unavailable(error)
    }
}

fn encode(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(unavailable)
}

fn decode<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(unavailable)
}

impl RedisStore {
    /// Connects (lazily: the first call connects) to the Redis a URL names:
    /// `redis://[USER:PASSWORD@]HOST:PORT[/DB]` for one node, or
    /// `redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]` for a cluster given by some of
    /// its nodes (the rest are discovered).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the URL is malformed.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut nodes = crate::config::redis_nodes(url).ok_or_else(malformed)?;
        let connection = if url.starts_with("redis+cluster://") {
            let client = redis::cluster::ClusterClient::builder(nodes)
                .connection_timeout(NODE_TIMEOUT)
                .response_timeout(NODE_TIMEOUT)
                .retries(3)
                .build()
                .map_err(|_| malformed())?;
            Connection::Cluster(
                client.get_pending_async_connection_with_config(
                    redis::cluster::ClusterConfig::new()
                        .set_connection_timeout(NODE_TIMEOUT)
                        .set_response_timeout(NODE_TIMEOUT),
                ),
            )
        } else {
            let node = nodes.pop().ok_or_else(malformed)?;
            let client = redis::Client::open(node).map_err(|_| malformed())?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(NODE_TIMEOUT))
                .set_response_timeout(Some(NODE_TIMEOUT))
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_secs(1))
                .set_number_of_retries(4);
            Connection::Node(
                ConnectionManager::new_lazy_with_config(client, config).map_err(|_| malformed())?,
            )
        };
        Ok(RedisStore {
            connection,
            scripts: Arc::new(Scripts::new()),
            replicas: None,
        })
    }

    /// Acknowledges a deciding write only once `replicas` replicas of its primary have it, or
    /// fails it as unavailable when they do not within `timeout` (0 replicas: the primary's
    /// acknowledgement is enough).
    #[must_use]
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replicas = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// Runs a script whose write decides what a client is told: with replicas to wait for, in
    /// one pipeline with `WAIT` on the connection to its key's primary (loading the script
    /// first when that primary does not know it yet).
    async fn decide<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let Some((replicas, timeout)) = self.replicas else {
            return self
                .call(
                    |mut connection| async move { invocation.invoke_async(&mut connection).await },
                )
                .await;
        };
        let (value, acknowledged): (T, u32) = self
            .call(|mut connection| async move {
                let mut pipeline = redis::pipe();
                pipeline
                    .invoke_script(invocation)
                    .cmd("WAIT")
                    .arg(replicas)
                    .arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
                match pipeline.query_async(&mut connection).await {
                    Err(error)
                        if error.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        invocation.load_async(&mut connection).await?;
                        pipeline.query_async(&mut connection).await
                    }
                    answer => answer,
                }
            })
            .await?;
        if acknowledged < replicas {
            return Err(unavailable(format!(
                "{acknowledged} of {replicas} replica(s) acknowledged the write in time"
            )));
        }
        Ok(value)
    }

    /// Runs one call with the connection, bounded by [`CALL_TIMEOUT`].
    async fn call<T, F>(&self, call: impl FnOnce(Connection) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(CALL_TIMEOUT, call(self.connection.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(failed(&error)),
            Err(_) => Err(unavailable("no answer in time")),
        }
    }

    async fn insert(&self, id: Uuid, new: New) -> Result<(), StoreError> {
        let mut invocation = self.scripts.insert.key(key(id));
        invocation
            .arg(new.site.to_string())
            .arg(new.state)
            .arg(millis(new.expires_at))
            .arg(new.data)
            .arg(new.max_retrievals)
            .arg(new.keep);
        let answer: String = self.decide(&invocation).await?;
        done(&answer, StoreError::Duplicate)
    }

    async fn move_claim(&self, script: &Script, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        let answer: String = self
            .call(|mut connection| async move {
                script
                    .key(key(id))
                    .arg(lease.token)
                    .arg(millis(lease.until))
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        done(&answer, StoreError::NotClaimant)
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    /// Checks that Redis is safe to keep verifications in: its eviction policy must be
    /// `noeviction` (any other policy may drop live verifications to make room). Warns when
    /// Redis has no memory limit or keeps no append-only file (a Redis restart then loses what
    /// it held, and every verification in flight fails closed).
    async fn prepare(&self) -> Result<(), StoreError> {
        let settings: Vec<(String, String)> = self
            .call(|mut connection| async move {
                let mut settings = Vec::new();
                for name in ["maxmemory-policy", "maxmemory", "appendonly"] {
                    let pair: Vec<String> = redis::cmd("CONFIG")
                        .arg("GET")
                        .arg(name)
                        .query_async(&mut connection)
                        .await?;
                    if let [name, value] = pair.as_slice() {
                        settings.push((name.clone(), value.clone()));
                    }
                }
                Ok(settings)
            })
            .await
            .or_else(|error| match error {
                // Some hosted Redis services disable CONFIG: they are trusted as configured.
                StoreError::Unavailable(message) if message.contains("unknown command") => {
                    tracing::warn!("redis does not show its configuration: make sure its eviction policy is noeviction");
                    Ok(Vec::new())
                }
                other => Err(other),
            })?;
        for (name, value) in settings {
            match (name.as_str(), value.as_str()) {
                ("maxmemory-policy", policy) if policy != "noeviction" => {
                    return Err(StoreError::Unavailable(format!(
                        "redis evicts keys (maxmemory-policy {policy}), which could drop live verifications: set it to noeviction"
                    )));
                }
                ("maxmemory", "0") => tracing::warn!(
                    "redis has no maxmemory: set one, so that a flood fills it rather than the machine"
                ),
                ("appendonly", "no") => tracing::warn!(
                    "redis keeps no append-only file: a redis restart loses every verification in flight"
                ),
                _ => {}
            }
        }
        if let Some((replicas, _)) = self.replicas {
            // Not a refusal: a replica may be on its way back, and until it is only the writes
            // to that primary's keys fail (503), not the server.
            let info: Value = self
                .call(|mut connection| async move {
                    redis::cmd("INFO")
                        .arg("replication")
                        .query_async(&mut connection)
                        .await
                })
                .await?;
            let fewest = texts(&info)
                .iter()
                .filter_map(|info| {
                    info.lines()
                        .find_map(|line| line.trim().strip_prefix("connected_slaves:"))
                        .and_then(|count| count.parse::<u32>().ok())
                })
                .min();
            if fewest.is_some_and(|fewest| fewest < replicas) {
                tracing::warn!(
                    replicas,
                    connected = fewest,
                    "a redis primary has fewer replicas than wait_for_replicas asks for: writes to its keys are refused (503) until it has them"
                );
            }
        }
        Ok(())
    }

    async fn insert_pending(
        &self,
        id: Uuid,
        pending: Pending,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let new = New {
            state: "o",
            site: pending.site_key,
            expires_at: pending.expires_at,
            data: encode(&pending)?,
            max_retrievals: 0,
            keep: ttl_millis(now, pending.expires_at),
        };
        self.insert(id, new).await
    }

    async fn claim(
        &self,
        id: Uuid,
        lease: Lease,
        now: OffsetDateTime,
    ) -> Result<Option<Pending>, StoreError> {
        let data: Option<String> = self
            .call(|mut connection| async move {
                self.scripts
                    .claim
                    .key(key(id))
                    .arg(millis(now))
                    .arg(lease.token)
                    .arg(millis(lease.until))
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        data.as_deref().map(decode).transpose()
    }

    async fn finish_claimed(
        &self,
        id: Uuid,
        lease: Lease,
        finished: Finished,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let expires_at = finished.expires_at();
        let keep = ttl_millis(now, expires_at + TOMBSTONE);
        let data = encode(&finished)?;
        let mut invocation = self.scripts.finish.key(key(id));
        invocation
            .arg(lease.token)
            .arg(millis(lease.until))
            .arg(data)
            .arg(millis(expires_at))
            .arg(finished.max_retrievals)
            .arg(keep);
        let answer: String = self.decide(&invocation).await?;
        done(&answer, StoreError::NotClaimant)
    }

    async fn insert_finished(
        &self,
        id: Uuid,
        finished: Finished,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let expires_at = finished.expires_at();
        let new = New {
            state: "f",
            site: finished.site_key,
            expires_at,
            data: encode(&finished)?,
            max_retrievals: finished.max_retrievals,
            keep: ttl_millis(now, expires_at + TOMBSTONE),
        };
        self.insert(id, new).await
    }

    async fn release(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.move_claim(&self.scripts.release, id, lease).await
    }

    async fn abandon(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.move_claim(&self.scripts.abandon, id, lease).await
    }

    async fn retrieve(
        &self,
        id: Uuid,
        authorized: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<Retrieval, StoreError> {
        let mut invocation = self.scripts.retrieve.key(key(id));
        invocation
            .arg(millis(now))
            .arg(TOMBSTONE.as_millis().to_string())
            .arg(now.unix_timestamp_nanos().to_string());
        for site in authorized {
            invocation.arg(site.to_string());
        }
        let reply: Vec<String> = self.decide(&invocation).await?;
        let answer = match reply.first().map(String::as_str) {
            Some("not_found") => Retrieval::NotFound,
            Some("wrong_site") => Retrieval::WrongSite,
            Some("not_finished") => Retrieval::NotFinished,
            Some("expired") => Retrieval::Expired,
            Some("limit_reached") => Retrieval::LimitReached,
            Some("found") if reply.len() == 3 => {
                let finished: Finished = decode(&reply[1])?;
                let first = reply[2]
                    .parse::<i128>()
                    .ok()
                    .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
                    .ok_or_else(|| unavailable("a stored retrieval time is malformed"))?;
                let access_rule = finished.access_rule;
                let mut result = finished.result;
                result.result_first_fetched_at = Some(first);
                result.result_last_fetched_at = Some(now);
                Retrieval::Found(Box::new(Found {
                    result,
                    access_rule,
                }))
            }
            _ => return Err(unavailable("an unexpected script reply")),
        };
        Ok(answer)
    }

    async fn count(&self) -> Result<usize, StoreError> {
        let verifications: usize = self
            .call(|mut connection| async move {
                redis::cmd("DBSIZE").query_async(&mut connection).await
            })
            .await?;
        Ok(verifications)
    }

    async fn mark(&self, mark: Mark, at: OffsetDateTime) -> Result<(), StoreError> {
        let _: String = self
            .call(|mut connection| async move {
                self.scripts
                    .keep_max
                    .key(mark_key(mark))
                    .arg(millis(at))
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn latest(&self, mark: Mark) -> Result<Option<OffsetDateTime>, StoreError> {
        let at: Option<i64> = self
            .call(|mut connection| async move {
                redis::cmd("GET")
                    .arg(mark_key(mark))
                    .query_async(&mut connection)
                    .await
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
        let key = counter_key(counter, window(length, now));
        // Kept for two windows: while it is current, and while it is the previous one.
        let keep = i64::try_from(length.as_millis().saturating_mul(2)).unwrap_or(i64::MAX);
        self.call(|mut connection| async move {
            self.scripts
                .add
                .key(key)
                .arg(by)
                .arg(keep.max(1))
                .invoke_async(&mut connection)
                .await
        })
        .await
    }

    async fn counts(
        &self,
        counter: &str,
        length: Duration,
        now: OffsetDateTime,
    ) -> Result<Counts, StoreError> {
        let current = window(length, now);
        let keys = [
            counter_key(counter, current - 1),
            counter_key(counter, current),
        ];
        let [previous, current]: [Option<u64>; 2] = self
            .call(|mut connection| async move {
                redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(Counts {
            previous: previous.unwrap_or(0),
            current: current.unwrap_or(0),
        })
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
        let mut invocation = catalog_write(&self.scripts.put_entry, collection, id, expect, now);
        invocation
            .arg(value)
            .arg(
                expires_at
                    .map(|at| millis(at).to_string())
                    .unwrap_or_default(),
            )
            .arg(collection.limit());
        let answer: String = self.decide(&invocation).await?;
        match answer.as_str() {
            "conflict" => Err(StoreError::Conflict),
            "full" => Err(StoreError::Full),
            revision => revision.parse().map_err(unavailable),
        }
    }

    async fn entry(
        &self,
        collection: Collection,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<CatalogEntry>, StoreError> {
        let packed: Option<String> = self
            .call(|mut connection| async move {
                redis::cmd("HGET")
                    .arg(collection_key(collection))
                    .arg(id)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(packed.and_then(|packed| unpack(id.to_owned(), &packed, now)))
    }

    async fn entries(
        &self,
        collection: Collection,
        now: OffsetDateTime,
    ) -> Result<Vec<CatalogEntry>, StoreError> {
        let all: std::collections::BTreeMap<String, String> = self
            .call(|mut connection| async move {
                redis::cmd("HGETALL")
                    .arg(collection_key(collection))
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(id, packed)| unpack(id, &packed, now))
            .collect())
    }

    async fn delete_entry(
        &self,
        collection: Collection,
        id: &str,
        expect: Expect,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let invocation = catalog_write(&self.scripts.delete_entry, collection, id, expect, now);
        let answer: String = self.decide(&invocation).await?;
        match answer.as_str() {
            "conflict" => Err(StoreError::Conflict),
            answer => Ok(answer == "deleted"),
        }
    }

    async fn revision(&self, collection: Collection) -> Result<u64, StoreError> {
        let revision: Option<u64> = self
            .call(|mut connection| async move {
                redis::cmd("GET")
                    .arg(revision_key(collection))
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(revision.unwrap_or(0))
    }

    async fn append_audit(&self, entry: String) -> Result<u64, StoreError> {
        self.call(|mut connection| async move {
            self.scripts
                .append_audit
                .key(AUDIT_KEY)
                .key(AUDIT_NUMBER_KEY)
                .arg(entry)
                .arg(AUDIT_ENTRIES)
                .invoke_async(&mut connection)
                .await
        })
        .await
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        let members: Vec<String> = self
            .call(|mut connection| async move {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(AUDIT_KEY)
                    .arg(format!("({after}"))
                    .arg("+inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit.min(AUDIT_PAGE))
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        members
            .into_iter()
            .map(|member| {
                let (number, entry) = member
                    .split_once(':')
                    .ok_or_else(|| unavailable("a malformed audit entry"))?;
                Ok((number.parse().map_err(unavailable)?, entry.to_owned()))
            })
            .collect()
    }

    async fn add_series(
        &self,
        adds: Vec<SeriesAdd>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // One pipeline per site: its buckets share a slot. A bucket keeps its `forget_at` in
        // the field `~forget` (reads judge by it, as every backend judges by the caller's
        // `now`) and expires by it.
        let mut by_site: std::collections::BTreeMap<String, Pipeline> =
            std::collections::BTreeMap::new();
        for add in adds {
            let key = series_key(&add.site, add.resolution, add.bucket);
            by_site
                .entry(add.site)
                .or_insert_with(redis::pipe)
                .hincr(&key, add.event, add.by)
                .ignore()
                .hset(&key, FORGET_FIELD, millis(add.forget_at))
                .ignore()
                .pexpire(&key, ttl_millis(now, add.forget_at))
                .ignore();
        }
        for pipeline in by_site.into_values() {
            self.call(
                |mut connection| async move { pipeline.query_async::<()>(&mut connection).await },
            )
            .await?;
        }
        Ok(())
    }

    async fn series(
        &self,
        site: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        let step = resolution.seconds();
        let first = from.div_euclid(step) + i64::from(from.rem_euclid(step) != 0);
        let buckets: Vec<i64> = (first..)
            .map(|n| n * step)
            .take_while(|bucket| *bucket < to)
            .collect();
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        for bucket in &buckets {
            pipeline.hgetall(series_key(site, resolution, *bucket));
        }
        let counts: Vec<std::collections::BTreeMap<String, i64>> = self
            .call(|mut connection| async move { pipeline.query_async(&mut connection).await })
            .await?;
        let now = millis(now);
        Ok(buckets
            .into_iter()
            .zip(counts)
            .filter(|(_, counts)| counts.get(FORGET_FIELD).is_some_and(|at| *at > now))
            .flat_map(|(bucket, counts)| {
                counts
                    .into_iter()
                    .filter(|(event, count)| *count > 0 && event != FORGET_FIELD)
                    .map(|(event, count)| (event, count.unsigned_abs()))
                    .map(move |(event, count)| SeriesPoint {
                        bucket,
                        event,
                        count,
                    })
            })
            .collect())
    }

    async fn append_journal(
        &self,
        journal: &str,
        entries: Vec<JournalEntry>,
        bound: JournalBound,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let key = journal_key(journal);
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        let newest = entries.iter().map(|entry| entry.at).max();
        for entry in entries {
            pipeline
                .zadd(&key, format!("{}\n{}", entry.id, entry.value), entry.at)
                .ignore();
        }
        let keep = isize::try_from(bound.entries).unwrap_or(isize::MAX);
        pipeline
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({}", bound.oldest(now)))
            .ignore()
            .zremrangebyrank(&key, 0, -keep - 1)
            .ignore();
        if let Some(forget_at) = newest
            .and_then(from_millis)
            .map(|newest| newest + bound.age)
        {
            pipeline.pexpire(&key, ttl_millis(now, forget_at)).ignore();
        }
        self.call(|mut connection| async move { pipeline.query_async::<()>(&mut connection).await })
            .await
    }

    async fn journal(
        &self,
        journal: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let members: Vec<(String, f64)> = self
            .call(|mut connection| async move {
                redis::cmd("ZREVRANGEBYSCORE")
                    .arg(journal_key(journal))
                    .arg(format!("({to}"))
                    .arg(from)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit.min(JOURNAL_PAGE))
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        members
            .into_iter()
            .map(|(member, at)| {
                let (id, value) = member
                    .split_once('\n')
                    .ok_or_else(|| unavailable("a malformed journal entry"))?;
                #[allow(clippy::cast_possible_truncation)]
                let at = at as i64;
                Ok(JournalEntry {
                    at,
                    id: id.to_owned(),
                    value: value.to_owned(),
                })
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Redis refuses writes once it uses more than its `maxmemory`: that is when the next
        // verification would be refused. A cluster answers for every primary, and is full when
        // any is.
        let info: Value = self
            .call(|mut connection| async move {
                redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        let texts = texts(&info);
        // Changed at run time, another policy may drop live verifications to make room.
        if let Some(policy) = texts.iter().find_map(|info| {
            info.lines()
                .find_map(|line| line.trim().strip_prefix("maxmemory_policy:"))
                .filter(|policy| *policy != "noeviction")
                .map(str::to_owned)
        }) {
            return Err(StoreError::Unavailable(format!(
                "redis evicts keys (maxmemory-policy {policy}), which could drop live verifications: set it to noeviction"
            )));
        }
        if texts.iter().any(|info| over_memory_limit(info)) {
            return Err(StoreError::Full);
        }
        Ok(())
    }
}

/// Every text in a reply (one node's, or a cluster's map of node to reply).
fn texts(value: &Value) -> Vec<String> {
    match value {
        Value::BulkString(bytes) => vec![String::from_utf8_lossy(bytes).into_owned()],
        Value::VerbatimString { text, .. } => vec![text.clone()],
        Value::Map(pairs) => pairs.iter().flat_map(|(_, reply)| texts(reply)).collect(),
        Value::Array(replies) => replies.iter().flat_map(texts).collect(),
        _ => Vec::new(),
    }
}

/// Whether an `INFO memory` text shows a node over its (non-zero) memory limit.
fn over_memory_limit(info: &str) -> bool {
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    let limit = field("maxmemory");
    limit > 0 && field("used_memory") > limit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;
    use crate::store::redis_servers::{RedisCluster, RedisServer};

    /// A store on a Redis of its own, which lives as long as the store.
    struct OnNode {
        store: RedisStore,
        _server: RedisServer,
    }

    /// A store on a three-node cluster of its own.
    struct OnCluster {
        store: RedisStore,
        _cluster: RedisCluster,
    }

    impl conformance::Fixture for OnNode {
        fn store(&self) -> &dyn Store {
            &self.store
        }

        fn counts_capacity(&self) -> bool {
            false
        }
    }

    impl conformance::Fixture for OnCluster {
        fn store(&self) -> &dyn Store {
            &self.store
        }

        fn counts_capacity(&self) -> bool {
            false
        }
    }

    /// Redis bounds a store by memory, not by a count: for the capacity test (a small
    /// `capacity`) a node gets a limit a little above what it uses empty, room for a few hundred
    /// verifications.
    fn limit_memory(node: &RedisServer, capacity: usize) {
        if capacity > 2 {
            return;
        }
        let limit = node.used_memory() + 256 * 1024;
        let reply = node.command(&format!("CONFIG SET maxmemory {limit}"));
        assert!(reply.starts_with("+OK"), "{reply}");
    }

    const NO_EVICTION: [&str; 2] = ["--maxmemory-policy", "noeviction"];

    fn on_node(capacity: usize) -> OnNode {
        let server = RedisServer::start_with(&NO_EVICTION);
        limit_memory(&server, capacity);
        OnNode {
            store: RedisStore::open(&server.url()).expect("open"),
            _server: server,
        }
    }

    fn on_cluster(capacity: usize) -> OnCluster {
        let cluster = RedisCluster::start_with(&NO_EVICTION);
        for node in cluster.nodes() {
            limit_memory(node, capacity);
        }
        OnCluster {
            store: RedisStore::open(&cluster.url()).expect("open"),
            _cluster: cluster,
        }
    }

    /// A cluster whose primaries have a replica each, the store waiting for it on every
    /// deciding write: the pipelines with `WAIT` keep every answer of the contract.
    fn on_cluster_waiting_for_replicas(capacity: usize) -> OnCluster {
        let cluster = RedisCluster::start_with_replicas(&NO_EVICTION);
        for node in cluster.nodes() {
            limit_memory(node, capacity);
        }
        OnCluster {
            store: RedisStore::open(&cluster.url())
                .expect("open")
                .wait_for_replicas(1, Duration::from_millis(1500)),
            _cluster: cluster,
        }
    }

    mod node {
        use super::*;
        conformance::suite!(on_node);
    }

    mod cluster {
        use super::*;
        conformance::suite!(on_cluster);
    }

    mod cluster_waiting_for_replicas {
        use super::*;
        conformance::suite!(on_cluster_waiting_for_replicas);
    }

    #[tokio::test]
    async fn a_write_no_replica_acknowledged_is_not_acknowledged() {
        let server = RedisServer::start_with(&NO_EVICTION);
        let store = RedisStore::open(&server.url())
            .expect("open")
            .wait_for_replicas(1, Duration::from_millis(50));
        let id = Uuid::from_u128(5);
        let pending = conformance::pending(Duration::from_secs(60));
        let error = store
            .insert_pending(id, pending, conformance::T0)
            .await
            .expect_err("no replica has it");
        assert!(error.to_string().contains("0 of 1 replica"), "{error}");
        // Reads are not held to it: the server still answers what the store holds.
        assert!(store.ping().await.is_ok());
    }

    /// The key of a spent verification goes when its result expires, not the tombstone time
    /// after (which only a result never served its full count keeps).
    #[tokio::test]
    async fn a_spent_verification_lives_as_long_as_its_result() {
        let server = RedisServer::start_with(&NO_EVICTION);
        let store = RedisStore::open(&server.url()).expect("open");
        let id = Uuid::from_u128(7);
        let lifetime = Duration::from_secs(60);
        let (t0, later) = (conformance::T0, conformance::T0 + Duration::from_secs(20));
        store
            .insert_finished(id, conformance::finished(id, 1, lifetime), t0)
            .await
            .expect("insert");
        let ttl = || -> i64 {
            let reply = server.command(&format!("PTTL {}", key(id)));
            reply
                .trim()
                .trim_start_matches(':')
                .parse()
                .expect("a number")
        };
        let tombstone = i64::try_from(TOMBSTONE.as_millis()).expect("small");
        assert!(
            ttl() > tombstone,
            "finished: its lifetime plus the tombstone"
        );
        let Ok(Retrieval::Found(_)) = store.retrieve(id, &[conformance::SITE], later).await else {
            panic!("found")
        };
        let left = ttl();
        assert!(
            (1..=40_000).contains(&left),
            "spent: what is left of its lifetime (40 s), got {left} ms"
        );
        assert_eq!(
            store.retrieve(id, &[conformance::SITE], later).await,
            Ok(Retrieval::LimitReached)
        );
    }

    #[tokio::test]
    async fn an_evicting_redis_is_refused() {
        let server = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
        let store = RedisStore::open(&server.url()).expect("open");
        let Err(StoreError::Unavailable(message)) = store.prepare().await else {
            panic!("accepted an evicting redis");
        };
        assert!(message.contains("noeviction"), "{message}");
        let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
        let store = RedisStore::open(&server.url()).expect("open");
        assert_eq!(store.prepare().await, Ok(()));
    }

    #[tokio::test]
    async fn a_password_never_shows() {
        let store = RedisStore::open("redis://:hunter2-secret@127.0.0.1:1").expect("open");
        assert!(!format!("{store:?}").contains("hunter2"));
        let error = store.ping().await.expect_err("nothing listens there");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable() {
        let store = RedisStore::open("redis://127.0.0.1:1").expect("open");
        assert!(matches!(
            store
                .claim(Uuid::new_v4(), conformance::lease(), conformance::T0)
                .await,
            Err(StoreError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_redis_that_never_answers_is_given_up_on() {
        // Accepts connections and reads nothing back: only a timeout ends a call.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = silent.local_addr().expect("address");
        let held = tokio::spawn(async move {
            let mut connections = Vec::new();
            while let Ok((connection, _)) = silent.accept().await {
                connections.push(connection);
            }
        });
        let store = RedisStore::open(&format!("redis://{address}")).expect("open");
        let Err(StoreError::Unavailable(reason)) = store
            .claim(Uuid::new_v4(), conformance::lease(), conformance::T0)
            .await
        else {
            panic!("a silent redis answered");
        };
        assert!(reason.contains("time"), "ended by a timeout: {reason}");
        held.abort();
    }
}
