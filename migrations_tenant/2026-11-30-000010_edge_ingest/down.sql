DELETE FROM health_events WHERE source_kind = 'edge_component';
DELETE FROM onboarding_events WHERE event = 'renewed';
ALTER TABLE health_events
    DROP CONSTRAINT health_events_source_kind_check,
    ADD CONSTRAINT health_events_source_kind_check
        CHECK (source_kind IN ('agent', 'gateway', 'checker', 'device'));
ALTER TABLE onboarding_events
    DROP CONSTRAINT onboarding_events_event_check,
    ADD CONSTRAINT onboarding_events_event_check
        CHECK (event IN ('issued', 'downloaded', 'activated', 'failed', 'revoked'));
