//! The change feed: alert and event changes of every tenant, as PostgreSQL notifies them
//! (`enclave_tenant_changes`, sent by tenant triggers at commit), broadcast in process to
//! subscriptions. A change names only its schema, table and row id; a subscription keeps
//! the changes of its own tenant's schema and reads the row in its own tenant
//! transaction, so it never sees another tenant's data.

use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::db;

/// Channel the tenant triggers notify.
pub const CHANNEL: &str = "enclave_tenant_changes";

/// Changes kept for slow subscribers before they miss some.
const BUFFER: usize = 4096;

/// One changed row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Change {
    pub schema: String,
    pub table: String,
    pub id: Uuid,
}

/// The broadcast side of the feed.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    sender: broadcast::Sender<Change>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
        }
    }
}

impl ChangeFeed {
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// Listens until the returned task is aborted, reconnecting with a back-off.
    pub fn spawn_listener(&self, database_url: String) -> tokio::task::JoinHandle<()> {
        let sender = self.sender.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let started = std::time::Instant::now();
                if let Err(error) = listen(&database_url, &sender).await {
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

async fn listen(database_url: &str, sender: &broadcast::Sender<Change>) -> anyhow::Result<()> {
    let mut conn = db::connect(database_url).await?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    let mut notifications = std::pin::pin!(conn.notifications_stream());
    while let Some(notification) = notifications.next().await {
        match serde_json::from_str::<Change>(&notification?.payload) {
            // Nobody subscribed is not an error.
            Ok(change) => drop(sender.send(change)),
            Err(error) => tracing::warn!(%error, "unreadable change notification"),
        }
    }
    anyhow::bail!("the notification stream ended")
}
