ALTER TABLE tenant_cas DROP COLUMN key_identifier, DROP COLUMN key_sealed;
