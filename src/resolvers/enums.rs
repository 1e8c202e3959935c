//! Closed sets stored as `text` with a CHECK constraint (DESIGN §3), exposed as GraphQL
//! enums. One macro keeps the GraphQL names, the stored strings and the conversions in
//! one place per set.

/// Declares a GraphQL enum whose variants map to the given stored strings.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The value stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// The variant for a stored value (unknown values read as the first variant,
            /// which the CHECK constraint makes impossible).
            pub fn from_stored(stored: &str) -> Self {
                match stored {
                    $($text => Self::$variant,)+
                    _ => text_enum!(@first $($variant),+),
                }
            }
        }
    };
    (@first $first:ident $(, $rest:ident)*) => { Self::$first };
}

text_enum!(
    /// Reachability of a device.
    DeviceStatus {
        /// Answers.
        Up => "up",
        /// Does not answer.
        Down => "down",
        /// Not checked yet.
        Unknown => "unknown",
        /// Deliberately out of service.
        Maintenance => "maintenance",
    }
);

text_enum!(
    /// Administrative state of an interface.
    AdminStatus {
        /// Enabled.
        Up => "up",
        /// Disabled.
        Down => "down",
        /// In a test mode.
        Testing => "testing",
    }
);

text_enum!(
    /// Operational state of an interface (IF-MIB ifOperStatus).
    OperStatus {
        /// Passing traffic.
        Up => "up",
        /// Not passing traffic.
        Down => "down",
        /// In a test mode.
        Testing => "testing",
        /// State unknown.
        Unknown => "unknown",
        /// Waiting for an external event.
        Dormant => "dormant",
        /// A component is missing.
        NotPresent => "not_present",
        /// Down because a lower layer is down.
        LowerLayerDown => "lower_layer_down",
    }
);

text_enum!(
    /// Kind of a stable device identity.
    IdentifierKind {
        /// Hardware serial number.
        Serial => "serial",
        /// MAC address.
        Mac => "mac",
        /// IP address.
        Ip => "ip",
        /// Host name.
        Hostname => "hostname",
        /// Id of the agent running on the device.
        AgentId => "agent_id",
        /// SNMP engine id.
        SnmpEngineId => "snmp_engine_id",
        /// Cloud provider instance id.
        CloudId => "cloud_id",
    }
);

text_enum!(
    /// How bad an alert or event is.
    Severity {
        /// For information.
        Info => "info",
        /// Worth a look.
        Warning => "warning",
        /// Minor impact.
        Minor => "minor",
        /// Major impact.
        Major => "major",
        /// Service down.
        Critical => "critical",
    }
);

text_enum!(
    /// Where an alert is in its life.
    AlertStatus {
        /// Raised, nobody on it yet.
        Open => "open",
        /// Someone is on it.
        Acknowledged => "acknowledged",
        /// Over.
        Resolved => "resolved",
    }
);
