DROP TABLE public.onboarding_tokens;
