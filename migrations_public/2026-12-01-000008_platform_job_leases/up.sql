-- Platform jobs run like tenant jobs (issue 15): claimed with `FOR UPDATE SKIP LOCKED`
-- and a lease, retried with backoff, dead-lettered after `max_attempts` with a coded
-- error, their result kept. At most one outstanding `migrate_tenant` job per tenant.
ALTER TABLE public.platform_jobs
    ADD COLUMN locked_at     timestamptz,
    ADD COLUMN locked_until  timestamptz,
    ADD COLUMN lease_id      uuid,
    ADD COLUMN max_attempts  integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    ADD COLUMN result        jsonb,
    ADD COLUMN finished_at   timestamptz;
CREATE INDEX platform_jobs_leased ON public.platform_jobs (locked_until) WHERE status = 'running';
CREATE UNIQUE INDEX platform_jobs_one_migration ON public.platform_jobs (tenant_id)
    WHERE kind = 'migrate_tenant' AND status IN ('queued', 'running');
