//! Per-request batch loaders: `Device.interfaces` for 100 devices is one `= ANY($1)` query,
//! not 100.
//!
//! Nested lists (a device's interfaces, a gateway's agents...) are pages too: one
//! statement reads the page of every parent of the batch (a LATERAL join bounded by the
//! page size plus one), so a device with 100,000 events answers `first` of them. When the
//! connection's `totalCount` is selected, the same statement also counts each parent's
//! whole list (a second LATERAL subquery), so a level still costs one statement.
//!
//! A loader lives in the request's data (built per request; its cache dies with the
//! request) and reaches the database only through the request's tenant transaction. It
//! batches without a timer: a caller registers its key, then yields until no sibling
//! resolver adds a key any more, and the first one to resume runs the batch for
//! everybody. A single object therefore waits for no fixed delay, only a yield or two.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::row::NamedRow;
use diesel_async::RunQueryDsl;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::errors::{ApiError, ApiResult};
use super::models::{
    AgentRow, AlertRow, CheckerRow, DeviceRow, EventRow, GatewayRow, GroupRow, IdentifierRow, InterfaceRow,
    PartitionRow, PollingScheduleRow,
};
use super::pagination::{Cursor, Direction, Window};
use crate::schema::tenant::{
    agents, device_groups, device_identifiers, devices, gateways, partitions, polling_schedules,
};
use crate::tenancy::scope::Scope;

/// Most times a loader yields waiting for its batch to stop growing.
const MAX_YIELDS: usize = 64;

type BatchResult<K, V> = Result<Arc<HashMap<K, V>>, ApiError>;

/// One batch: the keys registered while it was open, and its result once run. The keys
/// belong to the batch, so whichever waiter ends up running it (the first one may be
/// cancelled) fetches exactly them.
struct Batch<K, V> {
    keys: Mutex<Vec<K>>,
    result: OnceCell<BatchResult<K, V>>,
}

impl<K, V> Batch<K, V> {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            keys: Mutex::new(Vec::new()),
            result: OnceCell::new(),
        })
    }
}

struct State<K, V> {
    /// The batch new keys join; replaced when it starts running.
    open: Arc<Batch<K, V>>,
    /// The results of the batches run so far (shared with their waiters, not copied).
    loaded: Vec<Arc<HashMap<K, V>>>,
}

/// Loads values by key, batching concurrent requests and caching results for the request.
pub struct BatchLoader<K, V> {
    state: Mutex<State<K, V>>,
}

impl<K, V> Default for BatchLoader<K, V> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                open: Batch::new(),
                loaded: Vec::new(),
            }),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> BatchLoader<K, V> {
    /// The value for `key` (`None` if the batch did not return it). `fetch` receives every
    /// key of the batch and runs once per batch.
    pub async fn load_one<F, Fut>(&self, key: K, fetch: F) -> ApiResult<Option<V>>
    where
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = ApiResult<HashMap<K, V>>>,
    {
        let batch = {
            let state = self.lock()?;
            if let Some(value) = state.loaded.iter().find_map(|batch| batch.get(&key)) {
                return Ok(Some(value.clone()));
            }
            let batch = state.open.clone();
            let mut keys = batch.keys.lock().map_err(|_| poisoned())?;
            if !keys.contains(&key) {
                keys.push(key.clone());
            }
            drop(keys);
            batch
        };
        // Let sibling resolvers register their keys. An executor may poll only some of
        // them per pass, so keep yielding while the batch is still growing (bounded).
        let mut seen = batch_len(&batch)?;
        for _ in 0..MAX_YIELDS {
            tokio::task::yield_now().await;
            let now = batch_len(&batch)?;
            if now == seen {
                break;
            }
            seen = now;
        }
        let mut ran_batch = false;
        let result = batch
            .result
            .get_or_init(|| async {
                ran_batch = true;
                // Close the batch: later keys go to a new one.
                if let Ok(mut state) = self.lock()
                    && Arc::ptr_eq(&state.open, &batch)
                {
                    state.open = Batch::new();
                }
                let keys = batch.keys.lock().map(|k| k.clone()).map_err(|_| poisoned())?;
                let fetched = Arc::new(fetch(keys).await?);
                if let Ok(mut state) = self.lock() {
                    state.loaded.push(fetched.clone());
                }
                Ok(fetched)
            })
            .await;
        let value = match result {
            Ok(values) => values.get(&key).cloned(),
            Err(error) => return Err(error.clone()),
        };
        if ran_batch {
            // The siblings this batch just woke go first, so that their next loads (one
            // level down) are registered before this caller starts a batch of its own.
            tokio::task::yield_now().await;
        }
        Ok(value)
    }

    /// Forgets every cached value (the next loads query again).
    fn clear(&self) {
        if let Ok(mut state) = self.lock() {
            state.loaded.clear();
            state.open = Batch::new();
        }
    }

    fn lock(&self) -> ApiResult<std::sync::MutexGuard<'_, State<K, V>>> {
        self.state.lock().map_err(|_| poisoned())
    }
}

fn batch_len<K, V>(batch: &Batch<K, V>) -> ApiResult<usize> {
    Ok(batch.keys.lock().map_err(|_| poisoned())?.len())
}

fn poisoned() -> ApiError {
    ApiError::internal("a loader's lock was poisoned")
}

/// The loaders of one request, bound to its scope (its tenant transaction).
pub struct Loaders {
    scope: Arc<Scope>,
    devices: BatchLoader<Uuid, DeviceRow>,
    interfaces: BatchLoader<(Uuid, Slice), Page<InterfaceRow>>,
    identifiers: BatchLoader<Uuid, Vec<IdentifierRow>>,
    groups: BatchLoader<Uuid, GroupRow>,
    partitions: BatchLoader<Uuid, PartitionRow>,
    group_devices: BatchLoader<(Uuid, Slice), Page<DeviceRow>>,
    open_alerts: BatchLoader<(Uuid, Slice), Page<AlertRow>>,
    recent_events: BatchLoader<(Uuid, Slice), Page<EventRow>>,
    gateways: BatchLoader<Uuid, GatewayRow>,
    agents: BatchLoader<Uuid, AgentRow>,
    polling_schedules: BatchLoader<Uuid, PollingScheduleRow>,
    gateway_agents: BatchLoader<(Uuid, Slice), Page<AgentRow>>,
    agent_checkers: BatchLoader<(Uuid, Slice), Page<CheckerRow>>,
}

/// A page of a nested list (forward only): its size, the position it starts after and
/// whether the parent's whole list is counted. Part of the batch key, since two aliases
/// of one field may ask for different pages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slice {
    size: usize,
    after: Option<Cursor>,
    count: bool,
}

impl Slice {
    /// The slice of a forward window (`first`/`after`), counted when `count`.
    pub fn of(window: &Window, count: bool) -> Self {
        debug_assert_eq!(window.direction, Direction::Forward);
        Self {
            size: window.size,
            after: window.cursor.clone(),
            count,
        }
    }

    /// Rows to fetch per parent: one more than the page, to know whether more follow.
    fn limit(&self) -> i64 {
        i64::try_from(self.size.saturating_add(1)).unwrap_or(i64::MAX)
    }
}

/// One parent's page of a nested list: its rows (one more than the page size at most)
/// and, when the slice asked for it, the number of rows in the parent's whole list.
#[derive(Debug, Clone)]
pub struct Page<R> {
    pub rows: Vec<R>,
    pub total: Option<i64>,
}

impl<R> Default for Page<R> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            total: None,
        }
    }
}

/// A row of a counted nested page: the parent, its whole list's count, and the page's row
/// (absent when the parent's page is empty: the LEFT JOIN still yields the count).
struct Counted<R> {
    parent: Uuid,
    total: i64,
    row: Option<R>,
}

impl<R: QueryableByName<Pg>> QueryableByName<Pg> for Counted<R> {
    fn build<'a>(row: &impl NamedRow<'a, Pg>) -> diesel::deserialize::Result<Self> {
        use diesel::sql_types::{BigInt, Nullable, Uuid as SqlUuid};
        let parent = NamedRow::get::<SqlUuid, Uuid>(row, "parent_id_")?;
        let total = NamedRow::get::<BigInt, i64>(row, "total_count_")?;
        let present = NamedRow::get::<Nullable<SqlUuid>, Option<Uuid>>(row, "id")?;
        let row = match present {
            Some(_) => Some(R::build(row)?),
            None => None,
        };
        Ok(Self { parent, total, row })
    }
}

/// How a nested list is read: from `table`, the rows whose `parent` column is the
/// parent's id (and that pass `filter`, SQL text without user input), sorted by `key` (of
/// SQL type `key_type`) then `id`, descending or not.
struct Nested {
    table: &'static str,
    parent: &'static str,
    filter: &'static str,
    key: &'static str,
    key_type: &'static str,
    descending: bool,
}

impl Nested {
    /// One statement for every parent in `$1`: a LATERAL page per parent, `$2` rows at
    /// most, after the position (`$3`, `$4`) when `after`; with `count`, each parent's
    /// whole list is counted in the same statement (`total_count_`, with `parent_id_`).
    fn sql(&self, after: bool, count: bool) -> String {
        let Self {
            table,
            parent,
            filter,
            key,
            key_type,
            descending,
        } = self;
        let (direction, beyond) = if *descending { ("DESC", "<") } else { ("ASC", ">") };
        let bound = if after {
            format!(" AND ({key}, id) {beyond} ($3::{key_type}, $4::uuid)")
        } else {
            String::new()
        };
        let page = format!(
            "(SELECT * FROM {table} WHERE {parent} = p.id{filter}{bound} \
             ORDER BY {key} {direction}, id {direction} LIMIT $2) t"
        );
        if count {
            format!(
                "SELECT c.n AS total_count_, p.id AS parent_id_, t.* FROM unnest($1::uuid[]) AS p(id) \
                 CROSS JOIN LATERAL (SELECT count(*) AS n FROM {table} WHERE {parent} = p.id{filter}) c \
                 LEFT JOIN LATERAL {page} ON true"
            )
        } else {
            format!("SELECT t.* FROM unnest($1::uuid[]) AS p(id) CROSS JOIN LATERAL {page}")
        }
    }
}

const INTERFACES: Nested = Nested {
    table: "interfaces",
    parent: "device_id",
    filter: "",
    key: "name",
    key_type: "text",
    descending: false,
};
const GROUP_DEVICES: Nested = Nested {
    table: "devices",
    parent: "group_id",
    filter: "",
    key: "hostname",
    key_type: "text",
    descending: false,
};
const OPEN_ALERTS: Nested = Nested {
    table: "alerts",
    parent: "device_id",
    filter: " AND status <> 'resolved'",
    key: "triggered_at",
    key_type: "timestamptz",
    descending: true,
};
const RECENT_EVENTS: Nested = Nested {
    table: "events",
    parent: "device_id",
    filter: "",
    key: "occurred_at",
    key_type: "timestamptz",
    descending: true,
};
const GATEWAY_AGENTS: Nested = Nested {
    table: "agents",
    parent: "gateway_id",
    filter: "",
    key: "name",
    key_type: "text",
    descending: false,
};
const AGENT_CHECKERS: Nested = Nested {
    table: "checkers",
    parent: "agent_id",
    filter: "",
    key: "name",
    key_type: "text",
    descending: false,
};

fn by_id<V>(rows: Vec<V>, id: impl Fn(&V) -> Uuid) -> HashMap<Uuid, V> {
    rows.into_iter().map(|row| (id(&row), row)).collect()
}

fn grouped<V>(rows: Vec<V>, key: impl Fn(&V) -> Uuid) -> HashMap<Uuid, Vec<V>> {
    let mut map: HashMap<Uuid, Vec<V>> = HashMap::new();
    for row in rows {
        map.entry(key(&row)).or_default().push(row);
    }
    map
}

impl Loaders {
    pub fn new(scope: Arc<Scope>) -> Self {
        Self {
            scope,
            devices: BatchLoader::default(),
            interfaces: BatchLoader::default(),
            identifiers: BatchLoader::default(),
            groups: BatchLoader::default(),
            partitions: BatchLoader::default(),
            group_devices: BatchLoader::default(),
            open_alerts: BatchLoader::default(),
            recent_events: BatchLoader::default(),
            gateways: BatchLoader::default(),
            agents: BatchLoader::default(),
            polling_schedules: BatchLoader::default(),
            gateway_agents: BatchLoader::default(),
            agent_checkers: BatchLoader::default(),
        }
    }

    /// Forgets everything loaded so far: a subscription reuses its loaders for every
    /// delivery, each in a transaction of its own, and must not serve an earlier
    /// delivery's rows.
    pub fn clear(&self) {
        // Destructured so that a new loader cannot be forgotten here.
        let Self {
            scope: _,
            devices,
            interfaces,
            identifiers,
            groups,
            partitions,
            group_devices,
            open_alerts,
            recent_events,
            gateways,
            agents,
            polling_schedules,
            gateway_agents,
            agent_checkers,
        } = self;
        devices.clear();
        interfaces.clear();
        identifiers.clear();
        groups.clear();
        partitions.clear();
        group_devices.clear();
        open_alerts.clear();
        recent_events.clear();
        gateways.clear();
        agents.clear();
        polling_schedules.clear();
        gateway_agents.clear();
        agent_checkers.clear();
    }

    pub async fn device(&self, id: Uuid) -> ApiResult<Option<DeviceRow>> {
        self.devices
            .load_one(id, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = devices::table
                    .filter(devices::id.eq_any(ids))
                    .select(DeviceRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(by_id(rows, |r: &DeviceRow| r.id))
            })
            .await
    }

    pub async fn identifiers_of(&self, device: Uuid) -> ApiResult<Vec<IdentifierRow>> {
        let rows = self
            .identifiers
            .load_one(device, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = device_identifiers::table
                    .filter(device_identifiers::device_id.eq_any(ids))
                    .order((device_identifiers::kind, device_identifiers::value))
                    .select(IdentifierRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(grouped(rows, |r: &IdentifierRow| r.device_id))
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    pub async fn group(&self, id: Uuid) -> ApiResult<Option<GroupRow>> {
        self.groups
            .load_one(id, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = device_groups::table
                    .filter(device_groups::id.eq_any(ids))
                    .select(GroupRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(by_id(rows, |r: &GroupRow| r.id))
            })
            .await
    }

    pub async fn partition(&self, id: Uuid) -> ApiResult<Option<PartitionRow>> {
        self.partitions
            .load_one(id, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = partitions::table
                    .filter(partitions::id.eq_any(ids))
                    .select(PartitionRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(by_id(rows, |r: &PartitionRow| r.id))
            })
            .await
    }

    pub async fn gateway(&self, id: Uuid) -> ApiResult<Option<GatewayRow>> {
        self.gateways
            .load_one(id, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = gateways::table
                    .filter(gateways::id.eq_any(ids))
                    .select(GatewayRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(by_id(rows, |r: &GatewayRow| r.id))
            })
            .await
    }

    pub async fn agent(&self, id: Uuid) -> ApiResult<Option<AgentRow>> {
        self.agents
            .load_one(id, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = agents::table
                    .filter(agents::id.eq_any(ids))
                    .select(AgentRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(by_id(rows, |r: &AgentRow| r.id))
            })
            .await
    }

    pub async fn polling_schedule(&self, id: Uuid) -> ApiResult<Option<PollingScheduleRow>> {
        self.polling_schedules
            .load_one(id, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = polling_schedules::table
                    .filter(polling_schedules::id.eq_any(ids))
                    .select(PollingScheduleRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(by_id(rows, |r: &PollingScheduleRow| r.id))
            })
            .await
    }

    /// The pages of a nested list for every parent of a batch, one statement per distinct
    /// slice (one for the whole batch unless aliases ask for different pages).
    async fn nested<R>(
        &self,
        list: &Nested,
        keys: Vec<(Uuid, Slice)>,
        parent: impl Fn(&R) -> Uuid,
    ) -> ApiResult<HashMap<(Uuid, Slice), Page<R>>>
    where
        R: QueryableByName<Pg> + Send + 'static,
    {
        use diesel::sql_types::{Array, BigInt, Text};

        use crate::prepared::PreparedSql;
        let mut slices: HashMap<Slice, Vec<Uuid>> = HashMap::new();
        for (id, slice) in keys {
            slices.entry(slice).or_default().push(id);
        }
        let mut pages = HashMap::new();
        for (slice, ids) in slices {
            let mut query = PreparedSql::new(&list.sql(slice.after.is_some(), slice.count))
                .bind::<Array<diesel::sql_types::Uuid>, _>(ids.clone())
                .bind::<BigInt, _>(slice.limit());
            if let Some(after) = &slice.after {
                query = query
                    .bind::<Text, _>(after.key.clone())
                    .bind::<diesel::sql_types::Uuid, _>(after.id);
            }
            let mut by_parent: HashMap<Uuid, Page<R>> = if slice.count {
                let rows: Vec<Counted<R>> = {
                    let mut conn = self.scope.conn().await?;
                    query.load(&mut conn).await?
                };
                let mut by_parent: HashMap<Uuid, Page<R>> = HashMap::new();
                for counted in rows {
                    let page = by_parent.entry(counted.parent).or_default();
                    page.total = Some(counted.total);
                    page.rows.extend(counted.row);
                }
                by_parent
            } else {
                let rows: Vec<R> = {
                    let mut conn = self.scope.conn().await?;
                    query.load(&mut conn).await?
                };
                grouped(rows, &parent)
                    .into_iter()
                    .map(|(id, rows)| (id, Page { rows, total: None }))
                    .collect()
            };
            for id in ids {
                let mut page = by_parent.remove(&id).unwrap_or_default();
                if slice.count && page.total.is_none() {
                    page.total = Some(0);
                }
                pages.insert((id, slice.clone()), page);
            }
        }
        Ok(pages)
    }

    /// A page of a device's interfaces, by name.
    pub async fn interfaces_of(
        &self,
        device: Uuid,
        window: &Window,
        count: bool,
    ) -> ApiResult<Page<InterfaceRow>> {
        let rows = self
            .interfaces
            .load_one((device, Slice::of(window, count)), |keys| {
                self.nested(&INTERFACES, keys, |r: &InterfaceRow| r.device_id)
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    /// A page of a group's devices, by host name.
    pub async fn devices_in_group(
        &self,
        group: Uuid,
        window: &Window,
        count: bool,
    ) -> ApiResult<Page<DeviceRow>> {
        let rows = self
            .group_devices
            .load_one((group, Slice::of(window, count)), |keys| {
                self.nested(&GROUP_DEVICES, keys, |r: &DeviceRow| {
                    r.group_id.unwrap_or_default()
                })
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    /// A page of a device's alerts that are not resolved, newest first.
    pub async fn open_alerts_of(
        &self,
        device: Uuid,
        window: &Window,
        count: bool,
    ) -> ApiResult<Page<AlertRow>> {
        let rows = self
            .open_alerts
            .load_one((device, Slice::of(window, count)), |keys| {
                self.nested(&OPEN_ALERTS, keys, |r: &AlertRow| r.device_id.unwrap_or_default())
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    /// A page of a device's events, newest first.
    pub async fn recent_events_of(
        &self,
        device: Uuid,
        window: &Window,
        count: bool,
    ) -> ApiResult<Page<EventRow>> {
        let rows = self
            .recent_events
            .load_one((device, Slice::of(window, count)), |keys| {
                self.nested(&RECENT_EVENTS, keys, |r: &EventRow| {
                    r.device_id.unwrap_or_default()
                })
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    /// A page of a gateway's agents, by name.
    pub async fn agents_of_gateway(
        &self,
        gateway: Uuid,
        window: &Window,
        count: bool,
    ) -> ApiResult<Page<AgentRow>> {
        let rows = self
            .gateway_agents
            .load_one((gateway, Slice::of(window, count)), |keys| {
                self.nested(&GATEWAY_AGENTS, keys, |r: &AgentRow| {
                    r.gateway_id.unwrap_or_default()
                })
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    /// A page of an agent's checkers, by name.
    pub async fn checkers_of_agent(
        &self,
        agent: Uuid,
        window: &Window,
        count: bool,
    ) -> ApiResult<Page<CheckerRow>> {
        let rows = self
            .agent_checkers
            .load_one((agent, Slice::of(window, count)), |keys| {
                self.nested(&AGENT_CHECKERS, keys, |r: &CheckerRow| r.agent_id)
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_loads_share_one_batch_and_the_cache() {
        let loader = BatchLoader::<u32, u32>::default();
        let batches = AtomicUsize::new(0);
        let fetch = |keys: Vec<u32>| {
            batches.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(keys
                    .into_iter()
                    .filter(|k| k % 10 != 0)
                    .map(|k| (k, k * 2))
                    .collect())
            }
        };
        let loads = (1..=100).map(|k| loader.load_one(k, fetch));
        let values = futures_util::future::join_all(loads).await;
        assert_eq!(AtomicUsize::load(&batches, Ordering::SeqCst), 1);
        assert_eq!(values[0].as_ref().ok(), Some(&Some(2)));
        assert_eq!(values[9].as_ref().ok(), Some(&None));
        // Cached: no new batch.
        assert_eq!(loader.load_one(1, fetch).await.ok(), Some(Some(2)));
        assert_eq!(AtomicUsize::load(&batches, Ordering::SeqCst), 1);
    }
}
