//! Per-request batch loaders: `Device.interfaces` for 100 devices is one `= ANY($1)` query,
//! not 100.
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

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::errors::{ApiError, ApiResult};
use super::infrastructure::{AgentRow, CheckerRow, GatewayRow};
use super::inventory::{DeviceRow, GroupRow, IdentifierRow, InterfaceRow, PartitionRow};
use super::monitoring::{AlertRow, EventRow};
use crate::schema::tenant::{
    agents, alerts, checkers, device_groups, device_identifiers, devices, gateways, interfaces, partitions,
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
    loaded: HashMap<K, V>,
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
                loaded: HashMap::new(),
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
            if let Some(value) = state.loaded.get(&key) {
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
                let fetched = fetch(keys).await?;
                if let Ok(mut state) = self.lock() {
                    state
                        .loaded
                        .extend(fetched.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Ok(Arc::new(fetched))
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
    interfaces: BatchLoader<Uuid, Vec<InterfaceRow>>,
    identifiers: BatchLoader<Uuid, Vec<IdentifierRow>>,
    groups: BatchLoader<Uuid, GroupRow>,
    partitions: BatchLoader<Uuid, PartitionRow>,
    group_devices: BatchLoader<Uuid, Vec<DeviceRow>>,
    open_alerts: BatchLoader<Uuid, Vec<AlertRow>>,
    recent_events: BatchLoader<Uuid, Vec<EventRow>>,
    gateways: BatchLoader<Uuid, GatewayRow>,
    agents: BatchLoader<Uuid, AgentRow>,
    gateway_agents: BatchLoader<Uuid, Vec<AgentRow>>,
    agent_checkers: BatchLoader<Uuid, Vec<CheckerRow>>,
}

/// Events `Device.recentEvents` returns per device.
const RECENT_EVENTS: i64 = 20;

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

    pub async fn interfaces_of(&self, device: Uuid) -> ApiResult<Vec<InterfaceRow>> {
        let rows = self
            .interfaces
            .load_one(device, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = interfaces::table
                    .filter(interfaces::device_id.eq_any(ids))
                    .order((interfaces::name, interfaces::id))
                    .select(InterfaceRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(grouped(rows, |r: &InterfaceRow| r.device_id))
            })
            .await?;
        Ok(rows.unwrap_or_default())
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

    pub async fn devices_in_group(&self, group: Uuid) -> ApiResult<Vec<DeviceRow>> {
        let rows = self
            .group_devices
            .load_one(group, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = devices::table
                    .filter(devices::group_id.eq_any(ids))
                    .order((devices::hostname, devices::id))
                    .select(DeviceRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(grouped(rows, |r: &DeviceRow| r.group_id.unwrap_or_default()))
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    pub async fn open_alerts_of(&self, device: Uuid) -> ApiResult<Vec<AlertRow>> {
        let rows = self
            .open_alerts
            .load_one(device, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = alerts::table
                    .filter(alerts::device_id.eq_any(ids))
                    .filter(alerts::status.ne("resolved"))
                    .order((alerts::triggered_at.desc(), alerts::id.desc()))
                    .select(AlertRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(grouped(rows, |r: &AlertRow| r.device_id.unwrap_or_default()))
            })
            .await?;
        Ok(rows.unwrap_or_default())
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

    pub async fn agents_of_gateway(&self, gateway: Uuid) -> ApiResult<Vec<AgentRow>> {
        let rows = self
            .gateway_agents
            .load_one(gateway, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = agents::table
                    .filter(agents::gateway_id.eq_any(ids))
                    .order((agents::name, agents::id))
                    .select(AgentRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(grouped(rows, |r: &AgentRow| r.gateway_id.unwrap_or_default()))
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    pub async fn checkers_of_agent(&self, agent: Uuid) -> ApiResult<Vec<CheckerRow>> {
        let rows = self
            .agent_checkers
            .load_one(agent, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows = checkers::table
                    .filter(checkers::agent_id.eq_any(ids))
                    .order((checkers::name, checkers::id))
                    .select(CheckerRow::as_select())
                    .load(&mut conn)
                    .await?;
                Ok(grouped(rows, |r: &CheckerRow| r.agent_id))
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    pub async fn recent_events_of(&self, device: Uuid) -> ApiResult<Vec<EventRow>> {
        let rows = self
            .recent_events
            .load_one(device, |ids| async move {
                let mut conn = self.scope.conn().await?;
                let rows: Vec<EventRow> = diesel::sql_query(
                    "SELECT e.* FROM unnest($1::uuid[]) AS d(id) CROSS JOIN LATERAL \
                     (SELECT * FROM events WHERE device_id = d.id ORDER BY occurred_at DESC, id DESC LIMIT $2) e",
                )
                .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
                .bind::<diesel::sql_types::BigInt, _>(RECENT_EVENTS)
                .load(&mut conn)
                .await?;
                Ok(grouped(rows, |r: &EventRow| r.device_id.unwrap_or_default()))
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
