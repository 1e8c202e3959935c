//! `/graphql/ws`: subscriptions over graphql-transport-ws. The token travels in the
//! `connection_init` payload (`{"authorization": "Bearer <token>"}` or `{"token": …}`),
//! is verified before anything starts, must name a served tenant and match the vanity
//! domain the connection arrived on. Each operation then passes the [`Gate`]: only
//! subscriptions, re-authorized with their real root fields, checked against the role
//! table and the document limits, with every streamed error given its code.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextSubscribe,
};
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Data, Response, ServerResult, Variables};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response as HttpResponse;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use uuid::Uuid;

use super::AppState;
use super::credentials::connection_actor;
use super::graphql::{check_shape, finish_errors, server_error};
use super::operation;
use crate::app::App;
use crate::auth::token::Operation;
use crate::resolvers::access;
use crate::resolvers::errors::ApiError;
use crate::resolvers::loaders::Loaders;
use crate::tenancy::domain;
use crate::tenancy::scope::Scope;
use crate::tenancy::transaction::Access;

/// What the connection was opened with; marks requests that came over the WebSocket.
struct WebSocketCaller {
    token: String,
}

pub async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> HttpResponse {
    let host_tenant = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| domain::normalize(h).ok())
        .and_then(|h| state.app.directory.by_domain(&h));
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
                        .ok_or_else(|| async_graphql::Error::new("connection_init needs a token"))?
                        .to_owned();
                    let actor = connection_actor(&app, &token, host_tenant.as_ref())
                        .map_err(|e| async_graphql::Error::new(e.message))?;
                    let tx = app.tenant_tx(
                        actor.tenant.clone(),
                        Access::ReadOnly,
                        Some(actor.claims.credential),
                    );
                    let scope = Arc::new(Scope::subscriber(Uuid::new_v4(), actor, token.clone(), tx));
                    let mut data = Data::default();
                    data.insert(Arc::new(Loaders::new(scope.clone())));
                    data.insert(scope);
                    data.insert(WebSocketCaller { token });
                    Ok(data)
                })
                .serve()
        })
}

/// Checks every operation that arrives over the WebSocket (see the module doc). Requests
/// over HTTP are checked by the HTTP handler and pass through untouched.
pub struct Gate;

impl ExtensionFactory for Gate {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GateExtension)
    }
}

struct GateExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for GateExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let Ok(caller) = ctx.data::<WebSocketCaller>() {
            let app = ctx
                .data::<Arc<App>>()
                .map_err(|_| server_error(ApiError::internal("App missing")))?;
            check_operation(app, caller, &document).map_err(server_error)?;
        }
        Ok(document)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream)
            .map(|mut response| {
                finish_errors(&mut response, Uuid::new_v4());
                response
            })
            .boxed()
    }
}

fn check_operation(
    app: &App,
    caller: &WebSocketCaller,
    document: &ExecutableDocument,
) -> Result<(), ApiError> {
    let shape = operation::shape_of(document, None)
        .ok_or_else(|| ApiError::bad_input("send one operation per subscribe message"))?;
    if shape.kind != Operation::Subscription {
        return Err(ApiError::bad_input(
            "only subscriptions run over /graphql/ws; send queries and mutations to /graphql",
        ));
    }
    check_shape(&shape, app.limits.max_fields)?;
    let (claims, _) =
        app.verified_tokens
            .authorize(&caller.token, &app.keys, shape.kind, &shape.root_fields)?;
    for field in &shape.root_fields {
        if let Some(role) = access::required_role(shape.kind, field)
            && claims.role < role
        {
            return Err(ApiError::forbidden(format!("{field} needs the {role} role")));
        }
    }
    Ok(())
}
