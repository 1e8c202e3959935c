-- An onboarding package names the component it onboards; each download issues one
-- component certificate, recorded (never its key) in edge_components.
ALTER TABLE onboarding_packages
    ADD COLUMN kind text CHECK (kind IN ('agent', 'poller', 'checker', 'collector')),
    ADD COLUMN name text CHECK (length(name) BETWEEN 1 AND 200),
    ADD COLUMN component_id text UNIQUE CHECK (component_id ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$');
CREATE INDEX onboarding_packages_created_at ON onboarding_packages (created_at, id);
CREATE INDEX onboarding_events_occurred_at ON onboarding_events (occurred_at, id);

CREATE TABLE edge_components (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    onboarding_package_id  uuid REFERENCES onboarding_packages (id) ON DELETE SET NULL,
    kind                   text NOT NULL CHECK (kind IN ('agent', 'poller', 'checker', 'collector')),
    component_id           text NOT NULL,
    name                   text NOT NULL,
    common_name            text NOT NULL,
    serial                 text NOT NULL UNIQUE CHECK (serial ~ '^[0-9a-f]+$'),
    not_after              timestamptz NOT NULL,
    revoked_at             timestamptz,
    last_seen              timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX edge_components_onboarding_package_id ON edge_components (onboarding_package_id);
CREATE INDEX edge_components_component_id ON edge_components (component_id);
CREATE INDEX edge_components_created_at ON edge_components (created_at, id);
