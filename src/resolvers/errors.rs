//! The API's error policy: every error a client sees is an [`ApiError`] with one of the
//! codes of DESIGN §4 in `extensions.code`. Messages are written for clients and never
//! carry SQL, constraint, relation or schema names; anything unexpected becomes INTERNAL,
//! with the detail logged under the request id (which the HTTP layer adds to the error).
//!
//! Two codes tell the client to come back later, with `extensions.retryAfter` (seconds)
//! and, over HTTP, a `Retry-After` header: RATE_LIMITED (429: this caller is sending too
//! much, e.g. failed logins) and UNAVAILABLE (503: the server is overloaded, e.g. no
//! database connection became free within the pool timeout). Neither means the request
//! was wrong; the same request may succeed when retried.

use std::fmt;
use std::time::Duration;

use async_graphql::ErrorExtensions as _;

use crate::auth::token::TokenRefusal;
use crate::auth::users::UserError;
use crate::tenancy::provision::TenancyError;
use crate::tenancy::scope::ScopeError;
use crate::tenancy::transaction::TxError;

/// How long a client is asked to wait after the pool was exhausted.
pub const POOL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// `extensions.code` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// No valid credentials (HTTP 401 under `application/graphql-response+json`).
    Unauthenticated,
    /// Valid credentials, not allowed (403).
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    /// The tenant is suspended.
    TenantUnavailable,
    /// This caller sent too much (failed logins, password checks): retry after
    /// `extensions.retryAfter` seconds (HTTP 429 with `Retry-After`).
    RateLimited,
    /// The server is overloaded (no database connection became free in time): retry after
    /// `extensions.retryAfter` seconds (HTTP 503 with `Retry-After`).
    Unavailable,
    /// A bug or a broken dependency; `extensions.requestId` finds the log line.
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Conflict => "CONFLICT",
            Self::TenantUnavailable => "TENANT_UNAVAILABLE",
            Self::RateLimited => "RATE_LIMITED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }
}

/// An error as the client sees it. Deliberately not `Display`: async-graphql converts any
/// `Display` type into an error without a code, and this type must always keep its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// When the client may retry (RATE_LIMITED, UNAVAILABLE): `extensions.retryAfter`
    /// and the `Retry-After` header, in whole seconds (at least 1).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// RATE_LIMITED, retry after `retry_after`.
    pub fn rate_limited(message: impl Into<String>, retry_after: Duration) -> Self {
        Self::new(Code::RateLimited, message).retry_after(retry_after)
    }

    /// UNAVAILABLE, retry after `retry_after`.
    pub fn unavailable(message: impl Into<String>, retry_after: Duration) -> Self {
        Self::new(Code::Unavailable, message).retry_after(retry_after)
    }

    /// Sets when the client may retry.
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// `retry_after` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(retry_secs)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(Code::BadUserInput, message)
    }

    /// UNAVAILABLE for a request that found no free database connection in time.
    pub fn pool_exhausted() -> Self {
        Self::unavailable(
            "the server is busy: no database connection became free in time; retry later",
            POOL_RETRY_AFTER,
        )
    }

    /// Logs `detail` (for operators) and returns a generic INTERNAL error (for clients).
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(Code::Internal, "internal error")
    }
}

/// Whole seconds, rounded up, at least 1 (the unit of `Retry-After`).
pub fn retry_secs(duration: Duration) -> u64 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.max(1)
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        let retry = error.retry_after_secs();
        async_graphql::Error::new(error.message).extend_with(|_, e| {
            e.set("code", error.code.as_str());
            if let Some(secs) = retry {
                e.set("retryAfter", secs);
            }
        })
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as Kind, Error};
        if crate::db::connection_lost(&error) {
            tracing::warn!(%error, "the database connection was lost");
            return Self::unavailable("the database is unavailable; retry later", POOL_RETRY_AFTER);
        }
        match &error {
            Error::NotFound => Self::not_found("not found"),
            Error::DatabaseError(Kind::UniqueViolation, info) => Self::new(
                Code::Conflict,
                match info.constraint_name().and_then(unique_field) {
                    Some(field) => format!("a record with this {field} already exists"),
                    None => "a record with this value already exists".to_owned(),
                },
            ),
            Error::DatabaseError(Kind::ForeignKeyViolation, _) => {
                Self::bad_input("the input refers to a record that does not exist")
            }
            Error::DatabaseError(Kind::CheckViolation | Kind::NotNullViolation, _) => {
                Self::bad_input("a value in the input is not allowed")
            }
            Error::DatabaseError(Kind::ReadOnlyTransaction, _) => {
                Self::bad_input("a query cannot write; send a mutation")
            }
            _ => Self::internal(error),
        }
    }
}

impl From<TxError> for ApiError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::CredentialRevoked => Self::unauthenticated("the token has been revoked or has expired"),
            TxError::PoolTimeout(waited) => {
                tracing::warn!(?waited, "no pooled connection became free in time");
                Self::pool_exhausted()
            }
            TxError::Connect(detail) => {
                tracing::warn!(%detail, "the database is unreachable");
                Self::unavailable("the database is unavailable; retry later", POOL_RETRY_AFTER)
            }
            TxError::PlatformPoolTimeout => {
                tracing::warn!("no platform connection became free in time");
                Self::pool_exhausted()
            }
            TxError::Database(e) => e.into(),
            other => Self::internal(other),
        }
    }
}

impl From<ScopeError> for ApiError {
    fn from(error: ScopeError) -> Self {
        match error {
            ScopeError::Unauthenticated => Self::unauthenticated("authentication required"),
            ScopeError::Tx(e) => e.into(),
            ScopeError::NotEstablished => Self::internal(error),
        }
    }
}

impl From<TokenRefusal> for ApiError {
    fn from(refusal: TokenRefusal) -> Self {
        match refusal {
            TokenRefusal::Denied => Self::forbidden(refusal.to_string()),
            TokenRefusal::Busy => Self::unavailable(refusal.to_string(), Duration::from_secs(1)),
            other => Self::unauthenticated(other.to_string()),
        }
    }
}

impl From<TenancyError> for ApiError {
    fn from(error: TenancyError) -> Self {
        match error {
            TenancyError::InvalidSlug { .. }
            | TenancyError::InvalidDomain { .. }
            | TenancyError::InvalidName => Self::bad_input(error.to_string()),
            TenancyError::AlreadyExists(_) | TenancyError::DomainTaken(_) => {
                Self::new(Code::Conflict, error.to_string())
            }
            TenancyError::NotFound(_) => Self::not_found(error.to_string()),
            TenancyError::PlatformProtected(_) => Self::forbidden(error.to_string()),
            TenancyError::Migration(_)
            | TenancyError::Database(_)
            | TenancyError::RoleExists(_)
            | TenancyError::Edge(_) => Self::internal(error),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::InvalidEmail | UserError::Password(_) | UserError::PlatformRoleOutsidePlatform => {
                Self::bad_input(error.to_string())
            }
            UserError::Exists => Self::new(Code::Conflict, error.to_string()),
            UserError::Database(e) => e.into(),
        }
    }
}

impl From<crate::auth::sessions::SessionError> for ApiError {
    fn from(error: crate::auth::sessions::SessionError) -> Self {
        match error {
            crate::auth::sessions::SessionError::Tx(e) => e.into(),
            other => Self::internal(other),
        }
    }
}

/// Unique constraints (PostgreSQL's default names, from the migrations) and the input
/// fields they cover, as a client names them. The constraint name itself never reaches a
/// client; a constraint missing here gets the generic message.
pub const UNIQUE_FIELDS: &[(&str, &str)] = &[
    ("users_email_key", "email"),
    ("device_groups_name_key", "name"),
    ("device_identifiers_kind_value_key", "kind and value"),
    ("interfaces_device_id_name_key", "name on this device"),
    ("partitions_name_key", "name"),
    ("gateways_name_key", "name"),
    ("agents_name_key", "name"),
    ("checkers_agent_id_name_key", "name on this agent"),
    ("integration_sources_name_key", "name"),
    ("service_checks_device_id_name_key", "name on this device"),
    ("polling_schedules_name_key", "name"),
    ("job_schedules_name_key", "name"),
    ("edge_sites_name_key", "name"),
    ("tenant_cas_name_key", "name"),
    (
        "collector_packages_name_version_platform_key",
        "name, version and platform",
    ),
    (
        "nats_leaf_servers_edge_site_id_name_key",
        "name on this edge site",
    ),
    ("tenants_slug_key", "slug"),
    ("tenant_domains_pkey", "domain"),
];

/// The field(s) a unique constraint covers, for a CONFLICT message.
fn unique_field(constraint: &str) -> Option<&'static str> {
    UNIQUE_FIELDS
        .iter()
        .find(|(name, _)| *name == constraint)
        .map(|(_, field)| *field)
}

/// Result type of resolvers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error};

    struct Info;
    impl DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            "duplicate key value violates unique constraint \"devices_hostname_key\""
        }
        fn details(&self) -> Option<&str> {
            Some("Key (hostname)=(x) already exists.")
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            Some("devices")
        }
        fn column_name(&self) -> Option<&str> {
            Some("hostname")
        }
        fn constraint_name(&self) -> Option<&str> {
            Some("devices_hostname_key")
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn graphql(error: ApiError) -> async_graphql::ServerError {
        async_graphql::Error::from(error).into_server_error(async_graphql::Pos::default())
    }

    #[test]
    fn database_errors_map_to_codes_without_leaking_names() {
        let cases = [
            (DatabaseErrorKind::UniqueViolation, Code::Conflict),
            (DatabaseErrorKind::ForeignKeyViolation, Code::BadUserInput),
            (DatabaseErrorKind::CheckViolation, Code::BadUserInput),
            (DatabaseErrorKind::SerializationFailure, Code::Internal),
        ];
        for (kind, code) in cases {
            let error = ApiError::from(Error::DatabaseError(kind, Box::new(Info)));
            assert_eq!(error.code, code);
            for leak in ["devices", "hostname", "constraint", "Key ("] {
                assert!(
                    !error.message.contains(leak),
                    "{kind:?} leaks {leak}: {}",
                    error.message
                );
            }
        }
        assert_eq!(ApiError::from(Error::NotFound).code, Code::NotFound);
    }

    struct Unique(&'static str);
    impl DatabaseErrorInformation for Unique {
        fn message(&self) -> &str {
            "duplicate key value violates unique constraint"
        }
        fn details(&self) -> Option<&str> {
            Some("Key (name)=(x) already exists.")
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            Some("partitions")
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            Some(self.0)
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    #[test]
    fn a_conflict_names_the_field_but_not_the_constraint() {
        let conflict = |constraint| {
            ApiError::from(Error::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                Box::new(Unique(constraint)),
            ))
        };
        for (constraint, field) in UNIQUE_FIELDS {
            let error = conflict(constraint);
            assert_eq!(error.code, Code::Conflict);
            assert_eq!(
                error.message,
                format!("a record with this {field} already exists")
            );
            assert!(!error.message.contains(constraint), "{}", error.message);
            assert!(!error.message.contains("_key") && !error.message.contains("_pkey"));
        }
        assert_eq!(
            conflict("partitions_name_key").message,
            "a record with this name already exists"
        );
        assert_eq!(
            conflict("some_future_constraint_key").message,
            "a record with this value already exists"
        );
    }

    #[test]
    fn every_api_error_carries_its_code_in_extensions() {
        for code in [
            Code::Unauthenticated,
            Code::Forbidden,
            Code::RateLimited,
            Code::TenantUnavailable,
            Code::Unavailable,
        ] {
            let error = graphql(ApiError::new(code, "x"));
            let extensions = serde_json::to_value(&error.extensions).expect("serialize");
            assert_eq!(extensions["code"], code.as_str());
        }
    }

    #[test]
    fn token_refusals_are_unauthenticated_except_denials() {
        assert_eq!(ApiError::from(TokenRefusal::Expired).code, Code::Unauthenticated);
        assert_eq!(ApiError::from(TokenRefusal::Denied).code, Code::Forbidden);
        assert_eq!(ApiError::from(TokenRefusal::Busy).code, Code::Unavailable);
        assert_eq!(
            ApiError::from(TxError::CredentialRevoked).code,
            Code::Unauthenticated
        );
    }

    #[test]
    fn a_lost_connection_is_unavailable_and_names_nothing_of_the_database() {
        use diesel::result::{DatabaseErrorKind, Error};
        let closed = Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("connection closed by 127.0.0.1:5432".to_owned()),
        );
        let terminated = Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("terminating connection due to administrator command".to_owned()),
        );
        for lost in [closed, terminated] {
            let error = ApiError::from(lost);
            assert_eq!(error.code, Code::Unavailable);
            assert_eq!(error.retry_after_secs(), Some(1));
            assert!(!error.message.contains("127.0.0.1") && !error.message.contains("terminating"));
        }
        let connect = ApiError::from(TxError::Connect("error connecting to server: refused".to_owned()));
        assert_eq!(connect.code, Code::Unavailable);
        assert!(!connect.message.contains("refused"), "{}", connect.message);
        // A statement's own error is not a lost connection.
        let other = Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("division by zero".to_owned()),
        );
        assert_eq!(ApiError::from(other).code, Code::Internal);
    }

    #[test]
    fn pool_exhaustion_is_unavailable_with_a_retry_after() {
        let error = ApiError::from(TxError::PoolTimeout(Duration::from_secs(5)));
        assert_eq!(error.code, Code::Unavailable);
        let extensions = serde_json::to_value(&graphql(error).extensions).expect("serialize");
        assert_eq!(extensions["code"], "UNAVAILABLE");
        assert_eq!(extensions["retryAfter"], 1);
        let limited = graphql(ApiError::rate_limited("slow down", Duration::from_millis(2500)));
        let extensions = serde_json::to_value(&limited.extensions).expect("serialize");
        assert_eq!(extensions["code"], "RATE_LIMITED");
        assert_eq!(extensions["retryAfter"], 3);
    }
}
