//! Relay cursor connections with keyset pagination.
//!
//! Every list is ordered by a sort key plus the primary key, and a cursor is the pair
//! (sort key as text, id), opaque to clients. `first/after` walks forward, `last/before`
//! backward; the page size is capped by `ENCLAVE_MAX_PAGE_SIZE` and checked before any SQL
//! runs. A page is fetched with one extra row to know whether another page follows.
//! Without `first` and `last` a page has [`DEFAULT_PAGE_SIZE`] items; `first: 0` (or
//! `last: 0`) returns no edges but still answers `pageInfo` and `totalCount`.

use async_graphql::connection::{Connection, ConnectionNameType, CursorType, Edge, EmptyFields};
use async_graphql::{Context, Object, OutputType};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::errors::{ApiError, ApiResult};

/// Page size when the client gives neither `first` nor `last`.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// A position in an ordered list: the sort key (as text) and the id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub key: String,
    pub id: Uuid,
}

/// A cursor the server did not issue.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

impl CursorType for Cursor {
    type Error = InvalidCursor;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        let invalid = || InvalidCursor;
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (id, key) = text.split_once('|').ok_or_else(invalid)?;
        Ok(Self {
            id: Uuid::parse_str(id).map_err(|_| invalid())?,
            key: key.to_owned(),
        })
    }

    fn encode_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.id, self.key))
    }
}

fn decode(raw: &str) -> ApiResult<Cursor> {
    Cursor::decode_cursor(raw).map_err(|_| ApiError::bad_input("invalid cursor"))
}

/// Which way a page walks the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// A validated page request.
#[derive(Debug, Clone)]
pub struct Window {
    pub direction: Direction,
    pub size: usize,
    /// Rows strictly after (forward) or before (backward) this position.
    pub cursor: Option<Cursor>,
}

impl Window {
    /// Validates Relay arguments; `max` is the largest page size allowed.
    pub fn new(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        max: usize,
    ) -> ApiResult<Self> {
        let size = |n: i32, name: &str| -> ApiResult<usize> {
            usize::try_from(n)
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| ApiError::bad_input(format!("{name} must be between 0 and {max}")))
        };
        match (first, after, last, before) {
            (_, Some(_), _, Some(_)) => Err(ApiError::bad_input("give either after or before, not both")),
            (Some(_), _, Some(_), _) => Err(ApiError::bad_input("give either first or last, not both")),
            (first, after, None, None) => Ok(Self {
                direction: Direction::Forward,
                size: first
                    .map(|n| size(n, "first"))
                    .transpose()?
                    .unwrap_or(DEFAULT_PAGE_SIZE.min(max)),
                cursor: after.as_deref().map(decode).transpose()?,
            }),
            (None, None, last, before) => Ok(Self {
                direction: Direction::Backward,
                size: last
                    .map(|n| size(n, "last"))
                    .transpose()?
                    .unwrap_or(DEFAULT_PAGE_SIZE.min(max)),
                cursor: before.as_deref().map(decode).transpose()?,
            }),
            _ => Err(ApiError::bad_input("use first/after or last/before")),
        }
    }

    /// A forward window (`first`/`after`), as nested lists take.
    pub fn forward(first: Option<i32>, after: Option<String>, max: usize) -> ApiResult<Self> {
        Self::new(first, after, None, None, max)
    }

    /// Rows to fetch: one more than the page, to know whether more follow.
    pub fn fetch_limit(&self) -> i64 {
        i64::try_from(self.size + 1).unwrap_or(i64::MAX)
    }

    /// Builds the connection from (cursor, node) pairs fetched in walking order
    /// (`fetch_limit` of them at most).
    pub fn connection<N: OutputType, E: async_graphql::ObjectType, Name: ConnectionNameType>(
        &self,
        mut rows: Vec<(Cursor, N)>,
        extra: E,
    ) -> Connection<Cursor, N, E, EmptyFields, Name> {
        let more = rows.len() > self.size;
        rows.truncate(self.size);
        if self.direction == Direction::Backward {
            rows.reverse();
        }
        let (has_previous, has_next) = match self.direction {
            Direction::Forward => (self.cursor.is_some(), more),
            Direction::Backward => (more, self.cursor.is_some()),
        };
        let mut connection = Connection::with_additional_fields(has_previous, has_next, extra);
        connection
            .edges
            .extend(rows.into_iter().map(|(cursor, node)| Edge::new(cursor, node)));
        connection
    }
}

/// The extra field of a nested connection (`Device.interfaces`, `Gateway.agents`...): the
/// parent's `totalCount`, counted by the loader in the statement that reads the page, and
/// only when the field is selected (see [`wants_total`]).
pub struct NestedTotal(pub Option<i64>);

#[Object]
impl NestedTotal {
    /// Number of items in this parent's whole list, not only this page (counted in the
    /// statement that reads the page, only when asked for).
    async fn total_count(&self) -> ApiResult<i32> {
        let total = self
            .0
            .ok_or_else(|| ApiError::internal("a nested totalCount was not counted"))?;
        i32::try_from(total).map_err(ApiError::internal)
    }
}

/// Whether the connection the current field returns has `totalCount` selected (so that
/// its loader counts the parent's list only then).
pub fn wants_total(ctx: &Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}

/// Declares a connection's GraphQL name (for a nested connection whose type differs from
/// the top-level list's: it has its own `totalCount`).
macro_rules! connection_name {
    ($(#[$doc:meta])* $ty:ident, $name:literal) => {
        $(#[$doc])*
        pub struct $ty;

        impl async_graphql::connection::ConnectionNameType for $ty {
            fn type_name<T: async_graphql::OutputType>() -> String {
                $name.to_owned()
            }
        }
    };
}

pub(crate) use connection_name;

/// Applies a [`Window`] to a boxed Diesel query sorted by (`key`, `id`): the cursor's
/// bound and the order, `ascending` or `descending` in the forward direction. `value`
/// turns a cursor into the key's Rust value (`ApiResult`), so the macro serves text and
/// time keys alike. One definition for every list of the API.
macro_rules! keyset {
    ($query:expr, $window:expr, $key:expr, $id:expr, $value:expr, ascending) => {
        $crate::resolvers::pagination::keyset!(@apply $query, $window, $key, $id, $value, gt, lt, asc, desc)
    };
    ($query:expr, $window:expr, $key:expr, $id:expr, $value:expr, descending) => {
        $crate::resolvers::pagination::keyset!(@apply $query, $window, $key, $id, $value, lt, gt, desc, asc)
    };
    (@bound $key:expr, gt, $value:expr) => { $key.ge($value) };
    (@bound $key:expr, lt, $value:expr) => { $key.le($value) };
    (@apply $query:expr, $window:expr, $key:expr, $id:expr, $value:expr, $after:ident, $before:ident, $forward:ident, $backward:ident) => {{
        use $crate::resolvers::pagination::Direction;
        let window: &$crate::resolvers::pagination::Window = $window;
        let mut query = $query;
        if let Some(cursor) = &window.cursor {
            let value = $value(cursor)?;
            // `key >= value` (or `<=`) bounds the index scan; the OR picks the exact
            // position among equal keys.
            query = match window.direction {
                Direction::Forward => query
                    .filter($crate::resolvers::pagination::keyset!(@bound $key, $after, value.clone()))
                    .filter($key.$after(value.clone()).or($key.eq(value).and($id.$after(cursor.id)))),
                Direction::Backward => query
                    .filter($crate::resolvers::pagination::keyset!(@bound $key, $before, value.clone()))
                    .filter($key.$before(value.clone()).or($key.eq(value).and($id.$before(cursor.id)))),
            };
        }
        match window.direction {
            Direction::Forward => query.order(($key.$forward(), $id.$forward())),
            Direction::Backward => query.order(($key.$backward(), $id.$backward())),
        }
    }};
}

pub(crate) use keyset;

/// Runs a page query (bounded by `fetch_limit` and ordered by [`keyset!`]) in the
/// request's tenant transaction and builds the connection: `$position` gives each row's
/// cursor, `$node` its GraphQL object.
macro_rules! fetch_page {
    ($window:expr, $scope:expr, $query:expr, $position:expr, $node:expr, $extra:expr) => {{
        let rows = {
            let mut conn = $scope.conn().await?;
            diesel_async::RunQueryDsl::load($query, &mut conn).await?
        };
        let rows = rows
            .into_iter()
            .map(|row| ($position(&row), $node(row)))
            .collect();
        Ok($window.connection(rows, $extra))
    }};
}

pub(crate) use fetch_page;

/// A cursor's key as text (for lists sorted by a text column).
pub fn text_key(cursor: &Cursor) -> ApiResult<String> {
    Ok(cursor.key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = Cursor {
            key: "core|router 1".into(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode_cursor(&cursor.encode_cursor()).ok(), Some(cursor));
        assert!(Cursor::decode_cursor("nonsense!").is_err());
    }

    #[test]
    fn windows_validate_relay_arguments() {
        assert_eq!(
            Window::new(None, None, None, None, 100).map(|w| w.size).ok(),
            Some(50)
        );
        assert_eq!(
            Window::new(Some(10), None, None, None, 100).map(|w| w.size).ok(),
            Some(10)
        );
        assert!(Window::new(Some(100_000_000), None, None, None, 100).is_err());
        assert_eq!(
            Window::new(Some(0), None, None, None, 100).map(|w| w.size).ok(),
            Some(0)
        );
        assert_eq!(
            Window::new(None, None, Some(0), None, 100).map(|w| w.size).ok(),
            Some(0)
        );
        assert!(Window::new(Some(101), None, None, None, 100).is_err());
        assert!(Window::new(Some(-1), None, None, None, 100).is_err());
        assert!(Window::new(Some(1), None, Some(1), None, 100).is_err());
        let backward = Window::new(None, None, Some(5), None, 100).expect("last");
        assert_eq!(backward.direction, Direction::Backward);
    }
}
