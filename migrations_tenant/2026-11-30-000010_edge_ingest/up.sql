-- Edge components report their own health (source_kind 'edge_component', source_id =
-- edge_components.id), and a component that renews its certificate over the edge endpoint
-- leaves a 'renewed' onboarding event.
ALTER TABLE health_events
    DROP CONSTRAINT health_events_source_kind_check,
    ADD CONSTRAINT health_events_source_kind_check
        CHECK (source_kind IN ('agent', 'gateway', 'checker', 'device', 'edge_component'));
ALTER TABLE onboarding_events
    DROP CONSTRAINT onboarding_events_event_check,
    ADD CONSTRAINT onboarding_events_event_check
        CHECK (event IN ('issued', 'downloaded', 'activated', 'failed', 'revoked', 'renewed'));
