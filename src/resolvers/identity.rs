//! Identity: `me`, `login`, `selectTenant`, `logout`, API tokens, and users
//! (`createUser`, `updateUser`; the `users` list lives with the other lists in
//! `observability`).
//!
//! Login resolves the tenant, in order: the vanity domain the request arrived on; the
//! configured default tenant (`ENCLAVE_DEFAULT_TENANT`); the only tenant besides the
//! platform. Otherwise it checks the credentials in the tenants where the email is a
//! member, at most [`LOGIN_FAN_OUT`] of them (the first by slug; members of more tenants
//! log in on their tenant's vanity domain): one match logs in directly, several return a
//! selection, each choice an opaque server-signed value for `selectTenant`.
//!
//! Failures never say whether the email exists, by their answer or by their cost: a login
//! with a fixed tenant runs exactly one Argon2 verification, one without runs exactly
//! [`LOGIN_FAN_OUT`], padding with decoy verifications, whatever the email and however
//! many tenants it belongs to. Every attempt is reserved with the login throttle
//! (`auth::throttle`: per email + client address, email, address and overall) before any
//! password is checked, and Argon2 work is bounded to one login per CPU at a time.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::context::{app, scope};
use super::errors::{ApiError, ApiResult, Code, retry_secs};
use super::ids;
use super::monitoring::{cursor_time, time_cursor};
use super::pagination::{Cursor, Window, fetch_page, keyset};
use super::platform::Tenant;
use crate::app::App;
use crate::auth::throttle::{self, ClientAddress};
use crate::auth::token::{self, Claims, Credential};
use crate::auth::users::{self, UserRecord};
use crate::auth::{Role, password, sessions};
use crate::schema::tenant::{api_tokens, tokens, users as users_table};
use crate::tenancy::directory::TenantEntry;
use crate::tenancy::scope::Actor;
use crate::tenancy::transaction::Access;

/// Password verifications of every login without a fixed tenant (see the module doc):
/// the most tenants such a login can find the email in.
pub const LOGIN_FAN_OUT: usize = 3;

/// Longest lifetime of an API token.
const MAX_API_TOKEN_DAYS: i64 = 366;
/// Lifetime of an API token created without `expiresAt`.
const DEFAULT_API_TOKEN_DAYS: i64 = 90;
/// Lifetime of a tenant choice returned by `login`.
const CHOICE_TTL: Duration = Duration::from_secs(300);

/// What a caller may do within its tenant.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "Role")]
pub enum RoleValue {
    /// Reads.
    Viewer,
    /// Reads and runs operational mutations.
    Operator,
    /// Everything within the tenant.
    Admin,
    /// Manages tenants (platform tenant only).
    PlatformAdmin,
}

impl From<Role> for RoleValue {
    fn from(role: Role) -> Self {
        match role {
            Role::Viewer => Self::Viewer,
            Role::Operator => Self::Operator,
            Role::Admin => Self::Admin,
            Role::PlatformAdmin => Self::PlatformAdmin,
        }
    }
}

impl From<RoleValue> for Role {
    fn from(role: RoleValue) -> Self {
        match role {
            RoleValue::Viewer => Self::Viewer,
            RoleValue::Operator => Self::Operator,
            RoleValue::Admin => Self::Admin,
            RoleValue::PlatformAdmin => Self::PlatformAdmin,
        }
    }
}

/// A user of the caller's tenant.
#[derive(Clone)]
pub struct User(pub UserRecord);

impl From<UserRecord> for User {
    fn from(user: UserRecord) -> Self {
        Self(user)
    }
}

/// A user of the caller's tenant.
#[Object]
impl User {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("User", self.0.id)
    }
    /// Login email, lowercase.
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// Name shown in the UI.
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    /// The user's role in this tenant.
    async fn role(&self) -> RoleValue {
        self.0.role().into()
    }
    /// Disabled users cannot log in and their sessions stop working.
    async fn disabled(&self) -> bool {
        self.0.disabled
    }
    /// Last successful login.
    async fn last_login_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_login_at
    }
    /// When the user was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// The authenticated caller.
#[derive(SimpleObject)]
pub struct Viewer {
    /// The caller's user record; null when a platform admin impersonates this tenant.
    pub user: Option<User>,
    /// The role this token grants (may be lower than the user's own role).
    pub role: RoleValue,
    /// The tenant the caller acts in.
    pub tenant: Tenant,
    /// Email of the platform admin impersonating this tenant, if any.
    pub impersonator: Option<String>,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
}

/// A tenant the login's credentials are valid in.
#[derive(SimpleObject)]
pub struct TenantChoice {
    /// Slug of the tenant.
    pub slug: String,
    /// Display name of the tenant.
    pub name: String,
    /// Opaque value to pass to `selectTenant`; valid for five minutes.
    pub choice: String,
}

/// The result of `login` or `selectTenant`.
#[derive(SimpleObject, Default)]
pub struct LoginPayload {
    /// Session token (send as `Authorization: Bearer <token>`); null when a tenant must be chosen.
    pub token: Option<String>,
    /// When the session expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// The tenant logged in to.
    pub tenant: Option<Tenant>,
    /// Tenants to choose from with `selectTenant`, when the credentials are valid in several.
    pub choices: Vec<TenantChoice>,
}

/// The result of `logout`.
#[derive(SimpleObject)]
pub struct LogoutPayload {
    /// The session was revoked.
    pub revoked: bool,
}

/// A login session of a user (never the token itself). Revoking it logs the user out of it.
#[derive(SimpleObject, Queryable, Selectable, Clone)]
#[diesel(table_name = tokens)]
#[diesel(check_for_backend(diesel::pg::Pg))]
#[graphql(complex)]
pub struct Session {
    #[graphql(skip)]
    pub id: Uuid,
    #[graphql(skip)]
    pub user_id: Uuid,
    /// The platform admin who impersonated the user in this session, if one did.
    pub impersonator: Option<String>,
    /// The client's `User-Agent`, when it sent one.
    pub user_agent: Option<String>,
    /// When the session expires.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked (logout or `revokeSession`), if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it started.
    pub created_at: DateTime<Utc>,
}

#[async_graphql::ComplexObject]
impl Session {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("Session", self.id)
    }
    /// Global id of the session's user.
    async fn user_id(&self) -> ID {
        ids::encode("User", self.user_id)
    }
}

/// Which sessions `sessions` lists.
#[derive(InputObject)]
pub struct SessionFilter {
    /// Global id of the user whose sessions to list.
    pub user_id: ID,
    /// Only sessions neither revoked nor expired (true), or only the others (false).
    pub active: Option<bool>,
}

/// The result of `revokeSession`.
#[derive(SimpleObject)]
pub struct RevokeSessionPayload {
    /// The session, with its `revokedAt`.
    pub session: Session,
}

/// A long-lived token for automation. The token itself is shown only once, at creation.
#[derive(SimpleObject, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
#[diesel(check_for_backend(diesel::pg::Pg))]
#[graphql(complex)]
pub struct ApiToken {
    #[graphql(skip)]
    pub id: Uuid,
    /// What the token is for.
    pub name: String,
    #[graphql(skip)]
    pub role: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

#[async_graphql::ComplexObject]
impl ApiToken {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("ApiToken", self.id)
    }

    /// Role the token grants.
    async fn role(&self) -> RoleValue {
        self.role.parse::<Role>().unwrap_or(Role::Viewer).into()
    }
}

/// Input of `createApiToken`.
#[derive(InputObject)]
pub struct CreateApiTokenInput {
    /// What the token is for (1 to 200 characters).
    pub name: String,
    /// Role the token grants; at most the caller's own role.
    pub role: RoleValue,
    /// When the token stops working (RFC 3339, e.g. `2027-01-31T00:00:00Z`); in the
    /// future, at most 366 days away. Default: 90 days from now.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The result of `createApiToken`.
#[derive(SimpleObject)]
pub struct CreateApiTokenPayload {
    /// The token's record.
    pub api_token: ApiToken,
    /// The token itself. Store it now: it is never shown again.
    pub token: String,
}

/// The result of `revokeApiToken`.
#[derive(SimpleObject)]
pub struct RevokeApiTokenPayload {
    /// The revoked token's record.
    pub api_token: ApiToken,
}

/// Input of `createUser`.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// Login email.
    pub email: String,
    /// Name shown in the UI.
    #[graphql(default)]
    pub display_name: String,
    /// Role; at most the caller's own.
    pub role: RoleValue,
    /// Initial password (at least 12 characters).
    pub password: String,
}

/// Input of `updateUser`: absent fields are left alone.
#[derive(InputObject)]
pub struct UpdateUserInput {
    /// The user to change.
    pub id: ID,
    /// New display name.
    pub display_name: Option<String>,
    /// New role; at most the caller's own.
    pub role: Option<RoleValue>,
    /// Disable (their sessions stop working at once) or enable the user.
    pub disabled: Option<bool>,
}

/// A user after a mutation.
#[derive(SimpleObject)]
pub struct UserPayload {
    /// The user as it is now.
    pub user: User,
}

#[derive(AsChangeset)]
#[diesel(table_name = users_table)]
struct UserChanges {
    display_name: Option<String>,
    role: Option<&'static str>,
    disabled: Option<bool>,
    updated_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct IdentityQuery;

#[Object]
impl IdentityQuery {
    /// The caller: user, role and tenant.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Viewer> {
        let scope = scope(ctx)?;
        let actor = scope.actor()?;
        let user = {
            let mut conn = scope.conn().await?;
            users::find_by_id(conn.pg(), actor.claims.user_id).await?
        };
        Ok(Viewer {
            user: user.map(User::from),
            role: scope.role()?.into(),
            tenant: Tenant::from(actor.tenant.as_ref()),
            impersonator: actor.claims.impersonator.clone(),
            expires_at: actor.claims.expires_at,
        })
    }

    /// Sessions of one user of the tenant, newest first (admins only).
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Whose sessions to list, and which.")] filter: SessionFilter,
        #[graphql(
            desc = "Page size, walking forward from `after`: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500). Without first and last, pages have 50 items."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts (from `pageInfo.endCursor`).")] after: Option<
            String,
        >,
        #[graphql(
            desc = "Page size, walking backward from `before`: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500)."
        )]
        last: Option<i32>,
        #[graphql(desc = "Cursor before which the page ends (from `pageInfo.startCursor`).")] before: Option<
            String,
        >,
    ) -> ApiResult<Connection<Cursor, Session, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let user = ids::decode("User", &filter.user_id)?;
        let mut query = tokens::table
            .filter(tokens::user_id.eq(user))
            .select(Session::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        match filter.active {
            Some(true) => {
                query = query
                    .filter(tokens::revoked_at.is_null())
                    .filter(tokens::expires_at.gt(diesel::dsl::now));
            }
            Some(false) => {
                query = query.filter(
                    tokens::revoked_at
                        .is_not_null()
                        .or(tokens::expires_at.le(diesel::dsl::now)),
                );
            }
            None => {}
        }
        let query = keyset!(
            query,
            &window,
            tokens::created_at,
            tokens::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |s: &Session| time_cursor(s.created_at, s.id),
            |s| s,
            EmptyFields
        )
    }

    /// API tokens of the caller's tenant (never the tokens themselves), newest first.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn api_tokens(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size, walking forward from `after`: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500). Without first and last, pages have 50 items."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts (from `pageInfo.endCursor`).")] after: Option<
            String,
        >,
        #[graphql(
            desc = "Page size, walking backward from `before`: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500)."
        )]
        last: Option<i32>,
        #[graphql(desc = "Cursor before which the page ends (from `pageInfo.startCursor`).")] before: Option<
            String,
        >,
    ) -> ApiResult<Connection<Cursor, ApiToken, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let query = api_tokens::table
            .select(ApiToken::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(
            query,
            &window,
            api_tokens::created_at,
            api_tokens::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |t: &ApiToken| time_cursor(t.created_at, t.id),
            |t| t,
            EmptyFields
        )
    }
}

#[derive(Default)]
pub struct IdentityMutation;

#[Object]
impl IdentityMutation {
    /// Revokes a session of a user of the tenant (admins only): its token stops working at
    /// once. Revoking a revoked session keeps its first `revokedAt`.
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the session.")] id: ID,
    ) -> ApiResult<RevokeSessionPayload> {
        let id = ids::decode("Session", &id)?;
        let mut conn = scope(ctx)?.conn().await?;
        diesel::update(tokens::table.find(id).filter(tokens::revoked_at.is_null()))
            .set(tokens::revoked_at.eq(diesel::dsl::now))
            .execute(&mut conn)
            .await?;
        let session = tokens::table
            .find(id)
            .select(Session::as_select())
            .first(&mut conn)
            .await
            .optional()?
            .ok_or_else(|| ApiError::not_found("no such session"))?;
        Ok(RevokeSessionPayload { session })
    }
    /// Logs in with email and password. The tenant is the vanity domain's, else the
    /// configured default tenant, else the only tenant; otherwise the credentials are
    /// checked in at most 3 of the email's tenants (the first by slug): members of more
    /// tenants log in on their tenant's own domain. Repeated failures are slowed down,
    /// then refused with RATE_LIMITED.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Login email.")] email: String,
        #[graphql(desc = "Password.")] password: String,
    ) -> ApiResult<LoginPayload> {
        let app = app(ctx)?;
        let scope = scope(ctx)?;
        let Ok(email) = users::normalize_email(&email) else {
            return Err(invalid_credentials());
        };
        let address = ctx
            .data_opt::<ClientAddress>()
            .copied()
            .unwrap_or(ClientAddress::Unknown);
        // Counted as a failure from here on, unless it succeeds (or never verifies).
        let attempt = app.throttle.reserve(&email, address).map_err(|retry| {
            ApiError::rate_limited(
                format!("too many failed logins; retry in {} s", retry_secs(retry)),
                retry,
            )
        })?;
        tokio::time::sleep(attempt.delay()).await;
        let Some(slot) = app.throttle.verification_slot().await else {
            attempt.refund();
            return Err(ApiError::rate_limited(
                "the server is busy checking passwords; retry in a second",
                throttle::BUSY_RETRY_AFTER,
            ));
        };

        let fixed = scope
            .host_tenant
            .clone()
            .or_else(|| {
                app.default_tenant
                    .as_deref()
                    .and_then(|slug| app.directory.by_slug(slug))
            })
            .or_else(|| match app.directory.customer_tenants().as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            });
        let (candidates, verifications) = match fixed {
            Some(tenant) => (vec![tenant].into_iter().filter(|t| t.is_active()).collect(), 1),
            None => {
                let mut tenants: Vec<_> = member_tenants(app, &email)
                    .await?
                    .into_iter()
                    .filter(|t| t.is_active())
                    .collect();
                tenants.sort_by(|a, b| a.slug.cmp(&b.slug));
                tenants.truncate(LOGIN_FAN_OUT);
                (tenants, LOGIN_FAN_OUT)
            }
        };
        let mut valid = Vec::new();
        for tenant in &candidates {
            if let Some(user) = check_credentials(app, tenant, &email, &password).await? {
                valid.push((tenant.clone(), user));
            }
        }
        // Decoys up to the fixed count: timing must not tell how many tenants (if any)
        // the email belongs to.
        let decoys = verifications.saturating_sub(candidates.len());
        if decoys > 0 {
            let password = password.clone();
            tokio::task::spawn_blocking(move || {
                for _ in 0..decoys {
                    password::verify(&password, None);
                }
            })
            .await
            .map_err(ApiError::internal)?;
        }
        drop(slot);
        if valid.is_empty() {
            // The attempt stays counted as a failure.
            drop(attempt);
            return Err(invalid_credentials());
        }
        attempt.succeeded();
        if valid.len() == 1 {
            let Some((tenant, user)) = valid.pop() else {
                return Err(invalid_credentials());
            };
            return start_session(app, tenant, &user).await;
        }
        let expires = Utc::now() + CHOICE_TTL;
        let choices = valid
            .iter()
            .map(|(tenant, user)| {
                let choice =
                    token::mint_choice(&app.keys, tenant.id, user.id, expires).map_err(ApiError::internal)?;
                Ok(TenantChoice {
                    slug: tenant.slug.to_string(),
                    name: tenant.name.clone(),
                    choice,
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(LoginPayload {
            choices,
            ..LoginPayload::default()
        })
    }

    /// Completes a login that returned several tenants.
    async fn select_tenant(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `choice` value returned by `login`.")] choice: String,
    ) -> ApiResult<LoginPayload> {
        let app = app(ctx)?;
        let (tenant_id, user_id) = token::read_choice(&app.keys, &choice)
            .map_err(|_| ApiError::unauthenticated("the choice is invalid or has expired"))?;
        let tenant = app
            .directory
            .by_id(tenant_id)
            .ok_or_else(|| ApiError::unauthenticated("the choice is invalid or has expired"))?;
        if scope(ctx)?
            .host_tenant
            .as_ref()
            .is_some_and(|host| host.id != tenant.id)
        {
            return Err(ApiError::unauthenticated("the choice is invalid or has expired"));
        }
        if !tenant.is_active() {
            return Err(ApiError::new(Code::TenantUnavailable, "the tenant is suspended"));
        }
        let tx = app.tenant_tx(tenant.clone(), Access::ReadOnly, None);
        let user = {
            let mut conn = tx.conn().await?;
            users::find_by_id(conn.pg(), user_id).await?
        };
        tx.finish(true).await?;
        match user {
            Some(user) if !user.disabled => start_session(app, tenant, &user).await,
            _ => Err(ApiError::unauthenticated("the choice is invalid or has expired")),
        }
    }

    /// Revokes the caller's session token.
    async fn logout(&self, ctx: &Context<'_>) -> ApiResult<LogoutPayload> {
        let scope = scope(ctx)?;
        let Credential::Session(session) = scope.actor()?.claims.credential else {
            return Err(ApiError::bad_input(
                "only session tokens log out; revoke API tokens with revokeApiToken",
            ));
        };
        let mut conn = scope.conn().await?;
        let revoked = diesel::update(tokens::table.find(session).filter(tokens::revoked_at.is_null()))
            .set(tokens::revoked_at.eq(diesel::dsl::now))
            .execute(&mut conn)
            .await?;
        Ok(LogoutPayload {
            revoked: revoked == 1,
        })
    }

    /// Creates an API token. The token is returned once and never stored.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateApiTokenInput,
    ) -> ApiResult<CreateApiTokenPayload> {
        let app = app(ctx)?;
        let scope = scope(ctx)?;
        let actor = scope.actor()?;
        let role = Role::from(input.role);
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ApiError::bad_input("name must have 1 to 200 characters"));
        }
        require_unrestricted(actor, "API tokens")?;
        if role > scope.role()? {
            return Err(ApiError::forbidden(
                "an API token cannot grant more than your own role",
            ));
        }
        let now = Utc::now();
        let expires_at = input
            .expires_at
            .unwrap_or(now + chrono::Duration::days(DEFAULT_API_TOKEN_DAYS));
        if expires_at <= now || expires_at > now + chrono::Duration::days(MAX_API_TOKEN_DAYS) {
            return Err(ApiError::bad_input(format!(
                "expiresAt must be in the future and at most {MAX_API_TOKEN_DAYS} days away"
            )));
        }
        let created_by = Some(actor.claims.user_id);
        let record: ApiToken = {
            let mut conn = scope.conn().await?;
            diesel::insert_into(api_tokens::table)
                .values((
                    api_tokens::name.eq(name),
                    api_tokens::role.eq(role.as_str()),
                    api_tokens::created_by.eq(created_by),
                    api_tokens::expires_at.eq(expires_at),
                ))
                .returning(ApiToken::as_returning())
                .get_result(&mut conn)
                .await?
        };
        let token = token::mint(
            &app.keys,
            &Claims {
                user_id: actor.claims.user_id,
                tenant_id: actor.tenant.id,
                role,
                credential: Credential::ApiToken(record.id),
                impersonator: None,
                expires_at: record.expires_at,
            },
        )
        .map_err(ApiError::internal)?;
        Ok(CreateApiTokenPayload {
            api_token: record,
            token,
        })
    }

    /// Adds a user to the caller's tenant (admins, with an unrestricted token).
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateUserInput,
    ) -> ApiResult<UserPayload> {
        let app = app(ctx)?;
        let scope = scope(ctx)?;
        let actor = scope.actor()?;
        let role = Role::from(input.role);
        // A new user's sessions would outlive any restriction of the creating token.
        require_unrestricted(actor, "users")?;
        if role > scope.role()? {
            return Err(ApiError::forbidden("a user cannot get more than your own role"));
        }
        let new = users::NewUser {
            email: input.email,
            display_name: input.display_name.trim().to_owned(),
            role,
            password: input.password,
        };
        let tenant = actor.tenant.clone();
        let (email, hash, new) = tokio::task::spawn_blocking(move || {
            users::prepare(&tenant, &new).map(|(email, hash)| (email, hash, new))
        })
        .await
        .map_err(ApiError::internal)??;
        // Fail before writing the login hint when the email is taken; the insert checks again.
        if users::find_by_email(scope.conn().await?.pg(), &email)
            .await?
            .is_some()
        {
            return Err(users::UserError::Exists.into());
        }
        // The membership is a login hint in `public`, committed first; the user row is
        // written in this request's tenant transaction, with its revocation check.
        app.directory
            .record_member(&app.db, &actor.tenant, &email, role)
            .await?;
        let mut conn = scope.conn().await?;
        let user = users::insert(conn.pg(), &email, &new.display_name, role, &hash).await?;
        Ok(UserPayload { user: user.into() })
    }

    /// Changes a user of the caller's tenant (admins). Disabling one ends their sessions.
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdateUserInput,
    ) -> ApiResult<UserPayload> {
        let scope = scope(ctx)?;
        let actor = scope.actor()?;
        let own_role = scope.role()?;
        let id = ids::decode("User", &input.id)?;
        let role = input.role.map(Role::from);
        if role.is_some_and(|r| r > own_role) {
            return Err(ApiError::forbidden("a user cannot get more than your own role"));
        }
        if role == Some(Role::PlatformAdmin) && !actor.tenant.slug.is_platform() {
            return Err(ApiError::bad_input(
                "only users of the platform tenant can be platform admins",
            ));
        }
        if id == actor.claims.user_id && (input.disabled == Some(true) || role.is_some_and(|r| r < own_role))
        {
            return Err(ApiError::bad_input("you cannot disable or demote yourself"));
        }
        let changes = UserChanges {
            display_name: input.display_name.map(|n| n.trim().to_owned()),
            role: role.map(Role::as_str),
            disabled: input.disabled,
            updated_at: Utc::now(),
        };
        let mut conn = scope.conn().await?;
        let target = users::find_by_id(conn.pg(), id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such user"))?;
        if target.role() > own_role {
            return Err(ApiError::forbidden(
                "you cannot change a user whose role is above yours",
            ));
        }
        let user = diesel::update(users_table::table.find(id))
            .set(changes)
            .returning(UserRecord::as_returning())
            .get_result(&mut conn)
            .await
            .optional()?
            .ok_or_else(|| ApiError::not_found("no such user"))?;
        Ok(UserPayload { user: user.into() })
    }

    /// Revokes an API token, and every token attenuated from it, from the next request on.
    async fn revoke_api_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the object.")] id: ID,
    ) -> ApiResult<RevokeApiTokenPayload> {
        let id = ids::decode("ApiToken", &id)?;
        let mut conn = scope(ctx)?.conn().await?;
        // Revoking twice keeps the first revocation's time.
        let first_revocation = diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>>(
            "coalesce(revoked_at, now())",
        );
        let record: Option<ApiToken> = diesel::update(api_tokens::table.find(id))
            .set(api_tokens::revoked_at.eq(first_revocation))
            .returning(ApiToken::as_returning())
            .get_result(&mut conn)
            .await
            .optional()?;
        record
            .map(|api_token| RevokeApiTokenPayload { api_token })
            .ok_or_else(|| ApiError::not_found("no such API token"))
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthenticated("invalid email or password")
}

/// Refuses `what` (something that outlives the request: users, API tokens) to attenuated
/// and impersonation tokens.
fn require_unrestricted(actor: &Actor, what: &str) -> ApiResult<()> {
    if actor.attenuated || matches!(actor.claims.credential, Credential::Impersonation(_)) {
        return Err(ApiError::forbidden(format!(
            "{what} can only be created with an unrestricted session or API token, \
             not an attenuated or impersonation token"
        )));
    }
    Ok(())
}

/// Active tenants where `email` is a member (platform data, read outside any tenant).
async fn member_tenants(app: &App, email: &str) -> ApiResult<Vec<Arc<TenantEntry>>> {
    Ok(app.directory.tenants_of_member(&app.db, email).await?)
}

/// The user if `password` is theirs in `tenant`. Always spends one Argon2 verification.
async fn check_credentials(
    app: &App,
    tenant: &Arc<TenantEntry>,
    email: &str,
    password: &str,
) -> ApiResult<Option<UserRecord>> {
    let tx = app.tenant_tx(tenant.clone(), Access::ReadOnly, None);
    let user = {
        let mut conn = tx.conn().await?;
        users::find_by_email(conn.pg(), email).await?
    };
    tx.finish(true).await?;
    let stored = user
        .as_ref()
        .filter(|u| !u.disabled)
        .and_then(|u| u.password_hash.clone());
    let password = password.to_owned();
    let matches = tokio::task::spawn_blocking(move || password::verify(&password, stored.as_deref()))
        .await
        .map_err(ApiError::internal)?;
    Ok(user.filter(|_| matches))
}

/// Records a session in the tenant and returns its token.
async fn start_session(app: &App, tenant: Arc<TenantEntry>, user: &UserRecord) -> ApiResult<LoginPayload> {
    let (token, expires_at) = sessions::start(app, &tenant, user, app.session_ttl).await?;
    Ok(LoginPayload {
        token: Some(token),
        expires_at: Some(expires_at),
        tenant: Some(Tenant::from(tenant.as_ref())),
        choices: Vec::new(),
    })
}
