//! Vanity domains: the host names on which a tenant's users log in.

/// Why a domain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the domain is empty")]
    Empty,
    #[error("the domain is longer than 253 characters")]
    TooLong,
    #[error("the domain may contain only letters, digits, '-' and '.', in non-empty labels")]
    BadSyntax,
}

/// Normalises a host name for storage and lookup: lowercase, no trailing dot, no port.
pub fn normalize(raw: &str) -> Result<String, DomainError> {
    let host = raw.trim().trim_end_matches('.');
    let host = host.split(':').next().unwrap_or_default().to_ascii_lowercase();
    if host.is_empty() {
        return Err(DomainError::Empty);
    }
    if host.len() > 253 {
        return Err(DomainError::TooLong);
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !host.split('.').all(label_ok) {
        return Err(DomainError::BadSyntax);
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_port_and_trailing_dot() {
        assert_eq!(normalize("Acme.Example.COM.").as_deref(), Ok("acme.example.com"));
        assert_eq!(
            normalize("acme.example.com:8443").as_deref(),
            Ok("acme.example.com")
        );
    }

    #[test]
    fn refuses_malformed_domains() {
        for bad in ["", "a..b", "-a.com", "a_b.com", "a b.com", "é.com", "a.com/x"] {
            assert!(normalize(bad).is_err(), "{bad:?} accepted");
        }
    }
}
