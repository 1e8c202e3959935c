-- Alert and event changes notify channel `enclave_tenant_changes` (at commit, so a rolled
-- back write notifies nothing); subscriptions re-read the row in the subscriber's own
-- tenant transaction.
CREATE FUNCTION notify_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_notify(
        'enclave_tenant_changes',
        json_build_object('schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'id', NEW.id)::text
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_changed AFTER INSERT OR UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION notify_change();
CREATE TRIGGER events_changed AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION notify_change();
