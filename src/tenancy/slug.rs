//! Tenant slugs: the rules a slug must follow and the schema name derived from it.
//!
//! A slug becomes part of a PostgreSQL identifier (`tenant_<slug>`, and the tenant's
//! role), so the rules are strict and checked before any SQL is built: a lowercase ASCII
//! letter first, then lowercase letters, digits or `_`, at most 40 characters, and none of
//! the reserved names.

use std::fmt;

/// Longest slug accepted.
pub const MAX_SLUG_LEN: usize = 40;

/// Slug of the platform tenant, whose users manage the other tenants.
pub const PLATFORM_SLUG: &str = "platform";

/// Prefix of every tenant schema.
pub const SCHEMA_PREFIX: &str = "tenant_";

/// A validated tenant slug.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

/// Why a slug was refused; the message names the broken rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("the slug is empty")]
    Empty,
    #[error("the slug has {0} characters; at most {MAX_SLUG_LEN} are allowed")]
    TooLong(usize),
    #[error("the slug must start with a lowercase ASCII letter (a-z)")]
    BadFirstCharacter,
    #[error("the slug may contain only a-z, 0-9 and '_'; found {0:?}")]
    BadCharacter(char),
    #[error("{0:?} is a reserved name")]
    Reserved(String),
    #[error("slugs starting with \"pg_\" are reserved by PostgreSQL")]
    PostgresPrefix,
}

const RESERVED: &[&str] = &["public", "information_schema", PLATFORM_SLUG];

impl Slug {
    /// Validates a slug for a new tenant: syntax rules plus the reserved names
    /// (`public`, `platform`, `information_schema`, `pg_*`).
    pub fn new_tenant(raw: &str) -> Result<Self, SlugError> {
        let slug = Self::parse(raw)?;
        if slug.is_platform() {
            return Err(SlugError::Reserved(raw.to_owned()));
        }
        Ok(slug)
    }

    /// Validates a slug naming an existing tenant: the same rules, except that the
    /// platform tenant may be named.
    pub fn parse(raw: &str) -> Result<Self, SlugError> {
        let mut chars = raw.chars();
        let Some(first) = chars.next() else {
            return Err(SlugError::Empty);
        };
        let length = raw.chars().count();
        if length > MAX_SLUG_LEN {
            return Err(SlugError::TooLong(length));
        }
        if !first.is_ascii_lowercase() {
            return Err(SlugError::BadFirstCharacter);
        }
        if let Some(bad) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
            return Err(SlugError::BadCharacter(bad));
        }
        if raw.starts_with("pg_") {
            return Err(SlugError::PostgresPrefix);
        }
        if RESERVED.contains(&raw) && raw != PLATFORM_SLUG {
            return Err(SlugError::Reserved(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The platform tenant's slug.
    pub fn platform() -> Self {
        Self(PLATFORM_SLUG.to_owned())
    }

    pub fn is_platform(&self) -> bool {
        self.0 == PLATFORM_SLUG
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant's schema, `tenant_<slug>`. Safe to embed in SQL unquoted because of the
    /// slug rules; still, callers quote it.
    pub fn schema_name(&self) -> String {
        format!("{SCHEMA_PREFIX}{}", self.0)
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_slugs() {
        for ok in ["acme", "a", "acme_2", "z9_", &"a".repeat(MAX_SLUG_LEN)] {
            assert_eq!(
                Slug::new_tenant(ok).map(|s| s.schema_name()),
                Ok(format!("tenant_{ok}"))
            );
        }
    }

    #[test]
    fn refuses_each_rule_with_its_reason() {
        let cases: &[(&str, SlugError)] = &[
            ("", SlugError::Empty),
            ("a\"; drop schema public; --", SlugError::BadCharacter('"')),
            ("a,public", SlugError::BadCharacter(',')),
            (&"a".repeat(41), SlugError::TooLong(41)),
            ("Acme", SlugError::BadFirstCharacter),
            ("acMe", SlugError::BadCharacter('M')),
            ("1acme", SlugError::BadFirstCharacter),
            ("_acme", SlugError::BadFirstCharacter),
            ("acmé", SlugError::BadCharacter('é')),
            ("ácme", SlugError::BadFirstCharacter),
            ("a-b", SlugError::BadCharacter('-')),
            ("a b", SlugError::BadCharacter(' ')),
            ("pg_x", SlugError::PostgresPrefix),
            ("public", SlugError::Reserved("public".into())),
            (
                "information_schema",
                SlugError::Reserved("information_schema".into()),
            ),
            ("platform", SlugError::Reserved("platform".into())),
        ];
        for (raw, expected) in cases {
            assert_eq!(Slug::new_tenant(raw).as_ref(), Err(expected), "slug {raw:?}");
        }
    }

    #[test]
    fn counts_characters_not_bytes() {
        // 40 two-byte characters are still too long... and not ASCII.
        assert_eq!(Slug::parse(&"é".repeat(40)), Err(SlugError::BadFirstCharacter));
        assert_eq!(
            Slug::parse(&format!("a{}", "é".repeat(45))),
            Err(SlugError::TooLong(46))
        );
    }

    #[test]
    fn the_platform_tenant_can_be_named_but_not_created() {
        assert!(Slug::parse("platform").is_ok_and(|s| s.is_platform()));
        assert!(Slug::new_tenant("platform").is_err());
    }
}
