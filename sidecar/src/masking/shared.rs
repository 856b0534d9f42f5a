//! One catalog snapshot per upstream database, shared by its sessions (of every
//! listener: DDL through one policy's listener reaches the sessions of another).
//!
//! Reading the catalog costs a session several milliseconds of its connection set-up; it
//! is the same for every session of a database but for their temporary objects, which
//! the query leaves out for everyone but the reader ([`super::catalog`]). So a new
//! connection takes the database's snapshot when it is fresh and sends no catalog query
//! at all; when it is not, one connection reads it on its own upstream connection (the
//! sidecar has none of its own under SCRAM passthrough) and publishes it, and connections
//! arriving meanwhile wait briefly for that read instead of sending theirs.
//!
//! Freshness: a snapshot is current while no DDL ran through the sidecar since its query
//! was sent (an *epoch* that DDL bumps once its transaction has ended, so that a read
//! sent after the bump sees it) and for [`SNAPSHOT_MAX_AGE`], which bounds how long DDL
//! made outside the sidecar goes unseen. A session with a snapshot that is no longer
//! current takes a newer published one if there is one, and reads itself otherwise.
//! Only reads made outside a transaction block are published: inside one, the session
//! may see its own uncommitted DDL (which it alone must see) or an old transaction
//! snapshot, so such a read stays with the session.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use palisade_policy::mask_plan::Catalog;
use palisade_policy::model::Operation;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::catalog::{CatalogReader, Read, Snapshot, catalog_query};
use crate::metrics::CatalogQueries;
use crate::protocol::frame::message;
use crate::protocol::frontend;

/// A snapshot older than this is read again before the next statement that needs it, so
/// DDL made outside the sidecar (a view redefined) reaches long sessions too.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(30);

/// Databases whose snapshots the sidecar keeps. Policies' `databases` allowlists bound
/// them already; this bounds policies without one. A snapshot in use by a session lives
/// on with it after its entry is dropped.
const DATABASES_KEPT: usize = 32;

/// How long a new connection waits for another connection's read of the same snapshot
/// before it reads its own (the other may be slow or gone).
const READ_WAIT: Duration = Duration::from_secs(2);

/// Why a catalog query was sent: the label of the metric that counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// A new connection found no current snapshot of its database.
    SessionStart,
    /// DDL ran through the sidecar (in this session or another).
    Ddl,
    /// A statement names a relation or function the snapshot lacks.
    UnknownName,
    /// The snapshot is older than [`SNAPSHOT_MAX_AGE`].
    Age,
}

/// Whether statements with these operations may change what the catalog snapshot holds.
pub fn changes_catalog(operations: &BTreeSet<Operation>) -> bool {
    operations.iter().any(|op| {
        matches!(
            op,
            Operation::Create
                | Operation::Alter
                | Operation::Drop
                | Operation::Do
                | Operation::Call
        )
    })
}

/// The snapshots of the upstream databases.
#[derive(Default)]
pub struct Catalogs {
    /// Least recently used first.
    databases: Mutex<VecDeque<(DatabaseKey, Arc<DatabaseCatalog>)>>,
}

#[derive(Debug, PartialEq, Eq)]
struct DatabaseKey {
    host: String,
    port: u16,
    database: String,
}

impl Catalogs {
    /// The shared catalog of `database` on the upstream `host:port`, for a session whose
    /// catalog queries count in `queries` (its policy's).
    pub fn database(
        &self,
        host: &str,
        port: u16,
        database: &str,
        queries: &CatalogQueries,
    ) -> CatalogHandle {
        let key = DatabaseKey {
            host: host.to_string(),
            port,
            database: database.to_string(),
        };
        let mut databases = self
            .databases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let found = databases
            .iter()
            .position(|(k, _)| *k == key)
            .and_then(|i| databases.remove(i));
        let entry = match found {
            Some(entry) => entry,
            None => {
                if databases.len() >= DATABASES_KEPT {
                    // Rather one no session uses now; else the least recently used.
                    let idle = databases
                        .iter()
                        .position(|(_, d)| Arc::strong_count(d) == 1)
                        .unwrap_or(0);
                    databases.remove(idle);
                }
                (key, Arc::new(DatabaseCatalog::default()))
            }
        };
        let database = entry.1.clone();
        databases.push_back(entry);
        CatalogHandle {
            database,
            queries: queries.clone(),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.databases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A published snapshot of a database.
#[derive(Clone)]
pub struct Published {
    pub snapshot: Snapshot,
    /// The epoch when its query was sent.
    epoch: u64,
    /// When its query was sent.
    sent: Instant,
}

/// One database's shared snapshot.
pub struct DatabaseCatalog {
    latest: Mutex<Latest>,
    /// Bumped when DDL through the sidecar has ended its transaction: snapshots whose
    /// query was sent before are stale.
    epoch: AtomicU64,
    /// Bumped by every publication, so a session sees that nothing changed with one load.
    generation: AtomicU64,
    /// Wakes connections waiting for another's read (on publication or an abandoned read).
    changed: watch::Sender<()>,
}

#[derive(Default)]
struct Latest {
    published: Option<Published>,
    /// A new connection is reading the snapshot; others wait for it.
    reading: bool,
}

impl Default for DatabaseCatalog {
    fn default() -> Self {
        DatabaseCatalog {
            latest: Mutex::new(Latest::default()),
            epoch: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            changed: watch::Sender::new(()),
        }
    }
}

impl DatabaseCatalog {
    fn latest(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether a snapshot read at `epoch`, sent at `sent`, is still current.
    fn current(&self, epoch: u64, sent: Instant) -> bool {
        epoch == self.epoch() && sent.elapsed() <= SNAPSHOT_MAX_AGE
    }

    /// Publishes a snapshot read outside a transaction block, unless a later read is
    /// published already.
    fn publish(&self, published: Published) {
        let mut latest = self.latest();
        if latest
            .published
            .as_ref()
            .is_some_and(|p| p.sent > published.sent)
        {
            return;
        }
        latest.published = Some(published);
        self.generation.fetch_add(1, Ordering::SeqCst);
        drop(latest);
        self.changed.send_replace(());
    }
}

/// What a session holds of its database's shared catalog.
#[derive(Clone)]
pub struct CatalogHandle {
    database: Arc<DatabaseCatalog>,
    queries: CatalogQueries,
}

/// How a new connection gets its snapshot.
pub enum Start {
    /// The database's snapshot is current: no query.
    Current(Published),
    /// Read it on the connection (and publish it).
    Read(ReadClaim),
}

impl CatalogHandle {
    /// For a new connection (outside any transaction block): the current snapshot, once
    /// another connection's read of it is done if one is under way, or the go-ahead to
    /// read it.
    pub async fn at_start(&self) -> Start {
        let mut waited = false;
        loop {
            // Subscribed before looking, so a publication right after is not missed.
            let mut changed = self.database.changed.subscribe();
            {
                let mut latest = self.database.latest();
                if let Some(p) = &latest.published
                    && self.database.current(p.epoch, p.sent)
                {
                    return Start::Current(p.clone());
                }
                if !latest.reading || waited {
                    // After a wait that brought nothing, read without waiting again.
                    let claimed = !latest.reading;
                    latest.reading = true;
                    drop(latest);
                    return Start::Read(self.claim(claimed, Why::SessionStart));
                }
            }
            waited = true;
            if tokio::time::timeout(READ_WAIT, changed.changed())
                .await
                .is_err()
            {
                debug!("another connection's catalog read is slow; reading this one's own");
            }
        }
    }

    fn claim(&self, claimed: bool, why: Why) -> ReadClaim {
        self.queries.count(why);
        ReadClaim {
            handle: self.clone(),
            claimed,
            epoch: self.database.epoch(),
            sent: Instant::now(),
        }
    }

    /// DDL through the sidecar has ended its transaction: every snapshot read before is stale.
    pub fn invalidate(&self) {
        self.database.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// A connection's read of the snapshot at set-up. Dropped unfinished (the connection
/// failed), it lets the connections waiting for it go on.
pub struct ReadClaim {
    handle: CatalogHandle,
    /// Whether this is the read others wait for.
    claimed: bool,
    epoch: u64,
    sent: Instant,
}

impl ReadClaim {
    /// The query to send.
    pub fn query(&self) -> Bytes {
        query_message(true)
    }

    pub fn reader(&self) -> CatalogReader {
        CatalogReader::new(true)
    }

    /// The session's catalog from what it read; published for the others.
    pub fn finish(self, read: Read) -> SessionCatalog {
        let mut session = SessionCatalog::unread(self.handle.clone());
        session.stale = false;
        session.seen_generation = self.handle.database.generation.load(Ordering::SeqCst);
        session.take(read, self.epoch, self.sent);
        session
    }
}

impl Drop for ReadClaim {
    fn drop(&mut self) {
        if self.claimed {
            self.handle.database.latest().reading = false;
            self.handle.database.changed.send_replace(());
        }
    }
}

fn query_message(neutral: bool) -> Bytes {
    let mut body = catalog_query(neutral).as_bytes().to_vec();
    body.push(0);
    message(frontend::QUERY, &body)
}

/// A session's catalog: its database's snapshot, its own temporary objects over it, and
/// whether they must be read again.
pub struct SessionCatalog {
    handle: CatalogHandle,
    /// The database snapshot in use.
    base: Snapshot,
    /// The epoch when `base`'s query was sent, and when it was sent.
    base_epoch: u64,
    base_sent: Instant,
    /// The database's publication counter when this session last looked.
    seen_generation: u64,
    /// The session's own temporary relations and functions.
    own: Catalog,
    /// `base` with `own` layered over it: what masking plans with.
    view: Arc<Snapshot>,
    /// The session changed the catalog: read it again (its own objects too).
    stale: bool,
    /// The session ran DDL in a transaction that has not ended: published snapshots lack
    /// what it did, so it keeps its own reads until then.
    ddl_open: bool,
    /// The last ReadyForQuery said the session is outside a transaction block.
    idle_txn: bool,
    reading: Option<Pending>,
}

struct Pending {
    reader: CatalogReader,
    epoch: u64,
    sent: Instant,
}

impl SessionCatalog {
    /// A session that has read nothing yet: it reads before its first planned statement
    /// (its own temporary objects with the rest: it may have some already, made before
    /// masking applied to it).
    pub fn unread(handle: CatalogHandle) -> Self {
        let epoch = handle.database.epoch();
        SessionCatalog {
            handle,
            base: Snapshot::default(),
            base_epoch: epoch,
            base_sent: Instant::now(),
            seen_generation: 0,
            own: Catalog::default(),
            view: Arc::new(Snapshot::default()),
            stale: true,
            ddl_open: false,
            idle_txn: false,
            reading: None,
        }
    }

    /// A new session on the database's current snapshot (it has no temporary objects).
    pub fn current(handle: CatalogHandle, published: Published) -> Self {
        let seen_generation = handle.database.generation.load(Ordering::SeqCst);
        SessionCatalog {
            handle,
            view: Arc::new(published.snapshot.clone()),
            base: published.snapshot,
            base_epoch: published.epoch,
            base_sent: published.sent,
            seen_generation,
            own: Catalog::default(),
            stale: false,
            ddl_open: false,
            idle_txn: true,
            reading: None,
        }
    }

    /// What masking plans with.
    pub fn view(&self) -> &Arc<Snapshot> {
        &self.view
    }

    /// Whether the session has temporary objects of its own.
    pub fn has_own(&self) -> bool {
        !self.own.is_empty()
    }

    /// Read again before the next statement.
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// The session sent DDL: its next statement reads the catalog again, and until the
    /// transaction ends it keeps to its own reads.
    pub fn on_ddl(&mut self) {
        self.stale = true;
        self.ddl_open = true;
    }

    /// The transaction status of a ReadyForQuery.
    pub fn on_status(&mut self, status: u8) {
        self.idle_txn = status == b'I';
        if self.idle_txn {
            self.ddl_open = false;
        }
    }

    /// Takes a snapshot another session published since this one last looked, if it is
    /// newer than the one in use. One atomic load when nothing was published.
    pub fn catch_up(&mut self) {
        if self.stale || self.ddl_open {
            return;
        }
        let database = &self.handle.database;
        let generation = database.generation.load(Ordering::SeqCst);
        if generation == self.seen_generation {
            return;
        }
        self.seen_generation = generation;
        let newer = database
            .latest()
            .published
            .as_ref()
            .filter(|p| p.sent > self.base_sent)
            .cloned();
        if let Some(p) = newer {
            self.adopt(p.snapshot, p.epoch, p.sent);
        }
    }

    fn adopt(&mut self, base: Snapshot, epoch: u64, sent: Instant) {
        self.view = Arc::new(base.with_own(&self.own));
        self.base = base;
        self.base_epoch = epoch;
        self.base_sent = sent;
    }

    /// Why the catalog must be read before the next statement, if it must (names the
    /// snapshot lacks are the caller's to judge).
    pub fn needs_read(&self) -> Option<Why> {
        if self.stale || self.base_epoch != self.handle.database.epoch() {
            Some(Why::Ddl)
        } else if self.base_sent.elapsed() > SNAPSHOT_MAX_AGE {
            Some(Why::Age)
        } else {
            None
        }
    }

    /// Starts a read on the session's connection: the query to slip in.
    pub fn begin_read(&mut self, why: Why) -> Bytes {
        self.handle.queries.count(why);
        self.stale = false;
        let neutral = self.idle_txn;
        self.reading = Some(Pending {
            reader: CatalogReader::new(neutral),
            epoch: self.handle.database.epoch(),
            sent: Instant::now(),
        });
        query_message(neutral)
    }

    /// Feeds a message of the answer; true once the answer is complete.
    pub fn feed(&mut self, msg: &[u8]) -> bool {
        let Some(pending) = self.reading.as_mut() else {
            return false;
        };
        let Some(result) = pending.reader.feed(msg) else {
            return false;
        };
        let (epoch, sent) = (pending.epoch, pending.sent);
        self.reading = None;
        match result {
            Ok(read) => self.take(read, epoch, sent),
            Err(e) => {
                // Keep the old snapshot; unknown relations are then masked as
                // conservatively as it allows. Counted as looked at, so that a failing
                // query is not sent again before every statement.
                warn!(error = %e, "catalog refresh failed");
                self.base_epoch = epoch;
                self.base_sent = sent;
            }
        }
        true
    }

    /// A finished read: the session's own objects kept, the rest published when it was
    /// read outside a transaction block with names printed qualified.
    fn take(&mut self, read: Read, epoch: u64, sent: Instant) {
        self.idle_txn = read.status == b'I';
        self.own = read.own;
        if read.neutral && read.status == b'I' {
            self.handle.database.publish(Published {
                snapshot: read.shared.clone(),
                epoch,
                sent,
            });
        }
        self.adopt(read.shared, epoch, sent);
    }
}

/// Which sessions' DDL makes the shared snapshot stale, for every session (masked or
/// not: an exempt migration redefines views the masked sessions read).
pub struct DdlWatch {
    handle: CatalogHandle,
    /// DDL was sent and its transaction has not ended yet.
    open: bool,
}

impl DdlWatch {
    pub fn new(handle: CatalogHandle) -> Self {
        DdlWatch {
            handle,
            open: false,
        }
    }

    /// A statement allowed to run.
    pub fn sent(&mut self, operations: &BTreeSet<Operation>) {
        if changes_catalog(operations) {
            self.open = true;
        }
    }

    /// The transaction status of a ReadyForQuery: outside a transaction block, whatever
    /// the DDL did is committed (or rolled back) and other sessions' next reads see it.
    pub fn on_status(&mut self, status: u8) {
        if self.open && status == b'I' {
            self.open = false;
            self.handle.invalidate();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use palisade_policy::mask_plan::CatalogRelation;

    fn queries() -> CatalogQueries {
        Metrics::default().catalog_queries("test/p")
    }

    fn read(relation: &str, own: Option<&str>, status: u8) -> Read {
        let mut shared = Catalog::default();
        shared.insert(CatalogRelation {
            oid: 100,
            schema: "public".into(),
            name: relation.into(),
            ..CatalogRelation::default()
        });
        let mut mine = Catalog::default();
        if let Some(name) = own {
            mine.insert(CatalogRelation {
                oid: 900,
                schema: "pg_temp_3".into(),
                name: name.into(),
                ..CatalogRelation::default()
            });
        }
        Read {
            shared: Snapshot {
                catalog: Arc::new(shared),
                types: Default::default(),
            },
            own: mine,
            status,
            neutral: true,
        }
    }

    async fn start(handle: &CatalogHandle) -> SessionCatalog {
        match handle.at_start().await {
            Start::Current(p) => SessionCatalog::current(handle.clone(), p),
            Start::Read(claim) => claim.finish(read("customers", None, b'I')),
        }
    }

    #[tokio::test]
    async fn a_current_snapshot_serves_new_sessions_without_a_query() {
        let catalogs = Catalogs::default();
        let handle = catalogs.database("db", 5432, "app", &queries());
        let first = start(&handle).await;
        assert!(first.view().catalog.relation(100).is_some());
        assert_eq!(first.needs_read(), None);
        let Start::Current(p) = handle.at_start().await else {
            panic!("a second session read again");
        };
        let second = SessionCatalog::current(handle.clone(), p);
        assert!(Arc::ptr_eq(&first.view().catalog, &second.view().catalog));
        assert_eq!(second.needs_read(), None);
        // Another database of the same upstream has its own.
        let other = catalogs.database("db", 5432, "other", &queries());
        assert!(matches!(other.at_start().await, Start::Read(_)));
    }

    #[tokio::test]
    async fn connections_arriving_during_a_read_wait_for_it() {
        let catalogs = Catalogs::default();
        let handle = catalogs.database("db", 5432, "app", &queries());
        let Start::Read(claim) = handle.at_start().await else {
            panic!("nothing was published yet");
        };
        let waiter = {
            let handle = handle.clone();
            tokio::spawn(async move { matches!(handle.at_start().await, Start::Current(_)) })
        };
        tokio::task::yield_now().await;
        claim.finish(read("customers", None, b'I'));
        assert!(waiter.await.unwrap(), "the waiter read its own");
        // An abandoned read lets a waiter read instead.
        handle.invalidate();
        let Start::Read(claim) = handle.at_start().await else {
            panic!("the snapshot is stale");
        };
        let waiter = {
            let handle = handle.clone();
            tokio::spawn(async move { matches!(handle.at_start().await, Start::Read(_)) })
        };
        tokio::task::yield_now().await;
        drop(claim);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn ddl_makes_every_session_stale_and_one_read_serves_them() {
        let catalogs = Catalogs::default();
        let handle = catalogs.database("db", 5432, "app", &queries());
        let mut a = start(&handle).await;
        let mut b = start(&handle).await;
        let mut watch = DdlWatch::new(handle.clone());
        // DDL in a transaction: nothing changes for others until it ends.
        watch.sent(&[Operation::Create].into());
        a.on_ddl();
        watch.on_status(b'T');
        a.on_status(b'T');
        b.catch_up();
        assert_eq!(b.needs_read(), None);
        // A reads inside its transaction: its own, not published.
        assert_eq!(a.needs_read(), Some(Why::Ddl));
        let _ = a.begin_read(Why::Ddl);
        a.take(
            read("customers_v2", Some("scratch"), b'T'),
            0,
            Instant::now(),
        );
        assert!(a.has_own());
        b.catch_up();
        assert!(
            b.view()
                .catalog
                .relation(100)
                .is_some_and(|r| r.name == "customers")
        );
        // COMMIT: everyone is stale; B reads and publishes, A takes B's without a query.
        watch.on_status(b'I');
        a.on_status(b'I');
        assert_eq!(b.needs_read(), Some(Why::Ddl));
        let epoch = handle.database.epoch();
        let _ = b.begin_read(Why::Ddl);
        b.take(read("customers_v3", None, b'I'), epoch, Instant::now());
        assert_eq!(b.needs_read(), None);
        a.catch_up();
        assert_eq!(a.needs_read(), None);
        let name = |s: &SessionCatalog| s.view().catalog.relation(100).map(|r| r.name.clone());
        assert_eq!(name(&a).as_deref(), Some("customers_v3"));
        // A keeps its own temporary objects over the new base; B never sees them.
        assert!(a.view().catalog.relation(900).is_some());
        assert!(b.view().catalog.relation(900).is_none());
    }

    #[tokio::test]
    async fn the_listener_keeps_a_bounded_number_of_databases() {
        let catalogs = Catalogs::default();
        let held = catalogs.database("db", 5432, "db0", &queries());
        for i in 1..100 {
            catalogs.database("db", 5432, &format!("db{i}"), &queries());
        }
        assert_eq!(catalogs.len(), DATABASES_KEPT);
        // The one a session holds was not the one dropped.
        let again = catalogs.database("db", 5432, "db0", &queries());
        assert!(Arc::ptr_eq(&held.database, &again.database));
    }
}
