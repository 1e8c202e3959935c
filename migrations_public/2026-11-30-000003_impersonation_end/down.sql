ALTER TABLE public.impersonation_logs DROP COLUMN ended_at;
