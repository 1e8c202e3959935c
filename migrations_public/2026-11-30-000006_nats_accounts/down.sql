DROP TABLE public.nats_accounts;
