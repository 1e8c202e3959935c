-- Platform data only: tenants and how requests find them, memberships, platform jobs,
-- impersonation audit and NATS platform records. Tenant data never lives here.

CREATE TABLE public.tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE
                CHECK (slug ~ '^[a-z][a-z0-9_]{0,39}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.tenant_domains (
    domain      text PRIMARY KEY
                CHECK (domain = lower(domain) AND domain ~ '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$'),
    tenant_id   uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_domains_tenant_id ON public.tenant_domains (tenant_id);

CREATE TABLE public.tenant_memberships (
    tenant_id   uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    email       text NOT NULL CHECK (email = lower(email) AND position('@' IN email) > 1),
    role        text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin', 'platform_admin')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, email)
);
CREATE INDEX tenant_memberships_email ON public.tenant_memberships (email);

CREATE TABLE public.platform_jobs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind        text NOT NULL,
    tenant_id   uuid REFERENCES public.tenants (id) ON DELETE CASCADE,
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_after   timestamptz NOT NULL DEFAULT now(),
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX platform_jobs_runnable ON public.platform_jobs (run_after) WHERE status = 'queued';
CREATE INDEX platform_jobs_tenant_id ON public.platform_jobs (tenant_id);

-- Audit survives the tenants it mentions: the slugs are copied, the references are nulled.
CREATE TABLE public.impersonation_logs (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    impersonator_tenant_id  uuid REFERENCES public.tenants (id) ON DELETE SET NULL,
    impersonator_user_id    uuid NOT NULL,
    impersonator_email      text NOT NULL,
    target_tenant_id        uuid REFERENCES public.tenants (id) ON DELETE SET NULL,
    target_tenant_slug      text NOT NULL,
    token_id                uuid NOT NULL,
    action                  text NOT NULL,
    reason                  text NOT NULL CHECK (length(reason) > 0),
    expires_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX impersonation_logs_impersonator_tenant_id ON public.impersonation_logs (impersonator_tenant_id);
CREATE INDEX impersonation_logs_target_tenant_id ON public.impersonation_logs (target_tenant_id, created_at);
CREATE INDEX impersonation_logs_token_id ON public.impersonation_logs (token_id);

CREATE TABLE public.nats_operators (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    public_key      text NOT NULL UNIQUE,
    signing_key_ref text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.nats_platform_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    operator_id  uuid NOT NULL REFERENCES public.nats_operators (id) ON DELETE CASCADE,
    name         text NOT NULL,
    token_hash   text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    UNIQUE (operator_id, name)
);
