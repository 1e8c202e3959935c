-- Device inserts and updates notify `enclave_tenant_changes` too (at commit, like alerts and
-- events), so that Enclave can publish `<slug>.devices.changed` on NATS after the commit.
CREATE TRIGGER devices_changed AFTER INSERT OR UPDATE ON devices
    FOR EACH ROW EXECUTE FUNCTION notify_change();
