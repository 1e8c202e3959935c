-- The due-index of the job runtime (issue 15): one small row per tenant saying when its
-- next job work is due (a queued job, an expired lease, a job schedule or a polling
-- schedule). Workers pick the tenant due earliest here, so finding work never scans the
-- tenant schemas. Each tenant schema's `job_due_touch` trigger keeps its row in step with
-- its job rows, in the same transaction. `served_at` is when a worker last took work of
-- the tenant: a tenant served just now waits behind every tenant whose work was already
-- due (round-robin).
CREATE TABLE public.job_due (
    tenant_id  uuid PRIMARY KEY REFERENCES public.tenants (id) ON DELETE CASCADE,
    due_at     timestamptz,
    served_at  timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX job_due_due_at ON public.job_due (due_at) WHERE due_at IS NOT NULL;
