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
