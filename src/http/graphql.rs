//! The GraphQL endpoint. Per request: work out the operation's kind and root fields,
//! apply the request limits, authenticate and authorize (all before any database work),
//! record mutations made under impersonation, execute with the request's `Scope` and
//! loaders, then commit the tenant transaction (a mutation only if every root field
//! succeeded; otherwise roll back and return no data) and make sure every error carries
//! a code (and INTERNAL ones a request id).

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::{ErrorExtensionValues, ParseRequestError, Response, ServerError, Value};
use async_graphql_axum::GraphQLRequest;
use async_graphql_axum::rejection::GraphQLRejection;
use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use tracing::Instrument as _;
use uuid::Uuid;

use super::AppState;
use super::credentials::scope_for;
use super::operation::{self, OperationShape};
use super::privileges::PrivilegeCheck;
use crate::auth::Role;
use crate::auth::throttle::ClientAddress;
use crate::auth::token::Operation;
use crate::resolvers::access;
use crate::resolvers::errors::{ApiError, Code};
use crate::resolvers::loaders::Loaders;
use crate::resolvers::root::RootGate;
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
    "endImpersonation",
    "exportTenant",
];

/// Root fields of introspection, answered only to authenticated callers.
const INTROSPECTION: &[&str] = &["__schema", "__type"];

pub async fn handle(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> HttpResponse {
    let request_id = Uuid::new_v4();
    let span = tracing::info_span!(
        "graphql",
        %request_id,
        tenant = tracing::field::Empty,
        operation = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let response = handle_in(state, method, headers, peer, request, request_id)
        .instrument(span.clone())
        .await;
    // The access log: one line per request, with the fields recorded on the span.
    tracing::info!(
        parent: &span,
        status = response.status().as_u16(),
        duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "graphql request"
    );
    response
}

async fn handle_in(
    state: AppState,
    method: Method,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    request: Result<GraphQLRequest, GraphQLRejection>,
    request_id: Uuid,
) -> HttpResponse {
    // Requests served without a peer address (in-process) share one throttle bucket.
    let address = ClientAddress::from_peer(peer.map(|Extension(ConnectInfo(peer))| peer));
    let media = MediaType::accepted(&headers);
    if method == Method::POST && !is_json(&headers) {
        let error = ApiError::bad_input(
            "a GraphQL POST must have Content-Type: application/json (charset parameters allowed)",
        );
        return respond(
            refused(error, request_id),
            media,
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        );
    }
    if method == Method::GET && wants_html(&headers) {
        // A browser opened /graphql: give it the IDE rather than a GraphQL parse error.
        return super::graphiql::page().await;
    }
    let request = match request {
        Ok(request) => request,
        Err(GraphQLRejection(ParseRequestError::PayloadTooLarge)) => {
            let error = ApiError::bad_input("the request body is too large");
            return respond(
                refused(error, request_id),
                media,
                Some(StatusCode::PAYLOAD_TOO_LARGE),
            );
        }
        Err(rejection) => {
            let error = ApiError::bad_input(format!("the request is not a GraphQL request: {}", rejection.0));
            return respond(refused(error, request_id), media, Some(StatusCode::BAD_REQUEST));
        }
    };
    execute(state, method, headers, media, request, request_id, address).await
}

async fn execute(
    state: AppState,
    method: Method,
    headers: HeaderMap,
    media: MediaType,
    request: GraphQLRequest,
    request_id: Uuid,
    address: ClientAddress,
) -> HttpResponse {
    let mut request = request.into_inner();
    if request.query.trim().is_empty() {
        // No document at all (a GET without `query`, or an empty one): the parameters are
        // invalid, so this is no well-formed GraphQL-over-HTTP request, under either media type.
        let error = ApiError::bad_input("the request has no GraphQL document in its `query` parameter");
        return respond(refused(error, request_id), media, Some(StatusCode::BAD_REQUEST));
    }
    // Parsed once: the engine executes the document parsed here.
    let operation_name = request.operation_name.clone();
    let shape = request
        .parsed_query()
        .ok()
        .and_then(|document| operation::shape_of(document, operation_name.as_deref()));
    let span = tracing::Span::current();
    if let Some(name) = request.operation_name.as_deref().or_else(|| {
        shape
            .as_ref()
            .and_then(|s| s.root_fields.first().map(String::as_str))
    }) {
        span.record("operation", name);
    }
    if let Some(shape) = &shape {
        if method == Method::GET && shape.kind == Operation::Mutation {
            let error = ApiError::bad_input("mutations are not allowed over GET; use POST");
            return respond(
                refused(error, request_id),
                media,
                Some(StatusCode::METHOD_NOT_ALLOWED),
            );
        }
        if let Err(error) = check_shape(shape, state.app.limits.max_fields) {
            return respond(refused(error, request_id), media, None);
        }
    }
    let scope = match scope_for(&state.app, &headers, shape.as_ref(), request_id) {
        Ok(scope) => Arc::new(scope),
        Err(error) => return respond(refused(error, request_id), media, None),
    };
    if let Some(actor) = &scope.actor {
        span.record("tenant", actor.tenant.slug.as_str());
    }
    if let Err(error) = check_caller(&scope, shape.as_ref()) {
        return respond(refused(error, request_id), media, None);
    }

    let kind = shape.as_ref().map(|s| s.kind);
    let introspection = shape.as_ref().is_some_and(introspects);
    let privileges = shape
        .map(Arc::new)
        .and_then(|shape| PrivilegeCheck::needed(&state.app, &scope, &shape).map(Arc::new));
    if let Some(check) = &privileges {
        // Introspection is answered by the engine before any root field of ours, so a
        // token's privileges are established first for it (and only for it).
        if introspection && let Err(error) = check.pass().await {
            return respond(refused_with(error, request_id), media, None);
        }
        request = request.data(check.clone() as Arc<dyn RootGate>);
    }
    request = request
        .data(scope.clone())
        .data(Arc::new(Loaders::new(scope.clone())))
        .data(address);
    let mut response = state.schema.execute(request).await;
    if let Some(refusal) = privileges.as_ref().and_then(|check| check.refusal()) {
        // Privileges refused: a request error, like any refusal before execution.
        response = Response::from_errors(vec![refusal]);
    }
    let commit = kind != Some(Operation::Mutation) || response.errors.is_empty();
    match scope.finish(commit).await {
        Err(error) => response = Response::from_errors(vec![server_error(ApiError::from(error))]),
        Ok(()) if !commit => response.data = Value::Null,
        Ok(()) => {}
    }
    finish_errors(&mut response, request_id);
    state.app.requests.record(!response.errors.is_empty());
    respond(response, media, None)
}

/// Records the request's outcome on its span: `ok`, or the first error's code.
fn record_outcome(response: &Response) {
    let outcome = match response.errors.first() {
        None => "ok".to_owned(),
        Some(error) => match error.extensions.as_ref().and_then(|x| x.get("code")) {
            Some(Value::String(code)) => code.clone(),
            _ => "error".to_owned(),
        },
    };
    tracing::Span::current().record("outcome", outcome.as_str());
}

/// Whether a request body is declared `application/json` (any case, parameters such as
/// `charset` allowed). Anything else is refused with 415, even if the body parses as
/// JSON: a `text/plain` POST is a "simple" cross-site request that browsers send without
/// a CORS preflight, so executing it would let any web page run mutations.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether a GET comes from a browser's address bar: it accepts `text/html` and neither
/// JSON flavour of GraphQL over HTTP.
fn wants_html(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    accept.contains("text/html") && !accept.contains("json")
}

/// The response media type the client asked for (GraphQL over HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    /// `application/graphql-response+json`: request errors get a 4xx status.
    GraphqlResponse,
    /// `application/json` (the legacy default): always 200 for a GraphQL response.
    Json,
}

impl MediaType {
    fn accepted(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if accept.contains("application/graphql-response+json") {
            Self::GraphqlResponse
        } else {
            Self::Json
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

/// Serializes a response with the negotiated content type and status. A request error
/// (no data, errors without a path: refused or invalid before execution) is 4xx under
/// `application/graphql-response+json` and has no `data` entry at all there (the response
/// was not executed); `status` forces one (405, 413, 400 for bodies that are no GraphQL
/// request at all or have no document). An error telling the client to come back later
/// sets the status under both media types, with a `Retry-After` header: UNAVAILABLE is
/// 503 (the server is overloaded), RATE_LIMITED 429 (this caller sends too much).
fn respond(response: Response, media: MediaType, status: Option<StatusCode>) -> HttpResponse {
    record_outcome(&response);
    let request_error = response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let retry = retry_status(&response);
    let status = status.or(retry.map(|(status, _)| status)).unwrap_or(match media {
        MediaType::GraphqlResponse if request_error => {
            match response
                .errors
                .first()
                .and_then(|e| e.extensions.as_ref())
                .and_then(|x| x.get("code"))
            {
                Some(Value::String(code)) if code == Code::Unauthenticated.as_str() => {
                    StatusCode::UNAUTHORIZED
                }
                Some(Value::String(code)) if code == Code::Forbidden.as_str() => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            }
        }
        _ => StatusCode::OK,
    });
    let body = serialize(&response, media == MediaType::GraphqlResponse && request_error);
    let mut http = (status, [(header::CONTENT_TYPE, media.content_type())], body).into_response();
    if let Some((_, secs)) = retry {
        http.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    http
}

/// The JSON body of `response`, without its `data` entry when `without_data` (serialized
/// straight to bytes otherwise: no intermediate JSON tree of a large response).
fn serialize(response: &Response, without_data: bool) -> Vec<u8> {
    let bytes = if without_data {
        serde_json::to_value(response).and_then(|mut json| {
            if let Some(object) = json.as_object_mut() {
                object.remove("data");
            }
            serde_json::to_vec(&json)
        })
    } else {
        serde_json::to_vec(response)
    };
    bytes.unwrap_or_else(|_| {
        b"{\"errors\":[{\"message\":\"internal error\",\"extensions\":{\"code\":\"INTERNAL\"}}]}".to_vec()
    })
}

/// The status and `Retry-After` (seconds) of a response whose errors ask the client to
/// come back later: 503 when any error is UNAVAILABLE, else 429 when any is RATE_LIMITED.
fn retry_status(response: &Response) -> Option<(StatusCode, u64)> {
    let (mut unavailable, mut limited) = (None::<u64>, None::<u64>);
    for extensions in response.errors.iter().filter_map(|e| e.extensions.as_ref()) {
        let secs = match extensions.get("retryAfter") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(1).max(1),
            _ => 1,
        };
        let slot = match extensions.get("code") {
            Some(Value::String(code)) if code == Code::Unavailable.as_str() => &mut unavailable,
            Some(Value::String(code)) if code == Code::RateLimited.as_str() => &mut limited,
            _ => continue,
        };
        *slot = Some(slot.map_or(secs, |s| s.max(secs)));
    }
    unavailable
        .map(|secs| (StatusCode::SERVICE_UNAVAILABLE, secs))
        .or(limited.map(|secs| (StatusCode::TOO_MANY_REQUESTS, secs)))
}

/// Limits that need no caller: document size, and self-committing mutations alone.
pub(super) fn check_shape(shape: &OperationShape, max_fields: usize) -> Result<(), ApiError> {
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

/// Checks that depend on the caller and need no database: introspection only with a
/// token, and every root field's minimum role (the `access` table) against the token's
/// role, a ceiling. The effective role is checked again, once the document is valid, by
/// [`PrivilegeCheck`].
fn check_caller(scope: &Scope, shape: Option<&OperationShape>) -> Result<(), ApiError> {
    let Some(shape) = shape else { return Ok(()) };
    match &scope.actor {
        None if introspects(shape) => Err(ApiError::unauthenticated("introspection needs a token")),
        None => Ok(()),
        Some(actor) => check_roles(shape, actor.claims.role),
    }
}

/// Every root field of `shape` against the `access` table for `role`.
pub(super) fn check_roles(shape: &OperationShape, role: Role) -> Result<(), ApiError> {
    access::check_fields(shape.kind, &shape.root_fields, role)
}

/// A response for a request refused before execution.
fn refused(error: ApiError, request_id: Uuid) -> Response {
    refused_with(server_error(error), request_id)
}

fn refused_with(error: ServerError, request_id: Uuid) -> Response {
    let mut response = Response::from_errors(vec![error]);
    finish_errors(&mut response, request_id);
    response
}

/// Whether an operation asks for introspection (`__schema`, `__type`).
fn introspects(shape: &OperationShape) -> bool {
    shape
        .root_fields
        .iter()
        .any(|f| INTROSPECTION.contains(&f.as_str()))
}

pub(super) fn server_error(error: ApiError) -> ServerError {
    let retry = error.retry_after_secs();
    let mut server_error = ServerError::new(error.message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", error.code.as_str());
    if let Some(secs) = retry {
        extensions.set("retryAfter", secs);
    }
    server_error.extensions = Some(extensions);
    server_error
}

/// What a `DateTime` input must look like; appended to the engine's parse errors (such as
/// "premature end of input" for a bare date), which do not say.
const DATE_TIME_HINT: &str =
    "DateTime values are RFC 3339 date-times with a time zone, e.g. 2027-01-31T00:00:00Z";

/// Gives every error a code (parse and validation errors of the GraphQL engine carry
/// none: they are BAD_USER_INPUT) and every INTERNAL error the request id, and says what
/// a refused `DateTime` input should have looked like.
pub(super) fn finish_errors(response: &mut Response, request_id: Uuid) {
    for error in &mut response.errors {
        if error.message.contains("\"DateTime\"") && !error.message.contains("RFC 3339") {
            error.message = format!("{} ({DATE_TIME_HINT})", error.message);
        }
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
