DROP TABLE public.job_due;
