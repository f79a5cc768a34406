//! Validation of user-supplied fields: turns raw request strings into normalized values or
//! field-level errors. Pure functions, unit-tested here.

use crate::error::FieldError;

/// Longest accepted display name (team, key or user), in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in bytes (bounds hashing work).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest accepted email (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// Trims and lower-cases an email, and checks it has the form `local@domain.tld`.
pub fn email(field: &str, raw: &str) -> Result<String, FieldError> {
    let e = raw.trim().to_lowercase();
    let err = |m: &str| Err(FieldError::new(field, m));
    if e.is_empty() {
        return err("must not be empty");
    }
    if e.chars().count() > MAX_EMAIL_CHARS {
        return err("must be at most 254 characters");
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err("must not contain spaces or control characters");
    }
    let Some((local, domain)) = e.split_once('@') else {
        return err("must be an email address");
    };
    let labels_ok = domain.split('.').count() >= 2 && domain.split('.').all(|l| !l.is_empty());
    if local.is_empty() || domain.contains('@') || !labels_ok {
        return err("must be an email address");
    }
    Ok(e)
}

/// Checks password length; the password is not trimmed.
pub fn password(field: &str, raw: &str) -> Result<(), FieldError> {
    if raw.chars().count() < MIN_PASSWORD_CHARS {
        return Err(FieldError::new(field, "must be at least 8 characters"));
    }
    if raw.len() > MAX_PASSWORD_BYTES {
        return Err(FieldError::new(field, "must be at most 1024 bytes"));
    }
    Ok(())
}

/// Trims a display name and checks it is 1..=100 printable characters.
pub fn name(field: &str, raw: &str) -> Result<String, FieldError> {
    let n = raw.trim();
    if n.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if n.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new(field, "must be at most 100 characters"));
    }
    if n.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(n.to_owned())
}

/// Collects the errors of several checks; `Ok` only if all passed.
pub fn all(results: Vec<Result<(), FieldError>>) -> Result<(), crate::error::ApiError> {
    let errors: Vec<FieldError> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(crate::error::ApiError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_email(raw: &str, want: Option<&str>) {
        assert_eq!(email("email", raw).ok().as_deref(), want, "{raw:?}");
    }

    #[test]
    fn emails() {
        check_email("a@b.co", Some("a@b.co"));
        check_email("  Ana.Li@Example.COM ", Some("ana.li@example.com"));
        check_email("üser@exämple.de", Some("üser@exämple.de"));
        check_email("", None);
        check_email("   ", None);
        check_email("no-at.example.com", None);
        check_email("@example.com", None);
        check_email("a@", None);
        check_email("a@b", None);
        check_email("a@b..com", None);
        check_email("a@@b.com", None);
        check_email("a b@c.com", None);
        check_email("a@b.com\n", Some("a@b.com"));
        check_email("a\u{0}@b.com", None);
        check_email(&format!("{}@b.com", "a".repeat(300)), None);
        check_email("'; DROP TABLE users; --@x.io", None);
    }

    #[test]
    fn passwords() {
        assert!(password("p", "1234567").is_err());
        assert!(password("p", "12345678").is_ok());
        assert!(password("p", "ééééééé").is_err());
        assert!(password("p", "éééééééé").is_ok());
        assert!(password("p", &"x".repeat(1025)).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(name("n", "  Team A ").unwrap(), "Team A");
        assert_eq!(name("n", "🦀 crabs").unwrap(), "🦀 crabs");
        assert!(name("n", "").is_err());
        assert!(name("n", " \t ").is_err());
        assert!(name("n", "a\u{7}b").is_err());
        assert!(name("n", &"x".repeat(101)).is_err());
        assert!(name("n", &"é".repeat(100)).is_ok());
    }
}
