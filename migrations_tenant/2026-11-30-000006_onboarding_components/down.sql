DROP TABLE edge_components;
DROP INDEX onboarding_events_occurred_at;
DROP INDEX onboarding_packages_created_at;
ALTER TABLE onboarding_packages DROP COLUMN component_id, DROP COLUMN name, DROP COLUMN kind;
