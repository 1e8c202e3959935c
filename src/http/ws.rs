//! `/graphql/ws`: subscriptions over graphql-transport-ws. The token travels in the
//! `connection_init` payload (`{"authorization": "Bearer <token>"}` or `{"token": …}`),
//! is verified before anything starts, must name a served tenant and match the vanity
//! domain the connection arrived on. Each operation then passes the [`Gate`]: only
//! subscriptions, re-authorized with their real root fields, checked against the role
//! table and the document limits, with every streamed error given its code. When the
//! server shuts down, each connection is closed with code 1001 (going away), so clients
//! reconnect elsewhere instead of waiting on a silent socket.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextSubscribe,
};
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Data, Response, ServerResult, Variables};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response as HttpResponse;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt as _, StreamExt as _};
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
        .on_upgrade(move |socket| {
            let app = state.app.clone();
            let mut stopping = state.stopping.clone();
            let (mut socket_sink, socket_stream) = socket.split();
            // GraphQL writes to a channel forwarded to the socket, so that the socket stays
            // ours to close on shutdown.
            let (to_client, mut outgoing) = tokio::sync::mpsc::channel::<Message>(16);
            let to_client = futures_util::sink::unfold(to_client, |sender, message: Message| async move {
                sender.send(message).await.map(|()| sender)
            });
            let graphql =
                GraphQLWebSocket::new_with_pair(to_client, socket_stream, state.ws_schema.clone(), protocol)
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
                    .serve();
            async move {
                let shutting_down = {
                    let forward = async {
                        while let Some(message) = outgoing.recv().await {
                            if socket_sink.send(message).await.is_err() {
                                break;
                            }
                        }
                    };
                    let stop = async {
                        // A dropped sender means this router is never shut down.
                        if stopping.wait_for(|stop| *stop).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        _ = async { tokio::join!(graphql, forward) } => false,
                        () = stop => true,
                    }
                };
                if shutting_down {
                    let close = Message::Close(Some(CloseFrame {
                        code: 1001,
                        reason: "the server is shutting down".into(),
                    }));
                    let _ = socket_sink.send(close).await;
                    let _ = socket_sink.close().await;
                }
            }
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
    access::check_fields(shape.kind, &shape.root_fields, claims.role)
}
