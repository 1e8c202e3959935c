-- Retention for the rest of the observability data (issue 15): device metrics (cpu,
-- memory, disk, processes), OpenTelemetry metrics, spans and trace summaries. The
-- `retention` job deletes by time; BRIN indexes on the time columns (tiny, nearly free to
-- maintain for rows that arrive roughly in time order) let it find old rows without
-- scanning whole tables.
ALTER TABLE retention_policies
    DROP CONSTRAINT retention_policies_data_kind_check,
    ADD CONSTRAINT retention_policies_data_kind_check CHECK (data_kind IN (
        'events', 'logs', 'metrics', 'health_events', 'cpu_metrics', 'memory_metrics',
        'disk_metrics', 'process_metrics', 'otel_metrics', 'traces', 'trace_summaries'));
CREATE INDEX cpu_metrics_ts ON cpu_metrics USING brin (ts);
CREATE INDEX memory_metrics_ts ON memory_metrics USING brin (ts);
CREATE INDEX disk_metrics_ts ON disk_metrics USING brin (ts);
CREATE INDEX process_metrics_ts ON process_metrics USING brin (ts);
CREATE INDEX otel_metrics_ts ON otel_metrics USING brin (ts);
CREATE INDEX otel_traces_start_time ON otel_traces USING brin (start_time);
