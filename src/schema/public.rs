//! Platform tables in schema `public` (see `migrations_public/`).

diesel::table! {
    public.tenants (id) {
        id -> Uuid,
        slug -> Text,
        name -> Text,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    public.tenant_domains (domain) {
        domain -> Text,
        tenant_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    public.tenant_memberships (tenant_id, email) {
        tenant_id -> Uuid,
        email -> Text,
        role -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    public.platform_jobs (id) {
        id -> Uuid,
        kind -> Text,
        tenant_id -> Nullable<Uuid>,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        run_after -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        locked_at -> Nullable<Timestamptz>,
        locked_until -> Nullable<Timestamptz>,
        lease_id -> Nullable<Uuid>,
        max_attempts -> Int4,
        result -> Nullable<Jsonb>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    public.impersonation_logs (id) {
        id -> Uuid,
        impersonator_tenant_id -> Nullable<Uuid>,
        impersonator_user_id -> Uuid,
        impersonator_email -> Text,
        target_tenant_id -> Nullable<Uuid>,
        target_tenant_slug -> Text,
        token_id -> Uuid,
        action -> Text,
        reason -> Text,
        expires_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    public.nats_operators (id) {
        id -> Uuid,
        name -> Text,
        public_key -> Text,
        signing_key_ref -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    public.nats_platform_tokens (id) {
        id -> Uuid,
        operator_id -> Uuid,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    public.onboarding_tokens (token_hash) {
        token_hash -> Text,
        tenant_id -> Uuid,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    public.tenant_quarantine (tenant_id) {
        tenant_id -> Uuid,
        reason -> Text,
        summary -> Text,
        differences -> Int4,
        quarantined_at -> Timestamptz,
        checked_at -> Timestamptz,
    }
}

diesel::joinable!(tenant_domains -> tenants (tenant_id));
diesel::joinable!(tenant_quarantine -> tenants (tenant_id));
diesel::allow_tables_to_appear_in_same_query!(tenant_quarantine, tenants);
diesel::joinable!(tenant_memberships -> tenants (tenant_id));
diesel::joinable!(nats_platform_tokens -> nats_operators (operator_id));
diesel::allow_tables_to_appear_in_same_query!(tenants, tenant_domains, tenant_memberships);
