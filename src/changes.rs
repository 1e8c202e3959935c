//! The change feed: alert and event changes of every tenant, as PostgreSQL notifies them
//! (`enclave_tenant_changes`, sent by tenant triggers at commit), fanned out in process to
//! subscriptions *per tenant*: each tenant schema with subscribers has its own broadcast
//! channel and buffer, so one tenant's alert storm can only make that tenant's own slow
//! subscribers lag, never another tenant's. A change names only its schema, table and row
//! id; a subscription reads the row in its own tenant transaction, so it never sees
//! another tenant's data. A tenant's channel is dropped once its last subscriber is gone.
//! When the listening connection is lost (database restart), the listener reconnects with
//! a back-off and then tells every subscriber that changes may have been missed.
//!
//! A *tap* ([`ChangeFeed::tap`]) also receives every change of every tenant, through a
//! bounded queue that drops (and counts) changes when full: the NATS publisher uses it
//! (see `crate::nats`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::db;

/// Channel the tenant triggers notify.
pub const CHANNEL: &str = "enclave_tenant_changes";

/// Changes of one tenant kept for its slow subscribers before they miss some.
const BUFFER: usize = 1024;

/// One changed row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Change {
    pub schema: String,
    pub table: String,
    pub id: Uuid,
}

/// What a subscriber receives from the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    /// A row of the subscriber's tenant changed.
    Changed(Change),
    /// The listener lost its connection and is listening again: changes committed in
    /// between were not seen.
    MayHaveMissed,
}

/// The broadcast side of the feed: one channel per tenant schema with subscribers.
#[derive(Debug, Clone, Default)]
pub struct ChangeFeed {
    channels: Arc<RwLock<HashMap<String, broadcast::Sender<FeedItem>>>>,
    tap: Arc<OnceLock<mpsc::Sender<Change>>>,
    tap_dropped: Arc<AtomicU64>,
}

impl ChangeFeed {
    /// The changes of tenant schema `schema` from now on.
    pub fn subscribe(&self, schema: &str) -> broadcast::Receiver<FeedItem> {
        let mut channels = self.channels.write().unwrap_or_else(PoisonError::into_inner);
        channels
            .entry(schema.to_owned())
            .or_insert_with(|| broadcast::channel(BUFFER).0)
            .subscribe()
    }

    /// Every change of every tenant from now on, through a queue of `capacity` changes
    /// (changes that find it full are dropped and counted); `None` when tapped already.
    pub fn tap(&self, capacity: usize) -> Option<mpsc::Receiver<Change>> {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        self.tap.set(sender).ok().map(|()| receiver)
    }

    /// Changes the tap dropped because its queue was full (or its receiver gone).
    pub fn tap_dropped(&self) -> u64 {
        self.tap_dropped.load(Ordering::Relaxed)
    }

    /// Hands `change` to its tenant's subscribers (and the tap); forgets a channel nobody
    /// listens to.
    fn publish(&self, change: Change) {
        if let Some(tap) = self.tap.get()
            && tap.try_send(change.clone()).is_err()
        {
            self.tap_dropped.fetch_add(1, Ordering::Relaxed);
        }
        let schema = change.schema.clone();
        let delivered = {
            let channels = self.channels.read().unwrap_or_else(PoisonError::into_inner);
            match channels.get(&schema) {
                Some(sender) => sender.send(FeedItem::Changed(change)).is_ok(),
                None => return,
            }
        };
        if !delivered {
            let mut channels = self.channels.write().unwrap_or_else(PoisonError::into_inner);
            if channels.get(&schema).is_some_and(|s| s.receiver_count() == 0) {
                channels.remove(&schema);
            }
        }
    }

    /// Tells every subscriber that changes may have been missed.
    fn mark_gap(&self) {
        let channels = self.channels.read().unwrap_or_else(PoisonError::into_inner);
        for sender in channels.values() {
            // Nobody listening is not an error.
            let _ = sender.send(FeedItem::MayHaveMissed);
        }
    }

    /// Tenant schemas with a channel (for tests and metrics).
    pub fn channels(&self) -> usize {
        self.channels.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Listens until the returned task is aborted, reconnecting with a back-off.
    pub fn spawn_listener(&self, database_url: String) -> tokio::task::JoinHandle<()> {
        let feed = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let mut first = true;
            loop {
                let started = std::time::Instant::now();
                let reconnected = !std::mem::replace(&mut first, false);
                if let Err(error) = listen(&database_url, &feed, reconnected).await {
                    // Changes committed while reconnecting are not delivered.
                    tracing::warn!(%error, "change feed listener failed; reconnecting");
                }
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(100);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        })
    }
}

/// Listens on one connection until it fails. Once listening again after a failure
/// (`reconnected`), subscribers are told they may have missed changes.
async fn listen(database_url: &str, feed: &ChangeFeed, reconnected: bool) -> anyhow::Result<()> {
    let mut conn = db::connect(database_url).await?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    if reconnected {
        tracing::info!("change feed listening again; subscribers are told they may have missed changes");
        feed.mark_gap();
    }
    let mut notifications = std::pin::pin!(conn.notifications_stream());
    while let Some(notification) = notifications.next().await {
        match serde_json::from_str::<Change>(&notification?.payload) {
            Ok(change) => feed.publish(change),
            Err(error) => tracing::warn!(%error, "unreadable change notification"),
        }
    }
    anyhow::bail!("the notification stream ended")
}
