//! A running Enclave for tests: a migrated per-test database, a fresh root key, the real
//! `App` and router, and helpers to provision tenants and users and call `/graphql`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use enclave::app::App;
use enclave::auth::Role;
use enclave::auth::keys::RootKeys;
use enclave::auth::sessions;
use enclave::auth::users::{self, NewUser, UserRecord};
use enclave::config::{AuthConfig, DatabaseConfig, LimitsConfig};
use enclave::tenancy::Installation;
use enclave::tenancy::directory::TenantEntry;
use enclave::tenancy::provision::{self, NewTenant};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::TestDb;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub db: TestDb,
    pub app: Arc<App>,
    pub router: axum::Router,
    pub key_spec: String,
    pub installation: Installation,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with(|_, _| {}).await
    }

    /// An app whose configuration `configure` may change first.
    pub async fn with(configure: impl FnOnce(&mut DatabaseConfig, &mut AuthConfig)) -> Self {
        Self::build(configure, LimitsConfig::default()).await
    }

    /// An app with the given request limits.
    pub async fn with_limits(limits: LimitsConfig) -> Self {
        Self::build(|_, _| {}, limits).await
    }

    async fn build(
        configure: impl FnOnce(&mut DatabaseConfig, &mut AuthConfig),
        limits: LimitsConfig,
    ) -> Self {
        Self::assemble(TestDb::new().await, configure, limits).await
    }

    /// An app on `db` (created and migrated if needed) whose configuration `configure`
    /// may change first; `DatabaseConfig::session_url` must stay `db`'s URL.
    pub async fn on(db: TestDb, configure: impl FnOnce(&mut DatabaseConfig, &mut AuthConfig)) -> Self {
        Self::assemble(db, configure, LimitsConfig::default()).await
    }

    async fn assemble(
        db: TestDb,
        configure: impl FnOnce(&mut DatabaseConfig, &mut AuthConfig),
        limits: LimitsConfig,
    ) -> Self {
        let mut installation = db.prepare().await;
        let (keys, key_spec) = RootKeys::generate(1);
        let mut database = db.config();
        let mut auth = AuthConfig::with_key(key_spec.clone());
        let (_, edge_key) = enclave::edge::keys::EdgeKey::generate().expect("edge key");
        auth.edge.edge_key = Some(edge_key);
        // Tests that run `enclave::listen` side by side must not share the edge port.
        auth.edge.edge_listen = "127.0.0.1:0".to_owned();
        configure(&mut database, &mut auth);
        // As `enclave::start` does: request connections follow the configured URLs.
        installation = Installation::new(&database, installation.migrations.clone()).expect("installation");
        installation.edge = enclave::edge::prepare_if_configured(&installation, &auth)
            .await
            .expect("edge CAs");
        installation.nats = enclave::nats::prepare_if_configured(&installation, &auth)
            .await
            .expect("NATS accounts");
        let app = App::new(&database, &auth, keys, installation.clone(), limits)
            .await
            .expect("app");
        let router = enclave::build_app(app.clone(), Arc::new(AtomicBool::new(true)));
        Self {
            db,
            app,
            router,
            key_spec,
            installation,
        }
    }

    /// Provisions a tenant (with vanity domains) and refreshes the directory.
    pub async fn tenant(&self, slug: &str, domains: &[&str]) -> Arc<TenantEntry> {
        let new = NewTenant {
            slug: provision::parse_new_slug(slug).expect("slug"),
            name: format!("{slug} Inc."),
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        };
        provision::create_tenant(&mut self.db.conn().await, &self.installation, &new)
            .await
            .expect("provision");
        self.reload().await;
        self.app.directory.by_slug(slug).expect("tenant in directory")
    }

    pub async fn reload(&self) {
        self.app
            .directory
            .reload(&mut self.db.conn().await)
            .await
            .expect("reload directory");
    }

    pub fn entry(&self, slug: &str) -> Arc<TenantEntry> {
        self.app.directory.by_slug(slug).expect("tenant in directory")
    }

    /// Adds a user with [`PASSWORD`].
    pub async fn user(&self, slug: &str, email: &str, role: Role) -> UserRecord {
        let new = NewUser {
            email: email.to_owned(),
            display_name: email.to_owned(),
            role,
            password: PASSWORD.to_owned(),
        };
        users::add_to_tenant(&mut self.db.conn().await, &self.entry(slug), &new)
            .await
            .expect("add user")
    }

    /// A session token for a user, as `enclave token mint` makes them.
    pub async fn session(&self, slug: &str, user: &UserRecord) -> String {
        let (token, _) = sessions::start(
            &self.app,
            &self.entry(slug),
            user,
            std::time::Duration::from_secs(3600),
        )
        .await
        .expect("session");
        token
    }

    /// POSTs a GraphQL request with extra headers; returns the status and JSON body.
    pub async fn call(&self, headers: &[(&str, &str)], body: Value) -> (StatusCode, Value) {
        let (status, _, json) = self.exchange(headers, body).await;
        (status, json)
    }

    /// POSTs a GraphQL request with extra headers; returns the status, the response
    /// headers and the JSON body.
    pub async fn exchange(&self, headers: &[(&str, &str)], body: Value) -> (StatusCode, HeaderMap, Value) {
        let mut request = Request::post("/graphql").header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::from(body.to_string())).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        let status = response.status();
        let response_headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, response_headers, json)
    }

    /// Runs `query` with `variables` as the bearer of `token`.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("authorization", b.as_str())).collect();
        self.call(&headers, json!({ "query": query, "variables": variables }))
            .await
            .1
    }
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}
