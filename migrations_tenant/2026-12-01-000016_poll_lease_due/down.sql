DROP TRIGGER poll_jobs_due ON poll_jobs;
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
        '(SELECT min(next_run_at) FROM %1$I.polling_schedules WHERE enabled))',
        TG_TABLE_SCHEMA) INTO due;
    UPDATE public.job_due SET due_at = due WHERE tenant_id = tenant;
    RETURN NULL;
END
$$;
