//! Device identifiers: the `DeviceIdentifier` object (listed under `Device.identifiers`),
//! added and removed one by one.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::resolvers::context::scope;
use crate::resolvers::enums::IdentifierKind;
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids;
use crate::resolvers::models::IdentifierRow;
use crate::schema::tenant::device_identifiers;

/// A stable identity of a device.
#[derive(Clone)]
pub struct DeviceIdentifier(pub IdentifierRow);

/// A stable identity of a device.
#[Object]
impl DeviceIdentifier {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("DeviceIdentifier", self.0.id)
    }
    /// What kind of identity this is.
    async fn kind(&self) -> IdentifierKind {
        IdentifierKind::from_stored(&self.0.kind)
    }
    /// The identity's value.
    async fn value(&self) -> &str {
        &self.0.value
    }
    /// Where it was learnt (`manual`, an integration...).
    async fn source(&self) -> &str {
        &self.0.source
    }
}

/// Longest identifier value accepted.
const MAX_IDENTIFIER_LEN: usize = 512;

/// Input of `addDeviceIdentifier`.
#[derive(InputObject)]
pub struct AddDeviceIdentifierInput {
    /// Global id of the device.
    pub device_id: ID,
    /// What kind of identity this is.
    pub kind: IdentifierKind,
    /// The identity's value (1 to 512 characters, unique per kind in the tenant).
    pub value: String,
    /// Where it was learnt; `manual` when absent.
    pub source: Option<String>,
}

/// The result of `addDeviceIdentifier`.
#[derive(SimpleObject)]
pub struct DeviceIdentifierPayload {
    /// The identifier added.
    pub device_identifier: DeviceIdentifier,
}

/// The result of `removeDeviceIdentifier`.
#[derive(SimpleObject)]
pub struct RemoveDeviceIdentifierPayload {
    /// Global id of the identifier removed.
    pub removed_id: ID,
}

/// The root mutation fields of identifiers.
#[derive(Default)]
pub struct DeviceIdentifierMutation;

#[Object]
impl DeviceIdentifierMutation {
    /// Adds a stable identity to a device (operators). A value already naming a device
    /// of the tenant is a CONFLICT.
    async fn add_device_identifier(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: AddDeviceIdentifierInput,
    ) -> ApiResult<DeviceIdentifierPayload> {
        let device = ids::decode("Device", &input.device_id)?;
        let value = input.value.trim().to_owned();
        if value.is_empty() || value.chars().count() > MAX_IDENTIFIER_LEN {
            return Err(ApiError::bad_input(format!(
                "value must have 1 to {MAX_IDENTIFIER_LEN} characters"
            )));
        }
        let source = input
            .source
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "manual".to_owned());
        if source.is_empty() || source.chars().count() > 200 {
            return Err(ApiError::bad_input("source must have 1 to 200 characters"));
        }
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(device_identifiers::table)
            .values((
                device_identifiers::device_id.eq(device),
                device_identifiers::kind.eq(input.kind.as_str()),
                device_identifiers::value.eq(value),
                device_identifiers::source.eq(source),
            ))
            .returning(IdentifierRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(DeviceIdentifierPayload {
            device_identifier: DeviceIdentifier(row),
        })
    }

    /// Removes an identity from its device (operators).
    async fn remove_device_identifier(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the identifier.")] id: ID,
    ) -> ApiResult<RemoveDeviceIdentifierPayload> {
        let key = ids::decode("DeviceIdentifier", &id)?;
        let mut conn = scope(ctx)?.conn().await?;
        let removed = diesel::delete(device_identifiers::table.find(key))
            .execute(&mut conn)
            .await?;
        if removed == 0 {
            return Err(ApiError::not_found("no such device identifier"));
        }
        Ok(RemoveDeviceIdentifierPayload { removed_id: id })
    }
}
