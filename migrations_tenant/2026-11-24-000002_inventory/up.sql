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
