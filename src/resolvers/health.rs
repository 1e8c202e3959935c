//! `health`: a query that needs no credentials and touches no tenant, for probes and for
//! checking that the API answers.

use async_graphql::{Object, SimpleObject};

/// That the API answers, and which build answers.
#[derive(SimpleObject)]
pub struct Health {
    /// Always `true` when the server answers.
    pub ok: bool,
    /// Version of the Enclave server.
    pub version: String,
}

#[derive(Default)]
pub struct HealthQuery;

#[Object]
impl HealthQuery {
    /// Whether the API is up, and its version.
    async fn health(&self) -> Health {
        Health {
            ok: true,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}
