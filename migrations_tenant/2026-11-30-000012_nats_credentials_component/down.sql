DROP INDEX nats_credentials_edge_component_id;
ALTER TABLE nats_credentials DROP COLUMN edge_component_id;
