DROP TABLE public.nats_platform_tokens;
DROP TABLE public.nats_operators;
DROP TABLE public.impersonation_logs;
DROP TABLE public.platform_jobs;
DROP TABLE public.tenant_memberships;
DROP TABLE public.tenant_domains;
DROP TABLE public.tenants;
