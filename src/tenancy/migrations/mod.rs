//! Schema migrations of `public` and of every tenant schema: what a migration is, the
//! embedded sets, their checksums, and the errors a run can end with.
//!
//! The SQL lives in `migrations_public/` and `migrations_tenant/` in diesel's directory
//! layout (`<version>_<name>/up.sql`, `down.sql`; `diesel migration generate` works) and is
//! embedded into the binary by `build.rs`. The runner (`runner.rs`) applies it, recording
//! every applied migration with its SHA-256 in the ledger (`ledger.rs`), then checks every
//! schema for drift (`drift.rs`) against the catalog of a freshly migrated schema
//! (`catalog.rs`).
//!
//! Each schema's ledger state carries a *fingerprint*: a digest over the versions and
//! checksums applied to it. A schema is up to date exactly when its fingerprint equals the
//! fingerprint of the embedded set, which makes "is anything pending, anywhere?" one
//! indexed comparison per schema in one query, however many tenants there are.

pub mod catalog;
pub mod drift;
pub mod ledger;
pub mod runner;
pub mod verified;

use std::borrow::Cow;
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use runner::{MigrateOptions, MigrationReport, migrate, migrate_with, status};

mod embedded {
    /// One migration directory, as `build.rs` embedded it.
    pub struct EmbeddedMigration {
        pub version: &'static str,
        pub up: &'static str,
        pub down: &'static str,
    }
    include!(concat!(env!("OUT_DIR"), "/embedded_migrations.rs"));
}

/// One migration: its version (the directory name), its SQL and the checksum of `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: String,
    pub up: Cow<'static, str>,
    pub down: Cow<'static, str>,
    pub checksum: String,
}

impl Migration {
    pub fn new(
        version: impl Into<String>,
        up: impl Into<Cow<'static, str>>,
        down: impl Into<Cow<'static, str>>,
    ) -> Self {
        let up = up.into();
        let checksum = hex(&Sha256::digest(up.as_bytes()));
        Self {
            version: version.into(),
            up,
            down: down.into(),
            checksum,
        }
    }
}

/// An ordered set of migrations for one kind of schema.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    migrations: Vec<Migration>,
    fingerprint: String,
}

impl MigrationSet {
    /// A set from migrations in any order; they are applied in version order.
    pub fn new(mut migrations: Vec<Migration>) -> Self {
        migrations.sort_by(|a, b| a.version.cmp(&b.version));
        let fingerprint = fingerprint(migrations.iter());
        Self {
            migrations,
            fingerprint,
        }
    }

    fn embedded(files: &[embedded::EmbeddedMigration]) -> Self {
        Self::new(
            files
                .iter()
                .map(|m| Migration::new(m.version, m.up, m.down))
                .collect(),
        )
    }

    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// Digest of the whole set: what the ledger of an up-to-date schema holds.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn latest_version(&self) -> Option<&str> {
        self.migrations.last().map(|m| m.version.as_str())
    }

    pub fn get(&self, version: &str) -> Option<&Migration> {
        self.migrations
            .binary_search_by(|m| m.version.as_str().cmp(version))
            .ok()
            .map(|i| &self.migrations[i])
    }
}

/// The two sets Enclave runs: `public`, and the one applied to every tenant schema.
#[derive(Debug, Clone)]
pub struct MigrationSets {
    pub public: MigrationSet,
    pub tenant: MigrationSet,
}

impl MigrationSets {
    /// The migrations compiled into this binary.
    pub fn embedded() -> Arc<Self> {
        Arc::new(Self {
            public: MigrationSet::embedded(embedded::PUBLIC),
            tenant: MigrationSet::embedded(embedded::TENANT),
        })
    }
}

/// Digest over `version:checksum` lines, in the given (version) order.
pub(crate) fn fingerprint<'a>(applied: impl Iterator<Item = &'a Migration>) -> String {
    let mut hasher = Sha256::new();
    for migration in applied {
        hasher.update(migration.version.as_bytes());
        hasher.update(b":");
        hasher.update(migration.checksum.as_bytes());
        hasher.update(b"\n");
    }
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a migration run can fail. Every variant names the schema and, where there is one,
/// the migration, so that the operator knows where to look.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "migration {version} in schema {schema} was edited after it was applied \
         (recorded checksum {recorded}, this build has {embedded}); restore the original \
         file and put the change in a new migration"
    )]
    ChecksumMismatch {
        schema: String,
        version: String,
        recorded: String,
        embedded: String,
    },
    #[error(
        "schema {schema} has migration {version} applied, which this build does not know \
         (is this binary older than the database?)"
    )]
    UnknownVersion { schema: String, version: String },
    #[error("migration {version} failed in schema {schema}: {message}")]
    Failed {
        schema: String,
        version: String,
        message: String,
    },
    #[error(
        "canary tenant schema {schema} could not be migrated, so the rest of the fleet was \
         not touched (the canaries before it are migrated; fix the migration and run again): {error}"
    )]
    Canary {
        schema: String,
        error: Box<MigrationError>,
    },
    #[error("{} schema(s) could not be migrated:\n  {}", .0.len(), join_lines(.0))]
    Several(Vec<MigrationError>),
    #[error(
        "schema public differs from a freshly migrated public in {differences} object(s) \
         (DDL run by hand?); undo the change, or make it a migration:\n  {}",
        .diff.replace('\n', "\n  ")
    )]
    PublicDrift { differences: usize, diff: String },
    #[error("{context}: {message}")]
    Database { context: String, message: String },
}

fn join_lines(errors: &[MigrationError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

impl MigrationError {
    pub(crate) fn database(context: impl Into<String>, error: &diesel::result::Error) -> Self {
        Self::Database {
            context: context.into(),
            message: describe_db_error(error),
        }
    }
}

/// PostgreSQL's message with its detail and hint, for operators (never for API clients).
pub(crate) fn describe_db_error(error: &diesel::result::Error) -> String {
    match error {
        diesel::result::Error::DatabaseError(_, info) => {
            let mut text = info.message().to_owned();
            if let Some(detail) = info.details() {
                text.push_str(&format!(" (detail: {detail})"));
            }
            if let Some(hint) = info.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            text
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sets_are_ordered_and_non_empty() {
        let sets = MigrationSets::embedded();
        for set in [&sets.public, &sets.tenant] {
            assert!(!set.migrations().is_empty());
            let versions: Vec<_> = set.migrations().iter().map(|m| &m.version).collect();
            let mut sorted = versions.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(versions, sorted);
        }
    }

    #[test]
    fn a_changed_migration_changes_checksum_and_fingerprint() {
        let a = MigrationSet::new(vec![Migration::new("1_a", "CREATE TABLE a ();", "")]);
        let b = MigrationSet::new(vec![Migration::new("1_a", "CREATE TABLE a (x int);", "")]);
        assert_ne!(a.migrations()[0].checksum, b.migrations()[0].checksum);
        assert_ne!(a.fingerprint(), b.fingerprint());
        let same = MigrationSet::new(vec![Migration::new("1_a", "CREATE TABLE a ();", "ignored")]);
        assert_eq!(
            a.fingerprint(),
            same.fingerprint(),
            "down.sql is not part of the checksum"
        );
    }
}
