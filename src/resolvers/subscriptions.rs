//! Subscriptions (graphql-transport-ws on `/graphql/ws`): alert and event changes of the
//! caller's tenant. Each change is re-read in a short tenant transaction of the
//! subscriber (which also re-checks that its token is not revoked), so a subscriber only
//! ever receives rows of its own tenant. Payloads carry the changed object's own fields;
//! its relations are for queries over HTTP.

use std::future::Future;
use std::sync::Arc;

use async_graphql::{Context, Subscription};
use diesel::prelude::*;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::context::{app, scope};
use super::errors::{ApiError, ApiResult};
use super::monitoring::{Alert, AlertRow, Event, EventRow};
use crate::app::App;
use crate::schema::tenant::{alerts, events};
use crate::tenancy::scope::Actor;
use crate::tenancy::transaction::Access;

#[derive(Default)]
pub struct SubscriptionRoot;

/// Changes of the caller's tenant, pushed over `/graphql/ws`.
#[Subscription]
impl SubscriptionRoot {
    /// Alerts of the caller's tenant as they are raised, acknowledged or resolved.
    async fn alert_changes(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = ApiResult<Alert>> + use<>, ApiError> {
        let (app, actor) = subscriber(ctx)?;
        Ok(feed(app, actor, "alerts", |app, actor, id| async move {
            let tx = app.tenant_tx(
                actor.tenant.clone(),
                Access::ReadOnly,
                Some(actor.claims.credential),
            );
            let row = {
                let mut conn = tx.conn().await?;
                diesel_async::RunQueryDsl::first(
                    alerts::table.find(id).select(AlertRow::as_select()),
                    &mut *conn,
                )
                .await
                .optional()?
            };
            tx.finish(true).await?;
            Ok(row.map(Alert))
        }))
    }

    /// Events of the caller's tenant as they are recorded.
    async fn event_changes(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = ApiResult<Event>> + use<>, ApiError> {
        let (app, actor) = subscriber(ctx)?;
        Ok(feed(app, actor, "events", |app, actor, id| async move {
            let tx = app.tenant_tx(
                actor.tenant.clone(),
                Access::ReadOnly,
                Some(actor.claims.credential),
            );
            let row = {
                let mut conn = tx.conn().await?;
                diesel_async::RunQueryDsl::first(
                    events::table.find(id).select(EventRow::as_select()),
                    &mut *conn,
                )
                .await
                .optional()?
            };
            tx.finish(true).await?;
            Ok(row.map(Event))
        }))
    }
}

/// A subscription ends when its token expires or its tenant is suspended or dropped
/// (revocation is checked by the transaction that reads each change).
fn still_valid(app: &App, actor: &Actor) -> ApiResult<()> {
    if actor.claims.expires_at <= chrono::Utc::now() {
        return Err(ApiError::unauthenticated("the token has expired"));
    }
    match app.directory.by_id(actor.tenant.id) {
        Some(tenant) if tenant.is_active() => Ok(()),
        _ => Err(ApiError::new(
            super::errors::Code::TenantUnavailable,
            "the tenant is unavailable",
        )),
    }
}

fn subscriber(ctx: &Context<'_>) -> ApiResult<(Arc<App>, Actor)> {
    Ok((app(ctx)?.clone(), scope(ctx)?.actor()?.clone()))
}

/// Changes of `table` in the actor's tenant schema, loaded by `load`. Ends after an error
/// (say, a revoked token) or when the feed closes.
fn feed<T, F, Fut>(
    app: Arc<App>,
    actor: Actor,
    table: &'static str,
    load: F,
) -> impl Stream<Item = ApiResult<T>>
where
    F: Fn(Arc<App>, Actor, Uuid) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ApiResult<Option<T>>> + Send,
    T: Send + 'static,
{
    let receiver = app.changes.subscribe();
    let state = Some((receiver, app, actor, load));
    futures_util::stream::unfold(state, move |state| async move {
        let (mut receiver, app, actor, load) = state?;
        loop {
            match receiver.recv().await {
                Ok(change) if change.schema == actor.tenant.schema && change.table == table => {
                    if let Err(error) = still_valid(&app, &actor) {
                        return Some((Err(error), None));
                    }
                    match load(app.clone(), actor.clone(), change.id).await {
                        Ok(Some(item)) => return Some((Ok(item), Some((receiver, app, actor, load)))),
                        Ok(None) => continue,
                        Err(error) => return Some((Err(error), None)),
                    }
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscriber fell behind and missed changes");
                    let error = ApiError::internal(format!("subscriber missed {missed} changes"));
                    return Some((Err(error), Some((receiver, app, actor, load))));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}
