//! Tenant users: records, lookup by email or id, creation. Functions taking a connection
//! expect it inside the tenant's transaction (unqualified `users` resolves there).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

use super::Role;
use super::password::{self, PasswordError};
use crate::schema::public::tenant_memberships;
use crate::schema::tenant::users;
use crate::tenancy::directory::TenantEntry;
use crate::tenancy::transaction::switch_sql;

/// A row of a tenant's `users` table.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct UserRecord {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub role: String,
    pub disabled: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl UserRecord {
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Viewer)
    }
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("invalid email address")]
    InvalidEmail,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("a user with this email already exists in this tenant")]
    Exists,
    #[error("only users of the platform tenant can be platform admins")]
    PlatformRoleOutsidePlatform,
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

/// Lowercases and checks an email address (one `@`, something on both sides, no spaces).
pub fn normalize_email(raw: &str) -> Result<String, UserError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 320
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if valid {
        Ok(email)
    } else {
        Err(UserError::InvalidEmail)
    }
}

pub async fn find_by_email(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<Option<UserRecord>> {
    users::table
        .filter(users::email.eq(email))
        .select(UserRecord::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<UserRecord>> {
    users::table
        .find(id)
        .select(UserRecord::as_select())
        .first(conn)
        .await
        .optional()
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub password: String,
}

/// Records that `email` is a member of a tenant (`public.tenant_memberships`), in the same
/// transaction as the user row. The tenant's `users` table is the truth; memberships tell
/// `login` where to look. Idempotent.
pub async fn record_membership(
    conn: &mut AsyncPgConnection,
    tenant: &TenantEntry,
    email: &str,
    role: Role,
) -> QueryResult<()> {
    diesel::insert_into(tenant_memberships::table)
        .values((
            tenant_memberships::tenant_id.eq(tenant.id),
            tenant_memberships::email.eq(email),
            tenant_memberships::role.eq(role.as_str()),
        ))
        .on_conflict((tenant_memberships::tenant_id, tenant_memberships::email))
        .do_update()
        .set(tenant_memberships::role.eq(role.as_str()))
        .execute(conn)
        .await
        .map(drop)
}

/// Checks a new user against the rules (email, password policy, platform role only in
/// the platform tenant) and hashes the password. CPU-heavy: call off the async workers.
pub fn prepare(tenant: &TenantEntry, new: &NewUser) -> Result<(String, String), UserError> {
    let email = normalize_email(&new.email)?;
    if new.role == Role::PlatformAdmin && !tenant.slug.is_platform() {
        return Err(UserError::PlatformRoleOutsidePlatform);
    }
    Ok((email, password::hash_new(&new.password)?))
}

/// Inserts a user; `conn` is inside the tenant's transaction.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    email: &str,
    display_name: &str,
    role: Role,
    password_hash: &str,
) -> Result<UserRecord, UserError> {
    if find_by_email(conn, email).await?.is_some() {
        return Err(UserError::Exists);
    }
    Ok(diesel::insert_into(users::table)
        .values((
            users::email.eq(email),
            users::display_name.eq(display_name),
            users::role.eq(role.as_str()),
            users::password_hash.eq(password_hash),
        ))
        .returning(UserRecord::as_returning())
        .get_result(conn)
        .await?)
}

/// Creates a user in a tenant and records the membership, in one transaction on an owner
/// connection: the membership row in `public` first, then the user row under the tenant's
/// schema and role. For the CLI and tools; the API writes the user in the request's
/// tenant transaction (`createUser`).
pub async fn add_to_tenant(
    conn: &mut AsyncPgConnection,
    tenant: &TenantEntry,
    new: &NewUser,
) -> Result<UserRecord, UserError> {
    let (email, password_hash) = prepare(tenant, new)?;
    add_prepared(conn, tenant, &email, &new.display_name, new.role, &password_hash).await
}

/// [`add_to_tenant`] with the email already normalised and the password hashed.
pub async fn add_prepared(
    conn: &mut AsyncPgConnection,
    tenant: &TenantEntry,
    email: &str,
    display_name: &str,
    role: Role,
    password_hash: &str,
) -> Result<UserRecord, UserError> {
    conn.transaction(async |conn| {
        record_membership(conn, tenant, email, role).await?;
        conn.batch_execute(&switch_sql(tenant)).await?;
        insert(conn, email, display_name, role, password_hash).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(
            normalize_email(" Alice@Example.COM ").ok().as_deref(),
            Some("alice@example.com")
        );
        for bad in ["", "alice", "@example.com", "alice@", "a b@example.com", "a@b@c"] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
