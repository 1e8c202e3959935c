DELETE FROM jobs WHERE schedule_id IN (SELECT id FROM job_schedules WHERE name IN ('retention', 'onboarding package expiry', 'certificate renewal reminder'));
DELETE FROM job_schedules WHERE name IN ('retention', 'onboarding package expiry', 'certificate renewal reminder');
DROP TRIGGER polling_schedules_due ON polling_schedules;
DROP TRIGGER job_schedules_due ON job_schedules;
DROP TRIGGER jobs_due ON jobs;
DROP FUNCTION job_due_touch();
DROP INDEX timeseries_metrics_ts;
DROP TABLE retention_policies;
ALTER TABLE polling_schedules ALTER COLUMN next_run_at DROP DEFAULT;
DROP INDEX job_schedules_created_at;
DROP INDEX job_schedules_due;
ALTER TABLE job_schedules DROP COLUMN time_zone;
DROP INDEX poll_jobs_finished_at;
DROP INDEX jobs_finished_at;
DROP INDEX jobs_created_at;
DROP INDEX jobs_leased;
ALTER TABLE jobs
    DROP COLUMN finished_at,
    DROP COLUMN result,
    DROP COLUMN max_attempts,
    DROP COLUMN lease_id,
    DROP COLUMN locked_until;
