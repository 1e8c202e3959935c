//! The HTTP surface with a real database: `{ health }` on /graphql, /healthz, /readyz, and
//! the committed `schema.graphql` matching the code.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::TestDb;
use common::app::{TestApp, error_code};
use enclave::auth::Role;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

async fn call(app: axum::Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.oneshot(request).await.expect("router answers");
    let status = response.status();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn health_query_healthz_and_readyz_answer_once_ready() {
    let db = TestDb::new().await;
    db.prepare().await;
    let ready = Arc::new(AtomicBool::new(false));
    let installation = db.installation();
    let (keys, spec) = enclave::auth::keys::RootKeys::generate(1);
    let app = enclave::app::App::new(
        &db.config(),
        &enclave::config::AuthConfig::with_key(spec),
        keys,
        installation,
        enclave::config::LimitsConfig::default(),
    )
    .await
    .expect("app");
    let app = enclave::build_app(app, ready.clone());

    let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("request");
    assert_eq!(call(app.clone(), get("/healthz")).await.0, StatusCode::OK);
    assert_eq!(
        call(app.clone(), get("/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    ready.store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(
        call(app.clone(), get("/readyz")).await,
        (StatusCode::OK, "ready".to_owned())
    );

    let request = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"query":"{ health { ok version } }"}"#))
        .expect("request");
    let (status, body) = call(app.clone(), request).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON response");
    assert_eq!(json["data"]["health"]["ok"], serde_json::Value::Bool(true));
    assert_eq!(json["data"]["health"]["version"], env!("CARGO_PKG_VERSION"));

    let (status, metrics) = call(app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains("enclave_graphql_requests_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("enclave_tenants{status=\"active\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("enclave_sql_statements_total"), "{metrics}");
    assert!(
        metrics.contains("enclave_db_connections_opened_total "),
        "{metrics}"
    );
    assert!(
        metrics.contains("enclave_db_pool_tenants_cached 0"),
        "no tenant served yet: {metrics}"
    );
}

#[test]
fn committed_schema_graphql_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repository root");
    assert!(
        committed == enclave::resolvers::sdl(),
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`"
    );
}

#[tokio::test]
async fn graphiql_is_served_with_its_own_assets() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    let (keys, spec) = enclave::auth::keys::RootKeys::generate(1);
    let app = enclave::app::App::new(
        &db.config(),
        &enclave::config::AuthConfig::with_key(spec),
        keys,
        installation,
        enclave::config::LimitsConfig::default(),
    )
    .await
    .expect("app");
    let app = enclave::build_app(app, Arc::new(AtomicBool::new(true)));
    assert!(
        enclave::http::graphiql::ASSETS.is_some(),
        "GraphiQL assets are not embedded: run scripts/install-web-assets"
    );
    let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("request");
    let (status, page) = call(app.clone(), get("/graphiql")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains("https://"),
        "the page must not load anything from the internet"
    );
    for asset in [
        "/graphiql/react.js",
        "/graphiql/react-dom.js",
        "/graphiql/graphiql.js",
        "/graphiql/graphiql.css",
    ] {
        assert!(page.contains(asset), "{asset} not referenced");
        let (status, body) = call(app.clone(), get(asset)).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(body.len() > 1000, "{asset} is suspiciously small");
    }
}

#[tokio::test]
async fn responses_follow_graphql_over_http_content_negotiation() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    let (keys, spec) = enclave::auth::keys::RootKeys::generate(1);
    let app = enclave::app::App::new(
        &db.config(),
        &enclave::config::AuthConfig::with_key(spec),
        keys,
        installation,
        enclave::config::LimitsConfig::default(),
    )
    .await
    .expect("app");
    let app = enclave::build_app(app, Arc::new(AtomicBool::new(true)));
    let post = |accept: &str, query: &str, token: Option<&str>| {
        let mut request = Request::post("/graphql")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, accept);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request
            .body(Body::from(serde_json::json!({ "query": query }).to_string()))
            .expect("request")
    };
    let cases = [
        (
            "application/graphql-response+json",
            "{ nope }",
            None,
            StatusCode::BAD_REQUEST,
            "application/graphql-response+json",
        ),
        (
            "application/graphql-response+json",
            "{ health { ok } }",
            Some("forged"),
            StatusCode::UNAUTHORIZED,
            "application/graphql-response+json",
        ),
        (
            "application/graphql-response+json",
            "{ health { ok } }",
            None,
            StatusCode::OK,
            "application/graphql-response+json",
        ),
        (
            "application/json",
            "{ nope }",
            None,
            StatusCode::OK,
            "application/json",
        ),
        (
            "*/*",
            "{ health { ok } }",
            Some("forged"),
            StatusCode::OK,
            "application/json",
        ),
    ];
    for (accept, query, token, status, content_type) in cases {
        let response = app
            .clone()
            .oneshot(post(accept, query, token))
            .await
            .expect("answer");
        assert_eq!(response.status(), status, "{accept} {query}");
        let got = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(got.starts_with(content_type), "{accept}: {got}");
    }
}

#[test]
fn every_type_field_argument_and_enum_value_of_the_sdl_is_documented() {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let document = async_graphql::parser::parse_schema(enclave::resolvers::sdl()).expect("the SDL parses");
    let mut missing = Vec::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let ty = ty.node;
        let name = ty.name.node.to_string();
        // async-graphql's generated connection wrappers carry no description of their own.
        if ty.description.is_none() && !name.ends_with("Connection") {
            missing.push(format!("type {name}"));
        }
        match ty.kind {
            TypeKind::Object(object) => {
                for field in object.fields {
                    let field = field.node;
                    if field.description.is_none() {
                        missing.push(format!("field {name}.{}", field.name.node));
                    }
                    for argument in field.arguments {
                        if argument.node.description.is_none() {
                            missing.push(format!(
                                "argument {name}.{}({})",
                                field.name.node, argument.node.name.node
                            ));
                        }
                    }
                }
            }
            TypeKind::Interface(interface) => {
                for field in interface.fields {
                    if field.node.description.is_none() {
                        missing.push(format!("field {name}.{}", field.node.name.node));
                    }
                }
            }
            TypeKind::InputObject(input) => {
                for field in input.fields {
                    if field.node.description.is_none() {
                        missing.push(format!("input field {name}.{}", field.node.name.node));
                    }
                }
            }
            TypeKind::Enum(values) => {
                for value in values.values {
                    if value.node.description.is_none() {
                        missing.push(format!("enum value {name}.{}", value.node.value.node));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(missing.is_empty(), "undocumented in the SDL: {missing:#?}");
}

const ME: &str = "{ me { role } }";

/// A tenant with an admin and the admin's session token.
async fn tenant_with_token(t: &TestApp, slug: &str) -> (uuid::Uuid, String) {
    let tenant = t.tenant(slug, &[]).await;
    let admin = t.user(slug, &format!("admin@{slug}.example"), Role::Admin).await;
    (tenant.id, t.session(slug, &admin).await)
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_with_retry_after_and_unavailable() {
    let t = TestApp::with(|db, _| {
        db.pool_size = 1;
        db.pool_timeout_ms = 300;
    })
    .await;
    let (_, token) = tenant_with_token(&t, "acme").await;
    let bearer = format!("Bearer {token}");
    let held = t.app.pool.get().await.expect("the pool's only connection");
    for accept in ["application/json", "application/graphql-response+json"] {
        let (status, headers, body) = t
            .exchange(
                &[("authorization", &bearer), ("accept", accept)],
                json!({ "query": ME }),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{accept}: {body}");
        assert_eq!(error_code(&body), Some("UNAVAILABLE"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["retryAfter"], 1, "{body}");
        assert!(body["data"]["me"].is_null(), "{body}");
        assert_eq!(
            headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()),
            Some("1"),
            "{accept}"
        );
    }
    drop(held);
    let (status, headers, body) = t
        .exchange(&[("authorization", &bearer)], json!({ "query": ME }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["me"]["role"], "ADMIN", "{body}");
    assert!(headers.get(header::RETRY_AFTER).is_none());
}

#[tokio::test]
async fn one_tenant_cannot_take_the_last_connections_of_the_pool() {
    let t = TestApp::with(|db, _| {
        db.pool_size = 2;
        db.pool_tenant_share = 50;
        db.pool_timeout_ms = 300;
    })
    .await;
    let (acme, acme_token) = tenant_with_token(&t, "acme").await;
    let (_, globex_token) = tenant_with_token(&t, "globex").await;
    // acme holds one connection of two: its whole share.
    let held = t
        .app
        .pool
        .get_for(Some(acme))
        .await
        .expect("a connection for acme");
    let response = t.gql(Some(&acme_token), ME, json!({})).await;
    assert_eq!(
        error_code(&response),
        Some("UNAVAILABLE"),
        "acme took the last connection: {response}"
    );
    // The other tenant still gets the free connection.
    let response = t.gql(Some(&globex_token), ME, json!({})).await;
    assert_eq!(response["data"]["me"]["role"], "ADMIN", "{response}");
    drop(held);
    let response = t.gql(Some(&acme_token), ME, json!({})).await;
    assert_eq!(response["data"]["me"]["role"], "ADMIN", "{response}");
}
