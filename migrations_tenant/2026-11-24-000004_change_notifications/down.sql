DROP TRIGGER events_changed ON events;
DROP TRIGGER alerts_changed ON alerts;
DROP FUNCTION notify_change();
