-- An expired poll lease comes back on its own (issue 15): a poll job leased over the edge
-- endpoint returns to the queue when a worker visits its tenant, and the visit used to
-- depend on other due work of the tenant (a polling schedule's next run could be an hour
-- away). The due-index now also counts the lease expiry of every running poll job, and
-- poll jobs keep it in step like the other job tables: leasing a poll job makes the
-- tenant due when that lease runs out, and the worker's visit then requeues it.
CREATE OR REPLACE FUNCTION job_due_touch() RETURNS trigger
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
        '(SELECT min(next_run_at) FROM %1$I.polling_schedules WHERE enabled), '
        '(SELECT min(locked_until) FROM %1$I.poll_jobs WHERE status = ''running''))',
        TG_TABLE_SCHEMA) INTO due;
    UPDATE public.job_due SET due_at = due WHERE tenant_id = tenant;
    RETURN NULL;
END
$$;

CREATE TRIGGER poll_jobs_due AFTER INSERT OR UPDATE OR DELETE ON poll_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_due_touch();
