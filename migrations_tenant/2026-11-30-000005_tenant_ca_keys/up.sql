-- The tenant's intermediate CA keeps its private key sealed with the edge key
-- (private_key_ref then names that key), and its subject key identifier: the edge listener
-- finds a client certificate's tenant by the identifier of the CA that issued it.
ALTER TABLE tenant_cas
    ADD COLUMN key_sealed text CHECK (key_sealed LIKE 'v1:%'),
    ADD COLUMN key_identifier text UNIQUE CHECK (key_identifier ~ '^[0-9a-f]+$');
