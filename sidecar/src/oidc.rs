//! OIDC logins (SPEC §2.1 `identity.oidc`): the issuer's keys read from the Secret
//! `jwksSecretRef` names, kept current as Kubernetes updates the mounted Secret, and the
//! verifier a session checks a client's ID token with.
//!
//! The JWKS file is looked at on every token login: one `stat` (following the symlinks
//! Kubernetes swaps when it updates a Secret volume) tells whether it changed since it was
//! last read. A changed file is read and parsed; a file that cannot be read or parsed is
//! logged and the last good keys stay in use, so a bad edit never locks everyone out nor
//! lets anyone in. With no good keys at all, token logins are refused.
//!
//! The state of one file is shared by every policy and every reload of the policies that
//! name it ([`JwksFiles`]), so a policy reload does not forget the last good keys.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use palisade_policy::identity::{KeySet, TokenError, TokenVerifier, VerifiedToken};
use palisade_policy::model::{Oidc, SecretKeyRef};
use tracing::{error, info};

/// What `stat` says about a file: enough to notice an in-place rewrite (size, mtime) and a
/// symlink swap (device and inode of the target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn stamp(path: &std::path::Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

/// The issuer's keys from one Secret key, as last read.
#[derive(Debug)]
pub struct JwksFile {
    /// `<secrets-dir>/<name>/<key>`, or why there is no such path.
    path: Result<PathBuf, String>,
    /// `secret NAME/KEY`, for messages.
    origin: String,
    state: Mutex<JwksState>,
}

#[derive(Debug, Default)]
struct JwksState {
    /// What the file looked like when last read (`None`: never read, or unreadable).
    seen: Option<Stamp>,
    /// The last JWKS that parsed, and how many times good keys were loaded (a new
    /// generation means verifiers must be rebuilt).
    good: Option<(u64, Arc<[u8]>)>,
    generation: u64,
    /// Why the file as it is now is not in use.
    problem: Option<String>,
}

/// Good keys, or why there are none.
#[derive(Clone, Debug)]
pub struct Keys {
    pub generation: u64,
    pub jwks: Arc<[u8]>,
}

impl JwksFile {
    pub fn new(path: Result<PathBuf, String>, r: &SecretKeyRef) -> Self {
        JwksFile {
            path,
            origin: format!("secret {}/{}", r.name, r.key),
            state: Mutex::new(JwksState::default()),
        }
    }

    /// Where the keys come from (`secret idp-jwks/jwks.json`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The current good keys, re-reading the file if it changed since it was last read.
    pub fn current(&self) -> Result<Keys, String> {
        let path = match &self.path {
            Ok(p) => p,
            Err(e) => return Err(e.clone()),
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match stamp(path) {
            Ok(now) if state.seen == Some(now) => {}
            Ok(now) => {
                state.seen = Some(now);
                self.read(path, &mut state);
            }
            Err(e) => {
                let problem = format!("cannot read {} ({}): {e}", self.origin, path.display());
                if state.problem.as_deref() != Some(problem.as_str()) {
                    self.complain(&state, &problem);
                }
                state.seen = None;
                state.problem = Some(problem);
            }
        }
        match (&state.good, &state.problem) {
            (Some((generation, jwks)), _) => Ok(Keys {
                generation: *generation,
                jwks: jwks.clone(),
            }),
            (None, Some(problem)) => Err(problem.clone()),
            (None, None) => Err(format!("{} holds no keys", self.origin)),
        }
    }

    fn read(&self, path: &std::path::Path, state: &mut JwksState) {
        let parsed = std::fs::read(path)
            .map_err(|e| format!("cannot read {} ({}): {e}", self.origin, path.display()))
            .and_then(|bytes| match KeySet::parse(&bytes) {
                Ok(keys) => Ok((bytes, keys.keys().len())),
                Err(e) => Err(format!("{} is not a usable JWKS: {e}", self.origin)),
            });
        match parsed {
            Ok((bytes, count)) => {
                state.generation += 1;
                state.good = Some((state.generation, Arc::from(bytes)));
                state.problem = None;
                info!(jwks = %self.origin, keys = count, "OIDC issuer keys loaded");
            }
            Err(problem) => {
                self.complain(state, &problem);
                state.problem = Some(problem);
            }
        }
    }

    fn complain(&self, state: &JwksState, problem: &str) {
        if state.good.is_some() {
            error!(jwks = %self.origin, error = %problem, "OIDC issuer keys not reloaded; the last good keys stay in use");
        } else {
            error!(jwks = %self.origin, error = %problem, "OIDC issuer keys unavailable; ID-token logins are refused until they load");
        }
    }
}

/// Every JWKS file the loaded policies name, by path, kept across policy reloads.
#[derive(Debug, Default)]
pub struct JwksFiles {
    files: Mutex<HashMap<(String, String), Arc<JwksFile>>>,
}

impl JwksFiles {
    /// The shared state of the file `r` names; `path` is where it lives.
    pub fn get(&self, r: &SecretKeyRef, path: Result<PathBuf, String>) -> Arc<JwksFile> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        files
            .entry((r.name.clone(), r.key.clone()))
            .or_insert_with(|| Arc::new(JwksFile::new(path, r)))
            .clone()
    }
}

/// One policy's `identity.oidc`: its settings and its issuer's keys.
#[derive(Debug)]
pub struct OidcLogin {
    pub config: Oidc,
    pub jwks: Arc<JwksFile>,
    /// The verifier for the keys' current generation.
    verifier: Mutex<Option<(u64, Arc<TokenVerifier>)>>,
}

/// Why a token login failed.
#[derive(Debug)]
pub enum LoginError {
    /// The issuer's keys are not loaded: nobody's token can be verified.
    NoKeys(String),
    /// The token was checked and refused.
    Token(TokenError),
}

impl OidcLogin {
    pub fn new(config: Oidc, jwks: Arc<JwksFile>) -> Self {
        OidcLogin {
            config,
            jwks,
            verifier: Mutex::new(None),
        }
    }

    /// The verifier for the issuer's current keys.
    pub fn verifier(&self) -> Result<Arc<TokenVerifier>, String> {
        let keys = self.jwks.current()?;
        let mut cached = self.verifier.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((generation, v)) = &*cached
            && *generation == keys.generation
        {
            return Ok(v.clone());
        }
        let v = Arc::new(
            TokenVerifier::new(&self.config, &keys.jwks)
                .map_err(|e| format!("{} is not a usable JWKS: {e}", self.jwks.origin()))?,
        );
        *cached = Some((keys.generation, v.clone()));
        Ok(v)
    }

    /// Verifies `token` against the issuer's current keys.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, LoginError> {
        let verifier = self.verifier().map_err(LoginError::NoKeys)?;
        verifier.verify(token).map_err(LoginError::Token)
    }
}

/// A short, fixed name for why a token was refused: the metrics label.
pub fn refusal_reason(e: &TokenError) -> &'static str {
    match e {
        TokenError::Expired { .. } => "expired",
        TokenError::NotYetValid { .. } => "not_yet_valid",
        TokenError::WrongIssuer { .. } => "wrong_issuer",
        TokenError::WrongAudience { .. } => "wrong_audience",
        TokenError::UnknownKeyId { .. } | TokenError::MissingKeyId { .. } => "unknown_key",
        TokenError::UnusableKey { .. } => "unusable_key",
        TokenError::BadSignature { .. } => "bad_signature",
        TokenError::ForbiddenAlgorithm { .. }
        | TokenError::UnsupportedAlgorithm { .. }
        | TokenError::AlgorithmMismatch { .. } => "algorithm",
        TokenError::GroupsOverage { .. } => "groups_overage",
        TokenError::ClaimMissing { .. } | TokenError::ClaimInvalid { .. } => "claims",
        TokenError::TooLong { .. } | TokenError::Malformed { .. } => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks_ref() -> SecretKeyRef {
        SecretKeyRef {
            name: "idp-jwks".into(),
            key: "jwks.json".into(),
        }
    }

    /// A P-256 public key (the x/y of RFC 7515's appendix A.3 example key).
    const EC_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    #[test]
    fn keys_are_reloaded_when_the_file_changes_and_bad_edits_keep_the_last_good_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let file = JwksFile::new(Ok(path.clone()), &jwks_ref());
        // Nothing there yet: refused, and the message says where the keys were looked for.
        let err = file.current().unwrap_err();
        assert!(err.contains("secret idp-jwks/jwks.json"), "{err}");

        std::fs::write(&path, EC_JWKS).unwrap();
        let first = file.current().unwrap();
        assert_eq!(file.current().unwrap().generation, first.generation);

        // A broken edit: the last good keys stay.
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(file.current().unwrap().generation, first.generation);
        // The file removed: still the last good keys.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file.current().unwrap().generation, first.generation);

        // A symlink swap, as Kubernetes updates a mounted Secret: new keys.
        let real = dir.path().join("..data-2");
        std::fs::write(&real, EC_JWKS.replace("\"k1\"", "\"k2\"")).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let second = file.current().unwrap();
        assert!(second.generation > first.generation);
        assert!(String::from_utf8_lossy(&second.jwks).contains("k2"));
    }

    #[test]
    fn a_file_that_never_parsed_refuses_logins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
        let oidc = Oidc {
            issuer: "https://idp.example/".into(),
            audiences: vec!["palisade".into()],
            jwks_secret_ref: jwks_ref(),
            username_claim: "email".into(),
            groups_claim: "groups".into(),
            required: false,
        };
        let login = OidcLogin::new(oidc, Arc::new(JwksFile::new(Ok(path), &jwks_ref())));
        match login.verify("e30.e30.c2ln") {
            Err(LoginError::NoKeys(msg)) => {
                assert!(msg.contains("not a usable JWKS"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
    }
}
