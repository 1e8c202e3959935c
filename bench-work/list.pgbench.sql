\set t random(1, 1000)
\set d random(1, 200)
\startpipeline
BEGIN READ ONLY;
SELECT set_config('search_path', 'tenant_t' || :t::text, true), set_config('role', :role_prefix::text || :t::text, true), set_config('statement_timeout', '15000', true);
\endpipeline
SELECT EXISTS (SELECT 1 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = :session AND t.revoked_at IS NULL AND t.expires_at > now() AND NOT u.disabled) AS live;
SELECT "devices"."id", "devices"."hostname", "devices"."ip", "devices"."mac", "devices"."vendor", "devices"."model", "devices"."os", "devices"."status", "devices"."group_id", "devices"."partition_id", "devices"."first_seen", "devices"."last_seen", "devices"."created_at", "devices"."updated_at" FROM "devices" WHERE TRUE ORDER BY "devices"."hostname" ASC, "devices"."id" ASC LIMIT 51;
SELECT "interfaces"."id", "interfaces"."device_id", "interfaces"."name", "interfaces"."if_index", "interfaces"."mac", "interfaces"."addresses", "interfaces"."speed_bps", "interfaces"."admin_status", "interfaces"."oper_status", "interfaces"."description", "interfaces"."created_at" FROM "interfaces" WHERE ("interfaces"."device_id" = ANY(:ids)) ORDER BY "interfaces"."name", "interfaces"."id";
COMMIT;
