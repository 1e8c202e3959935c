-- The platform root CA of the edge: it signs each tenant's intermediate CA. Created on first
-- start; its private key is sealed with the edge key (ENCLAVE_EDGE_KEY), never stored in
-- clear. At most one root is active; a retired root stays until its tenant CAs are replaced.
CREATE TABLE public.edge_root_cas (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    certificate_pem  text NOT NULL,
    key_sealed       text NOT NULL CHECK (key_sealed LIKE 'v1:%'),
    key_identifier   text NOT NULL UNIQUE CHECK (key_identifier ~ '^[0-9a-f]+$'),
    not_before       timestamptz NOT NULL,
    not_after        timestamptz NOT NULL CHECK (not_after > not_before),
    retired_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX edge_root_cas_one_active ON public.edge_root_cas ((true)) WHERE retired_at IS NULL;
