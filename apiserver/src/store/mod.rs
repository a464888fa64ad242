//! Durable object storage in SQLite, with one global, monotonic resourceVersion.
//!
//! Objects are stored as JSON rows keyed by `(resource key, namespace, name)`, where the resource
//! key is `group/plural`, so every served version of a resource shares one row. The database runs
//! in WAL mode with `synchronous=FULL`: a write's transaction is on disk before the write is
//! acknowledged, and after `kill -9` nothing acknowledged is lost and nothing half-written is
//! visible (SQLite's atomic commit). Writes are serialised through one connection; reads use a
//! small pool of their own connections, which WAL lets run beside the writer.
//!
//! Writes to a file are committed in groups. A writer that finishes its change while others
//! wait for the connection leaves the transaction open and hands it on; the last writer of the
//! group commits for all, with one fsync, and every writer of the group returns only after that
//! commit (or gets its error). Each change runs in a savepoint of its own, so a change that fails
//! leaves the others of its group intact. Watchers and write hooks see a group's events, in
//! order, only once it is on disk.

pub mod watch;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use watch::{EventType, WatchCache, WatchEvent};

/// Errors opening or checking a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but is not a Garrison store (or is damaged).
    #[error("the store at {path} is not a valid Garrison database ({detail})")]
    Corrupt {
        /// The database path.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// SQLite failed.
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What a mutation decided to do with an object.
pub enum Mutation {
    /// Write this object (create or replace).
    Put(Value),
    /// Remove the object.
    Delete,
    /// Change nothing; answer with this object.
    Keep(Value),
}

/// The result of a mutation.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The object as written, with its new resourceVersion.
    Written(Value),
    /// The object was removed; its last state, stamped with the delete's resourceVersion.
    Deleted(Value),
    /// Nothing changed.
    Unchanged(Value),
}

impl Outcome {
    /// The object the outcome carries.
    pub fn object(&self) -> &Value {
        match self {
            Outcome::Written(v) | Outcome::Deleted(v) | Outcome::Unchanged(v) => v,
        }
    }
    /// Consumes the outcome, returning its object.
    pub fn into_object(self) -> Value {
        match self {
            Outcome::Written(v) | Outcome::Deleted(v) | Outcome::Unchanged(v) => v,
        }
    }
}

/// A page of a list.
pub struct Page {
    /// The objects, ordered by namespace then name.
    pub items: Vec<Value>,
    /// The resourceVersion the list was read at.
    pub rv: u64,
    /// The `(namespace, name)` of the last item, when more items follow.
    pub next: Option<(String, String)>,
}

/// A function called after each committed write.
pub type WriteHook = Arc<dyn Fn(&WatchEvent) + Send + Sync>;

/// The most changes one commit carries; a longer queue is committed in several groups.
const MAX_GROUP: usize = 256;

/// The most writers that wait in `block_in_place` at once. Each hands its worker's tasks to
/// another thread, and every thread that ran a worker keeps its own allocator pages, with
/// long-lived objects (the watch history's events) scattered over them after it exits. With
/// 16, 200 clusters made at once left the hub's RSS 40 MiB up for 2 MiB of data; with 2, 11 MiB,
/// and a 2,000-cluster join and dispatch kept their pace (BENCHMARKS.md).
const MAX_IN_PLACE: usize = 2;

/// How a group's commit ended, for the writers that handed their change on.
#[derive(Default)]
struct GroupResult {
    outcome: Mutex<Option<Result<(), String>>>,
    ready: Condvar,
}

impl GroupResult {
    fn set(&self, outcome: Result<(), String>) {
        *self.outcome.lock().expect("group lock") = Some(outcome);
        self.ready.notify_all();
    }

    /// How the commit ended, if it has.
    fn done(&self) -> Option<Result<(), String>> {
        self.outcome.lock().expect("group lock").clone()
    }

    fn wait(&self) -> Result<(), String> {
        let mut outcome = self.outcome.lock().expect("group lock");
        loop {
            if let Some(done) = outcome.as_ref() {
                return done.clone();
            }
            outcome = self.ready.wait(outcome).expect("group lock");
        }
    }
}

/// An open transaction holding changes not yet committed.
struct Group {
    events: Vec<WatchEvent>,
    /// Changes run in it, including those that wrote nothing.
    changes: usize,
    result: Arc<GroupResult>,
}

/// The write connection and the group it has open.
struct Writer {
    conn: Connection,
    group: Option<Group>,
}

/// The object store: SQLite plus the watch cache.
pub struct Store {
    writer: Mutex<Writer>,
    /// Threads waiting for the write connection; while any wait, a writer hands its open
    /// transaction on instead of committing.
    queued: AtomicUsize,
    /// Waits running in `block_in_place` now.
    in_place: AtomicUsize,
    readers: Mutex<Vec<Connection>>,
    path: Option<PathBuf>,
    watch: Arc<WatchCache>,
    /// Called after each committed write with its event, for caches such as RBAC and for the
    /// garbage collector's queue.
    hooks: Mutex<Vec<WriteHook>>,
    /// Set when a COMMIT failed. Such a failure is ambiguous (the group may be on disk though
    /// its writers were told it failed, and its watchers never saw it), so the store refuses
    /// writes until it is opened again, and `/readyz` reports why.
    broken: Mutex<Option<String>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS garrison_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owner_refs (
    owner_uid TEXT NOT NULL,
    rkey TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (owner_uid, rkey, namespace, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS owner_refs_by_dependent ON owner_refs (rkey, namespace, name);
CREATE TABLE IF NOT EXISTS uids (uid TEXT PRIMARY KEY, rkey TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    rkey TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    rv INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (rkey, namespace, name)
) WITHOUT ROWID;
-- Objects being deleted, for the garbage collector, kept by SQLite itself on every write.
CREATE INDEX IF NOT EXISTS objects_deleting ON objects (rkey, namespace, name)
    WHERE json_extract(data, '$.metadata.deletionTimestamp') IS NOT NULL;
";

/// The schema version this build writes.
pub const SCHEMA_VERSION: &str = "1";

/// Statements each connection keeps prepared: more than the store's distinct hot statements,
/// so that none is parsed again for every write.
const STATEMENT_CACHE: usize = 64;

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// Opens (creating if needed) the store schema on a connection and checks it is ours.
fn init_schema(conn: &Connection, path: &Path) -> Result<u64, StoreError> {
    conn.execute_batch(SCHEMA).map_err(|e| corrupt(path, e))?;
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM garrison_meta WHERE key = 'schema'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| corrupt(path, e))?;
    match version.as_deref() {
        None => {
            conn.execute(
                "INSERT INTO garrison_meta (key, value) VALUES ('schema', ?1)",
                [SCHEMA_VERSION],
            )?;
            conn.execute(
                "INSERT OR IGNORE INTO garrison_meta (key, value) VALUES ('rv', '1')",
                [],
            )?;
        }
        Some(SCHEMA_VERSION) => {}
        Some(other) => return Err(corrupt(path, format!("unknown schema version {other}"))),
    }

    let rv: String = conn.query_row(
        "SELECT value FROM garrison_meta WHERE key = 'rv'",
        [],
        |r| r.get(0),
    )?;
    rv.parse::<u64>()
        .map_err(|e| corrupt(path, format!("bad resourceVersion counter: {e}")))
}

impl Store {
    /// Opens the store at `path`, creating it if missing. Fails if the file is not ours.
    pub fn open(path: &Path, watch_capacity: usize) -> Result<Arc<Self>, StoreError> {
        let conn = Connection::open(path).map_err(|e| corrupt(path, e))?;
        // A file that is not SQLite fails here, on the first read.
        configure(&conn).map_err(|e| corrupt(path, e))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| corrupt(path, e))?;
        if check != "ok" {
            return Err(corrupt(path, check));
        }
        let rv = init_schema(&conn, path)?;
        Ok(Arc::new(Store {
            writer: Mutex::new(Writer { conn, group: None }),
            queued: AtomicUsize::new(0),
            in_place: AtomicUsize::new(0),
            readers: Mutex::new(Vec::new()),
            path: Some(path.to_path_buf()),
            watch: WatchCache::new(watch_capacity, rv),
            hooks: Mutex::new(Vec::new()),
            broken: Mutex::new(None),
        }))
    }

    /// A store held only in memory, for simulated clusters and tests.
    pub fn in_memory(watch_capacity: usize) -> Arc<Self> {
        let conn = Connection::open_in_memory().expect("sqlite in memory");
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let rv = init_schema(&conn, Path::new(":memory:")).expect("schema in memory");
        Arc::new(Store {
            writer: Mutex::new(Writer { conn, group: None }),
            queued: AtomicUsize::new(0),
            in_place: AtomicUsize::new(0),
            readers: Mutex::new(Vec::new()),
            path: None,
            watch: WatchCache::new(watch_capacity, rv),
            hooks: Mutex::new(Vec::new()),
            broken: Mutex::new(None),
        })
    }

    /// The watch cache.
    pub fn watch(&self) -> &Arc<WatchCache> {
        &self.watch
    }

    /// Proves the store can still commit a write: a small write to the metadata table, with a
    /// short lock wait so that a store held by someone else reports at once instead of after
    /// the usual ten seconds. Used by `/readyz`.
    pub fn probe_write(&self) -> Result<(), String> {
        let w = self.lock_writer_flushed();
        if let Some(why) = self.broken() {
            return Err(why);
        }
        let _ = w.conn.busy_timeout(std::time::Duration::from_millis(500));
        let now = jiff::Timestamp::now().to_string();
        let out = w
            .conn
            .execute(
                "INSERT OR REPLACE INTO garrison_meta (key, value) VALUES ('health-probe', ?1)",
                [now],
            )
            .map(|_| ())
            .map_err(|e| format!("cannot write: {e}"));
        let _ = w.conn.busy_timeout(std::time::Duration::from_secs(10));
        out
    }

    /// Takes the write connection, counted among the waiters until it has it. A panic while
    /// the connection was held cannot leave it inconsistent (every group is committed or rolled
    /// back before the guard drops), so a poisoned lock is taken as it is.
    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        w
    }

    /// Why the store refuses writes, if it does.
    fn broken(&self) -> Option<String> {
        self.broken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes the write connection with nothing uncommitted on it.
    fn lock_writer_flushed(&self) -> MutexGuard<'_, Writer> {
        let mut w = self.lock_writer();
        self.commit(&mut w);
        w
    }

    /// Commits the open group, if any, then shows its events to the hooks and watchers, and
    /// tells its writers how the commit ended.
    fn commit(&self, w: &mut Writer) {
        let Some(group) = w.group.take() else {
            return;
        };
        if group.events.is_empty() {
            // Nothing was written: no fsync, and nothing to show.
            let outcome = w.conn.execute_batch("ROLLBACK").map_err(|e| e.to_string());
            group.result.set(outcome);
            return;
        }
        let started = std::time::Instant::now();
        let outcome = run(&w.conn, "COMMIT").map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            // A COMMIT that failed may leave the transaction open; roll it back. Whether the
            // group reached the disk is not known, so writes stop until the store is reopened.
            let _ = w.conn.execute_batch("ROLLBACK");
            *self.broken.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!(
                "a commit failed ({e}); restart to reload the store"
            ));
            group.result.set(outcome);
            return;
        }
        // The writers learn of the commit even if a hook panics below.
        group.result.set(Ok(()));
        let metrics = garrison_telemetry::metrics();
        metrics
            .store_commit_duration
            .observe(started.elapsed().as_secs_f64());
        metrics.store_commit_size.observe(group.events.len() as f64);
        let hooks = self.hooks.lock().unwrap_or_else(PoisonError::into_inner);
        for event in group.events {
            for hook in hooks.iter() {
                if std::panic::catch_unwind(AssertUnwindSafe(|| hook(&event))).is_err() {
                    tracing::error!(rv = event.rv, "a write hook panicked");
                }
            }
            self.watch.publish(event);
        }
    }

    /// Ends a writer's turn with the connection. The group is committed now unless other
    /// writers wait to add to it (and it has room); the last of them commits it.
    fn release(&self, mut w: MutexGuard<'_, Writer>) {
        let full = w.group.as_ref().is_some_and(|g| g.changes >= MAX_GROUP);
        if self.path.is_none() || full || self.queued.load(Ordering::SeqCst) == 0 {
            self.commit(&mut w);
        }
    }

    /// Rolls the open group back after the connection was left in a state no savepoint undoes;
    /// every writer of the group gets `error`.
    fn abort(&self, mut w: MutexGuard<'_, Writer>, error: &str) {
        let _ = w.conn.execute_batch("ROLLBACK");
        if let Some(group) = w.group.take() {
            group.result.set(Err(error.to_string()));
        }
    }

    /// Registers a function called after each committed write, with its event.
    pub fn on_write(&self, hook: WriteHook) {
        self.hooks.lock().expect("hooks lock").push(hook);
    }

    /// Shows `seed` every stored object of `keys`, then installs `hook`, with writes held off
    /// from the first read to the installation: state built from the two (counts, say) misses
    /// no write and sees none twice. Objects are read one at a time.
    pub fn follow(
        &self,
        keys: &[&str],
        mut seed: impl FnMut(&str, &Value),
        hook: WriteHook,
    ) -> ApiResult<()> {
        let w = self.lock_writer_flushed();
        for key in keys {
            let mut stmt = w
                .conn
                .prepare("SELECT data FROM objects WHERE rkey = ?1")
                .map_err(internal)?;
            let mut rows = stmt.query([key]).map_err(internal)?;
            while let Some(row) = rows.next().map_err(internal)? {
                let data: Vec<u8> = row.get(0).map_err(internal)?;
                let obj: Value = serde_json::from_slice(&data).map_err(internal)?;
                seed(key, &obj);
            }
        }
        self.hooks.lock().expect("hooks lock").push(hook);
        drop(w);
        Ok(())
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> ApiResult<T> {
        let Some(path) = &self.path else {
            // In memory every change is committed before the connection is released.
            let w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            return f(&w.conn).map_err(internal);
        };
        let conn = self.readers.lock().expect("pool lock").pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(internal)?;
                c.busy_timeout(std::time::Duration::from_secs(10))
                    .map_err(internal)?;
                c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                c
            }
        };
        let out = f(&conn).map_err(internal);
        let mut pool = self.readers.lock().expect("pool lock");
        if pool.len() < 8 {
            pool.push(conn);
        }
        out
    }

    /// The latest resourceVersion written.
    pub fn current_rv(&self) -> ApiResult<u64> {
        self.with_reader(read_rv)
    }

    /// Reads one object.
    pub fn get(&self, key: &str, namespace: &str, name: &str) -> ApiResult<Option<Value>> {
        let row: Option<Vec<u8>> = self.with_reader(|c| {
            c.prepare_cached(
                "SELECT data FROM objects WHERE rkey = ?1 AND namespace = ?2 AND name = ?3",
            )?
            .query_row(params![key, namespace, name], |r| r.get(0))
            .optional()
        })?;
        row.map(|b| serde_json::from_slice(&b).map_err(internal))
            .transpose()
    }

    /// Lists objects of a resource, in one namespace or all, after `after` (exclusive), at most
    /// `limit` items (0 = no limit).
    pub fn list(
        &self,
        key: &str,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> ApiResult<Page> {
        let (after_ns, after_name) = after.unwrap_or(("", ""));
        let has_after = after.is_some();
        let fetch = if limit == 0 {
            i64::MAX
        } else {
            i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1)
        };
        let (rows, rv) = self.with_reader(|c| {
            let tx = c.unchecked_transaction()?;
            let rv = read_rv(&tx)?;
            let mut rows: Vec<(String, String, Vec<u8>)> = Vec::new();
            {
                let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(String, String, Vec<u8>)> {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                };
                // Each shape has its own statement: a condition such as `(?2 = 0 OR ...)` keeps
                // SQLite from seeking the primary key to the page's start, and every page then
                // scans the resource from its first row (a paged list of 100,000 objects took
                // minutes).
                let mut q = match (namespace, has_after) {
                    (Some(ns), false) => tx
                        .prepare_cached(
                            "SELECT namespace, name, data FROM objects WHERE rkey = ?1 AND namespace = ?2 \
                             ORDER BY name LIMIT ?3",
                        )?
                        .query_map(params![key, ns, fetch], row)?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                    (Some(ns), true) => tx
                        .prepare_cached(
                            "SELECT namespace, name, data FROM objects WHERE rkey = ?1 AND namespace = ?2 \
                             AND name > ?3 ORDER BY name LIMIT ?4",
                        )?
                        .query_map(params![key, ns, after_name, fetch], row)?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                    (None, false) => tx
                        .prepare_cached(
                            "SELECT namespace, name, data FROM objects WHERE rkey = ?1 \
                             ORDER BY namespace, name LIMIT ?2",
                        )?
                        .query_map(params![key, fetch], row)?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                    (None, true) => tx
                        .prepare_cached(
                            "SELECT namespace, name, data FROM objects WHERE rkey = ?1 \
                             AND (namespace, name) > (?2, ?3) ORDER BY namespace, name LIMIT ?4",
                        )?
                        .query_map(params![key, after_ns, after_name, fetch], row)?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                };
                rows.append(&mut q);
            }
            tx.finish()?;
            Ok((rows, rv))
        })?;
        let mut next = None;
        let mut rows = rows;
        if limit != 0 && rows.len() > limit {
            rows.truncate(limit);
            let last = rows.last().expect("non-empty page");
            next = Some((last.0.clone(), last.1.clone()));
        }
        let items = rows
            .into_iter()
            .map(|(_, _, b)| serde_json::from_slice(&b).map_err(internal))
            .collect::<ApiResult<Vec<Value>>>()?;
        Ok(Page { items, rv, next })
    }

    /// Counts the objects of a resource (in one namespace, or all).
    pub fn count(&self, key: &str, namespace: Option<&str>) -> ApiResult<u64> {
        self.with_reader(|c| match namespace {
            Some(ns) => c.query_row(
                "SELECT COUNT(*) FROM objects WHERE rkey = ?1 AND namespace = ?2",
                params![key, ns],
                |r| r.get::<_, i64>(0).map(|n| n as u64),
            ),
            None => c.query_row(
                "SELECT COUNT(*) FROM objects WHERE rkey = ?1",
                params![key],
                |r| r.get::<_, i64>(0).map(|n| n as u64),
            ),
        })
    }

    /// Lists every namespace that holds objects of any resource, with the resource keys present.
    pub fn keys_in_namespace(&self, namespace: &str) -> ApiResult<Vec<String>> {
        self.with_reader(|c| {
            let mut st =
                c.prepare_cached("SELECT DISTINCT rkey FROM objects WHERE namespace = ?1")?;
            let rows = st.query_map([namespace], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// The objects that name `owner_uid` in their ownerReferences: (key, namespace, name).
    pub fn dependents(&self, owner_uid: &str) -> ApiResult<Vec<(String, String, String)>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(
                "SELECT rkey, namespace, name FROM owner_refs WHERE owner_uid = ?1",
            )?;
            let rows = st.query_map([owner_uid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    /// Whether an object with this uid exists.
    pub fn uid_exists(&self, uid: &str) -> ApiResult<bool> {
        self.with_reader(|c| {
            c.prepare_cached("SELECT 1 FROM uids WHERE uid = ?1")?
                .query_row([uid], |_| Ok(()))
                .optional()
                .map(|o| o.is_some())
        })
    }

    /// Objects whose ownerReferences name a uid that no longer exists: (key, namespace, name).
    pub fn dangling_dependents(&self) -> ApiResult<Vec<(String, String, String)>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT rkey, namespace, name FROM owner_refs WHERE owner_uid NOT IN (SELECT uid FROM uids)",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    /// Objects being deleted (with a deletionTimestamp): (key, namespace, name). Read from a
    /// partial index SQLite keeps on every write (`objects_deleting`), not by parsing every
    /// object; the condition must stay the index's for SQLite to use it.
    pub fn deleting(&self) -> ApiResult<Vec<(String, String, String)>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(
                "SELECT rkey, namespace, name FROM objects INDEXED BY objects_deleting \
                 WHERE json_extract(data, '$.metadata.deletionTimestamp') IS NOT NULL",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    /// Reads, decides and writes one object atomically. `decide` sees the current object (if any)
    /// and the resourceVersion the write will get. The write is durable when this returns.
    ///
    /// A write that finds the connection free runs on the calling thread. On a multi-threaded
    /// runtime's worker, waiting (for the connection, or for another writer to commit this
    /// write's group) runs in `block_in_place`, so the worker's other tasks move on meanwhile
    /// and the waiting writers can join one group.
    pub fn mutate(
        &self,
        key: &str,
        namespace: &str,
        name: &str,
        decide: impl FnOnce(Option<Value>, u64) -> ApiResult<Mutation>,
    ) -> ApiResult<Outcome> {
        let started = std::time::Instant::now();
        let on_worker = self.path.is_some()
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let mut w = match self.writer.try_lock() {
            Ok(w) => w,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => self.blocking(on_worker, || self.lock_writer()),
        };
        let wait = |result: &GroupResult| -> ApiResult<()> {
            let done = match result.done() {
                Some(done) => done,
                None => self.blocking(on_worker, || result.wait()),
            };
            done.map_err(internal)
        };
        if let Some(why) = self.broken() {
            return Err(ApiError::internal(format!("storage: {why}")));
        }
        if w.group.is_none() {
            if !w.conn.is_autocommit() {
                // A rollback that failed left a transaction behind; nothing of it stands.
                let _ = w.conn.execute_batch("ROLLBACK");
            }
            if let Err(e) = run(&w.conn, "BEGIN IMMEDIATE") {
                return Err(internal(e));
            }
            w.group = Some(Group {
                events: Vec::new(),
                changes: 0,
                result: Arc::default(),
            });
        }
        let group = w.group.as_mut().expect("a group is open");
        group.changes += 1;
        // The decision may rest on writes of this group not yet committed: then its answer,
        // whatever it is, stands only once they are.
        let result = group.result.clone();
        let saw_uncommitted = !group.events.is_empty();
        if let Err(e) = run(&w.conn, "SAVEPOINT change") {
            let e = e.to_string();
            self.abort(w, &e);
            return Err(internal(e));
        }
        let change = std::panic::catch_unwind(AssertUnwindSafe(|| {
            change(&w.conn, key, namespace, name, decide)
        }));
        let end = match change {
            Ok(Ok(_)) => run(&w.conn, "RELEASE change"),
            Ok(Err(_)) | Err(_) => {
                run(&w.conn, "ROLLBACK TO change").and_then(|()| run(&w.conn, "RELEASE change"))
            }
        };
        if let Err(e) = end {
            let e = e.to_string();
            self.abort(w, &e);
            return Err(internal(e));
        }
        let change = match change {
            Ok(change) => change,
            Err(panic) => {
                self.release(w);
                std::panic::resume_unwind(panic);
            }
        };
        let answer = match change {
            Ok(Change::Event(event)) => event,
            Ok(Change::Keep(v)) => {
                self.release(w);
                if saw_uncommitted {
                    wait(&result)?;
                }
                return Ok(Outcome::Unchanged(v));
            }
            Err(e) => {
                self.release(w);
                if saw_uncommitted {
                    wait(&result)?;
                }
                return Err(e);
            }
        };
        let deleted = answer.kind == EventType::Deleted;
        let object = (*answer.object).clone();
        w.group
            .as_mut()
            .expect("a group is open")
            .events
            .push(answer);
        self.release(w);
        wait(&result)?;
        garrison_telemetry::metrics()
            .store_write_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(if deleted {
            Outcome::Deleted(object)
        } else {
            Outcome::Written(object)
        })
    }

    /// Runs a wait. On a runtime worker, up to [`MAX_IN_PLACE`] waits at a time run in
    /// `block_in_place`, so the worker's other tasks move to a new thread meanwhile; beyond
    /// that the wait blocks its worker. Unbounded, a 10,000-cluster join had 438 threads, and
    /// the allocator's per-thread memory made the hub's RSS 6.5 times its live heap.
    fn blocking<T>(&self, on_worker: bool, wait: impl FnOnce() -> T) -> T {
        if !on_worker {
            return wait();
        }
        if self.in_place.fetch_add(1, Ordering::SeqCst) < MAX_IN_PLACE {
            let out = tokio::task::block_in_place(wait);
            self.in_place.fetch_sub(1, Ordering::SeqCst);
            out
        } else {
            self.in_place.fetch_sub(1, Ordering::SeqCst);
            wait()
        }
    }

    /// Copies the whole store into a new SQLite file at `dest` while it stays online.
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        let w = self.lock_writer_flushed();
        w.conn.backup(
            rusqlite::MAIN_DB,
            dest,
            None::<fn(rusqlite::backup::Progress)>,
        )?;
        Ok(())
    }
}

/// What one change did inside the open transaction.
enum Change {
    /// The object was written or removed; the event to publish once committed.
    Event(WatchEvent),
    /// Nothing changed; answer with this object.
    Keep(Value),
}

/// Reads, decides and writes one object on `conn`, inside the caller's transaction.
fn change(
    conn: &Connection,
    key: &str,
    namespace: &str,
    name: &str,
    decide: impl FnOnce(Option<Value>, u64) -> ApiResult<Mutation>,
) -> ApiResult<Change> {
    let current: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM objects WHERE rkey = ?1 AND namespace = ?2 AND name = ?3")
        .and_then(|mut st| {
            st.query_row(params![key, namespace, name], |r| r.get(0))
                .optional()
        })
        .map_err(internal)?;
    let current: Option<Value> = current
        .map(|b| serde_json::from_slice(&b))
        .transpose()
        .map_err(internal)?;
    let rv = read_rv(conn).map_err(internal)? + 1;
    let existed = current.is_some();
    let old = current.clone();
    let (kind, mut object) = match decide(current, rv)? {
        Mutation::Keep(v) => return Ok(Change::Keep(v)),
        Mutation::Put(v) => (
            if existed {
                EventType::Modified
            } else {
                EventType::Added
            },
            v,
        ),
        Mutation::Delete => match old.clone() {
            Some(v) => (EventType::Deleted, v),
            None => return Err(ApiError::internal("delete of a missing object")),
        },
    };
    set_rv(&mut object, rv);
    let exec = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> ApiResult<()> {
        conn.prepare_cached(sql)
            .and_then(|mut st| st.execute(p))
            .map(|_| ())
            .map_err(internal)
    };
    // The uid and owner indexes change only when the uid or the owners do: most writes (a
    // status, a label) leave both, and skip four index writes.
    let uid_of = |o: &Value| {
        o.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let owners_of = |o: &Value| -> Vec<String> {
        o.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| r.get("uid").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let deleted = kind == EventType::Deleted;
    let (old_uid, old_owners) = match &old {
        Some(o) => (uid_of(o), owners_of(o)),
        None => (None, Vec::new()),
    };
    let (new_uid, new_owners) = if deleted {
        (None, Vec::new())
    } else {
        (uid_of(&object), owners_of(&object))
    };
    if old_owners != new_owners {
        exec(
            "DELETE FROM owner_refs WHERE rkey = ?1 AND namespace = ?2 AND name = ?3",
            params![key, namespace, name],
        )?;
        for owner in &new_owners {
            exec(
                "INSERT OR IGNORE INTO owner_refs (owner_uid, rkey, namespace, name) VALUES (?1, ?2, ?3, ?4)",
                params![owner, key, namespace, name],
            )?;
        }
    }
    if old_uid != new_uid {
        if let Some(uid) = &old_uid {
            exec("DELETE FROM uids WHERE uid = ?1", params![uid])?;
        }
        if let Some(uid) = &new_uid {
            exec(
                "INSERT OR REPLACE INTO uids (uid, rkey, namespace, name) VALUES (?1, ?2, ?3, ?4)",
                params![uid, key, namespace, name],
            )?;
        }
    }
    let data = serde_json::to_vec(&object).map_err(internal)?;
    if deleted {
        exec(
            "DELETE FROM objects WHERE rkey = ?1 AND namespace = ?2 AND name = ?3",
            params![key, namespace, name],
        )?;
    } else {
        exec(
            "INSERT INTO objects (rkey, namespace, name, rv, data) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (rkey, namespace, name) DO UPDATE SET rv = excluded.rv, data = excluded.data",
            params![key, namespace, name, rv as i64, &data[..]],
        )?;
    }
    exec(
        "UPDATE garrison_meta SET value = ?1 WHERE key = 'rv'",
        params![rv.to_string()],
    )?;
    Ok(Change::Event(WatchEvent {
        rv,
        key: key.to_string(),
        namespace: namespace.to_string(),
        kind,
        object: Arc::new(object),
        data: watch::exact_bytes(data),
        old: old.map(Arc::new),
    }))
}

fn read_rv(c: &Connection) -> rusqlite::Result<u64> {
    let s: String = c
        .prepare_cached("SELECT value FROM garrison_meta WHERE key = 'rv'")?
        .query_row([], |r| r.get(0))?;
    Ok(s.parse().unwrap_or(0))
}

/// Runs one statement without parameters from the connection's statement cache, so that the
/// statements every write runs (BEGIN, SAVEPOINT, RELEASE, COMMIT) are parsed once.
fn run(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn set_rv(object: &mut Value, rv: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "store failure");
    ApiError::internal(format!("storage: {e}"))
}

/// Makes an online, consistent copy of the store file at `src` into `dest`, using SQLite's backup
/// API, without stopping a hub that has it open.
pub fn backup_file(src: &Path, dest: &Path) -> Result<(), StoreError> {
    let conn = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| corrupt(src, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| corrupt(src, e))?;
    if check != "ok" {
        return Err(corrupt(src, check));
    }
    conn.backup(
        rusqlite::MAIN_DB,
        dest,
        None::<fn(rusqlite::backup::Progress)>,
    )?;
    Ok(())
}

/// Checks that `path` is a Garrison store that passes SQLite's integrity check, returning its
/// object count and resourceVersion.
pub fn verify_file(path: &Path) -> Result<(u64, u64), StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| corrupt(path, e))?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| corrupt(path, e))?;
    if check != "ok" {
        return Err(corrupt(path, check));
    }
    let schema: Option<String> = conn
        .query_row(
            "SELECT value FROM garrison_meta WHERE key = 'schema'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| corrupt(path, e))?;
    if schema.as_deref() != Some(SCHEMA_VERSION) {
        return Err(corrupt(path, "no Garrison schema"));
    }
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM objects", [], |r| r.get(0))?;
    let count = count as u64;
    let rv = read_rv(&conn)?;
    Ok((count, rv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "a"}})
    }

    #[test]
    fn every_write_gets_a_higher_resource_version() {
        let s = Store::in_memory(100);
        let a = s
            .mutate("/configmaps", "a", "x", |_, _| Ok(Mutation::Put(cm("x"))))
            .unwrap();
        let b = s
            .mutate("/configmaps", "a", "y", |_, _| Ok(Mutation::Put(cm("y"))))
            .unwrap();
        let rv = |o: &Outcome| {
            o.object()["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert!(rv(&b) > rv(&a));
        assert_eq!(s.current_rv().unwrap(), rv(&b));
    }

    #[test]
    fn a_failed_decision_writes_nothing() {
        let s = Store::in_memory(100);
        let before = s.current_rv().unwrap();
        let r = s.mutate("/configmaps", "a", "x", |_, _| {
            Err(ApiError::bad_request("no"))
        });
        assert!(r.is_err());
        assert_eq!(s.current_rv().unwrap(), before);
        assert!(s.get("/configmaps", "a", "x").unwrap().is_none());
    }

    #[test]
    fn pages_continue_where_the_last_one_ended() {
        let s = Store::in_memory(100);
        for n in ["a", "b", "c", "d", "e"] {
            s.mutate("/configmaps", "a", n, |_, _| Ok(Mutation::Put(cm(n))))
                .unwrap();
        }
        let p1 = s.list("/configmaps", Some("a"), None, 2).unwrap();
        assert_eq!(p1.items.len(), 2);
        let (ns, name) = p1.next.clone().unwrap();
        let p2 = s
            .list("/configmaps", Some("a"), Some((&ns, &name)), 2)
            .unwrap();
        assert_eq!(p2.items[0]["metadata"]["name"], "c");
        let (ns, name) = p2.next.clone().unwrap();
        let p3 = s.list("/configmaps", None, Some((&ns, &name)), 2).unwrap();
        assert_eq!(p3.items.len(), 1);
        assert!(p3.next.is_none());
        // Every shape: all namespaces from the start, one namespace after a cursor, and a
        // limit as large as a client may ask.
        assert_eq!(s.list("/configmaps", None, None, 3).unwrap().items.len(), 3);
        let after_b = s
            .list("/configmaps", Some("a"), Some(("a", "b")), 0)
            .unwrap();
        assert_eq!(after_b.items.len(), 3);
        assert!(after_b.next.is_none());
        let all = s.list("/configmaps", None, None, usize::MAX).unwrap();
        assert_eq!(all.items.len(), 5);
        assert!(all.next.is_none());
    }

    #[test]
    fn writers_at_once_share_commits_and_a_failed_change_spoils_none_of_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("store.db");
        let s = Store::open(&p, 100_000).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        s.on_write(Arc::new(move |e: &WatchEvent| {
            log.lock().unwrap().push(e.rv)
        }));
        let start = s.current_rv().unwrap();
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut rvs = Vec::new();
                    for i in 0..40 {
                        let name = format!("t{t}-{i}");
                        let out = s.mutate("/configmaps", "a", &name, |_, _| {
                            if i % 10 == 3 {
                                Err(ApiError::bad_request("refused"))
                            } else {
                                Ok(Mutation::Put(cm(&name)))
                            }
                        });
                        match out {
                            Ok(o) => rvs.push(
                                o.object()["metadata"]["resourceVersion"]
                                    .as_str()
                                    .unwrap()
                                    .parse::<u64>()
                                    .unwrap(),
                            ),
                            Err(e) => assert_eq!(e.code, 400, "{e:?}"),
                        }
                    }
                    rvs
                })
            })
            .collect();
        let mut rvs: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        rvs.sort_unstable();
        let written = 16 * 36;
        assert_eq!(rvs.len(), written);
        rvs.dedup();
        assert_eq!(
            rvs.len(),
            written,
            "every write has its own resourceVersion"
        );
        // The hooks and the watch saw every committed write once, in resourceVersion order.
        let hooked = seen.lock().unwrap().clone();
        assert_eq!(hooked, rvs);
        let watch = s.watch().subscribe("/configmaps", None, start).unwrap();
        let watched: Vec<u64> = watch.backlog.iter().map(|e| e.rv).collect();
        assert_eq!(watched, rvs);
        assert_eq!(s.count("/configmaps", None).unwrap(), written as u64);
        assert!(s.get("/configmaps", "a", "t0-3").unwrap().is_none());
        drop(s);
        assert_eq!(
            verify_file(&p).unwrap(),
            (written as u64, *rvs.last().unwrap())
        );
    }

    #[test]
    fn a_decision_that_panics_spoils_nothing_and_hangs_no_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("store.db"), 1000).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        let name = format!("t{t}-{i}");
                        let _ = s.mutate("/configmaps", "a", &name, |_, _| {
                            assert!(i != 7, "a bug in a decision");
                            Ok(Mutation::Put(cm(&name)))
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_err(), "each thread's eighth decision panicked");
        }
        // Every change before the panics stands; the panicking ones wrote nothing.
        assert_eq!(s.count("/configmaps", None).unwrap(), 8 * 7);
        assert!(s.get("/configmaps", "a", "t3-7").unwrap().is_none());
        s.mutate("/configmaps", "a", "after", |_, _| {
            Ok(Mutation::Put(cm("after")))
        })
        .expect("the store still takes writes");
        s.probe_write().expect("and reports ready");
    }

    #[test]
    fn objects_being_deleted_are_found_until_they_are_gone() {
        let s = Store::in_memory(100);
        let marked = |n: &str| {
            let mut o = cm(n);
            o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            o
        };
        for n in ["x", "y", "z"] {
            s.mutate("/configmaps", "a", n, |_, _| Ok(Mutation::Put(cm(n))))
                .unwrap();
        }
        s.mutate("/configmaps", "a", "x", |_, _| {
            Ok(Mutation::Put(marked("x")))
        })
        .unwrap();
        s.mutate("/configmaps", "a", "y", |_, _| {
            Ok(Mutation::Put(marked("y")))
        })
        .unwrap();
        let names = |s: &Store| {
            let mut v: Vec<String> = s.deleting().unwrap().into_iter().map(|i| i.2).collect();
            v.sort();
            v
        };
        assert_eq!(names(&s), ["x", "y"]);
        s.mutate("/configmaps", "a", "x", |_, _| Ok(Mutation::Delete))
            .unwrap();
        s.mutate("/configmaps", "a", "y", |_, _| Ok(Mutation::Put(cm("y"))))
            .unwrap();
        assert!(names(&s).is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("store.db");
        std::fs::write(
            &p,
            b"this is not sqlite at all, not even close........................",
        )
        .unwrap();
        let err = Store::open(&p, 10).err().expect("must fail");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("store.db");
        {
            let s = Store::open(&p, 10).unwrap();
            s.mutate("/configmaps", "a", "x", |_, _| Ok(Mutation::Put(cm("x"))))
                .unwrap();
        }
        let s = Store::open(&p, 10).unwrap();
        assert!(s.get("/configmaps", "a", "x").unwrap().is_some());
        assert_eq!(verify_file(&p).unwrap().0, 1);
    }
}
