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

            /// The variant for a stored value, if it is one (for input that does not come
            /// through GraphQL, such as the edge endpoint's JSON).
            #[allow(dead_code)]
            pub fn parse(stored: &str) -> Option<Self> {
                match stored {
                    $($text => Some(Self::$variant),)+
                    _ => None,
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

text_enum!(
    /// Connectivity of an agent or gateway.
    ComponentStatus {
        /// Reporting.
        Online => "online",
        /// Not reporting.
        Offline => "offline",
        /// Reporting problems.
        Degraded => "degraded",
        /// Never reported.
        Unknown => "unknown",
    }
);

text_enum!(
    /// How a check probes its target.
    CheckKind {
        /// ICMP echo.
        Icmp => "icmp",
        /// TCP connect.
        Tcp => "tcp",
        /// HTTP request.
        Http => "http",
        /// SNMP get.
        Snmp => "snmp",
        /// DNS lookup.
        Dns => "dns",
        /// Local process presence.
        Process => "process",
        /// gRPC health check.
        Grpc => "grpc",
    }
);

text_enum!(
    /// Result of the last run of a service check.
    CheckStatus {
        /// Passed.
        Ok => "ok",
        /// Passed with warnings.
        Warning => "warning",
        /// Failed.
        Critical => "critical",
        /// Not run yet.
        Unknown => "unknown",
    }
);

text_enum!(
    /// Health reported by a component.
    HealthStatus {
        /// All good.
        Healthy => "healthy",
        /// Working with problems.
        Degraded => "degraded",
        /// Not working.
        Unhealthy => "unhealthy",
        /// Unknown.
        Unknown => "unknown",
    }
);

text_enum!(
    /// Kind of component a health event is about.
    HealthSourceKind {
        /// An agent.
        Agent => "agent",
        /// A gateway.
        Gateway => "gateway",
        /// A checker.
        Checker => "checker",
        /// A device.
        Device => "device",
        /// An edge component (its certificate's `EdgeComponent`), reporting its own health.
        EdgeComponent => "edge_component",
    }
);

text_enum!(
    /// Where an integration source gets devices from.
    IntegrationKind {
        /// NetBox.
        Netbox => "netbox",
        /// Armis.
        Armis => "armis",
        /// SNMP discovery.
        SnmpDiscovery => "snmp_discovery",
        /// Network sweep.
        Sweep => "sweep",
        /// CSV import.
        Csv => "csv",
        /// Pushed through the API.
        Api => "api",
    }
);

text_enum!(
    /// Connectivity of an edge site.
    EdgeSiteStatus {
        /// Onboarding not finished.
        Pending => "pending",
        /// Connected.
        Online => "online",
        /// Disconnected.
        Offline => "offline",
    }
);

text_enum!(
    /// What an edge component is.
    EdgeComponentKind {
        /// Runs checks on or near devices.
        Agent => "agent",
        /// Polls devices (SNMP and the like).
        Poller => "poller",
        /// Runs one kind of check for an agent.
        Checker => "checker",
        /// Collects flows, logs or traps.
        Collector => "collector",
    }
);

text_enum!(
    /// Where an onboarding package is in its life.
    OnboardingPackageStatus {
        /// Created; its download token works once.
        Issued => "issued",
        /// Downloaded: its certificate was issued.
        Delivered => "delivered",
        /// Its component connected.
        Activated => "activated",
        /// Not downloaded in time.
        Expired => "expired",
        /// Withdrawn.
        Revoked => "revoked",
    }
);

text_enum!(
    /// A step in an onboarding package's life.
    OnboardingEventKind {
        /// The package was created.
        Issued => "issued",
        /// The package was downloaded.
        Downloaded => "downloaded",
        /// Its component connected for the first time.
        Activated => "activated",
        /// A step was refused (second download, expired token…); see `detail`.
        Failed => "failed",
        /// The package or its component was revoked.
        Revoked => "revoked",
        /// The component renewed its certificate over the edge endpoint.
        Renewed => "renewed",
    }
);

text_enum!(
    /// Where a poll job stands.
    PollJobStatus {
        /// Waiting for a poller to lease it.
        Queued => "queued",
        /// Leased by a poller (until its lease runs out; then it is queued again).
        Running => "running",
        /// The poller posted a result.
        Succeeded => "succeeded",
        /// The poller reported a failure (`error` says why).
        Failed => "failed",
    }
);

text_enum!(
    /// What a job does.
    JobKind {
        /// Deletes the tenant's data older than its retention policy (events, logs, metric
        /// series, health events), in bounded batches.
        Retention => "retention",
        /// Marks onboarding packages never downloaded within their window as expired.
        OnboardingExpiry => "onboarding_expiry",
        /// Raises a warning alert for edge components whose certificate expires within 14
        /// days.
        CertificateReminder => "certificate_reminder",
    }
);

text_enum!(
    /// Where a job stands.
    JobStatus {
        /// Waiting for its time (`runAfter`) and a worker.
        Queued => "queued",
        /// A worker holds it.
        Running => "running",
        /// Done; `result` says what it did.
        Succeeded => "succeeded",
        /// Failed for good after its last attempt (or at once, when retrying cannot
        /// help); `lastError` has the code.
        Failed => "failed",
        /// Cancelled before it ran.
        Cancelled => "cancelled",
    }
);
