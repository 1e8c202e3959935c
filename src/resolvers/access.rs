//! Who may run what: the one table of the minimum role per root field. The HTTP layer
//! checks every root field of an operation against the caller's role before anything
//! runs. A field missing from the table needs `admin` (a new mutation is closed until
//! someone opens it here).
//!
//! viewer reads; operator reads and runs operational mutations; admin does everything
//! within the tenant; platform_admin (in the platform tenant) manages tenants.

use crate::auth::Role;
use crate::auth::token::Operation;

/// Root fields anyone may call, without a token.
pub const ANONYMOUS: &[&str] = &["health", "login", "selectTenant", "__typename"];

/// The minimum role for a root field; `None` when no token is needed.
pub fn required_role(kind: Operation, field: &str) -> Option<Role> {
    if ANONYMOUS.contains(&field) {
        return None;
    }
    Some(match (kind, field) {
        (
            Operation::Query,
            "apiTokens"
            | "users"
            | "sessions"
            | "onboardingPackages"
            | "onboardingEvents"
            | "edgeComponents"
            | "certificateAuthorities"
            | "collectorPackages"
            | "natsCredentials"
            | "natsLeafServers",
        ) => Role::Admin,
        (Operation::Query, "tenants" | "impersonationLogs" | "platformJobs" | "quarantinedTenants") => {
            Role::PlatformAdmin
        }
        (Operation::Query | Operation::Subscription, _) => Role::Viewer,
        (Operation::Mutation, "logout") => Role::Viewer,
        (
            Operation::Mutation,
            "createDevice"
            | "updateDevice"
            | "createInterface"
            | "addDeviceIdentifier"
            | "removeDeviceIdentifier"
            | "assignDevicesToGroup"
            | "acknowledgeAlert"
            | "resolveAlert"
            | "createServiceCheck"
            | "createPollingSchedule"
            | "updateServiceCheck"
            | "updatePollingSchedule",
        ) => Role::Operator,
        (
            Operation::Mutation,
            "createJobSchedule" | "updateJobSchedule" | "pauseJobSchedule" | "resumeJobSchedule"
            | "runJobScheduleNow" | "retryJob" | "cancelJob",
        ) => Role::Admin,
        (
            Operation::Mutation,
            "createTenant" | "suspendTenant" | "resumeTenant" | "impersonate" | "exportTenant",
        ) => Role::PlatformAdmin,
        (Operation::Mutation, _) => Role::Admin,
    })
}

/// Refuses (FORBIDDEN, naming the field and the role it needs) when `role` is below what
/// any of the root fields requires: the one check behind HTTP, WebSocket and every
/// subscription delivery.
pub fn check_fields(
    kind: Operation,
    fields: &[impl AsRef<str>],
    role: Role,
) -> Result<(), super::errors::ApiError> {
    for field in fields {
        let field = field.as_ref();
        if let Some(required) = required_role(kind, field)
            && role < required
        {
            return Err(super::errors::ApiError::forbidden(format!(
                "{field} needs the {required} role"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_open_to_viewers_and_unknown_mutations_need_admin() {
        assert_eq!(required_role(Operation::Query, "devices"), Some(Role::Viewer));
        assert_eq!(required_role(Operation::Query, "apiTokens"), Some(Role::Admin));
        assert_eq!(
            required_role(Operation::Mutation, "acknowledgeAlert"),
            Some(Role::Operator)
        );
        assert_eq!(
            required_role(Operation::Mutation, "deleteDevice"),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(Operation::Mutation, "somethingNew"),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(Operation::Mutation, "impersonate"),
            Some(Role::PlatformAdmin)
        );
        assert_eq!(required_role(Operation::Mutation, "login"), None);
        assert_eq!(required_role(Operation::Query, "jobs"), Some(Role::Viewer));
        assert_eq!(
            required_role(Operation::Query, "quarantinedTenants"),
            Some(Role::PlatformAdmin)
        );
        assert_eq!(required_role(Operation::Mutation, "cancelJob"), Some(Role::Admin));
    }
}
