//! Row types: the Diesel `Queryable` structs of the tenant tables the resolvers and the
//! loaders both read. They live here, apart from the GraphQL objects that wrap them, so
//! that `loaders` imports rows and the resolvers import `loaders` without a circle.

mod infrastructure;
mod inventory;
mod monitoring;

pub use infrastructure::*;
pub use inventory::*;
pub use monitoring::*;
