//! NATS per tenant: subjects, decentralized auth (one account per tenant) and Enclave's own
//! connection.
//!
//! - `jwt`: operator, account and user JWTs and `.creds` files, signed with nkeys;
//! - `accounts`: the operator and its accounts, stored sealed in `public` (see there for
//!   the import/export layout that makes the server enforce the tenant of a subject);
//! - this module: subject naming ([`Subjects`]), [`prepare`] at startup and the running
//!   link ([`NatsLink`], [`start`]): publishing after commit, heartbeats, pushing account
//!   JWTs to the resolver.
//!
//! **Subjects** are `[<ENCLAVE_NATS_PREFIX>.]<slug>.<kind-plural>.<event>`. Enclave
//! publishes `<slug>.alerts.changed`, `<slug>.events.created` and `<slug>.devices.changed`
//! with a JSON payload `{"id": <global id>, "type": "Alert"|"Event"|"Device", "tenant": slug}`
//! (nothing else: subscribers read the row through the API). Components publish
//! `<slug>.pollers.heartbeat` and `<slug>.agents.heartbeat` with `{"componentId": …}`.
//!
//! **Publishing after commit, and what is guaranteed.** Enclave publishes from the change
//! feed (`crate::changes`): PostgreSQL sends the tenant triggers' notifications only when a
//! transaction commits, so a rolled-back change is never published. Delivery is
//! *at most once*: the feed hands changes to a bounded in-memory queue
//! ([`OUTBOX_CAPACITY`]) drained by one publisher task; a change is lost (and counted in
//! `/metrics`) when the queue is full, when the publish fails, while the feed's database
//! connection is down, or when the process stops. A publish failure never fails a request
//! (the request has committed long before). Each running Enclave instance publishes what it
//! hears, so several instances against one database publish each change once per instance.
//!
//! **A NATS restart** needs nothing from an operator: both clients reconnect by themselves
//! (async-nats, no limit on attempts, with a back-off) and re-subscribe to the heartbeats;
//! the publisher keeps draining the outbox into the reconnected client, and the system
//! client's reconnection pushes every account again (`tests/nats.rs` restarts a server and
//! checks that heartbeats are recorded and changes published again).
//!
//! **A database restart** (or every backend terminated) leaves the NATS connections alone
//! and needs nothing from an operator either: a heartbeat is recorded in its tenant's
//! transaction on the request pool, which drops dead connections and connects anew, so
//! heartbeats land again as soon as the database is back; publishing resumes once the
//! change feed's LISTEN connection has reconnected (back-off up to 5 s, see
//! `crate::changes`). Heartbeats received while the database is down fail after the pool
//! timeout and are lost (logged, not retried), and changes committed before the feed
//! listens again are not published: both are within *at most once*. `tests/restart.rs`
//! terminates the backends, then stops and starts a private cluster, and checks that
//! heartbeats land in the right tenant and committed changes are published again.
//!
//! **Heartbeats** arrive on the enclave account through its imports; the tenant is the
//! subject's tenant root, which only that tenant's account can export (the server enforces
//! it). The component id in the payload only chooses *which of that tenant's* components
//! was seen; an unknown, revoked or wrong-kind component is counted and ignored.
//!
//! **Account JWTs reach the server** as pushes on `$SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE`
//! from a system-account user: every account after each (re)connection (a restarted server
//! with the MEMORY resolver only knows its configuration file), a tenant's account when one
//! of its components is revoked or its status changes (seen in the mutation or through the
//! tenant directory, so `enclave tenant suspend` and other instances count too), every
//! account when a tenant was dropped, and a new tenant's (with the enclave account's new
//! imports) at its first onboarding download.

pub mod accounts;
pub mod jwt;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::app::App;
use crate::changes::Change;
use crate::config::AuthConfig;
use crate::db;
use crate::schema::tenant::{edge_components, onboarding_packages};
use crate::tenancy::Installation;
use crate::tenancy::transaction::Access;
pub use accounts::{AccountJwt, NatsAuthority};

/// Changes waiting to be published, at most (see the module doc).
pub const OUTBOX_CAPACITY: usize = 10_000;

/// Events Enclave publishes, per tenant.
pub const PUBLISHED: [&str; 3] = ["alerts.changed", "events.created", "devices.changed"];
/// Heartbeats components publish, per tenant.
pub const HEARTBEATS: [&str; 2] = ["pollers.heartbeat", "agents.heartbeat"];

/// How subjects are named: `[<prefix>.]<slug>.<kind-plural>.<event>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subjects {
    prefix: Option<String>,
}

impl Subjects {
    /// Subjects under `prefix` (`ENCLAVE_NATS_PREFIX`), if any.
    pub fn new(prefix: Option<String>) -> Self {
        Self {
            prefix: prefix.filter(|p| !p.is_empty()),
        }
    }

    fn join(&self, rest: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("{prefix}.{rest}"),
            None => rest.to_owned(),
        }
    }

    /// The root of a tenant's subjects: `[<prefix>.]<slug>`.
    pub fn tenant_root(&self, slug: &str) -> String {
        self.join(slug)
    }

    /// `[<prefix>.]<slug>.<kind>`.
    pub fn tenant(&self, slug: &str, kind: &str) -> String {
        self.join(&format!("{slug}.{kind}"))
    }

    /// `[<prefix>.]*.<kind>`: `kind` of every tenant.
    pub fn any_tenant(&self, kind: &str) -> String {
        self.join(&format!("*.{kind}"))
    }

    /// The slug and kind (`pollers.heartbeat`, …) of a tenant subject.
    pub fn parse<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = match &self.prefix {
            Some(prefix) => subject.strip_prefix(prefix.as_str())?.strip_prefix('.')?,
            None => subject,
        };
        rest.split_once('.')
    }
}

/// Checks `ENCLAVE_NATS_PREFIX`: dot-separated tokens of letters, digits, `_` and `-`.
pub fn parse_prefix(raw: &str) -> Result<String, String> {
    let valid = !raw.is_empty()
        && raw.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "{raw:?} is not a NATS subject prefix: dot-separated tokens of letters, digits, '_' and '-'"
        ))
    }
}

/// Startup: when `ENCLAVE_NATS_URL` is set, loads (creating on first use) the operator and
/// its accounts, sealed with the edge key, and creates the accounts of tenants without one.
pub async fn prepare_if_configured(
    installation: &Installation,
    auth: &AuthConfig,
) -> anyhow::Result<Option<Arc<NatsAuthority>>> {
    if auth.nats.nats_url.is_none() {
        return Ok(None);
    }
    prepare(installation, auth).await.map(Some)
}

/// Loads the operator and accounts (see [`prepare_if_configured`]), whether or not a URL is
/// configured (`enclave nats config`).
pub async fn prepare(installation: &Installation, auth: &AuthConfig) -> anyhow::Result<Arc<NatsAuthority>> {
    let key = auth
        .edge_key()
        .context("cannot load the edge key, which seals the NATS keys")?;
    let mut conn = db::connect(&installation.database_url)
        .await
        .context("cannot connect to prepare the NATS accounts")?;
    let authority = NatsAuthority::load_or_init(&mut conn, key, Subjects::new(auth.nats.nats_prefix.clone()))
        .await
        .context("cannot load or create the NATS operator")?;
    authority
        .sync_accounts(&mut conn)
        .await
        .context("cannot create or sign the tenants' NATS accounts")?;
    Ok(Arc::new(authority))
}

/// Enclave's running NATS connections.
pub struct NatsLink {
    /// A user of the enclave account: publishes and receives heartbeats.
    pub client: async_nats::Client,
    /// A user of the system account: pushes account JWTs to the resolver.
    pub system: async_nats::Client,
    pub authority: Arc<NatsAuthority>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl NatsLink {
    /// Hands account JWTs to the server's resolver (`$SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE`,
    /// answered by the memory and the full resolver alike); returns how many it took.
    /// Failures are logged and counted; when the server does not answer at all the rest is
    /// left for the push that follows the next (re)connection.
    pub async fn push(&self, app: &App, accounts: &[AccountJwt]) -> usize {
        let mut pushed = 0;
        for account in accounts {
            let subject = format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.UPDATE", account.public_key);
            let answer = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                self.system.request(subject, account.jwt.clone().into()),
            )
            .await;
            let message = match answer {
                Ok(Ok(message)) => message,
                Ok(Err(error)) => {
                    app.requests.nats_push_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "NATS does not take account updates now; they are pushed again on reconnection");
                    break;
                }
                Err(_) => {
                    app.requests.nats_push_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "NATS did not answer an account update within 5 s; they are pushed again on reconnection"
                    );
                    break;
                }
            };
            let reply: serde_json::Value = serde_json::from_slice(&message.payload).unwrap_or_default();
            match reply.get("error") {
                None => pushed += 1,
                Some(error) => {
                    app.requests.nats_push_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(account = %account.public_key, %error, "NATS account update not applied");
                }
            }
        }
        pushed
    }

    /// Stops the publisher, the heartbeat listener and the other tasks of the link.
    pub fn stop(&self) {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for task in tasks.iter() {
            task.abort();
        }
    }

    /// Stops `task` with the link.
    fn track(&self, task: tokio::task::JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(task);
    }
}

impl Drop for NatsLink {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn connect(
    url: &str,
    creds: &str,
    name: &str,
    connected: Option<Arc<tokio::sync::Notify>>,
) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::with_credentials(creds)
        .context("bad NATS credentials")?
        .name(name)
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let connected = connected.clone();
            async move {
                if let (async_nats::Event::Connected, Some(connected)) = (event, connected) {
                    connected.notify_one();
                }
            }
        })
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))
}

/// Connects to `url` as the enclave account and the system account, pushes every account
/// JWT, and starts publishing committed changes and listening for heartbeats. The app's
/// change feed must be listening (`ChangeFeed::spawn_listener`) for anything to be
/// published.
pub async fn start(app: Arc<App>, url: &str) -> anyhow::Result<Arc<NatsLink>> {
    let authority = app
        .installation
        .nats
        .clone()
        .context("NATS is not prepared (ENCLAVE_NATS_URL)")?;
    // Every (re)connection of the system user re-pushes every account: a restarted server
    // with the MEMORY resolver knows only the JWTs of its configuration file.
    let connected = Arc::new(tokio::sync::Notify::new());
    connected.notify_one();
    let client = connect(url, &authority.enclave_creds()?, "enclave", None).await?;
    let system = connect(
        url,
        &authority.system_creds()?,
        "enclave-system",
        Some(connected.clone()),
    )
    .await?;
    let outbox = app.changes.tap(OUTBOX_CAPACITY);
    let mut heartbeats = Vec::new();
    for kind in HEARTBEATS {
        heartbeats.push(
            client
                .subscribe(authority.subjects().any_tenant(kind))
                .await
                .context("cannot subscribe to heartbeats")?,
        );
    }
    let link = NatsLink {
        client: client.clone(),
        system,
        authority: authority.clone(),
        tasks: std::sync::Mutex::new(Vec::new()),
    };
    if let Some(outbox) = outbox {
        link.track(tokio::spawn(publish_loop(
            app.clone(),
            client.clone(),
            authority.subjects().clone(),
            outbox,
        )));
    }
    link.track(tokio::spawn(follow_tenant_status(app.clone())));
    let subjects = authority.subjects().clone();
    let app_for_beats = app.clone();
    link.track(tokio::spawn(async move {
        let mut beats = futures_util::stream::select_all(heartbeats);
        while let Some(message) = beats.next().await {
            record_heartbeat(&app_for_beats, &subjects, &message.subject, &message.payload).await;
        }
    }));
    let link = Arc::new(link);
    if app.nats.set(link.clone()).is_err() {
        anyhow::bail!("NATS was started twice");
    }
    // Hands the server every account as signed now (new tenants, revocations) after each
    // (re)connection, without holding up the start when NATS is not reachable yet.
    let pushing = Arc::downgrade(&app);
    let push_task = tokio::spawn(async move {
        loop {
            connected.notified().await;
            let Some(app) = pushing.upgrade() else {
                return;
            };
            let accounts = async {
                let mut conn = db::connect(&app.installation.database_url).await?;
                authority
                    .sync_accounts(&mut conn)
                    .await
                    .map_err(anyhow::Error::from)
            }
            .await;
            match (accounts, app.nats.get()) {
                (Ok(accounts), Some(link)) => {
                    let pushed = link.push(&app, &accounts).await;
                    tracing::info!(pushed, "NATS accounts handed to the resolver");
                }
                (Err(error), _) => {
                    tracing::warn!(error = %format!("{error:#}"), "cannot sign the NATS accounts")
                }
                (Ok(_), None) => {}
            }
        }
    });
    link.track(push_task);
    tracing::info!(%url, "NATS connected: publishing committed changes, listening for heartbeats");
    Ok(link)
}

/// Re-signs and pushes a tenant's account whenever the tenant directory sees its status
/// change, whoever changed it (`enclave tenant suspend`, another instance, GraphQL), and
/// every account when a tenant is gone (`enclave tenant drop`: its account is disabled).
async fn follow_tenant_status(app: Arc<App>) {
    let statuses =
        |app: &App| -> std::collections::HashMap<uuid::Uuid, crate::tenancy::registry::TenantStatus> {
            app.directory.all().iter().map(|t| (t.id, t.status)).collect()
        };
    let mut reloaded = app.directory.reloaded();
    let mut known = statuses(&app);
    while reloaded.changed().await.is_ok() {
        let now = statuses(&app);
        if known.keys().any(|id| !now.contains_key(id)) {
            let pushed = async {
                let authority = app.installation.nats.clone().context("NATS is not prepared")?;
                let mut conn = db::connect(&app.installation.database_url).await?;
                let accounts = authority.sync_accounts(&mut conn).await?;
                if let Some(link) = app.nats.get() {
                    link.push(&app, &accounts).await;
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if let Err(error) = pushed {
                tracing::error!(error = %format!("{error:#}"), "cannot disable a dropped tenant's NATS account");
            }
        }
        for (id, status) in &now {
            if known.get(id).is_some_and(|before| before != status)
                && let Err(error) = tenant_status_changed(&app, *id).await
            {
                tracing::error!(tenant = %id, error = %format!("{error:#}"), "cannot update the tenant's NATS account");
            }
        }
        known = now;
    }
}

/// The subject kind, global-id type and tenant slug of a change Enclave publishes.
fn describe(change: &Change) -> Option<(&'static str, &'static str, &str)> {
    let slug = change.schema.strip_prefix("tenant_")?;
    let (kind, typename) = match change.table.as_str() {
        "alerts" => ("alerts.changed", "Alert"),
        "events" => ("events.created", "Event"),
        "devices" => ("devices.changed", "Device"),
        _ => return None,
    };
    Some((kind, typename, slug))
}

/// The payload published for `change` (see the module doc).
pub fn payload(change: &Change) -> Option<(String, serde_json::Value)> {
    let (kind, typename, slug) = describe(change)?;
    let id = crate::resolvers::ids::encode(typename, change.id);
    Some((
        kind.to_owned(),
        serde_json::json!({ "id": id.as_str(), "type": typename, "tenant": slug }),
    ))
}

async fn publish_loop(
    app: Arc<App>,
    client: async_nats::Client,
    subjects: Subjects,
    mut outbox: mpsc::Receiver<Change>,
) {
    while let Some(change) = outbox.recv().await {
        let Some((kind, body)) = payload(&change) else {
            continue;
        };
        let Some((_, _, slug)) = describe(&change) else {
            continue;
        };
        let subject = subjects.tenant(slug, &kind);
        match client.publish(subject.clone(), body.to_string().into()).await {
            Ok(()) => {
                app.requests.nats_published.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                app.requests.nats_publish_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%subject, %error, "NATS publish failed; the change is not delivered");
            }
        }
    }
}

/// A heartbeat's payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeartbeatMessage {
    component_id: String,
}

/// Records a heartbeat on `subject` in the subject's tenant (see the module doc).
async fn record_heartbeat(app: &App, subjects: &Subjects, subject: &str, payload: &[u8]) {
    let refused = |reason: &str| {
        app.requests
            .nats_heartbeats_refused
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(%subject, reason, "NATS heartbeat ignored");
    };
    let Some((slug, kind)) = subjects.parse(subject) else {
        return refused("not a tenant subject");
    };
    let component_kind = match kind {
        "pollers.heartbeat" => "poller",
        "agents.heartbeat" => "agent",
        _ => return refused("not a heartbeat subject"),
    };
    let Some(tenant) = app.directory.by_slug(slug).filter(|t| t.is_active()) else {
        return refused("unknown or suspended tenant");
    };
    let Ok(beat) = serde_json::from_slice::<HeartbeatMessage>(payload) else {
        return refused("unreadable payload");
    };
    let tx = app.tenant_tx(tenant, Access::ReadWrite, None);
    let outcome = async {
        let mut conn = tx.conn().await?;
        let packages: Vec<Option<uuid::Uuid>> = diesel::update(
            edge_components::table
                .filter(edge_components::component_id.eq(&beat.component_id))
                .filter(edge_components::kind.eq(component_kind))
                .filter(edge_components::revoked_at.is_null()),
        )
        .set(edge_components::last_seen.eq(diesel::dsl::now))
        .returning(edge_components::onboarding_package_id)
        .get_results(&mut conn)
        .await?;
        // A component's first heartbeat activates its package, as its first edge request does.
        for package in packages.iter().flatten() {
            let activated = diesel::update(
                onboarding_packages::table
                    .find(package)
                    .filter(onboarding_packages::status.eq("delivered")),
            )
            .set((
                onboarding_packages::status.eq("activated"),
                onboarding_packages::activated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await?;
            if activated > 0 {
                crate::edge::onboarding::record_event(
                    conn.pg(),
                    *package,
                    "activated",
                    "first NATS heartbeat",
                )
                .await?;
            }
        }
        Ok::<_, crate::tenancy::transaction::TxError>(packages.len())
    }
    .await;
    match outcome {
        Ok(updated) => {
            if let Err(error) = tx.finish(true).await {
                tracing::warn!(%error, "cannot record a NATS heartbeat");
            } else if updated == 0 {
                refused("unknown, revoked or other-kind component");
            } else {
                app.requests.nats_heartbeats.fetch_add(1, Ordering::Relaxed);
            }
        }
        Err(error) => {
            let _ = tx.finish(false).await;
            tracing::warn!(%error, "cannot record a NATS heartbeat");
        }
    }
}

/// Revokes NATS users of tenant `tenant_id` (e.g. of a revoked edge component): re-signs
/// the tenant's account with them in its revocations and, when connected, pushes it. A
/// push that fails is logged and counted; the stored JWT is pushed again at the next start.
/// On a server without NATS configured the revocations are only stored, and signed in when
/// NATS is configured again.
pub async fn revoke_users(app: &App, tenant_id: uuid::Uuid, users: &[String]) -> anyhow::Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let mut conn = db::connect(&app.installation.database_url).await?;
    let Some(authority) = app.installation.nats.clone() else {
        accounts::record_revocations(&mut conn, tenant_id, users).await?;
        return Ok(());
    };
    let account = authority.revoke_users(&mut conn, tenant_id, users).await?;
    if let Some(link) = app.nats.get() {
        link.push(app, &[account]).await;
    }
    Ok(())
}

/// Re-signs tenant `tenant_id`'s account after its status changed (a suspended tenant's
/// account revokes every user) and pushes it when connected.
pub async fn tenant_status_changed(app: &App, tenant_id: uuid::Uuid) -> anyhow::Result<()> {
    let Some(authority) = app.installation.nats.clone() else {
        return Ok(());
    };
    let mut conn = db::connect(&app.installation.database_url).await?;
    let account = authority.resign_tenant(&mut conn, tenant_id).await?;
    if let Some(link) = app.nats.get() {
        link.push(app, &[account]).await;
    }
    Ok(())
}

/// NATS credentials for a component of tenant `tenant_id` (see [`NatsAuthority::issue_tenant_user`]);
/// a tenant created since the last sync gets its account first (pushed when connected).
pub async fn issue_component_user(
    app: &App,
    tenant_id: uuid::Uuid,
    slug: &str,
    name: &str,
    expires: Option<i64>,
) -> anyhow::Result<Option<accounts::IssuedUser>> {
    let Some(authority) = app.installation.nats.clone() else {
        return Ok(None);
    };
    let mut conn = db::connect(&app.installation.database_url).await?;
    match authority
        .issue_tenant_user(&mut conn, tenant_id, slug, name, expires)
        .await
    {
        Err(accounts::AccountError::NoTenantAccount(_)) => {
            let accounts = authority.sync_accounts(&mut conn).await?;
            if let Some(link) = app.nats.get() {
                link.push(app, &accounts).await;
            }
            Ok(Some(
                authority
                    .issue_tenant_user(&mut conn, tenant_id, slug, name, expires)
                    .await?,
            ))
        }
        other => Ok(Some(other?)),
    }
}

/// The configuration of NATS, for `enclave nats config`.
pub async fn server_config(
    installation: &Installation,
    auth: &AuthConfig,
    resolver_dir: Option<&str>,
) -> anyhow::Result<String> {
    let authority = prepare(installation, auth).await?;
    let mut conn = db::connect(&installation.database_url).await?;
    Ok(authority.server_config(&mut conn, resolver_dir).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_carry_the_prefix_and_parse_back() {
        let plain = Subjects::new(None);
        assert_eq!(plain.tenant("acme", "alerts.changed"), "acme.alerts.changed");
        assert_eq!(plain.any_tenant("pollers.heartbeat"), "*.pollers.heartbeat");
        assert_eq!(
            plain.parse("acme.pollers.heartbeat"),
            Some(("acme", "pollers.heartbeat"))
        );
        let prefixed = Subjects::new(Some("prod.eu".into()));
        assert_eq!(prefixed.tenant_root("acme"), "prod.eu.acme");
        assert_eq!(
            prefixed.parse("prod.eu.acme.agents.heartbeat"),
            Some(("acme", "agents.heartbeat"))
        );
        assert_eq!(prefixed.parse("acme.agents.heartbeat"), None);
        assert!(parse_prefix("prod.eu-1").is_ok());
        for bad in ["", "a..b", "a.*", "a.>", "a b"] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn payloads_carry_global_ids_of_the_tenant_only() {
        let id = uuid::Uuid::new_v4();
        let change = Change {
            schema: "tenant_acme".into(),
            table: "alerts".into(),
            id,
        };
        let (kind, body) = payload(&change).expect("published");
        assert_eq!(kind, "alerts.changed");
        assert_eq!(body["tenant"], "acme");
        assert_eq!(
            crate::resolvers::ids::decode_any(&async_graphql::ID(
                body["id"].as_str().expect("id").to_owned()
            )),
            Some(("Alert".to_owned(), id))
        );
        let other = Change {
            table: "users".into(),
            ..change
        };
        assert!(payload(&other).is_none());
    }
}
