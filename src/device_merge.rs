//! Merging a duplicate device into another: the one implementation behind GraphQL's
//! `mergeDevices` and the edge's device discovery (`/edge/v1/devices`, which merges devices
//! that turn out to share an identifier).

use diesel::sql_types::{Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// Moves everything of `merged` to `primary` (interfaces, identifiers, aliases, alerts,
/// events, checks, agents, logs and metrics; rows the primary already has under the same
/// name or key are dropped), records the merged device in `merge_audits`, deletes it. Runs in the
/// request's tenant transaction, so it happens entirely or not at all.
const MERGE_SQL: &str = "
WITH moved_interfaces AS (
  UPDATE interfaces SET device_id = $1, updated_at = now()
  WHERE device_id = $2 AND name NOT IN (SELECT name FROM interfaces WHERE device_id = $1)),
moved_identifiers AS (UPDATE device_identifiers SET device_id = $1 WHERE device_id = $2),
moved_aliases AS (
  UPDATE device_alias_states SET device_id = $1 WHERE device_id = $2
  AND (alias_kind, alias_value) NOT IN (SELECT alias_kind, alias_value FROM device_alias_states WHERE device_id = $1)),
moved_alerts AS (UPDATE alerts SET device_id = $1 WHERE device_id = $2),
moved_events AS (UPDATE events SET device_id = $1 WHERE device_id = $2),
moved_checks AS (
  UPDATE service_checks SET device_id = $1 WHERE device_id = $2
  AND name NOT IN (SELECT name FROM service_checks WHERE device_id = $1)),
moved_agents AS (UPDATE agents SET device_id = $1 WHERE device_id = $2),
moved_logs AS (UPDATE logs SET device_id = $1 WHERE device_id = $2),
moved_otel AS (UPDATE otel_metrics SET device_id = $1 WHERE device_id = $2),
moved_audits AS (UPDATE merge_audits SET primary_device_id = $1 WHERE primary_device_id = $2),
moved_series AS (UPDATE timeseries_metrics SET device_id = $1 WHERE device_id = $2),
moved_cpu AS (
  UPDATE cpu_metrics m SET device_id = $1 WHERE m.device_id = $2
  AND NOT EXISTS (SELECT 1 FROM cpu_metrics p WHERE p.device_id = $1 AND p.ts = m.ts AND p.core = m.core)),
moved_memory AS (
  UPDATE memory_metrics m SET device_id = $1 WHERE m.device_id = $2
  AND NOT EXISTS (SELECT 1 FROM memory_metrics p WHERE p.device_id = $1 AND p.ts = m.ts)),
moved_disk AS (
  UPDATE disk_metrics m SET device_id = $1 WHERE m.device_id = $2
  AND NOT EXISTS (SELECT 1 FROM disk_metrics p WHERE p.device_id = $1 AND p.ts = m.ts AND p.mount = m.mount)),
moved_processes AS (
  UPDATE process_metrics m SET device_id = $1 WHERE m.device_id = $2
  AND NOT EXISTS (SELECT 1 FROM process_metrics p WHERE p.device_id = $1 AND p.ts = m.ts AND p.pid = m.pid))
INSERT INTO merge_audits (primary_device_id, merged_device_id, merged_snapshot, merged_by, reason)
SELECT $1, d.id, to_jsonb(d), $3, $4 FROM devices d WHERE d.id = $2";

/// Merges device `merged` into `primary` on `conn` (a tenant transaction), records it in
/// `merge_audits` (by `by`, a user, or nobody for the edge) and deletes `merged`.
/// Interfaces, checks and aliases the primary already had by name stay with the merged
/// device and go with it. Both devices must exist.
pub async fn merge(
    conn: &mut AsyncPgConnection,
    primary: Uuid,
    merged: Uuid,
    by: Option<Uuid>,
    reason: &str,
) -> diesel::QueryResult<()> {
    diesel::sql_query(MERGE_SQL)
        .bind::<SqlUuid, _>(primary)
        .bind::<SqlUuid, _>(merged)
        .bind::<Nullable<SqlUuid>, _>(by)
        .bind::<Text, _>(reason)
        .execute(conn)
        .await?;
    diesel::sql_query("DELETE FROM devices WHERE id = $1")
        .bind::<SqlUuid, _>(merged)
        .execute(conn)
        .await?;
    Ok(())
}
