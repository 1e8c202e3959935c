//! [`PreparedSql`]: hand-written SQL that each connection prepares once and then reuses,
//! for the statements the query builder cannot express (a `LATERAL` page per parent).
//!
//! diesel's `sql_query` marks itself unsafe to cache, so each use is prepared anew: a
//! round trip to parse and plan before the one that executes. `PreparedSql` is cached by
//! its SQL text and bind types like any dynamically built query, which is safe because the
//! text is fixed by the caller (never built from user input) and the plan follows the
//! transaction's `search_path` (PostgreSQL re-plans a cached statement when it changes;
//! in a tenant transaction each tenant has its own, see `crate::tenancy::statements`).

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// One bind parameter with its SQL type.
trait Param: Send + Sync {
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct Typed<ST, T>(T, PhantomData<fn() -> ST>);

impl<ST, T> Param for Typed<ST, T>
where
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg> + Send + Sync,
{
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, T>(&self.0)
    }
}

/// A statement of fixed SQL text with `$1`…`$n` placeholders, bound in that order with
/// [`PreparedSql::bind`]; loads into `QueryableByName` rows like `sql_query`.
pub struct PreparedSql {
    /// The text before each placeholder with the placeholder's number, then the tail.
    segments: Vec<(String, Option<usize>)>,
    params: Vec<Box<dyn Param>>,
}

impl PreparedSql {
    /// `sql` must be fixed text (no user input); `$n` marks parameter `n` (from 1).
    pub fn new(sql: &str) -> Self {
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                let mut number = 0usize;
                while let Some(digit) = chars.peek().and_then(|d| d.to_digit(10)) {
                    number = number * 10 + digit as usize;
                    chars.next();
                }
                segments.push((std::mem::take(&mut text), Some(number)));
            } else {
                text.push(c);
            }
        }
        segments.push((text, None));
        Self {
            segments,
            params: Vec::new(),
        }
    }

    /// Binds the next parameter (`$1` first).
    pub fn bind<ST, T>(mut self, value: T) -> Self
    where
        Pg: HasSqlType<ST>,
        T: ToSql<ST, Pg> + Send + Sync + 'static,
        ST: 'static,
    {
        self.params.push(Box::new(Typed::<ST, T>(value, PhantomData)));
        self
    }
}

impl QueryFragment<Pg> for PreparedSql {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for (text, param) in &self.segments {
            out.push_sql(text);
            if let Some(number) = param {
                let param = number
                    .checked_sub(1)
                    .and_then(|i| self.params.get(i))
                    .ok_or_else(|| {
                        diesel::result::Error::QueryBuilderError(
                            format!("parameter ${number} is not bound").into(),
                        )
                    })?;
                param.push(&mut out)?;
            }
        }
        Ok(())
    }
}

impl QueryId for PreparedSql {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for PreparedSql {
    type SqlType = Untyped;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_the_order_they_appear() {
        let query = PreparedSql::new("SELECT $1::int + $2::int WHERE $10 > 0");
        let numbers: Vec<_> = query.segments.iter().map(|(_, n)| *n).collect();
        assert_eq!(numbers, vec![Some(1), Some(2), Some(10), None]);
        assert_eq!(query.segments[1].0, "::int + ");
        assert_eq!(query.segments[3].0, " > 0");
    }
}
