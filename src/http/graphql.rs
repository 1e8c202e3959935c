//! The GraphQL endpoint. Per request: work out the operation's kind and root fields,
//! apply the request limits, authenticate and authorize (all before any database work),
//! record mutations made under impersonation, execute with the request's `Scope` and
//! loaders, then commit the tenant transaction (a mutation only if every root field
//! succeeded; otherwise roll back and return no data) and make sure every error carries
//! a code (and INTERNAL ones a request id).

use std::sync::Arc;

use async_graphql::{ErrorExtensionValues, ParseRequestError, Response, ServerError, Value};
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use tracing::Instrument as _;
use uuid::Uuid;

use super::AppState;
use super::credentials::scope_for;
use super::operation::{self, OperationShape};
use crate::auth::token::{Credential, Operation};
use crate::resolvers::access;
use crate::resolvers::errors::{ApiError, Code};
use crate::resolvers::loaders::Loaders;
use crate::resolvers::platform::record_impersonated_mutation;
use crate::tenancy::scope::Scope;

/// Mutations that commit on their own (in `public` or in another tenant than the
/// caller's), so they cannot share an all-or-nothing mutation with other fields.
const SELF_COMMITTING: &[&str] = &[
    "login",
    "selectTenant",
    "createTenant",
    "suspendTenant",
    "resumeTenant",
    "impersonate",
];

/// Root fields of introspection, answered only to authenticated callers.
const INTROSPECTION: &[&str] = &["__schema", "__type"];

pub async fn handle(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> HttpResponse {
    let request_id = Uuid::new_v4();
    let span = tracing::info_span!("graphql", %request_id);
    let request = match request {
        Ok(request) => request,
        Err(GraphQLRejection(ParseRequestError::PayloadTooLarge)) => {
            let error = ApiError::bad_input("the request body is too large");
            return (StatusCode::PAYLOAD_TOO_LARGE, refused(error, request_id)).into_response();
        }
        Err(rejection) => {
            let error = ApiError::bad_input(format!("the request is not a GraphQL request: {}", rejection.0));
            return (StatusCode::BAD_REQUEST, refused(error, request_id)).into_response();
        }
    };
    execute(state, method, headers, request, request_id)
        .instrument(span)
        .await
}

async fn execute(
    state: AppState,
    method: Method,
    headers: HeaderMap,
    request: GraphQLRequest,
    request_id: Uuid,
) -> HttpResponse {
    let mut request = request.into_inner();
    let shape = operation::shape(&request.query, request.operation_name.as_deref());
    if let Some(shape) = &shape {
        if method == Method::GET && shape.kind == Operation::Mutation {
            let error = ApiError::bad_input("mutations are not allowed over GET; use POST");
            return (StatusCode::METHOD_NOT_ALLOWED, refused(error, request_id)).into_response();
        }
        if let Err(error) = check_shape(shape, state.app.limits.max_fields) {
            return refused(error, request_id).into_response();
        }
    }
    let scope = match scope_for(&state.app, &headers, shape.as_ref(), request_id) {
        Ok(scope) => Arc::new(scope),
        Err(error) => return refused(error, request_id).into_response(),
    };
    if let Err(error) = check_caller(&scope, shape.as_ref(), &state).await {
        return refused(error, request_id).into_response();
    }

    let kind = shape.as_ref().map(|s| s.kind);
    request = request
        .data(scope.clone())
        .data(Arc::new(Loaders::new(scope.clone())));
    let mut response = state.schema.execute(request).await;
    let commit = kind != Some(Operation::Mutation) || response.errors.is_empty();
    match scope.finish(commit).await {
        Err(error) => response = Response::from_errors(vec![server_error(ApiError::from(error))]),
        Ok(()) if !commit => response.data = Value::Null,
        Ok(()) => {}
    }
    finish_errors(&mut response, request_id);
    state.app.requests.record(!response.errors.is_empty());
    GraphQLResponse::from(response).into_response()
}

/// Limits that need no caller: document size, and self-committing mutations alone.
fn check_shape(shape: &OperationShape, max_fields: usize) -> Result<(), ApiError> {
    if shape.document_fields > max_fields {
        return Err(ApiError::bad_input(format!(
            "the query selects {} fields (aliases included); at most {max_fields} are allowed",
            shape.document_fields
        )));
    }
    if shape.kind == Operation::Mutation
        && shape.root_selections > 1
        && let Some(field) = shape
            .root_fields
            .iter()
            .find(|f| SELF_COMMITTING.contains(&f.as_str()))
    {
        return Err(ApiError::bad_input(format!(
            "{field} must be the only field of its mutation"
        )));
    }
    Ok(())
}

/// Checks that depend on the caller: every root field's minimum role (the `access`
/// table), introspection only with a token, and mutations under impersonation recorded.
async fn check_caller(
    scope: &Scope,
    shape: Option<&OperationShape>,
    state: &AppState,
) -> Result<(), ApiError> {
    let Some(shape) = shape else { return Ok(()) };
    if scope.actor.is_none()
        && shape
            .root_fields
            .iter()
            .any(|f| INTROSPECTION.contains(&f.as_str()))
    {
        return Err(ApiError::unauthenticated("introspection needs a token"));
    }
    if let Some(actor) = &scope.actor {
        for field in &shape.root_fields {
            if let Some(role) = access::required_role(shape.kind, field)
                && actor.claims.role < role
            {
                return Err(ApiError::forbidden(format!("{field} needs the {role} role")));
            }
        }
    }
    if let Some(actor) = &scope.actor
        && shape.kind == Operation::Mutation
        && let Credential::Impersonation(log_id) = actor.claims.credential
    {
        record_impersonated_mutation(&state.app, actor, log_id, &shape.root_fields).await?;
    }
    Ok(())
}

/// A response for a request refused before execution.
fn refused(error: ApiError, request_id: Uuid) -> GraphQLResponse {
    let mut response = Response::from_errors(vec![server_error(error)]);
    finish_errors(&mut response, request_id);
    GraphQLResponse::from(response)
}

fn server_error(error: ApiError) -> ServerError {
    let mut server_error = ServerError::new(error.message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", error.code.as_str());
    server_error.extensions = Some(extensions);
    server_error
}

/// Gives every error a code (parse and validation errors of the GraphQL engine carry
/// none: they are BAD_USER_INPUT) and every INTERNAL error the request id.
fn finish_errors(response: &mut Response, request_id: Uuid) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(ErrorExtensionValues::default);
        let code = match extensions.get("code") {
            Some(Value::String(code)) => code.clone(),
            _ => {
                extensions.set("code", Code::BadUserInput.as_str());
                Code::BadUserInput.as_str().to_owned()
            }
        };
        if code == Code::Internal.as_str() {
            extensions.set("requestId", request_id.to_string());
        }
    }
}
