//! The admin credential: a bearer token read from a file. Membership
//! changes and leader transfers need `Authorization: Bearer TOKEN` with the
//! token the member was started with; a member started without one refuses
//! them all.

use std::path::Path;

/// Longest token accepted, in bytes.
const MAX_TOKEN: usize = 4096;

/// The token in `path`: its content with surrounding whitespace removed,
/// non-empty, printable ASCII, at most 4 KiB.
pub(crate) fn read_token(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() > MAX_TOKEN {
        return Err(format!(
            "{}: a token is at most {MAX_TOKEN} bytes",
            path.display()
        ));
    }
    let token = String::from_utf8_lossy(&bytes).trim().to_owned();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{}: the token must be one word of printable ASCII",
            path.display()
        ));
    }
    Ok(token)
}

/// Why a request is not allowed an admin endpoint.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No credential given (401).
    Missing,
    /// A wrong credential, or admin endpoints are off (403).
    Forbidden(&'static str),
}

/// The admin token a member checks, if it was given one.
#[derive(Clone, Debug, Default)]
pub(crate) struct AdminToken(Option<String>);

impl AdminToken {
    /// Checks against `token` (`None`: every admin request is refused).
    pub(crate) fn new(token: Option<String>) -> Self {
        AdminToken(token)
    }

    /// Whether the `Authorization` header value grants admin rights.
    pub(crate) fn check(&self, authorization: Option<&[u8]>) -> Result<(), Denied> {
        let Some(expected) = &self.0 else {
            return Err(Denied::Forbidden(
                "administrative endpoints are off: start the member with --admin-token-file",
            ));
        };
        let Some(given) = authorization.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return Err(Denied::Missing);
        };
        if constant_time_eq(given.trim_ascii(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(Denied::Forbidden("the admin token is not valid"))
        }
    }
}

/// Equality whose time does not depend on where the inputs differ (only on
/// their lengths), so the token cannot be guessed byte by byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_token_passes() {
        let t = AdminToken::new(Some("s3cret".into()));
        assert_eq!(t.check(Some(b"Bearer s3cret")), Ok(()));
        assert_eq!(t.check(None), Err(Denied::Missing));
        assert_eq!(t.check(Some(b"Basic s3cret")), Err(Denied::Missing));
        assert!(matches!(
            t.check(Some(b"Bearer s3cres")),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            t.check(Some(b"Bearer s3cret2")),
            Err(Denied::Forbidden(_))
        ));
        let off = AdminToken::new(None);
        assert!(matches!(
            off.check(Some(b"Bearer s3cret")),
            Err(Denied::Forbidden(_))
        ));
    }

    #[test]
    fn a_token_file_is_one_printable_word() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t");
        std::fs::write(&p, "  abc123\n").expect("write");
        assert_eq!(read_token(&p), Ok("abc123".into()));
        std::fs::write(&p, "a b").expect("write");
        assert!(read_token(&p).is_err());
        std::fs::write(&p, "\n").expect("write");
        assert!(read_token(&p).is_err());
        assert!(read_token(&dir.path().join("missing")).is_err());
    }
}
