//! `enclave demo`: two sample tenants with a few hundred devices each (interfaces, groups,
//! partitions, alerts, events, CPU metrics), an admin per tenant with a printed token, then
//! the server. Idempotent: an existing demo tenant is reused, not seeded twice. A tenant
//! of a demo slug that an earlier demo did not make (its name or vanity domain differ) is
//! left alone unless `--force`: the demo never seeds sample devices into real data.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

use crate::app::App;
use crate::auth::users::{self, NewUser};
use crate::auth::{Role, sessions};
use crate::db;
use crate::tenancy::directory::TenantEntry;
use crate::tenancy::provision::{self, NewTenant, TenancyError};
use crate::tenancy::transaction::Access;

/// The demo tenants: slug, display name, number of devices.
const TENANTS: &[(&str, &str, u32)] = &[
    ("acme", "Acme Networks", 300),
    ("globex", "Globex Corporation", 240),
];

/// Lifetime of the printed tokens.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// What the demo prints for one tenant.
pub struct DemoTenant {
    pub slug: String,
    pub admin_email: String,
    /// The admin's password when this run created the admin (`None`: an earlier run did,
    /// with the password it printed then).
    pub admin_password: Option<String>,
    pub token: String,
    /// A one-time onboarding download token for a demo agent (when the edge is on).
    pub onboarding_token: Option<String>,
}

/// How `enclave demo` treats what it finds.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Seed a tenant of a demo slug even when an earlier demo did not make it.
    pub force: bool,
    /// Password of the admins it creates (`ENCLAVE_ADMIN_PASSWORD`); random when `None`.
    pub admin_password: Option<String>,
}

/// Provisions and seeds the demo tenants (if missing) and mints a token for each admin.
pub async fn prepare(app: &App, options: &Options) -> anyhow::Result<Vec<DemoTenant>> {
    let mut conn = db::connect(&app.installation.database_url).await?;
    if !options.force {
        for (slug, name, _) in TENANTS {
            refuse_foreign_tenant(&mut conn, slug, name).await?;
        }
    }
    let password = match &options.admin_password {
        Some(password) => password.clone(),
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    crate::auth::password::hash_new(&password).map_err(|e| anyhow::anyhow!("ENCLAVE_ADMIN_PASSWORD: {e}"))?;
    let mut out = Vec::new();
    for (slug, name, devices) in TENANTS {
        let (entry, created_admin) = ensure_tenant(app, slug, name, *devices, &password).await?;
        let email = format!("admin@{slug}.example");
        let tx = app.tenant_tx(entry.clone(), Access::ReadOnly, None);
        let user = {
            let mut conn = tx.conn().await?;
            users::find_by_email(conn.pg(), &email).await?
        };
        tx.finish(true).await?;
        let user = user.ok_or_else(|| anyhow::anyhow!("demo tenant {slug} has no user {email}"))?;
        let (token, _) = sessions::start(app, &entry, &user, TOKEN_TTL).await?;
        let onboarding_token = match app.installation.edge {
            Some(_) => Some(onboarding_package(app, &entry, user.id).await?),
            None => None,
        };
        out.push(DemoTenant {
            slug: (*slug).to_owned(),
            admin_email: email,
            admin_password: created_admin.then(|| password.clone()),
            token,
            onboarding_token,
        });
    }
    Ok(out)
}

/// A new onboarding package for a demo agent at the tenant's "demo site" edge site
/// (created when missing); returns its download token.
async fn onboarding_package(
    app: &App,
    entry: &Arc<TenantEntry>,
    admin: uuid::Uuid,
) -> anyhow::Result<String> {
    use crate::edge::ca::ComponentKind;
    use crate::schema::tenant::edge_sites;
    let tx = app.tenant_tx(entry.clone(), Access::ReadWrite, None);
    let created = async {
        let mut conn = tx.conn().await?;
        let site: Option<uuid::Uuid> = edge_sites::table
            .filter(edge_sites::name.eq("demo site"))
            .select(edge_sites::id)
            .first(&mut conn)
            .await
            .optional()?;
        let site = match site {
            Some(site) => site,
            None => {
                diesel::insert_into(edge_sites::table)
                    .values((edge_sites::name.eq("demo site"), edge_sites::location.eq("demo")))
                    .returning(edge_sites::id)
                    .get_result(&mut conn)
                    .await?
            }
        };
        let package = crate::edge::onboarding::create_package(
            app,
            entry,
            conn.pg(),
            site,
            ComponentKind::Agent,
            "demo agent",
            Some(admin),
        )
        .await?;
        Ok::<_, anyhow::Error>(package.token)
    }
    .await;
    tx.finish(created.is_ok()).await?;
    created
}

/// Refuses an existing tenant `slug` unless an earlier demo made it: same display name and
/// the demo's vanity domain `<slug>.localhost` (what a demo run sets when it provisions,
/// before anything else, so a run that died half-way is still recognised and completed).
async fn refuse_foreign_tenant(
    conn: &mut diesel_async::AsyncPgConnection,
    slug: &str,
    name: &str,
) -> anyhow::Result<()> {
    use crate::schema::public::{tenant_domains, tenants};
    let existing: Option<(uuid::Uuid, String)> = tenants::table
        .filter(tenants::slug.eq(slug))
        .select((tenants::id, tenants::name))
        .first(conn)
        .await
        .optional()?;
    let Some((id, existing_name)) = existing else {
        return Ok(());
    };
    let demo_domain: i64 = tenant_domains::table
        .filter(tenant_domains::tenant_id.eq(id))
        .filter(tenant_domains::domain.eq(format!("{slug}.localhost")))
        .count()
        .get_result(conn)
        .await?;
    if existing_name == name && demo_domain > 0 {
        return Ok(());
    }
    anyhow::bail!(
        "this database already has a tenant {slug} ({existing_name:?}) that no earlier demo created; \
         the demo would add its sample devices and admin to it. Use another database (DATABASE_URL=…/enclave_demo) \
         or pass --force to seed it anyway"
    )
}

/// Provisions (when missing) and seeds one demo tenant; also says whether this run
/// created its admin (with `password`).
async fn ensure_tenant(
    app: &App,
    slug: &str,
    name: &str,
    devices: u32,
    password: &str,
) -> anyhow::Result<(Arc<TenantEntry>, bool)> {
    let mut conn = db::connect(&app.installation.database_url).await?;
    let new = NewTenant {
        slug: provision::parse_new_slug(slug)?,
        name: name.to_owned(),
        domains: vec![format!("{slug}.localhost")],
    };
    match provision::create_tenant(&mut conn, &app.installation, &new).await {
        Ok(_) | Err(TenancyError::AlreadyExists(_)) => {}
        Err(error) => return Err(error.into()),
    }
    app.directory.reload(&mut conn).await?;
    let entry = app
        .directory
        .by_slug(slug)
        .ok_or_else(|| anyhow::anyhow!("demo tenant {slug} missing after provisioning"))?;
    // Data and admin are each created when missing, so a run that died half-way is completed.
    let tx = app.tenant_tx(entry.clone(), Access::ReadOnly, None);
    let (has_data, has_admin) = {
        let mut conn = tx.conn().await?;
        let devices: i64 = crate::schema::tenant::devices::table
            .count()
            .get_result(&mut conn)
            .await?;
        let admin = users::find_by_email(conn.pg(), &format!("admin@{slug}.example")).await?;
        (devices > 0, admin.is_some())
    };
    tx.finish(true).await?;
    if !has_data {
        let tx = app.tenant_tx(entry.clone(), Access::ReadWrite, None);
        {
            let mut conn = tx.conn().await?;
            conn.batch_execute(&seed_sql(slug, devices, DeviceIds::Random))
                .await?;
        }
        tx.finish(true).await?;
        tracing::info!(tenant = slug, devices, "seeded demo tenant");
    }
    if !has_admin {
        let admin = NewUser {
            email: format!("admin@{slug}.example"),
            display_name: format!("{name} admin"),
            role: Role::Admin,
            password: password.to_owned(),
        };
        users::add_to_tenant(&mut conn, &entry, &admin).await?;
    }
    Ok((entry, !has_admin))
}

/// How sample devices get their ids.
#[derive(Debug, Clone, Copy)]
pub enum DeviceIds {
    /// Random, as in real life.
    Random,
    /// Device `i` (from 1) gets `00000000-0000-4000-8000-<i as 12 decimal digits>` in every
    /// tenant, so that the benchmarks' pgbench reference can address the same rows.
    Numbered,
}

impl DeviceIds {
    fn sql(self) -> &'static str {
        match self {
            Self::Random => "gen_random_uuid()",
            Self::Numbered => "('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid",
        }
    }
}

/// Sample data for one tenant (at most 999 devices, so host names sort by number); runs
/// inside its tenant transaction. `slug` is a validated slug (letters, digits, `_`), so it
/// is safe inside the SQL text.
pub fn seed_sql(slug: &str, devices: u32, ids: DeviceIds) -> String {
    let device_id = ids.sql();
    format!(
        r#"
INSERT INTO partitions (name, description, cidrs) VALUES
  ('default', 'Main routing domain', '{{10.0.0.0/16}}'),
  ('dmz', 'Internet-facing services', '{{192.168.100.0/24}}');
INSERT INTO device_groups (name, description) VALUES
  ('core', 'Core routers'), ('access', 'Access switches'), ('servers', 'Servers');
INSERT INTO devices (id, hostname, ip, mac, vendor, model, os, status, group_id, partition_id, first_seen, last_seen)
SELECT {device_id}, format('{slug}-%s-%s', (ARRAY['sw', 'rtr', 'srv'])[1 + i % 3], lpad(i::text, 3, '0')),
       ('10.0.' || (i / 250) || '.' || (i % 250 + 1))::inet,
       lpad(to_hex(i), 12, '0')::macaddr,
       (ARRAY['Juniper', 'Arista', 'Dell'])[1 + i % 3],
       (ARRAY['MX204', '7050X3', 'R650'])[1 + i % 3],
       (ARRAY['Junos 23.4', 'EOS 4.31', 'Ubuntu 24.04'])[1 + i % 3],
       (ARRAY['up', 'up', 'up', 'up', 'down', 'maintenance', 'unknown'])[1 + i % 7],
       (SELECT id FROM device_groups ORDER BY name OFFSET (i % 3) LIMIT 1),
       (SELECT id FROM partitions WHERE name = CASE WHEN i % 10 = 0 THEN 'dmz' ELSE 'default' END),
       now() - interval '90 days' + i * interval '1 hour',
       now() - (i % 60) * interval '1 minute'
FROM generate_series(1, {devices}) AS i;
INSERT INTO interfaces (device_id, name, if_index, mac, addresses, speed_bps, admin_status, oper_status, description)
SELECT d.id, 'eth' || n, n + 1, d.mac, ARRAY[(host(d.ip) || '/24')::inet], 10000000000,
       'up', CASE WHEN n = 2 AND d.status = 'down' THEN 'down' ELSE 'up' END, 'uplink ' || n
FROM devices d CROSS JOIN generate_series(0, 2) AS n;
INSERT INTO device_identifiers (device_id, kind, value, source)
SELECT id, 'serial', upper('{slug}') || '-' || substr(md5(hostname), 1, 10), 'demo' FROM devices;
INSERT INTO alerts (device_id, severity, status, source, title, message, triggered_at)
SELECT d.id, (ARRAY['warning', 'minor', 'major', 'critical'])[1 + (row_number() OVER ()) % 4],
       (ARRAY['open', 'open', 'acknowledged', 'resolved'])[1 + (row_number() OVER ()) % 4],
       'icmp-checker', 'Device ' || d.hostname || ' is unreachable', 'No ICMP reply for 5 minutes',
       now() - (row_number() OVER ()) * interval '7 minutes'
FROM devices d WHERE d.status <> 'up';
INSERT INTO events (device_id, kind, severity, source, message, occurred_at)
SELECT d.id, (ARRAY['link_down', 'link_up', 'config_changed', 'reboot'])[1 + (k + ascii(d.hostname)) % 4],
       (ARRAY['info', 'warning', 'minor'])[1 + k % 3], 'syslog', d.hostname || ' event ' || k,
       now() - k * interval '13 minutes'
FROM devices d CROSS JOIN generate_series(1, 5) AS k;
INSERT INTO cpu_metrics (device_id, ts, usage_percent)
SELECT d.id, date_trunc('minute', now()) - m * interval '5 minutes', 20 + 60 * abs(sin(m / 12.0 + ascii(d.hostname)))
FROM (SELECT id, hostname FROM devices ORDER BY hostname LIMIT 20) d CROSS JOIN generate_series(0, 287) AS m;
INSERT INTO memory_metrics (device_id, ts, used_bytes, total_bytes)
SELECT d.id, date_trunc('minute', now()) - m * interval '5 minutes', (8 + 4 * abs(cos(m / 20.0))) * 1e9, 16e9
FROM (SELECT id FROM devices ORDER BY hostname LIMIT 20) d CROSS JOIN generate_series(0, 287) AS m;
INSERT INTO gateways (name, address, version, status, partition_id, last_seen)
SELECT '{slug}-gw-' || g, 'gw' || g || '.{slug}.example:4222', '1.4.2', 'online',
       (SELECT id FROM partitions WHERE name = 'default'), now() - g * interval '10 seconds'
FROM generate_series(1, 2) AS g;
INSERT INTO agents (name, gateway_id, device_id, version, status, capabilities, last_seen)
SELECT '{slug}-agent-' || a, (SELECT id FROM gateways ORDER BY name OFFSET (a % 2) LIMIT 1),
       (SELECT id FROM devices WHERE hostname LIKE '%srv%' ORDER BY hostname OFFSET a LIMIT 1),
       '1.4.2', (ARRAY['online', 'online', 'degraded'])[1 + a % 3], ARRAY['icmp', 'snmp', 'otel'], now()
FROM generate_series(1, 6) AS a;
INSERT INTO checkers (agent_id, name, kind) SELECT id, 'icmp', 'icmp' FROM agents;
INSERT INTO service_checks (name, kind, target, agent_id, device_id, last_status, last_checked_at)
SELECT 'ping', 'icmp', host(d.ip), (SELECT id FROM agents ORDER BY name LIMIT 1), d.id,
       CASE WHEN d.status = 'down' THEN 'critical' ELSE 'ok' END, now()
FROM devices d WHERE d.hostname LIKE '%rtr%';
INSERT INTO polling_schedules (name, target, agent_id, interval_seconds, next_run_at)
VALUES ('snmp-core', '10.0.0.0/24', (SELECT id FROM agents ORDER BY name LIMIT 1), 300, now() + interval '5 minutes');
INSERT INTO integration_sources (name, kind, config) VALUES ('netbox', 'netbox', '{{"url": "https://netbox.{slug}.example"}}');
INSERT INTO edge_sites (name, location, status) VALUES ('{slug}-branch-1', 'Lyon', 'online');
INSERT INTO health_events (source_kind, source_id, status, message, occurred_at)
SELECT 'agent', id, status_to_health, 'heartbeat', now() - interval '1 minute'
FROM (SELECT id, CASE status WHEN 'degraded' THEN 'degraded' ELSE 'healthy' END AS status_to_health FROM agents) a;
INSERT INTO logs (device_id, ts, severity, source, message)
SELECT d.id, now() - k * interval '3 minutes', (ARRAY['info', 'warn', 'error'])[1 + k % 3], 'syslog',
       d.hostname || ': interface eth' || (k % 3) || ' changed state'
FROM (SELECT id, hostname FROM devices ORDER BY hostname LIMIT 50) d CROSS JOIN generate_series(1, 10) AS k;
"#
    )
}
