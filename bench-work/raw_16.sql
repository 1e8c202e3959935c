CREATE SCHEMA raw_16;
CREATE ROLE "enclave_3afc299dce_raw_16" NOLOGIN NOINHERIT; GRANT "enclave_3afc299dce_raw_16" TO CURRENT_USER; GRANT USAGE ON SCHEMA "raw_16" TO "enclave_3afc299dce_raw_16";
SET search_path TO raw_16;
-- Identity of one tenant. Runs with search_path set to the tenant's schema only:
-- names are unqualified and nothing here may reference `public`.

CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email          text NOT NULL UNIQUE CHECK (email = lower(email) AND position('@' IN email) > 1),
    display_name   text NOT NULL DEFAULT '',
    password_hash  text,
    role           text NOT NULL DEFAULT 'viewer'
                   CHECK (role IN ('viewer', 'operator', 'admin', 'platform_admin')),
    disabled       boolean NOT NULL DEFAULT false,
    last_login_at  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Long-lived tokens for automation. The secret is never stored; revocation is by id.
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin', 'platform_admin')),
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_created_by ON api_tokens (created_by);

-- User sessions issued by login; `logout` sets revoked_at.
CREATE TABLE tokens (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    impersonator   text,
    user_agent     text,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tokens_user_id ON tokens (user_id);
;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "raw_16" TO "enclave_3afc299dce_raw_16"; GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "raw_16" TO "enclave_3afc299dce_raw_16";
-- Device inventory of one tenant: groups, devices, their identifiers and interfaces,
-- alias history and the audit of merges.

CREATE TABLE device_groups (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    hostname    text NOT NULL CHECK (length(hostname) BETWEEN 1 AND 255),
    ip          inet,
    mac         macaddr,
    vendor      text,
    model       text,
    os          text,
    status      text NOT NULL DEFAULT 'unknown'
                CHECK (status IN ('up', 'down', 'unknown', 'maintenance')),
    group_id    uuid REFERENCES device_groups (id) ON DELETE SET NULL,
    first_seen  timestamptz,
    last_seen   timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_group_id ON devices (group_id);
CREATE INDEX devices_status ON devices (status);
CREATE INDEX devices_hostname ON devices (lower(hostname) text_pattern_ops);
CREATE INDEX devices_ip ON devices USING gist (ip inet_ops);

-- Stable identities that let discovery recognise a device again (serial, MAC, agent id...).
CREATE TABLE device_identifiers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_id   uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind        text NOT NULL
                CHECK (kind IN ('serial', 'mac', 'ip', 'hostname', 'agent_id', 'snmp_engine_id', 'cloud_id')),
    value       text NOT NULL CHECK (length(value) BETWEEN 1 AND 512),
    source      text NOT NULL DEFAULT 'manual',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, value)
);
CREATE INDEX device_identifiers_device_id ON device_identifiers (device_id);

CREATE TABLE device_alias_states (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_id    uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    alias_kind   text NOT NULL CHECK (alias_kind IN ('hostname', 'ip', 'mac')),
    alias_value  text NOT NULL,
    state        text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'stale', 'archived')),
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, alias_kind, alias_value)
);

CREATE TABLE interfaces (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_id    uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    if_index     integer CHECK (if_index >= 0),
    mac          macaddr,
    addresses    inet[] NOT NULL DEFAULT '{}',
    speed_bps    bigint CHECK (speed_bps >= 0),
    admin_status text NOT NULL DEFAULT 'up' CHECK (admin_status IN ('up', 'down', 'testing')),
    oper_status  text NOT NULL DEFAULT 'unknown'
                 CHECK (oper_status IN ('up', 'down', 'testing', 'unknown', 'dormant', 'not_present', 'lower_layer_down')),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, name)
);

-- The merged device is deleted by a merge, so it is kept as a snapshot, not a reference.
CREATE TABLE merge_audits (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    primary_device_id  uuid REFERENCES devices (id) ON DELETE SET NULL,
    merged_device_id   uuid NOT NULL,
    merged_snapshot    jsonb NOT NULL,
    merged_by          uuid REFERENCES users (id) ON DELETE SET NULL,
    reason             text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merge_audits_primary_device_id ON merge_audits (primary_device_id);
CREATE INDEX merge_audits_merged_by ON merge_audits (merged_by);
;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "raw_16" TO "enclave_3afc299dce_raw_16"; GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "raw_16" TO "enclave_3afc299dce_raw_16";
-- The rest of a tenant's resources: infrastructure (partitions, gateways, agents, checkers),
-- integrations, monitoring (checks, schedules, alerts, events), the tenant job queue, edge
-- onboarding and observability time series. Unqualified names; nothing references public.

CREATE TABLE partitions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    cidrs       cidr[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE devices ADD COLUMN partition_id uuid REFERENCES partitions (id) ON DELETE SET NULL;
CREATE INDEX devices_partition_id ON devices (partition_id);
CREATE INDEX devices_last_seen ON devices (last_seen, id);
CREATE INDEX devices_hostname_id ON devices (hostname, id);
CREATE INDEX interfaces_name_id ON interfaces (name, id);

CREATE TABLE gateways (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    partition_id  uuid REFERENCES partitions (id) ON DELETE SET NULL,
    address       text NOT NULL DEFAULT '',
    version       text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'unknown' CHECK (status IN ('online', 'offline', 'degraded', 'unknown')),
    last_seen     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gateways_partition_id ON gateways (partition_id);

CREATE TABLE agents (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    gateway_id    uuid REFERENCES gateways (id) ON DELETE SET NULL,
    device_id     uuid REFERENCES devices (id) ON DELETE SET NULL,
    version       text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'unknown' CHECK (status IN ('online', 'offline', 'degraded', 'unknown')),
    capabilities  text[] NOT NULL DEFAULT '{}',
    last_seen     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_gateway_id ON agents (gateway_id);
CREATE INDEX agents_device_id ON agents (device_id);

CREATE TABLE checkers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id    uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind        text NOT NULL CHECK (kind IN ('icmp', 'tcp', 'http', 'snmp', 'dns', 'process', 'grpc')),
    config      jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent_id, name)
);

-- Health reports of agents, gateways, checkers and devices (polymorphic source, no FK).
CREATE TABLE health_events (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    source_kind  text NOT NULL CHECK (source_kind IN ('agent', 'gateway', 'checker', 'device')),
    source_id    uuid NOT NULL,
    status       text NOT NULL CHECK (status IN ('healthy', 'degraded', 'unhealthy', 'unknown')),
    message      text NOT NULL DEFAULT '',
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX health_events_source ON health_events (source_kind, source_id, occurred_at DESC);
CREATE INDEX health_events_occurred_at ON health_events (occurred_at, id);

CREATE TABLE integration_sources (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    kind          text NOT NULL CHECK (kind IN ('netbox', 'armis', 'snmp_discovery', 'sweep', 'csv', 'api')),
    partition_id  uuid REFERENCES partitions (id) ON DELETE SET NULL,
    config        jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled       boolean NOT NULL DEFAULT true,
    last_sync_at  timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX integration_sources_partition_id ON integration_sources (partition_id);

CREATE TABLE service_checks (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind              text NOT NULL CHECK (kind IN ('icmp', 'tcp', 'http', 'snmp', 'dns', 'process', 'grpc')),
    target            text NOT NULL CHECK (length(target) BETWEEN 1 AND 2048),
    agent_id          uuid REFERENCES agents (id) ON DELETE SET NULL,
    device_id         uuid REFERENCES devices (id) ON DELETE CASCADE,
    interval_seconds  integer NOT NULL DEFAULT 60 CHECK (interval_seconds BETWEEN 5 AND 86400),
    timeout_ms        integer NOT NULL DEFAULT 5000 CHECK (timeout_ms BETWEEN 100 AND 600000),
    enabled           boolean NOT NULL DEFAULT true,
    last_status       text NOT NULL DEFAULT 'unknown' CHECK (last_status IN ('ok', 'warning', 'critical', 'unknown')),
    last_checked_at   timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (device_id, name)
);
CREATE INDEX service_checks_agent_id ON service_checks (agent_id);

CREATE TABLE polling_schedules (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    target            text NOT NULL CHECK (length(target) BETWEEN 1 AND 2048),
    agent_id          uuid REFERENCES agents (id) ON DELETE SET NULL,
    interval_seconds  integer NOT NULL DEFAULT 300 CHECK (interval_seconds BETWEEN 5 AND 86400),
    enabled           boolean NOT NULL DEFAULT true,
    last_run_at       timestamptz,
    next_run_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX polling_schedules_agent_id ON polling_schedules (agent_id);
CREATE INDEX polling_schedules_due ON polling_schedules (next_run_at) WHERE enabled;

CREATE TABLE poll_jobs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    schedule_id  uuid NOT NULL REFERENCES polling_schedules (id) ON DELETE CASCADE,
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    started_at   timestamptz,
    finished_at  timestamptz,
    result       jsonb,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX poll_jobs_schedule_id ON poll_jobs (schedule_id, created_at DESC);

CREATE TABLE alerts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_id        uuid REFERENCES devices (id) ON DELETE SET NULL,
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'minor', 'major', 'critical')),
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    source           text NOT NULL DEFAULT '',
    title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    message          text NOT NULL DEFAULT '',
    triggered_at     timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    resolved_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_device_id ON alerts (device_id, status);
CREATE INDEX alerts_status_severity ON alerts (status, severity, triggered_at DESC);
CREATE INDEX alerts_triggered_at ON alerts (triggered_at, id);
CREATE INDEX alerts_acknowledged_by ON alerts (acknowledged_by);

CREATE TABLE events (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_id    uuid REFERENCES devices (id) ON DELETE SET NULL,
    kind         text NOT NULL CHECK (length(kind) BETWEEN 1 AND 200),
    severity     text NOT NULL DEFAULT 'info' CHECK (severity IN ('info', 'warning', 'minor', 'major', 'critical')),
    source       text NOT NULL DEFAULT '',
    message      text NOT NULL DEFAULT '',
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_occurred_at ON events (occurred_at, id);
CREATE INDEX events_device_id ON events (device_id, occurred_at DESC);

CREATE TABLE job_schedules (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    kind         text NOT NULL,
    cron         text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled      boolean NOT NULL DEFAULT true,
    last_run_at  timestamptz,
    next_run_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The tenant's job queue (workers take rows with FOR UPDATE SKIP LOCKED).
CREATE TABLE jobs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    schedule_id  uuid REFERENCES job_schedules (id) ON DELETE SET NULL,
    kind         text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_after    timestamptz NOT NULL DEFAULT now(),
    locked_at    timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_runnable ON jobs (run_after) WHERE status = 'queued';
CREATE INDEX jobs_schedule_id ON jobs (schedule_id);

CREATE TABLE edge_sites (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    partition_id  uuid REFERENCES partitions (id) ON DELETE SET NULL,
    location      text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'online', 'offline')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX edge_sites_partition_id ON edge_sites (partition_id);

-- The tenant's own certificate authority for mTLS; private keys are referenced, never stored.
CREATE TABLE tenant_cas (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name             text NOT NULL UNIQUE,
    certificate_pem  text NOT NULL,
    private_key_ref  text NOT NULL,
    not_before       timestamptz NOT NULL,
    not_after        timestamptz NOT NULL CHECK (not_after > not_before),
    revoked_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE collector_packages (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL,
    version       text NOT NULL,
    platform      text NOT NULL CHECK (platform IN ('linux-amd64', 'linux-arm64', 'windows-amd64', 'darwin-arm64')),
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    artifact_ref  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version, platform)
);

CREATE TABLE onboarding_packages (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    edge_site_id          uuid NOT NULL REFERENCES edge_sites (id) ON DELETE CASCADE,
    collector_package_id  uuid REFERENCES collector_packages (id) ON DELETE SET NULL,
    token_hash            text NOT NULL UNIQUE,
    status                text NOT NULL DEFAULT 'issued'
                          CHECK (status IN ('issued', 'delivered', 'activated', 'expired', 'revoked')),
    expires_at            timestamptz NOT NULL,
    activated_at          timestamptz,
    created_by            uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX onboarding_packages_edge_site_id ON onboarding_packages (edge_site_id);
CREATE INDEX onboarding_packages_collector_package_id ON onboarding_packages (collector_package_id);
CREATE INDEX onboarding_packages_created_by ON onboarding_packages (created_by);

CREATE TABLE onboarding_events (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    onboarding_package_id  uuid NOT NULL REFERENCES onboarding_packages (id) ON DELETE CASCADE,
    event                  text NOT NULL CHECK (event IN ('issued', 'downloaded', 'activated', 'failed', 'revoked')),
    detail                 text NOT NULL DEFAULT '',
    occurred_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX onboarding_events_package ON onboarding_events (onboarding_package_id, occurred_at);

CREATE TABLE nats_leaf_servers (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    edge_site_id  uuid NOT NULL REFERENCES edge_sites (id) ON DELETE CASCADE,
    name          text NOT NULL,
    url           text NOT NULL,
    status        text NOT NULL DEFAULT 'unknown' CHECK (status IN ('online', 'offline', 'unknown')),
    last_seen     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (edge_site_id, name)
);

CREATE TABLE nats_credentials (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    edge_site_id     uuid NOT NULL REFERENCES edge_sites (id) ON DELETE CASCADE,
    agent_id         uuid REFERENCES agents (id) ON DELETE SET NULL,
    user_public_key  text NOT NULL UNIQUE,
    jwt_ref          text NOT NULL,
    expires_at       timestamptz,
    revoked_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nats_credentials_edge_site_id ON nats_credentials (edge_site_id);
CREATE INDEX nats_credentials_agent_id ON nats_credentials (agent_id);

-- Observability time series: read by (device, time range).
CREATE TABLE cpu_metrics (
    device_id      uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ts             timestamptz NOT NULL,
    core           integer NOT NULL DEFAULT -1,
    usage_percent  double precision NOT NULL CHECK (usage_percent BETWEEN 0 AND 100),
    PRIMARY KEY (device_id, ts, core)
);

CREATE TABLE memory_metrics (
    device_id    uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ts           timestamptz NOT NULL,
    used_bytes   bigint NOT NULL CHECK (used_bytes >= 0),
    total_bytes  bigint NOT NULL CHECK (total_bytes >= 0),
    PRIMARY KEY (device_id, ts)
);

CREATE TABLE disk_metrics (
    device_id    uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ts           timestamptz NOT NULL,
    mount        text NOT NULL,
    used_bytes   bigint NOT NULL CHECK (used_bytes >= 0),
    total_bytes  bigint NOT NULL CHECK (total_bytes >= 0),
    PRIMARY KEY (device_id, ts, mount)
);

CREATE TABLE process_metrics (
    device_id     uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ts            timestamptz NOT NULL,
    pid           integer NOT NULL,
    name          text NOT NULL,
    cpu_percent   double precision NOT NULL CHECK (cpu_percent >= 0),
    memory_bytes  bigint NOT NULL CHECK (memory_bytes >= 0),
    PRIMARY KEY (device_id, ts, pid)
);

CREATE TABLE timeseries_metrics (
    device_id  uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    name       text NOT NULL,
    ts         timestamptz NOT NULL,
    value      double precision NOT NULL,
    labels     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX timeseries_metrics_device_name_ts ON timeseries_metrics (device_id, name, ts);

CREATE TABLE logs (
    id          bigserial PRIMARY KEY,
    device_id   uuid REFERENCES devices (id) ON DELETE SET NULL,
    ts          timestamptz NOT NULL DEFAULT now(),
    severity    text NOT NULL DEFAULT 'info' CHECK (severity IN ('trace', 'debug', 'info', 'warn', 'error', 'fatal')),
    source      text NOT NULL DEFAULT '',
    message     text NOT NULL,
    attributes  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX logs_ts ON logs (ts, id);
CREATE INDEX logs_device_id ON logs (device_id, ts DESC);

CREATE TABLE otel_metrics (
    id            bigserial PRIMARY KEY,
    device_id     uuid REFERENCES devices (id) ON DELETE SET NULL,
    service_name  text NOT NULL,
    name          text NOT NULL,
    ts            timestamptz NOT NULL,
    value         double precision NOT NULL,
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX otel_metrics_service_name_ts ON otel_metrics (service_name, name, ts);
CREATE INDEX otel_metrics_device_id ON otel_metrics (device_id, ts);

CREATE TABLE otel_traces (
    trace_id        text NOT NULL,
    span_id         text NOT NULL,
    parent_span_id  text,
    service_name    text NOT NULL,
    name            text NOT NULL,
    start_time      timestamptz NOT NULL,
    end_time        timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'unset' CHECK (status IN ('unset', 'ok', 'error')),
    attributes      jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX otel_traces_service_start ON otel_traces (service_name, start_time);

CREATE TABLE otel_trace_summaries (
    trace_id         text PRIMARY KEY,
    root_service     text NOT NULL,
    root_span_name   text NOT NULL,
    start_time       timestamptz NOT NULL,
    duration_ms      double precision NOT NULL CHECK (duration_ms >= 0),
    span_count       integer NOT NULL CHECK (span_count > 0),
    error_count      integer NOT NULL DEFAULT 0 CHECK (error_count >= 0)
);
CREATE INDEX otel_trace_summaries_start ON otel_trace_summaries (start_time DESC);
;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "raw_16" TO "enclave_3afc299dce_raw_16"; GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "raw_16" TO "enclave_3afc299dce_raw_16";
-- Alert and event changes notify channel `enclave_tenant_changes` (at commit, so a rolled
-- back write notifies nothing); subscriptions re-read the row in the subscriber's own
-- tenant transaction.
CREATE FUNCTION notify_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_notify(
        'enclave_tenant_changes',
        json_build_object('schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'id', NEW.id)::text
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_changed AFTER INSERT OR UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION notify_change();
CREATE TRIGGER events_changed AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION notify_change();
;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "raw_16" TO "enclave_3afc299dce_raw_16"; GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "raw_16" TO "enclave_3afc299dce_raw_16";
