//! The claims of a token whose signature has verified: who issued it, for whom, when it is
//! valid, and the user and groups it names.
//!
//! Checked here rather than by jsonwebtoken's `Validation` so that each refusal says what
//! was wrong (the expiry time, the issuer expected and found), and so the clock is a
//! parameter the tests can set. Every claim is type-checked: a string where a number belongs
//! is refused, never read as absent.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::error::{Shown, TokenError};
use crate::timestamp;

/// How far apart the issuer's clock and ours may be. Tokens are accepted up to this long
/// after `exp` and before `nbf`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// What the verifier checks the claims against.
pub(crate) struct Expected<'a> {
    pub issuer: &'a str,
    /// Empty: any audience.
    pub audiences: &'a [String],
    pub username_claim: &'a str,
    pub groups_claim: &'a str,
}

/// The claims Palisade uses, checked.
#[derive(Debug)]
pub(crate) struct Checked {
    pub user: String,
    pub groups: Vec<String>,
    pub expires_at: SystemTime,
    pub subject: Option<String>,
}

pub(crate) fn check(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
    now: SystemTime,
) -> Result<Checked, TokenError> {
    check_issuer(claims, expected.issuer)?;
    check_audience(claims, expected.audiences)?;
    let expires_at = check_times(claims, now)?;
    let user = user(claims, expected.username_claim)?;
    let groups = groups(claims, expected.groups_claim)?;
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Checked {
        user,
        groups,
        expires_at,
        subject,
    })
}

fn missing(claim: &str) -> TokenError {
    TokenError::ClaimMissing {
        claim: claim.to_string(),
    }
}

fn invalid(claim: &str, expected: &'static str) -> TokenError {
    TokenError::ClaimInvalid {
        claim: claim.to_string(),
        expected,
    }
}

/// `iss` must be exactly the configured issuer, as OIDC discovery requires: no trailing-slash
/// or case folding, which would let a look-alike issuer through.
fn check_issuer(claims: &Map<String, Value>, issuer: &str) -> Result<(), TokenError> {
    match claims.get("iss") {
        None => Err(missing("iss")),
        Some(Value::String(iss)) if iss == issuer => Ok(()),
        Some(Value::String(iss)) => Err(TokenError::WrongIssuer {
            expected: issuer.to_string(),
            got: Shown::new(iss),
        }),
        Some(_) => Err(invalid("iss", "a string")),
    }
}

/// `aud` is a string or a list of strings (RFC 7519 §4.1.3); one of them must be accepted.
fn check_audience(claims: &Map<String, Value>, audiences: &[String]) -> Result<(), TokenError> {
    let aud: Vec<&str> = match claims.get("aud") {
        None if audiences.is_empty() => return Ok(()),
        None => return Err(missing("aud")),
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| {
                a.as_str()
                    .ok_or_else(|| invalid("aud", "a string or a list of strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("aud", "a string or a list of strings")),
    };
    if audiences.is_empty() || aud.iter().any(|a| audiences.iter().any(|x| x == a)) {
        return Ok(());
    }
    Err(TokenError::WrongAudience {
        expected: audiences.to_vec(),
        got: Shown::new(&aud.join(", ")),
    })
}

/// `exp` is required (an ID token always has one; a token valid forever is not accepted);
/// `nbf` is optional. Both are seconds since 1970, possibly fractional.
fn check_times(claims: &Map<String, Value>, now: SystemTime) -> Result<SystemTime, TokenError> {
    let now_secs = timestamp::unix(now);
    let skew = CLOCK_SKEW.as_secs();
    let skew_secs = i64::try_from(skew).unwrap_or(i64::MAX);
    let exp = match claims.get("exp") {
        None => return Err(missing("exp")),
        Some(v) => numeric_date(v).ok_or_else(|| invalid("exp", "a time in seconds since 1970"))?,
    };
    if now_secs >= exp.saturating_add(skew_secs) {
        return Err(TokenError::Expired {
            expired_at: timestamp::format_unix(exp),
            now: timestamp::format_unix(now_secs),
            skew_secs: skew,
        });
    }
    if let Some(v) = claims.get("nbf") {
        let nbf = numeric_date(v).ok_or_else(|| invalid("nbf", "a time in seconds since 1970"))?;
        if now_secs.saturating_add(skew_secs) < nbf {
            return Err(TokenError::NotYetValid {
                not_before: timestamp::format_unix(nbf),
                now: timestamp::format_unix(now_secs),
                skew_secs: skew,
            });
        }
    }
    Ok(timestamp::from_unix(exp))
}

/// A NumericDate, floored to whole seconds; `None` for anything that is not a finite number.
fn numeric_date(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // Beyond ±2^63 seconds there is no time to compare with; such a claim is refused.
    (f.is_finite() && f.abs() < 9.2e18).then(|| f.floor() as i64)
}

/// The user from the configured claim. When that claim is `email`, an `email_verified:
/// false` refuses the token, as the Kubernetes API server does: an unverified address may be
/// one the user typed into their profile, and would let them pass for its owner.
fn user(claims: &Map<String, Value>, claim: &str) -> Result<String, TokenError> {
    let user = match claims.get(claim) {
        None => return Err(missing(claim)),
        Some(Value::String(u)) if !u.is_empty() => u.clone(),
        Some(_) => return Err(invalid(claim, "a non-empty string")),
    };
    if claim == "email" {
        match claims.get("email_verified") {
            None | Some(Value::Bool(true)) => {}
            Some(_) => {
                return Err(invalid(
                    "email_verified",
                    "true, which it must be when the email is the user name",
                ));
            }
        }
    }
    Ok(user)
}

/// The groups from the configured claim: a list of strings (a single string is one group, as
/// some IdPs send it); none when the claim is absent — unless the issuer says it left them
/// out. Azure AD does that for users in too many groups (more than 200 in a JWT): it drops
/// the claim and names it in `_claim_names` (or sets `hasgroups` in implicit-flow tokens).
/// Reading that as "no groups" would let a user escape every rule written for a group, so it
/// is refused.
fn groups(claims: &Map<String, Value>, claim: &str) -> Result<Vec<String>, TokenError> {
    let overage = claims
        .get("_claim_names")
        .and_then(Value::as_object)
        .is_some_and(|names| names.contains_key(claim))
        || (claim == "groups" && claims.get("hasgroups") == Some(&Value::Bool(true)));
    if overage {
        return Err(TokenError::GroupsOverage {
            claim: claim.to_string(),
        });
    }
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(g)) => Ok(vec![g.clone()]),
        Some(Value::Array(list)) => list
            .iter()
            .map(|g| {
                g.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(claim, "a list of strings"))
            })
            .collect(),
        Some(_) => Err(invalid(claim, "a list of strings")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn expected() -> Expected<'static> {
        static AUD: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["palisade".to_string(), "other".to_string()]);
        Expected {
            issuer: "https://idp.example/",
            audiences: &AUD,
            username_claim: "email",
            groups_claim: "groups",
        }
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut c = json!({
            "iss": "https://idp.example/",
            "aud": "palisade",
            "exp": NOW + 300,
            "email": "alice@example.com",
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.as_object().unwrap().clone()
    }

    fn run(extra: Value) -> Result<Checked, TokenError> {
        check(&claims(extra), &expected(), timestamp::from_unix(NOW))
    }

    #[test]
    fn audience_is_a_string_or_a_list() {
        assert!(run(json!({"aud": ["x", "other"]})).is_ok());
        let e = run(json!({"aud": ["x", "y"]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the token's audience \"x, y\" is not one of the accepted audiences [\"palisade\", \"other\"]"
        );
        assert!(matches!(
            run(json!({"aud": null})),
            Err(TokenError::ClaimMissing { .. })
        ));
        assert!(matches!(
            run(json!({"aud": [1]})),
            Err(TokenError::ClaimInvalid { .. })
        ));
        let any = Expected {
            audiences: &[],
            ..expected()
        };
        let mut c = claims(json!({}));
        c.remove("aud");
        assert!(check(&c, &any, timestamp::from_unix(NOW)).is_ok());
    }

    #[test]
    fn times_are_numbers_and_honour_the_skew() {
        let skew = CLOCK_SKEW.as_secs() as i64;
        assert!(run(json!({"exp": NOW - skew + 1})).is_ok(), "within skew");
        assert!(matches!(
            run(json!({"exp": NOW - skew})),
            Err(TokenError::Expired { .. })
        ));
        assert!(run(json!({"nbf": NOW + skew})).is_ok(), "within skew");
        assert!(matches!(
            run(json!({"nbf": NOW + skew + 1})),
            Err(TokenError::NotYetValid { .. })
        ));
        assert!(run(json!({"exp": (NOW + 10) as f64 + 0.5})).is_ok());
        // A string is never read as "no such claim".
        for (claim, bad) in [
            ("exp", json!("never")),
            ("nbf", json!("99999999999")),
            ("exp", json!(1e300)),
        ] {
            assert_eq!(
                run(json!({ claim: bad })).unwrap_err(),
                TokenError::ClaimInvalid {
                    claim: claim.into(),
                    expected: "a time in seconds since 1970"
                }
            );
        }
        assert_eq!(run(json!({"exp": null})).unwrap_err(), missing("exp"));
        let checked = run(json!({})).unwrap();
        assert_eq!(checked.expires_at, timestamp::from_unix(NOW + 300));
    }

    #[test]
    fn issuer_is_matched_exactly() {
        let e = run(json!({"iss": "https://idp.example"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the token's issuer is \"https://idp.example\", expected https://idp.example/"
        );
        assert_eq!(run(json!({"iss": null})).unwrap_err(), missing("iss"));
        assert!(matches!(
            run(json!({"iss": ["https://idp.example/"]})),
            Err(TokenError::ClaimInvalid { .. })
        ));
    }

    #[test]
    fn user_and_groups() {
        let c = run(json!({"groups": ["a", "b"]})).unwrap();
        assert_eq!(
            (c.user.as_str(), c.groups),
            ("alice@example.com", vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(run(json!({"groups": "solo"})).unwrap().groups, ["solo"]);
        assert!(run(json!({})).unwrap().groups.is_empty());
        assert!(matches!(
            run(json!({"groups": [1]})),
            Err(TokenError::ClaimInvalid { .. })
        ));
        assert!(matches!(
            run(json!({"groups": {"a": 1}})),
            Err(TokenError::ClaimInvalid { .. })
        ));
        assert_eq!(run(json!({"email": null})).unwrap_err(), missing("email"));
        assert!(matches!(
            run(json!({"email": ""})),
            Err(TokenError::ClaimInvalid { .. })
        ));
        assert!(run(json!({"email_verified": true})).is_ok());
        let e = run(json!({"email_verified": false})).unwrap_err();
        assert!(e.to_string().contains("email_verified"), "{e}");
    }

    #[test]
    fn groups_overage_is_refused() {
        let e = run(json!({
            "_claim_names": {"groups": "src1"},
            "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/x/users/y/getMemberObjects"}},
        }))
        .unwrap_err();
        assert_eq!(
            e,
            TokenError::GroupsOverage {
                claim: "groups".into()
            }
        );
        assert!(e.to_string().contains("overage"));
        assert!(matches!(
            run(json!({"hasgroups": true})),
            Err(TokenError::GroupsOverage { .. })
        ));
        // Another claim's overage does not concern the groups.
        assert!(run(json!({"_claim_names": {"roles": "src1"}})).is_ok());
    }
}
