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
use enclave::http::HttpOptions;
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
    let options = HttpOptions {
        metrics_token: Some("metrics-secret".to_owned()),
        ..HttpOptions::default()
    };
    let app = enclave::build_app_with(app, ready.clone(), &options);

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

    let metrics_request = || {
        Request::get("/metrics")
            .header(header::AUTHORIZATION, "Bearer metrics-secret")
            .body(Body::empty())
            .expect("request")
    };
    let (status, metrics) = call(app, metrics_request()).await;
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

    // A request error under application/graphql-response+json has no `data` entry at all
    // (it was never executed); under application/json it keeps `data: null`.
    for (accept, has_data) in [
        ("application/graphql-response+json", false),
        ("application/json", true),
    ] {
        for query in ["{", "{ nope }"] {
            let (_, body) = call(app.clone(), post(accept, query, None)).await;
            let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
            assert_eq!(json.get("data").is_some(), has_data, "{accept} {query}: {body}");
            assert_eq!(
                json["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
                "{body}"
            );
        }
    }
    // No document (a GET without `query`, an empty one): invalid parameters, 400 under
    // both media types, before any execution.
    for accept in ["application/graphql-response+json", "application/json"] {
        let get = Request::get("/graphql?qeury=%7B__typename%7D")
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .expect("request");
        let post_empty = post(accept, "  ", None);
        for request in [get, post_empty] {
            let (status, body) = call(app.clone(), request).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{accept}: {body}");
            let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
            assert_eq!(
                json["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
                "{body}"
            );
        }
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

async fn ready_router(db: &TestDb) -> axum::Router {
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
    let options = HttpOptions {
        metrics_token: Some("metrics-token".to_owned()),
        ..HttpOptions::default()
    };
    enclave::build_app_with(app, Arc::new(AtomicBool::new(true)), &options)
}

#[tokio::test]
async fn a_post_that_is_not_application_json_is_refused_with_415_and_runs_nothing() {
    let db = TestDb::new().await;
    let app = ready_router(&db).await;
    // Would create a tenant-less login attempt if executed; any mutation will do.
    let body = r#"{"query":"mutation { login(email: \"a@b.example\", password: \"whatever password\") { token } }"}"#;
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/graphql"),
        None,
    ] {
        let mut request = Request::post("/graphql");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(Body::from(body)).expect("request");
        let (status, text) = call(app.clone(), request).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {text}"
        );
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON error body");
        assert_eq!(
            json["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{text}"
        );
        assert!(json["data"].is_null(), "{text}");
    }
    let metrics = call(
        app.clone(),
        Request::get("/metrics")
            .header(header::AUTHORIZATION, "Bearer metrics-token")
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .1;
    for outcome in ["ok", "error"] {
        assert!(
            metrics.contains(&format!(
                "enclave_graphql_requests_total{{outcome=\"{outcome}\"}} 0"
            )),
            "refused requests never reached execution: {metrics}"
        );
    }
    // application/json, in any case and with a charset, is still served.
    for content_type in ["application/json", "Application/JSON; charset=utf-8"] {
        let request = Request::post("/graphql")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(r#"{"query":"{ health { ok } }"}"#))
            .expect("request");
        let (status, text) = call(app.clone(), request).await;
        assert_eq!(status, StatusCode::OK, "{content_type}: {text}");
        assert!(text.contains("\"ok\":true"), "{text}");
    }
}

#[tokio::test]
async fn browsers_find_graphiql_from_the_root_and_from_graphql() {
    let db = TestDb::new().await;
    let app = ready_router(&db).await;
    for uri in ["/", "/graphiql/"] {
        let response = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        assert!(response.status().is_redirection(), "{uri}: {}", response.status());
        assert_eq!(
            response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok()),
            Some("/graphiql"),
            "{uri}"
        );
    }
    let browser = Request::get("/graphql")
        .header(
            header::ACCEPT,
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .body(Body::empty())
        .expect("request");
    let (status, page) = call(app.clone(), browser).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/graphiql/graphiql.js"), "{page}");
    // A GraphQL client's GET still gets GraphQL.
    let client = Request::get("/graphql?query=%7B%20health%20%7B%20ok%20%7D%20%7D")
        .header(header::ACCEPT, "application/graphql-response+json")
        .body(Body::empty())
        .expect("request");
    let (status, body) = call(app, client).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"ok\":true"), "{body}");
}

const ME: &str = "{ me { role } }";

/// A tenant with an admin and the admin's session token.
async fn tenant_with_token(t: &TestApp, slug: &str) -> (uuid::Uuid, String) {
    let tenant = t.tenant(slug, &[]).await;
    let admin = t.user(slug, &format!("admin@{slug}.example"), Role::Admin).await;
    (tenant.id, t.session(slug, &admin).await)
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // holds raw request connections
async fn an_exhausted_pool_answers_503_with_retry_after_and_unavailable() {
    let t = TestApp::with(|db, _| {
        db.pool_size = 1;
        db.pool_timeout_ms = 300;
    })
    .await;
    let (_, token) = tenant_with_token(&t, "acme").await;
    let bearer = format!("Bearer {token}");
    let held = t
        .app
        .db
        .raw_request_pool()
        .get()
        .await
        .expect("the pool's only connection");
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
#[allow(clippy::disallowed_methods)] // holds raw request connections
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
        .db
        .raw_request_pool()
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

#[tokio::test]
async fn metrics_need_their_token_or_their_own_listener() {
    let t = TestApp::new().await;
    let get = |authorization: Option<&str>| {
        let mut request = Request::get("/metrics");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        request.body(Body::empty()).expect("request")
    };
    // Not configured: not on the main router at all.
    let (status, _) = call(t.router.clone(), get(None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(t.router.clone(), get(Some("Bearer anything"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // With a token: only to its bearer.
    let options = HttpOptions {
        metrics_token: Some("s3cret-metrics".to_owned()),
        ..HttpOptions::default()
    };
    let router = enclave::build_app_with(t.app.clone(), Arc::new(AtomicBool::new(true)), &options);
    for refused in [
        None,
        Some("Bearer wrong"),
        Some("Basic s3cret-metrics"),
        Some("s3cret-metrics"),
    ] {
        let (status, body) = call(router.clone(), get(refused)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused:?}");
        assert!(!body.contains("enclave_"), "{body}");
    }
    let (status, body) = call(router, get(Some("Bearer s3cret-metrics"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("enclave_tenants"), "{body}");

    // The separate listener's router serves them without a token, and nothing else.
    let state_router = enclave::http::metrics_router(
        enclave::http::AppState {
            schema: enclave::resolvers::build_schema(t.app.clone()),
            ws_schema: enclave::resolvers::build_schema(t.app.clone()),
            app: t.app.clone(),
            ready: Arc::new(AtomicBool::new(true)),
            stopping: tokio::sync::watch::channel(false).1,
        },
        &HttpOptions::default(),
    );
    let (status, body) = call(state_router.clone(), get(None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("enclave_tenants"), "{body}");
    let graphql = Request::get("/healthz").body(Body::empty()).expect("request");
    assert_eq!(call(state_router, graphql).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn field_suggestions_only_in_development_mode() {
    let t = TestApp::new().await;
    let typo = json!({ "query": "{ helth { ok } }" });
    let (_, response) = t.call(&[], typo.clone()).await;
    let message = response["errors"][0]["message"].as_str().expect("an error");
    assert!(message.contains("helth"), "{message}");
    assert!(!message.contains("Did you mean"), "{message}");
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"));

    let dev = HttpOptions {
        suggestions: true,
        ..HttpOptions::default()
    };
    let router = enclave::build_app_with(t.app.clone(), Arc::new(AtomicBool::new(true)), &dev);
    let request = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(typo.to_string()))
        .expect("request");
    let (_, body) = call(router, request).await;
    assert!(body.contains("Did you mean"), "{body}");
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // holds raw request connections
async fn a_request_taking_longer_than_the_request_timeout_gets_503() {
    let t = TestApp::with(|db, _| {
        db.pool_size = 1;
        db.pool_timeout_ms = 60_000;
    })
    .await;
    let (_, token) = tenant_with_token(&t, "acme").await;
    let options = HttpOptions {
        request_timeout: std::time::Duration::from_millis(300),
        ..HttpOptions::default()
    };
    let router = enclave::build_app_with(t.app.clone(), Arc::new(AtomicBool::new(true)), &options);
    let request = || {
        Request::post("/graphql")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(json!({ "query": ME }).to_string()))
            .expect("request")
    };
    // The only connection is held: the request waits for it far past its own time limit.
    let held = t
        .app
        .db
        .raw_request_pool()
        .get()
        .await
        .expect("the pool's only connection");
    let response = router.clone().oneshot(request()).await.expect("router answers");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let body = response.into_body().collect().await.expect("body").to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(error_code(&body), Some("UNAVAILABLE"), "{body}");
    // Cut by the request's own limit, not by the (much longer) pool timeout.
    assert_eq!(
        body["errors"][0]["message"], "the request took too long; retry later",
        "{body}"
    );
    drop(held);
    let (status, body) = call(router, request()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("ADMIN"), "{body}");
}

#[tokio::test]
async fn the_server_closes_connections_that_trickle_their_headers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let router = axum::Router::new().route(
        "/peer",
        axum::routing::get(
            |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>| async move {
                peer.ip().to_string()
            },
        ),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(enclave::http::serve::serve(
        listener,
        router,
        std::time::Duration::from_millis(200),
        async {
            let _ = stopped.await;
        },
    ));

    // A complete request is answered, with the peer address.
    let mut client = tokio::net::TcpStream::connect(address).await.expect("connect");
    client
        .write_all(b"GET /peer HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("127.0.0.1"), "{answer}");

    // Headers that never end: the server hangs up (the outer bound only keeps a broken
    // server from hanging the test).
    let mut slow = tokio::net::TcpStream::connect(address).await.expect("connect");
    slow.write_all(b"GET /peer HTTP/1.1\r\nHost: test\r\n")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(60), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection is still open");
    assert!(!String::from_utf8_lossy(&rest).contains("200"));

    let _ = stop.send(());
    server.await.expect("server task").expect("server");
}
