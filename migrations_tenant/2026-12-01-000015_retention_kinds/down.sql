DROP INDEX otel_traces_start_time;
DROP INDEX otel_metrics_ts;
DROP INDEX process_metrics_ts;
DROP INDEX disk_metrics_ts;
DROP INDEX memory_metrics_ts;
DROP INDEX cpu_metrics_ts;
DELETE FROM retention_policies WHERE data_kind NOT IN ('events', 'logs', 'metrics', 'health_events');
ALTER TABLE retention_policies
    DROP CONSTRAINT retention_policies_data_kind_check,
    ADD CONSTRAINT retention_policies_data_kind_check
        CHECK (data_kind IN ('events', 'logs', 'metrics', 'health_events'));
