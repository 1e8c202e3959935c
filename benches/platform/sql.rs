//! The SQL one request runs, captured from Enclave itself (its `enclave::sql` trace), and
//! the pgbench script that replays exactly those statements for a random tenant.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use axum::body::Body;
use axum::http::Request;
use enclave::app::App;
use enclave::auth::keys::RootKeys;
use enclave::config::{AuthConfig, DatabaseConfig, LimitsConfig};
use enclave::tenancy::Installation;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// Statements traced while capturing is on.
#[derive(Clone, Default)]
pub struct Capture {
    on: Arc<AtomicBool>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    /// Installs the process-wide subscriber that records `enclave::sql` traces.
    pub fn install() -> Self {
        let capture = Self::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_env_filter("enclave::sql=trace")
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_writer(move || writer.clone())
            .init();
        capture
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.on.load(Ordering::Relaxed) {
            let text = String::from_utf8_lossy(buf).trim().to_owned();
            // diesel prints `<sql> -- binds: [...]`; the binds are this run's values.
            let sql = text.split(" -- binds: ").next().unwrap_or_default().to_owned();
            self.lines.lock().unwrap_or_else(|e| e.into_inner()).push(sql);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs each GraphQL request once through an in-process Enclave and returns the
/// statements each sent, in order.
pub async fn statements_of(
    capture: &Capture,
    config: &DatabaseConfig,
    installation: &Installation,
    keys: (RootKeys, String),
    requests: &[(String, serde_json::Value)],
) -> anyhow::Result<Vec<Vec<String>>> {
    let (keys, spec) = keys;
    let app = App::new(
        config,
        &AuthConfig::with_key(spec),
        keys,
        installation.clone(),
        LimitsConfig::default(),
    )
    .await?;
    let router = enclave::build_app(app, Arc::new(AtomicBool::new(true)));
    let mut all = Vec::new();
    for (token, body) in requests {
        let request = Request::post("/graphql")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(body.to_string()))?;
        capture.on.store(true, Ordering::Relaxed);
        let response = router.clone().oneshot(request).await?;
        let bytes = response.into_body().collect().await?.to_bytes();
        capture.on.store(false, Ordering::Relaxed);
        let answer: serde_json::Value = serde_json::from_slice(&bytes)?;
        if answer.get("errors").is_some() || answer.get("data").is_none() {
            bail!("the benchmark request failed: {answer}");
        }
        all.push(capture.take());
    }
    Ok(all)
}

/// `statement` without the leading comment naming its tenant, if it has one.
fn untagged(statement: &str) -> &str {
    statement
        .strip_prefix("/* ")
        .and_then(|rest| rest.split_once(" */ "))
        .map_or(statement, |(_, statement)| statement)
}

/// How pgbench stands in for a bind parameter of a captured statement.
pub struct Substitution {
    /// Text in the captured SQL (`= ANY($1)`).
    pub captured: &'static str,
    /// What pgbench runs instead.
    pub replay: String,
}

/// The pgbench script replaying `statements` for tenant `:t`: the `BEGIN` batch becomes
/// `BEGIN` and `set_config` (what `SET LOCAL` does; pgbench cannot prepare a `SET` with a
/// variable) sent together in one pipeline, so both sides pay one round trip for it; every
/// other statement is the captured text with its parameters replaced by pgbench variables
/// and without the comment naming the tenant (`/* tenant_t1 */`, which makes Enclave's
/// prepared statements per tenant: pgbench prepares each script line once per connection
/// and runs it for every tenant, so its plans are redone whenever the tenant changes).
pub fn pgbench_script(
    statements: &[String],
    preamble: &str,
    substitutions: &[Substitution],
) -> anyhow::Result<String> {
    let mut script = String::from(preamble);
    for statement in statements {
        if let Some(rest) = statement.strip_prefix("BEGIN READ ONLY; SET LOCAL search_path TO ") {
            let timeout = rest
                .rsplit("statement_timeout = ")
                .next()
                .context("no statement_timeout in the BEGIN batch")?;
            script.push_str(&format!(
                "\\startpipeline\nBEGIN READ ONLY;\nSELECT set_config('search_path', 'tenant_t' || :t::text, true), \
                 set_config('role', :role_prefix::text || :t::text, true), set_config('statement_timeout', '{timeout}', true);\n\\endpipeline\n"
            ));
            continue;
        }
        let mut replay = untagged(statement).to_owned();
        for substitution in substitutions {
            replay = replay.replace(substitution.captured, &substitution.replay);
        }
        if replay.contains('$') {
            bail!("no pgbench parameter for a bind of: {statement}");
        }
        script.push_str(&replay.replace('\n', " "));
        script.push_str(";\n");
    }
    Ok(script)
}
