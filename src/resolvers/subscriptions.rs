//! Subscriptions (graphql-transport-ws on `/graphql/ws`): alert and event changes of the
//! caller's tenant. Each change is re-read in a short tenant transaction of the
//! subscriber (its scope's delivery transaction), so a subscriber only ever receives rows
//! of its own tenant; the delivered object's fields and relations
//! (`alertChanges { device { hostname } }`) resolve inside that same transaction, which
//! ends as soon as the delivery has been resolved, together with the loaders' cache.
//!
//! A subscription is re-authorized before every delivery and at least every
//! [`REAUTHORIZE_EVERY`] while nothing happens: the token's checks (expiry, attenuations
//! such as `check if time($t), $t < …`), the tenant's status, and in a tenant transaction
//! the credential's revocation and current role against the field's minimum role. When
//! that fails the subscription ends with a coded error.
//!
//! Database restarts do not end a subscription: while the database is unreachable the
//! periodic re-authorization waits for it, a change that cannot be delivered is reported
//! as an UNAVAILABLE error and the stream goes on; once the change feed listens again
//! every subscriber gets one UNAVAILABLE error "changes may have been missed" (the
//! stream goes on: a client re-reads with a query). graphql-transport-ws carries such an
//! error as a `next` message with `errors` and no data, not as an `error` message, which
//! would end the subscription.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, Subscription};
use diesel::prelude::*;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::access;
use super::context::app;
use super::errors::{ApiError, ApiResult, Code};
use super::loaders::Loaders;
use super::models::{AlertRow, EventRow};
use super::monitoring::{Alert, Event};
use crate::app::App;
use crate::auth::token::Operation;
use crate::changes::FeedItem;
use crate::schema::tenant::{alerts, events};
use crate::tenancy::scope::{Actor, Scope};

/// Longest time a subscription goes without being re-authorized.
pub const REAUTHORIZE_EVERY: Duration = Duration::from_secs(5);

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
        let subscriber = subscriber(ctx, "alertChanges")?;
        Ok(feed(subscriber, "alerts", |scope, id| async move {
            let mut conn = scope.conn().await?;
            let row = diesel_async::RunQueryDsl::first(
                alerts::table.find(id).select(AlertRow::as_select()),
                conn.pg(),
            )
            .await
            .optional()?;
            Ok(row.map(Alert))
        }))
    }

    /// Events of the caller's tenant as they are recorded.
    async fn event_changes(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = ApiResult<Event>> + use<>, ApiError> {
        let subscriber = subscriber(ctx, "eventChanges")?;
        Ok(feed(subscriber, "events", |scope, id| async move {
            let mut conn = scope.conn().await?;
            let row = diesel_async::RunQueryDsl::first(
                events::table.find(id).select(EventRow::as_select()),
                conn.pg(),
            )
            .await
            .optional()?;
            Ok(row.map(Event))
        }))
    }
}

/// What a subscription needs to re-authorize itself and deliver.
#[derive(Clone)]
struct Subscriber {
    app: Arc<App>,
    scope: Arc<Scope>,
    loaders: Arc<Loaders>,
    actor: Actor,
    token: String,
    field: &'static str,
}

fn subscriber(ctx: &Context<'_>, field: &'static str) -> ApiResult<Subscriber> {
    let scope = ctx
        .data::<Arc<Scope>>()
        .map_err(|_| ApiError::unauthenticated("authentication required"))?
        .clone();
    let token = scope
        .subscription_token()
        .ok_or_else(|| ApiError::bad_input("subscriptions run over /graphql/ws"))?
        .to_owned();
    let loaders = ctx
        .data::<Arc<Loaders>>()
        .map_err(|_| ApiError::internal("loaders missing from the subscription data"))?
        .clone();
    Ok(Subscriber {
        app: app(ctx)?.clone(),
        actor: scope.actor()?.clone(),
        scope,
        loaders,
        token,
        field,
    })
}

impl Subscriber {
    /// Re-authorizes the subscription (see the module doc) and begins the scope's
    /// delivery transaction it was checked in.
    async fn begin_delivery(&self) -> ApiResult<()> {
        let app = &self.app;
        match app.directory.by_id(self.actor.tenant.id) {
            Some(tenant) if tenant.is_active() => {}
            _ => {
                return Err(ApiError::new(
                    super::errors::Code::TenantUnavailable,
                    "the tenant is unavailable",
                ));
            }
        }
        let fields = [self.field.to_owned()];
        let (claims, _) =
            app.verified_tokens
                .authorize(&self.token, &app.keys, Operation::Subscription, &fields)?;
        let current = self.scope.begin_delivery().await?;
        let role = claims.role.capped_by(current);
        if let Err(refused) = access::check_fields(Operation::Subscription, &[self.field], role) {
            self.end_delivery().await?;
            return Err(refused);
        }
        Ok(())
    }

    /// Ends the delivery transaction and forgets what the loaders cached in it.
    async fn end_delivery(&self) -> ApiResult<()> {
        self.loaders.clear();
        self.scope.end_delivery().await?;
        Ok(())
    }

    async fn reauthorize(&self) -> ApiResult<()> {
        self.begin_delivery().await?;
        self.end_delivery().await
    }
}

/// Abandons a delivery transaction still open when the subscription is dropped (the
/// client stopped it while a delivery was being resolved).
struct DeliveryGuard(Arc<Scope>);

impl Drop for DeliveryGuard {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// Changes of `table` in the subscriber's tenant schema, loaded by `load` inside the
/// delivery transaction that re-authorized them, which stays open while the delivered
/// object is resolved and ends when the stream is polled again. Ends after an error (a
/// revoked or expired token, a lost role, a suspended tenant) or when the feed closes.
fn feed<T, F, Fut>(subscriber: Subscriber, table: &'static str, load: F) -> impl Stream<Item = ApiResult<T>>
where
    F: Fn(Arc<Scope>, Uuid) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ApiResult<Option<T>>> + Send,
    T: Send + 'static,
{
    let receiver = subscriber.app.changes.subscribe(&subscriber.actor.tenant.schema);
    let mut ticker = tokio::time::interval(REAUTHORIZE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let guard = Arc::new(DeliveryGuard(subscriber.scope.clone()));
    let state = Some((receiver, ticker, subscriber, load, guard));
    futures_util::stream::unfold(state, move |state| async move {
        let (mut receiver, mut ticker, subscriber, load, guard) = state?;
        // The previous delivery has been resolved and sent. Its read-only transaction
        // lost with its connection (database restart) loses nothing.
        match subscriber.end_delivery().await {
            Ok(()) => {}
            Err(error) if error.code == Code::Unavailable => {
                tracing::debug!("a delivery transaction ended with its connection");
            }
            Err(error) => return Some((Err(error), None)),
        }
        loop {
            let change = tokio::select! {
                change = receiver.recv() => change,
                _ = ticker.tick() => {
                    match subscriber.reauthorize().await {
                        Ok(()) => {}
                        // The database is down (restarting): the subscription waits for it;
                        // the change feed tells the subscriber once it listens again.
                        Err(error) if error.code == Code::Unavailable => {
                            tracing::debug!("subscription not re-authorized: the database is unavailable");
                        }
                        Err(error) => return Some((Err(error), None)),
                    }
                    continue;
                }
            };
            match change {
                Ok(FeedItem::MayHaveMissed) => {
                    let error = ApiError::new(
                        Code::Unavailable,
                        "the change feed was interrupted; changes may have been missed (re-read with a query)",
                    );
                    return Some((Err(error), Some((receiver, ticker, subscriber, load, guard))));
                }
                Ok(FeedItem::Changed(change)) if change.table == table => {
                    if let Err(error) = subscriber.begin_delivery().await {
                        // Unreachable database: this change is lost, the subscription goes on.
                        let next = (error.code == Code::Unavailable)
                            .then_some((receiver, ticker, subscriber, load, guard));
                        return Some((Err(error), next));
                    }
                    match load(subscriber.scope.clone(), change.id).await {
                        Ok(Some(item)) => {
                            return Some((Ok(item), Some((receiver, ticker, subscriber, load, guard))));
                        }
                        Ok(None) => match subscriber.end_delivery().await {
                            Ok(()) => {}
                            Err(error) if error.code == Code::Unavailable => {}
                            Err(error) => return Some((Err(error), None)),
                        },
                        Err(error) => return Some((Err(error), None)),
                    }
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscriber fell behind and missed changes");
                    let error = ApiError::internal(format!("subscriber missed {missed} changes"));
                    return Some((Err(error), Some((receiver, ticker, subscriber, load, guard))));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}
