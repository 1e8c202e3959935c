-- Which tenant an onboarding download token belongs to, so that `GET /onboarding/<token>`
-- (which carries no other credential) finds the tenant without searching every schema.
-- Only the token's SHA-256 is stored; the package itself lives in the tenant's schema.
CREATE TABLE public.onboarding_tokens (
    token_hash  text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    tenant_id   uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX onboarding_tokens_tenant_id ON public.onboarding_tokens (tenant_id);
