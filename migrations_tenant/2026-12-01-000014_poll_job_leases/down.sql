DROP INDEX poll_jobs_leased;
DROP INDEX poll_jobs_queued;
DROP INDEX poll_jobs_outstanding;
ALTER TABLE poll_jobs
    DROP COLUMN attempts,
    DROP COLUMN locked_until,
    DROP COLUMN leased_by;
