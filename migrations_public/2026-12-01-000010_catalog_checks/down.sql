DROP TABLE public.enclave_catalog_checks;
