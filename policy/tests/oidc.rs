//! OIDC ID tokens with real signatures: RSA and P-256 test keys (tests/fixtures/oidc), a JWKS
//! built from their public halves, tokens shaped as Okta and Azure AD issue them, and the
//! attacks a verifier must refuse.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use palisade_policy::identity::{
    CLOCK_SKEW, JwksError, TokenError, TokenVerifier, VerifiedToken, looks_like_jwt,
};
use palisade_policy::model::{Oidc, SecretKeyRef};
use palisade_policy::timestamp;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const OKTA: &str = "https://example.okta.com/oauth2/default";
const AZURE: &str = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0";
const AZURE_CLIENT: &str = "6cb04018-a3f5-46a7-b995-940c78f5aef3";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/oidc/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The DER inside a PEM file.
fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

struct Keys {
    rsa: RsaKeyPair,
    other_rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Keys {
    fn load() -> Self {
        let rng = SystemRandom::new();
        Keys {
            rsa: RsaKeyPair::from_pkcs8(&der(&fixture("rsa-private.pk8.pem"))).unwrap(),
            other_rsa: RsaKeyPair::from_pkcs8(&der(&fixture("rsa-other-private.pk8.pem"))).unwrap(),
            ec: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &der(&fixture("ec-private.pk8.pem")),
                &rng,
            )
            .unwrap(),
            rng,
        }
    }

    fn rsa_jwk(key: &RsaKeyPair, kid: &str) -> Value {
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": b64(&public.n), "e": b64(&public.e)})
    }

    fn ec_jwk(&self, kid: &str) -> Value {
        let point = self.ec.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "use": "sig", "kid": kid, "x": b64(&point[1..33]), "y": b64(&point[33..])})
    }

    fn sign_rsa(&self, key: &RsaKeyPair, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(&RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
            .unwrap();
        sig
    }

    fn sign_ec(&self, msg: &[u8]) -> Vec<u8> {
        self.ec.sign(&self.rng, msg).unwrap().as_ref().to_vec()
    }
}

/// A compact JWS over `header` and `claims`, signed by `sign`.
fn jwt(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(message.as_bytes());
    format!("{message}.{}", b64(&sig))
}

fn oidc(issuer: &str, audiences: &[&str], username_claim: &str) -> Oidc {
    Oidc {
        issuer: issuer.into(),
        audiences: audiences.iter().map(|a| a.to_string()).collect(),
        jwks_secret_ref: SecretKeyRef {
            name: "idp-jwks".into(),
            key: "jwks.json".into(),
        },
        username_claim: username_claim.into(),
        groups_claim: "groups".into(),
        required: false,
    }
}

struct Fixture {
    keys: Keys,
    okta: TokenVerifier,
    azure: TokenVerifier,
}

fn setup() -> Fixture {
    let keys = Keys::load();
    // Okta publishes alg and use; Azure AD leaves alg out and adds x5t/x5c and its issuer.
    let okta_jwks = json!({"keys": [
        Keys::rsa_jwk(&keys.rsa, "okta-rsa"),
        keys.ec_jwk("okta-ec"),
    ]});
    let mut azure_key = Keys::rsa_jwk(&keys.rsa, "nOo3ZDrODXEK1jKWhXslHR_KXEg");
    let azure_key_obj = azure_key.as_object_mut().unwrap();
    azure_key_obj.remove("alg");
    azure_key_obj.insert("x5t".into(), json!("nOo3ZDrODXEK1jKWhXslHR_KXEg"));
    azure_key_obj.insert("x5c".into(), json!(["MIIDBTCCAe2gAwIBAgIQ"]));
    azure_key_obj.insert("issuer".into(), json!(AZURE));
    let azure_jwks = json!({"keys": [azure_key]});
    Fixture {
        okta: TokenVerifier::new(
            &oidc(OKTA, &["palisade"], "email"),
            okta_jwks.to_string().as_bytes(),
        )
        .unwrap(),
        azure: TokenVerifier::new(
            &oidc(AZURE, &[AZURE_CLIENT], "preferred_username"),
            azure_jwks.to_string().as_bytes(),
        )
        .unwrap(),
        keys,
    }
}

fn now() -> SystemTime {
    timestamp::from_unix(NOW)
}

fn okta_claims() -> Value {
    json!({
        "ver": 1,
        "sub": "00uid4BxXw6I6TV4m0g3",
        "iss": OKTA,
        "aud": "palisade",
        "iat": NOW - 60,
        "exp": NOW + 3600,
        "auth_time": NOW - 120,
        "email": "alice@example.com",
        "email_verified": true,
        "name": "Alice",
        "groups": ["contractors", "Everyone"],
    })
}

fn azure_claims() -> Value {
    json!({
        "aud": AZURE_CLIENT,
        "iss": AZURE,
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3600,
        "name": "Bob",
        "oid": "00000000-0000-0000-66f3-3332eca7ea81",
        "preferred_username": "bob@contoso.onmicrosoft.com",
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "tid": "9188040d-6c67-4c5b-b112-36a304b66dad",
        "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "2.0",
        "groups": [
            "8f3d2a90-45a4-4c6b-9f4e-3a6b5c7d8e9f",
            "1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516",
        ],
    })
}

impl Fixture {
    fn okta_rs256(&self, claims: &Value) -> String {
        jwt(
            &json!({"alg": "RS256", "kid": "okta-rsa", "typ": "JWT"}),
            claims,
            |m| self.keys.sign_rsa(&self.keys.rsa, m),
        )
    }

    fn azure_rs256(&self, claims: &Value) -> String {
        jwt(
            &json!({"typ": "JWT", "alg": "RS256", "kid": "nOo3ZDrODXEK1jKWhXslHR_KXEg"}),
            claims,
            |m| self.keys.sign_rsa(&self.keys.rsa, m),
        )
    }
}

/// Verifies a token that must be refused, and checks the message never carries the token
/// or any of its parts.
fn refused(verifier: &TokenVerifier, token: &str) -> TokenError {
    let err = verifier
        .verify_at(token, now())
        .expect_err("the token must be refused");
    let message = err.to_string();
    let debug = format!("{err:?}");
    for text in [&message, &debug] {
        assert!(!text.contains(token), "{text}");
        for part in token.split('.').filter(|p| p.len() >= 8) {
            assert!(!text.contains(part), "a token segment leaked into: {text}");
        }
    }
    err
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

#[test]
fn okta_token_is_verified() {
    let f = setup();
    let token = f.okta_rs256(&okta_claims());
    assert!(looks_like_jwt(&token));
    let verified = f.okta.verify_at(&token, now()).unwrap();
    assert_eq!(
        verified,
        VerifiedToken {
            user: "alice@example.com".into(),
            groups: vec!["contractors".into(), "Everyone".into()],
            expires_at: timestamp::from_unix(NOW + 3600),
            subject: Some("00uid4BxXw6I6TV4m0g3".into()),
        }
    );
}

#[test]
fn azure_ad_token_is_verified_with_group_ids() {
    let f = setup();
    let verified = f
        .azure
        .verify_at(&f.azure_rs256(&azure_claims()), now())
        .unwrap();
    assert_eq!(verified.user, "bob@contoso.onmicrosoft.com");
    assert_eq!(
        verified.groups,
        [
            "8f3d2a90-45a4-4c6b-9f4e-3a6b5c7d8e9f",
            "1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516"
        ]
    );
    // v1.0 tokens name the user in `upn`.
    let keys = json!({"keys": [Keys::rsa_jwk(&f.keys.rsa, "nOo3ZDrODXEK1jKWhXslHR_KXEg")]});
    let v1 = TokenVerifier::new(
        &oidc(
            "https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/",
            &["api://palisade"],
            "upn",
        ),
        keys.to_string().as_bytes(),
    )
    .unwrap();
    let claims = with(
        azure_claims(),
        json!({
            "iss": "https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/",
            "aud": "api://palisade",
            "ver": "1.0",
            "upn": "carol@contoso.com",
            "preferred_username": null,
        }),
    );
    assert_eq!(
        v1.verify_at(&f.azure_rs256(&claims), now()).unwrap().user,
        "carol@contoso.com"
    );
}

#[test]
fn es256_token_is_verified() {
    let f = setup();
    let token = jwt(
        &json!({"alg": "ES256", "kid": "okta-ec"}),
        &okta_claims(),
        |m| f.keys.sign_ec(m),
    );
    assert_eq!(
        f.okta.verify_at(&token, now()).unwrap().user,
        "alice@example.com"
    );
}

#[test]
fn a_token_without_groups_has_none() {
    let f = setup();
    let token = f.okta_rs256(&with(okta_claims(), json!({"groups": null})));
    assert!(f.okta.verify_at(&token, now()).unwrap().groups.is_empty());
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused_outside_the_skew() {
    let f = setup();
    let skew = CLOCK_SKEW.as_secs() as i64;
    let expired = f.okta_rs256(&with(okta_claims(), json!({"exp": NOW - skew - 1})));
    let err = refused(&f.okta, &expired);
    assert!(matches!(err, TokenError::Expired { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "the token expired at {} (it is now {}, 60s clock skew allowed)",
            timestamp::format_unix(NOW - skew - 1),
            timestamp::format_unix(NOW)
        )
    );

    let early = f.azure_rs256(&with(azure_claims(), json!({"nbf": NOW + skew + 1})));
    let err = refused(&f.azure, &early);
    assert!(matches!(err, TokenError::NotYetValid { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&timestamp::format_unix(NOW + skew + 1))
    );

    // Within the skew, both ways.
    let just_expired = f.okta_rs256(&with(okta_claims(), json!({"exp": NOW - skew + 1})));
    assert!(f.okta.verify_at(&just_expired, now()).is_ok());
    let almost_valid = f.azure_rs256(&with(azure_claims(), json!({"nbf": NOW + skew})));
    assert!(f.azure.verify_at(&almost_valid, now()).is_ok());
}

#[test]
fn wrong_issuer_and_audience_are_refused() {
    let f = setup();
    let token = f.okta_rs256(&with(
        okta_claims(),
        json!({"iss": "https://evil.example/oauth2/default"}),
    ));
    let err = refused(&f.okta, &token);
    assert_eq!(
        err.to_string(),
        format!("the token's issuer is \"https://evil.example/oauth2/default\", expected {OKTA}")
    );

    let token = f.okta_rs256(&with(okta_claims(), json!({"aud": ["grafana", "argo"]})));
    let err = refused(&f.okta, &token);
    assert_eq!(
        err.to_string(),
        "the token's audience \"grafana, argo\" is not one of the accepted audiences [\"palisade\"]"
    );
    // Any one of a list is enough.
    let token = f.okta_rs256(&with(
        okta_claims(),
        json!({"aud": ["grafana", "palisade"]}),
    ));
    assert!(f.okta.verify_at(&token, now()).is_ok());
}

#[test]
fn unknown_key_id_is_refused() {
    let f = setup();
    let token = jwt(
        &json!({"alg": "RS256", "kid": "rotated-away"}),
        &okta_claims(),
        |m| f.keys.sign_rsa(&f.keys.rsa, m),
    );
    let err = refused(&f.okta, &token);
    assert_eq!(
        err.to_string(),
        "the token names key id \"rotated-away\", which the issuer's JWKS does not hold"
    );
}

#[test]
fn tampered_signature_and_payload_are_refused() {
    let f = setup();
    let token = f.okta_rs256(&okta_claims());
    let (message, sig) = token.rsplit_once('.').unwrap();

    // One bit of the signature flipped.
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    raw[10] ^= 1;
    let tampered = format!("{message}.{}", b64(&raw));
    assert!(matches!(
        refused(&f.okta, &tampered),
        TokenError::BadSignature { .. }
    ));

    // The payload changed (a group added), the original signature kept.
    let (header, _) = message.split_once('.').unwrap();
    let escalated = with(okta_claims(), json!({"groups": ["data-stewards"]}));
    let tampered = format!("{header}.{}.{sig}", b64(escalated.to_string().as_bytes()));
    let err = refused(&f.okta, &tampered);
    assert_eq!(
        err.to_string(),
        "the token's signature does not verify against the issuer's key \"okta-rsa\""
    );

    // A real signature, by a key the JWKS does not hold, under a kid it does.
    let forged = jwt(
        &json!({"alg": "RS256", "kid": "okta-rsa"}),
        &okta_claims(),
        |m| f.keys.sign_rsa(&f.keys.other_rsa, m),
    );
    assert!(matches!(
        refused(&f.okta, &forged),
        TokenError::BadSignature { .. }
    ));

    // A signature that is not base64url.
    let garbled = format!("{message}.!!!");
    assert!(matches!(
        refused(&f.okta, &garbled),
        TokenError::Malformed { .. }
    ));
}

#[test]
fn alg_none_is_refused() {
    let f = setup();
    for header in [
        json!({"alg": "none", "kid": "okta-rsa"}),
        json!({"alg": "none"}),
        json!({"alg": "None", "typ": "JWT"}),
    ] {
        let token = format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(okta_claims().to_string().as_bytes())
        );
        assert!(looks_like_jwt(&token), "the sidecar must see it as a token");
        let err = refused(&f.okta, &token);
        assert!(
            matches!(err, TokenError::ForbiddenAlgorithm { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("is refused"), "{err}");
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let f = setup();
    // The classic confusion: the attacker uses the issuer's public key, which anyone can
    // fetch, as an HMAC secret, hoping the verifier feeds the same bytes to HMAC.
    let public_pem = fixture("rsa-public.pem");
    let public_components = RsaPublicKeyComponents::<Vec<u8>>::from(f.keys.rsa.public());
    for secret in [
        public_pem.as_bytes().to_vec(),
        der(&public_pem),
        public_components.n.clone(),
    ] {
        for header in [
            json!({"alg": "HS256", "kid": "okta-rsa", "typ": "JWT"}),
            json!({"alg": "HS256", "typ": "JWT"}),
        ] {
            let token = jwt(&header, &okta_claims(), |m| {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
                ring::hmac::sign(&key, m).as_ref().to_vec()
            });
            let err = refused(&f.okta, &token);
            assert!(
                matches!(err, TokenError::ForbiddenAlgorithm { .. }),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                "the token's algorithm \"HS256\" is refused: tokens must be signed with one of the issuer's keys (RS256 or ES256)"
            );
        }
    }
}

#[test]
fn es256_token_against_an_rsa_key_is_refused() {
    let f = setup();
    // A valid ES256 signature, but the kid names the RSA key: the key pins RS256.
    let token = jwt(
        &json!({"alg": "ES256", "kid": "okta-rsa"}),
        &okta_claims(),
        |m| f.keys.sign_ec(m),
    );
    let err = refused(&f.okta, &token);
    assert_eq!(
        err.to_string(),
        "the token says algorithm \"ES256\", but key \"okta-rsa\" in the JWKS is an RS256 key"
    );
    // And the other way round.
    let token = jwt(
        &json!({"alg": "RS256", "kid": "okta-ec"}),
        &okta_claims(),
        |m| f.keys.sign_rsa(&f.keys.rsa, m),
    );
    assert!(matches!(
        refused(&f.okta, &token),
        TokenError::AlgorithmMismatch { .. }
    ));
}

#[test]
fn other_algorithms_are_unsupported() {
    let f = setup();
    for alg in ["RS512", "PS256", "EdDSA"] {
        let token = jwt(
            &json!({"alg": alg, "kid": "okta-rsa"}),
            &okta_claims(),
            |_| vec![1; 256],
        );
        assert!(matches!(
            refused(&f.okta, &token),
            TokenError::UnsupportedAlgorithm { .. }
        ));
    }
}

#[test]
fn azure_ad_groups_overage_is_refused() {
    let f = setup();
    // What Azure AD sends for a user in more groups than fit: no `groups`, a pointer instead.
    let claims = with(
        azure_claims(),
        json!({
            "groups": null,
            "_claim_names": {"groups": "src1"},
            "_claim_sources": {"src1": {
                "endpoint": "https://graph.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/users/00000000-0000-0000-66f3-3332eca7ea81/getMemberObjects"
            }},
        }),
    );
    let err = refused(&f.azure, &f.azure_rs256(&claims));
    assert_eq!(
        err,
        TokenError::GroupsOverage {
            claim: "groups".into()
        }
    );
    let message = err.to_string();
    assert!(message.contains("groups overage"), "{message}");
    assert!(message.contains("too many groups"), "{message}");
}

#[test]
fn a_token_without_kid_needs_a_single_key_jwks() {
    let f = setup();
    let claims = okta_claims();
    let no_kid = jwt(&json!({"alg": "RS256"}), &claims, |m| {
        f.keys.sign_rsa(&f.keys.rsa, m)
    });
    // The Okta JWKS holds two keys: which one would be a guess.
    assert_eq!(
        refused(&f.okta, &no_kid),
        TokenError::MissingKeyId { usable: 2 }
    );
    let single = TokenVerifier::new(
        &oidc(OKTA, &["palisade"], "email"),
        json!({"keys": [Keys::rsa_jwk(&f.keys.rsa, "only")]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        single.verify_at(&no_kid, now()).unwrap().user,
        "alice@example.com"
    );
}

#[test]
fn claims_are_checked_only_after_the_signature() {
    let f = setup();
    // An expired token with a broken signature is refused for its signature: nothing the
    // payload says is believed first.
    let token = f.okta_rs256(&with(okta_claims(), json!({"exp": NOW - 3600})));
    let (message, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{message}.{}", b64(&[7; 256]));
    assert!(matches!(
        refused(&f.okta, &forged),
        TokenError::BadSignature { .. }
    ));
}

#[test]
fn missing_user_claim_is_refused() {
    let f = setup();
    let token = f.okta_rs256(&with(okta_claims(), json!({"email": null})));
    assert_eq!(
        refused(&f.okta, &token).to_string(),
        "the token has no email claim"
    );
}

#[test]
fn jwks_that_cannot_be_used_fail_to_load() {
    let cfg = oidc(OKTA, &[], "email");
    let err = TokenVerifier::new(&cfg, b"<html>not found</html>").unwrap_err();
    assert!(matches!(err, JwksError::NotJson { .. }));
    assert!(err.to_string().starts_with("the JWKS is not JSON"), "{err}");
    let err = TokenVerifier::new(
        &cfg,
        br#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the JWKS holds no key usable for ID tokens (RS256 or ES256 signing keys); skipped: key \"s\": symmetric (oct) keys are never accepted: a shared secret cannot show who issued a token"
    );
}

#[test]
fn wall_clock_verification_uses_now() {
    let f = setup();
    let current = timestamp::unix(SystemTime::now());
    let token = f.okta_rs256(&with(okta_claims(), json!({"exp": current + 600})));
    assert!(f.okta.verify(&token).is_ok());
    let token = f.okta_rs256(&with(okta_claims(), json!({"exp": current - 600})));
    assert!(matches!(
        f.okta.verify(&token),
        Err(TokenError::Expired { .. })
    ));
}
