DROP TRIGGER devices_changed ON devices;
