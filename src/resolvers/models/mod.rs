//! Row types: the Diesel `Queryable` structs of the tenant tables the resolvers and the
//! loaders read (the jobs domain keeps its own, in `resolvers::jobs`). They live here, apart from the GraphQL objects that wrap them, so
//! that `loaders` imports rows and the resolvers import `loaders` without a circle.

mod device_history;
mod edge;
mod infrastructure;
mod inventory;
mod monitoring;
mod telemetry;

pub use device_history::*;
pub use edge::*;
pub use infrastructure::*;
pub use inventory::*;
pub use monitoring::*;
pub use telemetry::*;
