//! Query cost: a list field costs its page size times the cost of what it selects, so a
//! nested list of lists is priced as the rows it could return.

use super::pagination::DEFAULT_PAGE_SIZE;

/// Complexity of a paginated field with `first`/`last` and `child` per node.
pub fn list_cost(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let size = first
        .or(last)
        .map_or(DEFAULT_PAGE_SIZE, |n| usize::try_from(n.max(1)).unwrap_or(1));
    size.saturating_mul(child.max(1)).saturating_add(1)
}

/// Assumed length of an unpaginated relation list (a device's interfaces, alerts...).
pub const RELATION_LIST_COST: usize = 10;

/// Complexity of a metric series: the buckets it can return over `[from, to)`.
pub fn series_cost(
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    bucket: super::observability::MetricBucket,
) -> usize {
    let buckets = (to - from).num_seconds().max(0) / bucket.seconds();
    usize::try_from(buckets).unwrap_or(usize::MAX).saturating_add(1)
}
