//! `/graphql/ws`: subscriptions over graphql-transport-ws. The token travels in the
//! `connection_init` payload (`{"authorization": "Bearer <token>"}` or `{"token": …}`),
//! is verified before any subscription starts, and must name a served tenant.

use std::sync::Arc;

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use uuid::Uuid;

use super::AppState;
use super::credentials::actor_for;
use crate::auth::token::Operation;
use crate::resolvers::loaders::Loaders;
use crate::tenancy::scope::Scope;

pub async fn handle(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            let app = state.app.clone();
            GraphQLWebSocket::new(stream, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let token = payload
                        .get("authorization")
                        .and_then(|v| v.as_str())
                        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v))
                        .or_else(|| payload.get("token").and_then(|v| v.as_str()))
                        .ok_or_else(|| async_graphql::Error::new("connection_init needs a token"))?;
                    let actor = actor_for(&app, token, Operation::Subscription, &[], None)
                        .map_err(|e| async_graphql::Error::new(e.message))?;
                    let scope = Arc::new(Scope::subscriber(Uuid::new_v4(), actor));
                    let mut data = Data::default();
                    data.insert(Arc::new(Loaders::new(scope.clone())));
                    data.insert(scope);
                    Ok(data)
                })
                .serve()
        })
}
