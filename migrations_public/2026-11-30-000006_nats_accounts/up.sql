-- NATS decentralized auth: the accounts Enclave's operator (public.nats_operators, whose
-- `signing_key_ref` holds the operator seed sealed with the edge key) signs: the system
-- account, Enclave's own account and one account per tenant. Seeds are sealed with the edge
-- key, never stored in clear; `jwt` is the latest signed account JWT (what the NATS
-- resolver is given); `revocations` maps revoked user public keys to the unix time they
-- were revoked at (signed into the JWT). A dropped tenant's account is kept, detached
-- (tenant_id NULL), and signed disabled: its users stay revoked and it imports nothing, even
-- when a new tenant takes the same slug.
CREATE TABLE public.nats_accounts (
    public_key   text PRIMARY KEY CHECK (public_key ~ '^A[A-Z2-7]{55}$'),
    operator_id  uuid NOT NULL REFERENCES public.nats_operators (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('system', 'enclave', 'tenant')),
    tenant_id    uuid UNIQUE REFERENCES public.tenants (id) ON DELETE SET NULL,
    seed_sealed  text NOT NULL CHECK (seed_sealed LIKE 'v1:%'),
    jwt          text NOT NULL,
    revocations  jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(revocations) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'tenant' OR tenant_id IS NULL)
);
CREATE INDEX nats_accounts_operator_id ON public.nats_accounts (operator_id);
CREATE UNIQUE INDEX nats_accounts_one_platform_account ON public.nats_accounts (operator_id, kind)
    WHERE kind <> 'tenant';
