-- Poll jobs leased by the tenant's pollers over the edge listener (issue 15):
-- `GET /edge/v1/poll-jobs` leases queued poll jobs to the calling component (its
-- component id in `leased_by`) until `locked_until`; `POST /edge/v1/poll-jobs/{id}/result`
-- records the outcome. A lease that expires returns the job to `queued`.
ALTER TABLE poll_jobs
    ADD COLUMN leased_by     text CHECK (length(leased_by) BETWEEN 1 AND 63),
    ADD COLUMN locked_until  timestamptz,
    ADD COLUMN attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0);

-- At most one outstanding (queued or running) poll job per schedule: a poll still
-- running when the next interval comes is not doubled, and a lease that expires can
-- always return its job to the queue. Older duplicates (none are produced, but be safe)
-- are closed first.
UPDATE poll_jobs p SET status = 'failed', error = 'SUPERSEDED', finished_at = now()
WHERE p.status IN ('queued', 'running')
  AND EXISTS (SELECT 1 FROM poll_jobs q WHERE q.schedule_id = p.schedule_id
              AND q.status IN ('queued', 'running') AND (q.created_at, q.id) > (p.created_at, p.id));
CREATE UNIQUE INDEX poll_jobs_outstanding ON poll_jobs (schedule_id) WHERE status IN ('queued', 'running');
CREATE INDEX poll_jobs_queued ON poll_jobs (created_at, id) WHERE status = 'queued';
CREATE INDEX poll_jobs_leased ON poll_jobs (locked_until) WHERE status = 'running';
