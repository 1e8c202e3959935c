DROP TABLE public.enclave_catalog_references;
DROP TABLE public.tenant_quarantine;
