//! Why a token or a key set was refused. The messages reach clients (as the text of a FATAL
//! 28000/28P01) and logs, so they say what was wrong and how to fix it, and they never carry
//! the token or its signature: a message may be shown to someone who is not the token's
//! owner, and a logged token is a stolen session. Values the token supplies (issuer, key id,
//! algorithm) are shown shortened, so a hostile token cannot flood a log line.

use std::fmt;

/// Why an ID token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is {bytes} bytes long; at most {max} are accepted")]
    TooLong { bytes: usize, max: usize },
    #[error("the token is malformed: {reason}")]
    Malformed { reason: &'static str },
    #[error(
        "the token's algorithm {alg} is refused: tokens must be signed with one of the issuer's keys (RS256 or ES256)"
    )]
    ForbiddenAlgorithm { alg: Shown },
    #[error("the token's algorithm {alg} is not supported (RS256 and ES256 are)")]
    UnsupportedAlgorithm { alg: Shown },
    #[error("the token says algorithm {alg}, but key {kid} in the JWKS is an {key_alg} key")]
    AlgorithmMismatch {
        alg: Shown,
        kid: Shown,
        key_alg: &'static str,
    },
    #[error("the token names key id {kid}, which the issuer's JWKS does not hold")]
    UnknownKeyId { kid: Shown },
    #[error("the token names key id {kid}, which the JWKS holds but cannot use: {reason}")]
    UnusableKey { kid: Shown, reason: String },
    #[error(
        "the token names no key id (kid), and the JWKS holds {usable} usable keys: without a kid only a single-key JWKS can verify it"
    )]
    MissingKeyId { usable: usize },
    #[error("the token's signature does not verify against the issuer's key {kid}")]
    BadSignature { kid: Shown },
    #[error("the token expired at {expired_at} (it is now {now}, {skew_secs}s clock skew allowed)")]
    Expired {
        expired_at: String,
        now: String,
        skew_secs: u64,
    },
    #[error(
        "the token is not valid before {not_before} (it is now {now}, {skew_secs}s clock skew allowed)"
    )]
    NotYetValid {
        not_before: String,
        now: String,
        skew_secs: u64,
    },
    #[error("the token's issuer is {got}, expected {expected}")]
    WrongIssuer { expected: String, got: Shown },
    #[error("the token's audience {got} is not one of the accepted audiences {expected:?}")]
    WrongAudience { expected: Vec<String>, got: Shown },
    #[error("the token has no {claim} claim")]
    ClaimMissing { claim: String },
    #[error("the token's {claim} claim is not {expected}")]
    ClaimInvalid {
        claim: String,
        expected: &'static str,
    },
    #[error(
        "the token does not list the user's groups: the issuer moved them out of the {claim} claim (Azure AD's groups overage, sent when a user is in too many groups); emit fewer groups into the token (for example only groups assigned to the application) so they can be verified"
    )]
    GroupsOverage { claim: String },
}

/// Why a JWKS (the issuer's keys, from `jwksSecretRef`) could not be loaded. The policy then
/// cannot verify anyone, so the caller fails closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the JWKS is not JSON: {reason}")]
    NotJson { reason: String },
    #[error("the JWKS has no \"keys\" array (expected {{\"keys\": [...]}})")]
    NoKeys,
    #[error("the JWKS holds no key usable for ID tokens (RS256 or ES256 signing keys){}", skipped_list(.skipped))]
    NoUsableKeys { skipped: Vec<String> },
    #[error(
        "the JWKS holds two usable keys with key id {kid}; a token naming it would be ambiguous"
    )]
    DuplicateKeyId { kid: String },
}

fn skipped_list(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!("; skipped: {}", skipped.join("; "))
    }
}

/// A value taken from the token, quoted and cut to a readable length for messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Shown(String);

/// Longest token-supplied value shown in a message, in characters.
const SHOWN_MAX_CHARS: usize = 80;

impl Shown {
    pub fn new(value: &str) -> Self {
        Shown(value.to_string())
    }

    /// The value as the token had it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        let head: String = chars.by_ref().take(SHOWN_MAX_CHARS).collect();
        if chars.next().is_some() {
            write!(f, "{:?}…", head)
        } else {
            write!(f, "{:?}", head)
        }
    }
}

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_values_are_quoted_and_cut() {
        assert_eq!(Shown::new("RS256").to_string(), "\"RS256\"");
        let long = "x".repeat(500);
        let shown = Shown::new(&long).to_string();
        assert!(shown.len() < 100, "{shown}");
        assert!(shown.ends_with('…'));
        // Control characters cannot break a log line.
        assert_eq!(Shown::new("a\nb").to_string(), "\"a\\nb\"");
    }

    #[test]
    fn jwks_errors_list_what_was_skipped() {
        let e = JwksError::NoUsableKeys {
            skipped: vec!["key \"a\": HS256 keys are never accepted".into()],
        };
        assert_eq!(
            e.to_string(),
            "the JWKS holds no key usable for ID tokens (RS256 or ES256 signing keys); skipped: key \"a\": HS256 keys are never accepted"
        );
    }
}
