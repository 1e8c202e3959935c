DROP TABLE public.edge_root_cas;
