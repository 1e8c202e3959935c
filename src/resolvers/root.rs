//! The root objects as the schema serves them: [`Gated`] wraps `Query` and `Mutation` so
//! that the first root field of an operation waits for the request's [`RootGate`] (the
//! HTTP layer's privilege check) and no root field resolves before it has passed.
//!
//! Why not an async-graphql extension: any registered extension puts every field of every
//! response through `Extensions::resolve` (async-graphql's slow path, measured at more than
//! half the CPU of a nested list), while this gate costs one check per root field. It runs
//! where the extension's `execute` hook ran: after parsing and validation (a document the
//! limits refuse never reaches it, so it costs no SQL) and before any resolver.

use std::borrow::Cow;
use std::sync::Arc;

use async_graphql::futures_util::future::BoxFuture;
use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{ContainerType, resolve_container};
use async_graphql::{
    Context, ContextSelectionSet, ObjectType, OutputType, Positioned, ServerError, ServerResult, Value,
};

/// What must hold before any root field of one operation resolves, installed per request
/// as `Arc<dyn RootGate>` in the request data. Passing is done once per operation: the
/// implementation remembers its outcome, and concurrent root fields wait for the same one.
pub trait RootGate: Send + Sync {
    /// Passes the gate, or the error every root field of the operation fails with.
    fn pass(&self) -> BoxFuture<'_, Result<(), ServerError>>;
}

/// A root object whose fields resolve only once the request's [`RootGate`] (if any) passed.
/// Same GraphQL type as `T`: the schema and its SDL do not change.
#[derive(Default)]
pub struct Gated<T>(pub T);

impl<T: ContainerType> ContainerType for Gated<T> {
    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        if let Some(gate) = ctx.data_opt::<Arc<dyn RootGate>>() {
            gate.pass().await?;
        }
        self.0.resolve_field(ctx).await
    }

    async fn find_entity(&self, ctx: &Context<'_>, params: &Value) -> ServerResult<Option<Value>> {
        self.0.find_entity(ctx, params).await
    }
}

impl<T: ContainerType> OutputType for Gated<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        resolve_container(ctx, self).await
    }
}

impl<T: ObjectType> ObjectType for Gated<T> {}
