DROP TABLE merge_audits;
DROP TABLE interfaces;
DROP TABLE device_alias_states;
DROP TABLE device_identifiers;
DROP TABLE devices;
DROP TABLE device_groups;
