//! The request pool: connections routed by tenant, so that each PostgreSQL backend keeps
//! serving the tenants whose catalog it has already loaded.
//!
//! A PostgreSQL backend caches catalog entries (relations, indexes, types) for every table
//! it has touched and never gives them back. Serving a tenant for the first time on a
//! backend pays for loading them; a backend that ends up serving every tenant caches the
//! catalog of the whole fleet (with 1,000 tenants, about 145 MiB per backend; see
//! BENCHMARKS.md). So the pool is a set of slots, each holding at most one connection (a
//! one-connection bb8 pool, which opens, checks and replaces it), and remembers which
//! tenants each slot's current connection has served. A request for a tenant takes, in
//! order of preference:
//!
//! 1. an idle slot that has served the tenant (its catalog is warm there, and so are the
//!    tenant's own prepared statements, see `crate::tenancy::statements`), preferring one
//!    whose last request was for this tenant (statements shared by all tenants, such as
//!    those of code shared with jobs, are planned under the last tenant's `search_path`);
//! 2. an idle slot that has served fewer than `tenants_per_connection` tenants, the one
//!    that has served the fewest;
//! 3. nothing yet, if busy slots have served the tenant or have room and fewer requests for
//!    the tenant are already waiting than there are such slots: it waits for a slot to be
//!    released, for at most [`AFFINITY_WAIT`];
//! 4. an idle slot that is full: its connection is closed and replaced by a fresh one.
//!
//! Step 4 is what bounds each backend's memory to about `tenants_per_connection` tenants'
//! catalogs; steps 1 to 3 keep a fleet that fits in `slots × tenants_per_connection` warm
//! without reconnecting. A hot tenant spreads over several slots through step 2, or through
//! step 4 once its requests queue deeper than the slots that can take them.
//! Requests without a tenant (platform queries, which touch only `public`) take any idle
//! slot. With no idle slot a request waits, for at most the pool timeout.
//!
//! Fairness: one tenant holds at most its share of the slots at once
//! (`ENCLAVE_POOL_TENANT_SHARE`, a percentage of the pool, at least one slot). A request of
//! a tenant that already holds its share waits for one of its own slots to be released
//! (for at most the pool timeout, then UNAVAILABLE) even when other slots are idle: a
//! tenant flooding the server cannot take the last connections the other tenants need.
//!
//! Database restarts: a slot's connection whose backend has gone (its socket closed: the
//! database restarted, the backend was terminated) is dropped when it is checked out and
//! the slot opens a new one, without a round trip for connections that are alive. While
//! the database refuses connections, a request that waited out the pool timeout is told
//! that the database is unreachable (a connection error, not a busy pool), until a
//! connection opens again.

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bb8::{ManageConnection, RunError};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, PoolError};
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

/// How long a request waits for a busy slot that has served its tenant (or has room for
/// it) before it takes an idle full slot, and replaces that slot's connection, instead.
/// Long enough to outlast a busy server's queue (a reconnection and a cold catalog cost far
/// more CPU than waiting), short enough that a slow query does not hold up its tenant's
/// next requests for long.
pub const AFFINITY_WAIT: Duration = Duration::from_millis(250);

/// The request pool (cheap to clone; clones share the connections).
#[derive(Clone)]
pub struct Pool(Arc<Shared>);

struct Shared {
    slots: Vec<bb8::Pool<SharedManager>>,
    manager: Arc<SlotManager>,
    table: Mutex<Table>,
    released: Notify,
    tenants_per_connection: Option<usize>,
    /// Most slots one tenant holds at once (at least 1).
    tenant_slots: usize,
    timeout: Duration,
}

/// What the router knows: each slot's route, and how many requests of each tenant wait.
struct Table {
    routes: Vec<Route>,
    waiting: HashMap<Uuid, usize>,
}

/// What the router knows of one slot.
#[derive(Debug, Default, Clone)]
struct Route {
    busy: bool,
    /// The tenant the slot is busy for (`None` when idle or busy for platform queries).
    current: Option<Uuid>,
    /// The connection the `tenants` were served by; a slot whose connection was replaced
    /// (broken, idle for too long, retired) starts over.
    connection: Option<u64>,
    tenants: HashSet<Uuid>,
    /// The tenant of the slot's last request (kept while idle): its prepared statements are
    /// planned under that tenant's `search_path`.
    last: Option<Uuid>,
}

/// The router's decision for one request.
#[derive(Debug, PartialEq, Eq)]
enum Choice {
    Take(usize),
    Replace(usize),
    Wait,
}

/// Steps 1 to 4 of the module doc over the slots' routes; `waiting` requests of the same
/// tenant are already waiting; a tenant already busy on `tenant_slots` slots waits.
fn choose(
    routes: &[Route],
    tenant: Option<Uuid>,
    limit: Option<usize>,
    patient: bool,
    waiting: usize,
    tenant_slots: usize,
) -> Choice {
    let idle = || routes.iter().enumerate().filter(|(_, route)| !route.busy);
    let Some(tenant) = tenant else {
        return idle().next().map_or(Choice::Wait, |(slot, _)| Choice::Take(slot));
    };
    let held = routes
        .iter()
        .filter(|route| route.busy && route.current == Some(tenant))
        .count();
    if held >= tenant_slots {
        return Choice::Wait;
    }
    if let Some((slot, _)) = idle()
        .filter(|(_, route)| route.tenants.contains(&tenant))
        .max_by_key(|(slot, route)| (route.last == Some(tenant), std::cmp::Reverse(*slot)))
    {
        return Choice::Take(slot);
    }
    let has_room = |route: &Route| limit.is_none_or(|limit| route.tenants.len() < limit);
    if let Some((slot, _)) = idle()
        .filter(|(_, route)| has_room(route))
        .min_by_key(|(_, route)| route.tenants.len())
    {
        return Choice::Take(slot);
    }
    let worth_waiting_for = routes
        .iter()
        .filter(|route| route.tenants.contains(&tenant) || has_room(route))
        .count();
    if patient && waiting < worth_waiting_for {
        return Choice::Wait;
    }
    idle()
        .next()
        .map_or(Choice::Wait, |(slot, _)| Choice::Replace(slot))
}

/// Most slots one tenant may hold at once: `share` percent of `size`, rounded down, at
/// least one.
fn tenant_slots(size: usize, share: u32) -> usize {
    let share = usize::try_from(share.clamp(1, 100)).unwrap_or(100);
    (size * share / 100).max(1)
}

/// Connections and their use, summed over the slots (for `/metrics`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolState {
    pub connections: u32,
    pub idle_connections: u32,
    pub connections_opened: u64,
    /// Distinct (slot, tenant) pairs the current connections have served.
    pub tenants_cached: u64,
}

impl Pool {
    /// `size` slots whose connections come from `manager`; a connection is replaced once it
    /// would serve more than `tenants_per_connection` tenants (`None`: never); one tenant
    /// holds at most `tenant_share` percent of the slots at once (at least one). Waiting for
    /// a connection is bounded by `timeout`. Connections are opened on first use.
    pub fn new(
        manager: AsyncDieselConnectionManager<AsyncPgConnection>,
        size: u32,
        tenants_per_connection: Option<usize>,
        tenant_share: u32,
        timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        let manager = Arc::new(SlotManager {
            inner: manager,
            next_id: AtomicU64::new(1),
            failing: Mutex::new(None),
        });
        let size = size.max(1) as usize;
        let slots = (0..size)
            .map(|_| {
                bb8::Pool::builder()
                    .max_size(1)
                    .connection_timeout(timeout)
                    .idle_timeout(Some(idle_timeout))
                    .build_unchecked(SharedManager(manager.clone()))
            })
            .collect();
        Self(Arc::new(Shared {
            slots,
            manager,
            table: Mutex::new(Table {
                routes: vec![Route::default(); size],
                waiting: HashMap::new(),
            }),
            released: Notify::new(),
            tenants_per_connection,
            tenant_slots: tenant_slots(size, tenant_share),
            timeout,
        }))
    }

    /// A connection for platform queries (no tenant).
    pub async fn get(&self) -> Result<Pooled, RunError<PoolError>> {
        self.get_for(None).await
    }

    /// A connection for `tenant` (or for platform queries with `None`), routed as the
    /// module doc says.
    pub async fn get_for(&self, tenant: Option<Uuid>) -> Result<Pooled, RunError<PoolError>> {
        let shared = &self.0;
        let started = Instant::now();
        let deadline = started + shared.timeout;
        let patience = started + AFFINITY_WAIT;
        loop {
            let released = shared.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let patient = Instant::now() < patience;
            let (choice, _queued) = {
                let mut table = shared.table();
                let waiting = tenant.map_or(0, |t| table.waiting.get(&t).copied().unwrap_or(0));
                let limit = shared.tenants_per_connection;
                let choice = choose(
                    &table.routes,
                    tenant,
                    limit,
                    patient,
                    waiting,
                    shared.tenant_slots,
                );
                let queued = match (&choice, tenant) {
                    (Choice::Take(slot) | Choice::Replace(slot), _) => {
                        let route = &mut table.routes[*slot];
                        route.busy = true;
                        route.current = tenant;
                        None
                    }
                    (Choice::Wait, Some(tenant)) => {
                        *table.waiting.entry(tenant).or_default() += 1;
                        Some(Queued {
                            shared: shared.clone(),
                            tenant,
                        })
                    }
                    (Choice::Wait, None) => None,
                };
                (choice, queued)
            };
            match choice {
                Choice::Take(slot) => return self.check_out(slot, tenant, false).await,
                Choice::Replace(slot) => return self.check_out(slot, tenant, true).await,
                Choice::Wait => {
                    let wake = if patient { patience.min(deadline) } else { deadline };
                    let woken = tokio::time::timeout_at(wake, released).await.is_ok();
                    if !woken && Instant::now() >= deadline {
                        return Err(shared.timed_out());
                    }
                }
            }
        }
    }

    /// Takes the connection of `slot`, which the caller has marked busy.
    async fn check_out(
        &self,
        slot: usize,
        tenant: Option<Uuid>,
        replace: bool,
    ) -> Result<Pooled, RunError<PoolError>> {
        let release = Release {
            shared: self.0.clone(),
            slot,
        };
        let pool = &self.0.slots[slot];
        let timed_out = |error| match error {
            RunError::TimedOut => self.0.timed_out(),
            other => other,
        };
        let mut conn = pool.get_owned().await.map_err(timed_out)?;
        if replace {
            conn.retiring = true;
            drop(conn);
            conn = pool.get_owned().await.map_err(timed_out)?;
        }
        {
            let mut table = self.0.table();
            let route = &mut table.routes[slot];
            if route.connection != Some(conn.id) {
                route.connection = Some(conn.id);
                route.tenants.clear();
            }
            if let Some(tenant) = tenant {
                route.tenants.insert(tenant);
            }
            route.last = tenant;
        }
        Ok(Pooled {
            conn,
            _release: release,
        })
    }

    /// Connections and their use, summed over the slots.
    pub fn state(&self) -> PoolState {
        let mut state = PoolState::default();
        for slot in &self.0.slots {
            let slot = slot.state();
            state.connections += slot.connections;
            state.idle_connections += slot.idle_connections;
            state.connections_opened += slot.statistics.connections_created;
        }
        state.tenants_cached = self
            .0
            .table()
            .routes
            .iter()
            .map(|route| route.tenants.len() as u64)
            .sum();
        state
    }
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent even if a holder panicked: every update is one field.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The error of a wait that ran out: the database's refusal when the last attempt to
    /// open a connection failed (nothing opened since), else a plain timeout (busy pool).
    fn timed_out(&self) -> RunError<PoolError> {
        match self.manager.failing() {
            Some(message) => RunError::User(PoolError::ConnectionError(
                diesel::ConnectionError::BadConnection(message),
            )),
            None => RunError::TimedOut,
        }
    }
}

/// Marks its slot idle again when the connection has gone back to the slot.
struct Release {
    shared: Arc<Shared>,
    slot: usize,
}

impl Drop for Release {
    fn drop(&mut self) {
        let mut table = self.shared.table();
        let route = &mut table.routes[self.slot];
        route.busy = false;
        route.current = None;
        drop(table);
        self.shared.released.notify_waiters();
    }
}

/// Counts one waiting request of `tenant` for as long as it waits.
struct Queued {
    shared: Arc<Shared>,
    tenant: Uuid,
}

impl Drop for Queued {
    fn drop(&mut self) {
        let mut table = self.shared.table();
        if let Some(waiting) = table.waiting.get_mut(&self.tenant) {
            *waiting -= 1;
            if *waiting == 0 {
                table.waiting.remove(&self.tenant);
            }
        }
    }
}

/// A connection borrowed from [`Pool`]; it goes back to its slot when dropped.
pub struct Pooled {
    // Declared first so that it is dropped (returned to its slot) before the slot is
    // released to the next request.
    conn: bb8::PooledConnection<'static, SharedManager>,
    _release: Release,
}

impl Deref for Pooled {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        &self.conn.conn
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn.conn
    }
}

/// A connection of a slot.
struct SlotConnection {
    conn: AsyncPgConnection,
    /// Distinguishes the successive connections of a slot.
    id: u64,
    /// Set when the router replaces it: the slot closes it instead of keeping it.
    retiring: bool,
}

/// Opens connections like diesel-async's manager, numbering them.
struct SlotManager {
    inner: AsyncDieselConnectionManager<AsyncPgConnection>,
    next_id: AtomicU64,
    /// Why the last attempt to open a connection failed, if no connection opened since.
    failing: Mutex<Option<String>>,
}

impl SlotManager {
    fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_failing(&self, failing: Option<String>) {
        *self.failing.lock().unwrap_or_else(PoisonError::into_inner) = failing;
    }
}

/// The manager every slot shares.
#[derive(Clone)]
struct SharedManager(Arc<SlotManager>);

impl ManageConnection for SharedManager {
    type Connection = SlotConnection;
    type Error = PoolError;

    async fn connect(&self) -> Result<SlotConnection, PoolError> {
        let conn = match self.0.inner.connect().await {
            Ok(conn) => {
                self.0.set_failing(None);
                conn
            }
            Err(error) => {
                tracing::warn!(%error, "cannot open a request connection");
                self.0.set_failing(Some(error.to_string()));
                return Err(error);
            }
        };
        Ok(SlotConnection {
            conn,
            id: self.0.next_id.fetch_add(1, Ordering::Relaxed),
            retiring: false,
        })
    }

    /// Drops a connection whose socket is closed (its backend is gone) without a round
    /// trip; an open one is checked as diesel-async's manager does (nothing, for `Fast`).
    async fn is_valid(&self, conn: &mut SlotConnection) -> Result<(), PoolError> {
        if self.0.inner.has_broken(&mut conn.conn) {
            return Err(PoolError::ConnectionError(
                diesel::ConnectionError::BadConnection("the connection was closed".to_owned()),
            ));
        }
        self.0.inner.is_valid(&mut conn.conn).await
    }

    fn has_broken(&self, conn: &mut SlotConnection) -> bool {
        conn.retiring || self.0.inner.has_broken(&mut conn.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No tenant share: a tenant may hold every slot.
    const ANY: usize = usize::MAX;

    fn route(busy: bool, tenants: &[Uuid]) -> Route {
        Route {
            busy,
            current: None,
            connection: Some(1),
            tenants: tenants.iter().copied().collect(),
            last: None,
        }
    }

    #[test]
    fn a_tenant_goes_to_the_idle_slot_that_has_served_it() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let routes = [route(false, &[b]), route(false, &[a]), route(false, &[])];
        assert_eq!(choose(&routes, Some(a), Some(2), true, 0, ANY), Choice::Take(1));
    }

    #[test]
    fn among_warm_slots_a_tenant_prefers_the_one_it_used_last() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut last_a = route(false, &[a, b]);
        last_a.last = Some(a);
        let mut last_b = route(false, &[a, b]);
        last_b.last = Some(b);
        let routes = [last_b.clone(), last_a.clone(), route(false, &[])];
        assert_eq!(choose(&routes, Some(a), Some(4), true, 0, ANY), Choice::Take(1));
        assert_eq!(choose(&routes, Some(b), Some(4), true, 0, ANY), Choice::Take(0));
        // Without such a slot, the first warm one, as before.
        let routes = [last_b.clone(), last_b, last_a];
        assert_eq!(choose(&routes, Some(b), Some(4), true, 0, ANY), Choice::Take(0));
        let routes = [route(false, &[a]), route(false, &[a])];
        assert_eq!(choose(&routes, Some(a), Some(4), true, 0, ANY), Choice::Take(0));
    }

    #[test]
    fn a_new_tenant_goes_to_the_idle_slot_with_the_most_room() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let routes = [route(false, &[a, b]), route(true, &[]), route(false, &[c])];
        let new = Some(Uuid::new_v4());
        assert_eq!(choose(&routes, new, Some(3), true, 0, ANY), Choice::Take(2));
    }

    #[test]
    fn a_tenant_waits_for_its_busy_slot_then_replaces_a_full_one() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let routes = [route(true, &[a]), route(false, &[b])];
        assert_eq!(choose(&routes, Some(a), Some(1), true, 0, ANY), Choice::Wait);
        assert_eq!(
            choose(&routes, Some(a), Some(1), false, 0, ANY),
            Choice::Replace(1)
        );
        // A tenant that no slot has served or has room for does not wait.
        let new = Some(Uuid::new_v4());
        assert_eq!(choose(&routes, new, Some(1), true, 0, ANY), Choice::Replace(1));
    }

    #[test]
    fn a_new_tenant_waits_for_a_busy_slot_with_room_rather_than_replace_a_full_one() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let routes = [route(true, &[a]), route(false, &[b])];
        let new = Some(Uuid::new_v4());
        assert_eq!(choose(&routes, new, Some(2), true, 0, ANY), Choice::Take(1));
        let full = [route(true, &[a]), route(false, &[a, b])];
        assert_eq!(choose(&full, new, Some(2), true, 0, ANY), Choice::Wait);
    }

    #[test]
    fn a_hot_tenant_spreads_over_slots_with_room_then_over_full_ones() {
        let a = Uuid::new_v4();
        let routes = [route(true, &[a]), route(false, &[Uuid::new_v4()])];
        assert_eq!(choose(&routes, Some(a), Some(2), true, 0, ANY), Choice::Take(1));
        assert_eq!(choose(&routes, Some(a), None, true, 0, ANY), Choice::Take(1));
        // One request already waits for the only slot that has served it: the next one
        // takes the full idle slot.
        assert_eq!(choose(&routes, Some(a), Some(1), true, 0, ANY), Choice::Wait);
        assert_eq!(
            choose(&routes, Some(a), Some(1), true, 1, ANY),
            Choice::Replace(1)
        );
    }

    #[test]
    fn with_every_slot_busy_a_request_waits() {
        let a = Uuid::new_v4();
        let routes = [route(true, &[a]), route(true, &[])];
        assert_eq!(choose(&routes, Some(a), Some(1), false, 3, ANY), Choice::Wait);
        assert_eq!(choose(&routes, None, Some(1), false, 0, ANY), Choice::Wait);
        let idle = [route(true, &[]), route(false, &[a])];
        assert_eq!(choose(&idle, None, Some(1), false, 0, ANY), Choice::Take(1));
    }

    fn busy_for(tenant: Uuid) -> Route {
        Route {
            busy: true,
            current: Some(tenant),
            connection: Some(1),
            tenants: [tenant].into_iter().collect(),
            last: Some(tenant),
        }
    }

    #[test]
    fn a_tenant_holding_its_share_waits_while_others_take_the_idle_slots() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let routes = [busy_for(a), busy_for(a), route(false, &[a]), route(false, &[])];
        // Two slots of four is a's share: a waits although its warm slot 2 is idle…
        assert_eq!(choose(&routes, Some(a), Some(10), false, 0, 2), Choice::Wait);
        assert_eq!(choose(&routes, Some(a), Some(10), true, 5, 2), Choice::Wait);
        // …while another tenant and platform queries take the idle slots.
        assert_eq!(choose(&routes, Some(b), Some(10), false, 0, 2), Choice::Take(3));
        assert_eq!(choose(&routes, None, Some(10), false, 0, 2), Choice::Take(2));
        // Below its share, a takes its warm slot as before.
        assert_eq!(choose(&routes, Some(a), Some(10), false, 0, 3), Choice::Take(2));
        // Slots busy for other tenants do not count against a.
        let others = [busy_for(b), busy_for(b), route(false, &[a])];
        assert_eq!(choose(&others, Some(a), Some(10), false, 0, 1), Choice::Take(2));
    }

    #[test]
    fn the_tenant_share_is_a_percentage_of_the_slots_and_at_least_one() {
        assert_eq!(tenant_slots(16, 50), 8);
        assert_eq!(tenant_slots(16, 100), 16);
        assert_eq!(tenant_slots(10, 33), 3);
        assert_eq!(tenant_slots(1, 50), 1);
        assert_eq!(tenant_slots(3, 0), 1);
        assert_eq!(tenant_slots(4, 250), 4);
    }
}
