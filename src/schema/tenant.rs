//! Tables of every tenant schema (see `migrations_tenant/`), unqualified on purpose.

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        display_name -> Text,
        password_hash -> Nullable<Text>,
        role -> Text,
        disabled -> Bool,
        last_login_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    poll_jobs (id) {
        id -> Uuid,
        schedule_id -> Uuid,
        status -> Text,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        result -> Nullable<Jsonb>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        leased_by -> Nullable<Text>,
        locked_until -> Nullable<Timestamptz>,
        attempts -> Int4,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Uuid,
        name -> Text,
        role -> Text,
        created_by -> Nullable<Uuid>,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        impersonator -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    device_groups (id) {
        id -> Uuid,
        name -> Text,
        description -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    devices (id) {
        id -> Uuid,
        hostname -> Text,
        ip -> Nullable<Inet>,
        mac -> Nullable<MacAddr>,
        vendor -> Nullable<Text>,
        model -> Nullable<Text>,
        os -> Nullable<Text>,
        status -> Text,
        group_id -> Nullable<Uuid>,
        partition_id -> Nullable<Uuid>,
        first_seen -> Nullable<Timestamptz>,
        last_seen -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    device_identifiers (id) {
        id -> Uuid,
        device_id -> Uuid,
        kind -> Text,
        value -> Text,
        source -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    device_alias_states (id) {
        id -> Uuid,
        device_id -> Uuid,
        alias_kind -> Text,
        alias_value -> Text,
        state -> Text,
        first_seen -> Timestamptz,
        last_seen -> Timestamptz,
    }
}

diesel::table! {
    interfaces (id) {
        id -> Uuid,
        device_id -> Uuid,
        name -> Text,
        if_index -> Nullable<Int4>,
        mac -> Nullable<MacAddr>,
        addresses -> Array<Inet>,
        speed_bps -> Nullable<Int8>,
        admin_status -> Text,
        oper_status -> Text,
        description -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    merge_audits (id) {
        id -> Uuid,
        primary_device_id -> Nullable<Uuid>,
        merged_device_id -> Uuid,
        merged_snapshot -> Jsonb,
        merged_by -> Nullable<Uuid>,
        reason -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    partitions (id) {
        id -> Uuid,
        name -> Text,
        description -> Text,
        cidrs -> Array<Cidr>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    alerts (id) {
        id -> Uuid,
        device_id -> Nullable<Uuid>,
        severity -> Text,
        status -> Text,
        source -> Text,
        title -> Text,
        message -> Text,
        triggered_at -> Timestamptz,
        acknowledged_at -> Nullable<Timestamptz>,
        acknowledged_by -> Nullable<Uuid>,
        resolved_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    events (id) {
        id -> Uuid,
        device_id -> Nullable<Uuid>,
        kind -> Text,
        severity -> Text,
        source -> Text,
        message -> Text,
        data -> Jsonb,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    gateways (id) {
        id -> Uuid,
        name -> Text,
        partition_id -> Nullable<Uuid>,
        address -> Text,
        version -> Text,
        status -> Text,
        last_seen -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    agents (id) {
        id -> Uuid,
        name -> Text,
        gateway_id -> Nullable<Uuid>,
        device_id -> Nullable<Uuid>,
        version -> Text,
        status -> Text,
        capabilities -> Array<Text>,
        last_seen -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    checkers (id) {
        id -> Uuid,
        agent_id -> Uuid,
        name -> Text,
        kind -> Text,
        config -> Jsonb,
        enabled -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    service_checks (id) {
        id -> Uuid,
        name -> Text,
        kind -> Text,
        target -> Text,
        agent_id -> Nullable<Uuid>,
        device_id -> Nullable<Uuid>,
        interval_seconds -> Int4,
        timeout_ms -> Int4,
        enabled -> Bool,
        last_status -> Text,
        last_checked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    polling_schedules (id) {
        id -> Uuid,
        name -> Text,
        target -> Text,
        agent_id -> Nullable<Uuid>,
        interval_seconds -> Int4,
        enabled -> Bool,
        last_run_at -> Nullable<Timestamptz>,
        next_run_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    health_events (id) {
        id -> Uuid,
        source_kind -> Text,
        source_id -> Uuid,
        status -> Text,
        message -> Text,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    integration_sources (id) {
        id -> Uuid,
        name -> Text,
        kind -> Text,
        partition_id -> Nullable<Uuid>,
        config -> Jsonb,
        enabled -> Bool,
        last_sync_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    edge_sites (id) {
        id -> Uuid,
        name -> Text,
        partition_id -> Nullable<Uuid>,
        location -> Text,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    logs (id) {
        id -> Int8,
        device_id -> Nullable<Uuid>,
        ts -> Timestamptz,
        severity -> Text,
        source -> Text,
        message -> Text,
        attributes -> Jsonb,
    }
}

diesel::table! {
    process_metrics (device_id, ts, pid) {
        device_id -> Uuid,
        ts -> Timestamptz,
        pid -> Int4,
        name -> Text,
        cpu_percent -> Float8,
        memory_bytes -> Int8,
    }
}

diesel::table! {
    otel_metrics (id) {
        id -> Int8,
        device_id -> Nullable<Uuid>,
        service_name -> Text,
        name -> Text,
        ts -> Timestamptz,
        value -> Float8,
        attributes -> Jsonb,
    }
}

diesel::table! {
    otel_traces (trace_id, span_id) {
        trace_id -> Text,
        span_id -> Text,
        parent_span_id -> Nullable<Text>,
        service_name -> Text,
        name -> Text,
        start_time -> Timestamptz,
        end_time -> Timestamptz,
        status -> Text,
        attributes -> Jsonb,
    }
}

diesel::table! {
    otel_trace_summaries (trace_id) {
        trace_id -> Text,
        root_service -> Text,
        root_span_name -> Text,
        start_time -> Timestamptz,
        duration_ms -> Float8,
        span_count -> Int4,
        error_count -> Int4,
    }
}

diesel::table! {
    cpu_metrics (device_id, ts, core) {
        device_id -> Uuid,
        ts -> Timestamptz,
        core -> Int4,
        usage_percent -> Float8,
    }
}

diesel::table! {
    memory_metrics (device_id, ts) {
        device_id -> Uuid,
        ts -> Timestamptz,
        used_bytes -> Int8,
        total_bytes -> Int8,
    }
}

diesel::table! {
    onboarding_packages (id) {
        id -> Uuid,
        edge_site_id -> Uuid,
        collector_package_id -> Nullable<Uuid>,
        token_hash -> Text,
        status -> Text,
        expires_at -> Timestamptz,
        activated_at -> Nullable<Timestamptz>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        kind -> Nullable<Text>,
        name -> Nullable<Text>,
        component_id -> Nullable<Text>,
    }
}

diesel::table! {
    onboarding_events (id) {
        id -> Uuid,
        onboarding_package_id -> Uuid,
        event -> Text,
        detail -> Text,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    edge_components (id) {
        id -> Uuid,
        onboarding_package_id -> Nullable<Uuid>,
        kind -> Text,
        component_id -> Text,
        name -> Text,
        common_name -> Text,
        serial -> Text,
        not_after -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        last_seen -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    /// NATS users issued to the tenant's components (see `crate::nats`).
    nats_credentials (id) {
        id -> Uuid,
        edge_site_id -> Uuid,
        agent_id -> Nullable<Uuid>,
        user_public_key -> Text,
        jwt_ref -> Text,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        edge_component_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    job_schedules (id) {
        id -> Uuid,
        name -> Text,
        kind -> Text,
        cron -> Text,
        payload -> Jsonb,
        enabled -> Bool,
        last_run_at -> Nullable<Timestamptz>,
        next_run_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        time_zone -> Text,
    }
}

diesel::table! {
    jobs (id) {
        id -> Uuid,
        schedule_id -> Nullable<Uuid>,
        kind -> Text,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        run_after -> Timestamptz,
        locked_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        locked_until -> Nullable<Timestamptz>,
        lease_id -> Nullable<Uuid>,
        max_attempts -> Int4,
        result -> Nullable<Jsonb>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    tenant_cas (id) {
        id -> Uuid,
        name -> Text,
        certificate_pem -> Text,
        not_before -> Timestamptz,
        not_after -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    collector_packages (id) {
        id -> Uuid,
        name -> Text,
        version -> Text,
        platform -> Text,
        sha256 -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    nats_leaf_servers (id) {
        id -> Uuid,
        edge_site_id -> Uuid,
        name -> Text,
        url -> Text,
        status -> Text,
        last_seen -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(api_tokens -> users (created_by));
diesel::joinable!(devices -> partitions (partition_id));
diesel::joinable!(alerts -> devices (device_id));
diesel::joinable!(events -> devices (device_id));
diesel::joinable!(agents -> gateways (gateway_id));
diesel::joinable!(checkers -> agents (agent_id));
diesel::joinable!(service_checks -> agents (agent_id));
diesel::joinable!(polling_schedules -> agents (agent_id));
diesel::joinable!(poll_jobs -> polling_schedules (schedule_id));
diesel::joinable!(tokens -> users (user_id));
diesel::joinable!(devices -> device_groups (group_id));
diesel::joinable!(device_identifiers -> devices (device_id));
diesel::joinable!(device_alias_states -> devices (device_id));
diesel::joinable!(interfaces -> devices (device_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    api_tokens,
    tokens,
    device_groups,
    devices,
    device_identifiers,
    device_alias_states,
    interfaces,
    merge_audits,
    partitions,
    alerts,
    events,
    gateways,
    agents,
    checkers,
    service_checks,
    polling_schedules,
    poll_jobs,
    health_events,
    integration_sources,
    edge_sites,
    logs,
    cpu_metrics,
    memory_metrics,
);
