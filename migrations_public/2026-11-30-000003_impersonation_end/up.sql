-- An impersonation can be ended before it expires (endImpersonation); every request made
-- with its token checks that it has not been.
ALTER TABLE public.impersonation_logs ADD COLUMN ended_at timestamptz;
