-- A NATS user issued with an onboarding package belongs to the edge component of that
-- package: revoking the component revokes the user.
ALTER TABLE nats_credentials
    ADD COLUMN edge_component_id uuid REFERENCES edge_components (id) ON DELETE SET NULL;
CREATE INDEX nats_credentials_edge_component_id ON nats_credentials (edge_component_id);
