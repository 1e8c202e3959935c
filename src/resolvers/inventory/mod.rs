//! Inventory: devices, their interfaces and identifiers, device groups and partitions,
//! one file per resource (its object, inputs, payloads and root fields), merged here.
//! Lists are Relay connections with keyset cursors; relations go through the request's
//! loaders (one statement per level, not per row). Input is checked before any SQL runs;
//! a refused edit writes nothing.

mod devices;
mod groups;
mod identifiers;
mod interfaces;
mod partitions;

use async_graphql::{ID, MaybeUndefined, MergedObject, SimpleObject};
use ipnet::IpNet;

pub use devices::Device;
pub use groups::DeviceGroup;
pub use identifiers::DeviceIdentifier;
pub use interfaces::Interface;
pub use partitions::Partition;

use super::errors::{ApiError, ApiResult};

/// Inventory's root query fields.
#[derive(MergedObject, Default)]
pub struct InventoryQuery(
    devices::DeviceQuery,
    interfaces::InterfaceQuery,
    groups::DeviceGroupQuery,
    partitions::PartitionQuery,
);

/// Inventory's root mutation fields.
#[derive(MergedObject, Default)]
pub struct InventoryMutation(
    devices::DeviceMutation,
    interfaces::InterfaceMutation,
    identifiers::DeviceIdentifierMutation,
    groups::DeviceGroupMutation,
    partitions::PartitionMutation,
);

fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_mac(raw: &str) -> ApiResult<[u8; 6]> {
    let parts: Vec<&str> = raw.trim().split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(ApiError::bad_input(format!("{raw:?} is not a MAC address")));
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16)
            .map_err(|_| ApiError::bad_input(format!("{raw:?} is not a MAC address")))?;
    }
    Ok(mac)
}

/// An address (`10.0.0.1`) or a network (`10.0.0.0/24`).
fn parse_ip(raw: &str) -> ApiResult<IpNet> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| ApiError::bad_input(format!("{raw:?} is not an IP address")))
}

fn format_ip(ip: &IpNet) -> String {
    if ip.prefix_len() == ip.max_prefix_len() {
        ip.addr().to_string()
    } else {
        ip.to_string()
    }
}

/// A field that may be absent (unchanged), null (cleared) or a value, converted.
fn maybe<T, U>(
    value: MaybeUndefined<T>,
    convert: impl FnOnce(T) -> ApiResult<U>,
) -> ApiResult<Option<Option<U>>> {
    Ok(match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(value) => Some(Some(convert(value)?)),
    })
}

/// A new name, trimmed; a blank one is refused.
fn new_name(name: Option<String>) -> ApiResult<Option<String>> {
    match name.map(|n| n.trim().to_owned()) {
        Some(n) if n.is_empty() => Err(ApiError::bad_input("name must not be blank")),
        other => Ok(other),
    }
}

/// The result of `deleteDeviceGroup` and `deletePartition`.
#[derive(SimpleObject)]
pub struct DeletedPayload {
    /// Global id of the object deleted.
    pub deleted_id: ID,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_ips_parse_and_format() {
        assert_eq!(
            parse_mac("AA-bb-cc-00-11-22").map(format_mac).ok().as_deref(),
            Some("aa:bb:cc:00:11:22")
        );
        assert!(parse_mac("aa:bb").is_err() && parse_mac("zz:bb:cc:00:11:22").is_err());
        assert_eq!(
            parse_ip("10.0.0.1").map(|ip| format_ip(&ip)).ok().as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            parse_ip("10.0.0.0/24").map(|ip| format_ip(&ip)).ok().as_deref(),
            Some("10.0.0.0/24")
        );
        assert!(parse_ip("10.0.0.300").is_err());
    }
}
