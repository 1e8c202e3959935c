-- The job runtime (issue 15): leases and results on jobs, a time zone per schedule,
-- retention policies, and the trigger that keeps this tenant's row of `public.job_due`
-- (when its next job work is due) in step with its job rows.

ALTER TABLE jobs
    ADD COLUMN locked_until  timestamptz,
    ADD COLUMN lease_id      uuid,
    ADD COLUMN max_attempts  integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    ADD COLUMN result        jsonb,
    ADD COLUMN finished_at   timestamptz;
CREATE INDEX jobs_leased ON jobs (locked_until) WHERE status = 'running';
CREATE INDEX jobs_created_at ON jobs (created_at, id);
-- Retention deletes finished jobs and poll jobs by age.
CREATE INDEX jobs_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX poll_jobs_finished_at ON poll_jobs (finished_at) WHERE finished_at IS NOT NULL;

ALTER TABLE job_schedules
    ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC' CHECK (length(time_zone) BETWEEN 1 AND 64);
CREATE INDEX job_schedules_due ON job_schedules (next_run_at) WHERE enabled;
CREATE INDEX job_schedules_created_at ON job_schedules (created_at, id);

-- A polling schedule without a next run is due at once (it used to be due never).
ALTER TABLE polling_schedules ALTER COLUMN next_run_at SET DEFAULT now();
UPDATE polling_schedules SET next_run_at = now() WHERE enabled AND next_run_at IS NULL;

-- How long each kind of data is kept; a kind without a row keeps its default (see
-- `enclave::jobs::kinds::retention`).
CREATE TABLE retention_policies (
    data_kind   text PRIMARY KEY CHECK (data_kind IN ('events', 'logs', 'metrics', 'health_events')),
    keep_days   integer NOT NULL CHECK (keep_days BETWEEN 1 AND 3650),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Retention deletes metric series by age.
CREATE INDEX timeseries_metrics_ts ON timeseries_metrics (ts);

-- Keeps this tenant's row of public.job_due: the earliest of its queued jobs, expired
-- leases, job schedules and polling schedules. SECURITY DEFINER (owned by the migrating
-- owner role, fixed search_path) because the tenant role may not write public; this is
-- the one place a tenant schema reaches into public, and narrowly: it can only be fired
-- by the triggers below (trigger functions cannot be called directly, and tenant roles
-- cannot create triggers), it takes no argument, the tenant is the schema of the table
-- that fired it, and it writes the truth recomputed from that schema's own tables.
-- The tenant's row is locked before the tables are read, so concurrent writers of one
-- tenant take turns and the last one reads what the others committed.
CREATE FUNCTION job_due_touch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    tenant uuid;
    due timestamptz;
BEGIN
    IF NOT starts_with(TG_TABLE_SCHEMA, 'tenant_') THEN
        RETURN NULL;
    END IF;
    SELECT t.id INTO tenant FROM public.tenants t WHERE t.slug = substr(TG_TABLE_SCHEMA, 8);
    IF tenant IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO public.job_due (tenant_id) VALUES (tenant) ON CONFLICT (tenant_id) DO NOTHING;
    PERFORM 1 FROM public.job_due WHERE tenant_id = tenant FOR UPDATE;
    EXECUTE format(
        'SELECT least('
        '(SELECT min(run_after) FROM %1$I.jobs WHERE status = ''queued''), '
        '(SELECT min(locked_until) FROM %1$I.jobs WHERE status = ''running''), '
        '(SELECT min(next_run_at) FROM %1$I.job_schedules WHERE enabled), '
        '(SELECT min(next_run_at) FROM %1$I.polling_schedules WHERE enabled))',
        TG_TABLE_SCHEMA) INTO due;
    UPDATE public.job_due SET due_at = due WHERE tenant_id = tenant;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION job_due_touch() FROM PUBLIC;

CREATE TRIGGER jobs_due AFTER INSERT OR UPDATE OR DELETE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_due_touch();
CREATE TRIGGER job_schedules_due AFTER INSERT OR UPDATE OR DELETE ON job_schedules
    FOR EACH STATEMENT EXECUTE FUNCTION job_due_touch();
CREATE TRIGGER polling_schedules_due AFTER INSERT OR UPDATE OR DELETE ON polling_schedules
    FOR EACH STATEMENT EXECUTE FUNCTION job_due_touch();

-- Every tenant keeps its data as its policy says (daily, 03:00 UTC), expires unused
-- onboarding packages (hourly) and is reminded of expiring edge certificates (daily,
-- 06:30 UTC).
INSERT INTO job_schedules (name, kind, cron, next_run_at)
VALUES ('retention', 'retention', '0 3 * * *', date_trunc('day', now()) + interval '27 hours'),
       ('onboarding package expiry', 'onboarding_expiry', '5 * * * *',
        date_trunc('hour', now()) + interval '65 minutes'),
       ('certificate renewal reminder', 'certificate_reminder', '30 6 * * *',
        date_trunc('day', now()) + interval '30 hours 30 minutes');
