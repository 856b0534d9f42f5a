//! Webhook certificates: the self-managed CA and serving certificate (generation, rotation
//! decisions, their Secret encoding) and the resolver the HTTPS server asks on every
//! handshake, so a renewed certificate is served without a restart.
//!
//! Rotation, all as pure functions of "now" so it is tested without waiting a year:
//! - the serving (leaf) certificate lives 90 days and is renewed at 2/3 of its lifetime;
//! - the CA lives a year; at 2/3 of its lifetime a new CA is added to the bundle *next to* the
//!   old one, and leaves keep being signed by the old CA until the new one has been in every
//!   webhook's `caBundle` for a while ([`PROPAGATION`]); only then does the leaf switch. The old
//!   CA stays in the bundle until it expires, so a replica still serving an older leaf keeps
//!   working. The API server never sees a leaf it cannot verify.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use k8s_openapi::ByteString;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::Digest;
use x509_parser::extensions::{GeneralName, ParsedExtension};

pub const DAY: i64 = 86_400;
/// Lifetime of a self-managed CA.
pub const CA_LIFETIME: i64 = 365 * DAY;
/// Lifetime of a serving certificate.
pub const LEAF_LIFETIME: i64 = 90 * DAY;
/// `notBefore` is set this far in the past: API servers' clocks may run behind ours.
pub const BACKDATE: i64 = 3600;
/// How long a new CA must have been seen in every webhook's `caBundle` before leaves are
/// signed by it: API servers pick webhook configuration changes up through informers, which
/// lag by seconds; minutes leave a wide margin.
pub const PROPAGATION: i64 = 300;

/// Secret keys of the self-managed Secret.
pub const KEY_CA_BUNDLE: &str = "ca.crt";
pub const KEY_CA_KEYS: &str = "ca.key";
pub const KEY_TLS_CERT: &str = "tls.crt";
pub const KEY_TLS_KEY: &str = "tls.key";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("TLS certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(what: &str, message: impl ToString) -> CertError {
    CertError::Invalid {
        what: what.to_string(),
        message: message.to_string(),
    }
}

/// A certificate's validity window in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    /// When the certificate should be replaced: 2/3 into its lifetime, so a third of it is
    /// left to retry through API-server outages.
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }

    pub fn needs_renewal(&self, now: i64) -> bool {
        now >= self.renew_at()
    }

    pub fn expired(&self, now: i64) -> bool {
        now >= self.not_after
    }
}

/// A CA of the bundle with its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
    pub validity: Validity,
    common_name: String,
    subject_raw: Vec<u8>,
    key_id: Option<Vec<u8>>,
}

/// The serving certificate with its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub validity: Validity,
    pub dns_names: Vec<String>,
    issuer_raw: Vec<u8>,
    authority_key_id: Option<Vec<u8>>,
}

/// What the self-managed Secret holds: CAs newest first, and the serving certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertBundle {
    pub cas: Vec<Ca>,
    pub leaf: Leaf,
}

/// Why [`reconcile`] changed the bundle; logged, and asserted on in tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing (readable) was stored: a new CA and serving certificate.
    Created,
    /// A new CA joined the bundle because the newest one reached its renewal time.
    CaAdded,
    /// Expired CAs left the bundle.
    CaDropped(usize),
    LeafRenewed(LeafReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafReason {
    /// 2/3 of its lifetime is over.
    Expiring,
    /// The Service's DNS names changed (another `--webhook-service` or namespace).
    NamesChanged,
    /// Its CA is no longer in the bundle.
    IssuerGone,
    /// A newer CA is now trusted everywhere: sign with it.
    NewCa,
}

impl CertBundle {
    /// The `caBundle` value: every CA, newest first, PEM-concatenated.
    pub fn ca_bundle_pem(&self) -> String {
        self.cas.iter().map(|c| c.cert_pem.as_str()).collect()
    }

    /// Index of the CA that signed the serving certificate: same subject as the leaf's issuer
    /// and, where both carry one, the same key identifier (two CAs may share a subject).
    pub fn leaf_issuer(&self) -> Option<usize> {
        self.cas.iter().position(|c| issued_by(&self.leaf, c))
    }

    pub fn to_secret_data(&self) -> BTreeMap<String, ByteString> {
        let keys: String = self.cas.iter().map(|c| c.key_pem.as_str()).collect();
        BTreeMap::from([
            (
                KEY_CA_BUNDLE.to_string(),
                ByteString(self.ca_bundle_pem().into_bytes()),
            ),
            (KEY_CA_KEYS.to_string(), ByteString(keys.into_bytes())),
            (
                KEY_TLS_CERT.to_string(),
                ByteString(self.leaf.cert_pem.clone().into_bytes()),
            ),
            (
                KEY_TLS_KEY.to_string(),
                ByteString(self.leaf.key_pem.clone().into_bytes()),
            ),
        ])
    }

    /// Reads the Secret's data. `ca.key` holds one key per CA of `ca.crt`, in the same order;
    /// every key must belong to its certificate.
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Result<Self, CertError> {
        let get = |key: &str| {
            data.get(key)
                .map(|b| b.0.as_slice())
                .ok_or_else(|| invalid(key, "missing"))
        };
        let ca_certs = pem_certs(KEY_CA_BUNDLE, get(KEY_CA_BUNDLE)?)?;
        let ca_keys = pem_keys(KEY_CA_KEYS, get(KEY_CA_KEYS)?)?;
        if ca_certs.is_empty() || ca_certs.len() != ca_keys.len() {
            return Err(invalid(
                KEY_CA_KEYS,
                format!(
                    "{} keys for {} CA certificates",
                    ca_keys.len(),
                    ca_certs.len()
                ),
            ));
        }
        let cas = ca_certs
            .iter()
            .zip(&ca_keys)
            .map(|(cert, key)| Ca::from_parts(der_to_pem(cert), key.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let leaf_certs = pem_certs(KEY_TLS_CERT, get(KEY_TLS_CERT)?)?;
        let leaf_keys = pem_keys(KEY_TLS_KEY, get(KEY_TLS_KEY)?)?;
        let (Some(cert), Some(key)) = (leaf_certs.first(), leaf_keys.first()) else {
            return Err(invalid(KEY_TLS_CERT, "no certificate or no key"));
        };
        let leaf = Leaf::from_parts(der_to_pem(cert), key.clone())?;
        Ok(CertBundle { cas, leaf })
    }

    /// The serving certificate as rustls wants it.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, CertError> {
        certified_key(self.leaf.cert_pem.as_bytes(), self.leaf.key_pem.as_bytes())
    }
}

impl Ca {
    fn from_parts(cert_pem: String, key_pem: String) -> Result<Self, CertError> {
        let der = single_cert(KEY_CA_BUNDLE, &cert_pem)?;
        let (_, x509) =
            x509_parser::parse_x509_certificate(&der).map_err(|e| invalid(KEY_CA_BUNDLE, e))?;
        check_key(KEY_CA_KEYS, &key_pem, x509.public_key().raw)?;
        let common_name = x509
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok(Ca {
            validity: validity(&x509),
            key_id: subject_key_id(&x509),
            subject_raw: x509.subject().as_raw().to_vec(),
            common_name,
            der: der.to_vec(),
            cert_pem,
            key_pem,
        })
    }

    /// An issuer for this CA. The subject is rebuilt from the common name, which is all a
    /// self-managed CA's subject holds; [`new_leaf`] checks the issued leaf names this exact
    /// subject, so a CA from elsewhere is refused rather than producing an unverifiable leaf.
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, CertError> {
        let key = KeyPair::from_pem(&self.key_pem)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(&self.common_name);
        params.key_usages = ca_key_usages();
        Ok(Issuer::new(params, key))
    }
}

impl Leaf {
    fn from_parts(cert_pem: String, key_pem: String) -> Result<Self, CertError> {
        let der = single_cert(KEY_TLS_CERT, &cert_pem)?;
        let (_, x509) =
            x509_parser::parse_x509_certificate(&der).map_err(|e| invalid(KEY_TLS_CERT, e))?;
        check_key(KEY_TLS_KEY, &key_pem, x509.public_key().raw)?;
        let mut dns_names = Vec::new();
        if let Ok(Some(san)) = x509.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(n) = name {
                    dns_names.push((*n).to_string());
                }
            }
        }
        Ok(Leaf {
            validity: validity(&x509),
            authority_key_id: authority_key_id(&x509),
            issuer_raw: x509.issuer().as_raw().to_vec(),
            dns_names,
            cert_pem,
            key_pem,
        })
    }
}

/// The DNS names the serving certificate covers: how the API server reaches the Service.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Brings the bundle up to date at time `now` (Unix seconds). `published_since` tells since
/// when a CA has been in every webhook's `caBundle` (`None`: not everywhere yet). Returns the
/// new bundle and what changed; no change means nothing to write.
pub fn reconcile(
    now: i64,
    current: Option<CertBundle>,
    dns_names: &[String],
    published_since: &dyn Fn(&Ca) -> Option<i64>,
) -> Result<(CertBundle, Vec<Change>), CertError> {
    let Some(current) = current else {
        let ca = new_ca(now)?;
        let leaf = new_leaf(now, &ca, dns_names)?;
        return Ok((
            CertBundle {
                cas: vec![ca],
                leaf,
            },
            vec![Change::Created],
        ));
    };
    let mut changes = Vec::new();
    let before = current.cas.len();
    let mut cas: Vec<Ca> = current
        .cas
        .into_iter()
        .filter(|c| !c.validity.expired(now))
        .collect();
    if cas.len() < before {
        changes.push(Change::CaDropped(before - cas.len()));
    }
    if cas.first().is_none_or(|c| c.validity.needs_renewal(now)) {
        cas.insert(0, new_ca(now)?);
        changes.push(Change::CaAdded);
    }
    let signer = signing_ca(now, &cas, published_since);
    let mut bundle = CertBundle {
        cas,
        leaf: current.leaf,
    };
    let reason = match bundle.leaf_issuer() {
        None => Some(LeafReason::IssuerGone),
        Some(i) if i != signer => Some(LeafReason::NewCa),
        Some(_) if bundle.leaf.validity.needs_renewal(now) => Some(LeafReason::Expiring),
        Some(_) if !same_names(&bundle.leaf.dns_names, dns_names) => Some(LeafReason::NamesChanged),
        Some(_) => None,
    };
    if let Some(reason) = reason {
        bundle.leaf = new_leaf(now, &bundle.cas[signer], dns_names)?;
        changes.push(Change::LeafRenewed(reason));
    }
    Ok((bundle, changes))
}

/// The CA that signs serving certificates: the newest one that every webhook has trusted for
/// [`PROPAGATION`], else the oldest (the one API servers have trusted longest). A lone CA is
/// used at once: on a fresh install there is nothing older to fall back to.
pub fn signing_ca(now: i64, cas: &[Ca], published_since: &dyn Fn(&Ca) -> Option<i64>) -> usize {
    if cas.len() <= 1 {
        return 0;
    }
    cas.iter()
        .position(|c| published_since(c).is_some_and(|t| now - t >= PROPAGATION))
        .unwrap_or(cas.len() - 1)
}

fn same_names(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ]
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn timestamp(secs: i64) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| invalid("validity", e))
}

/// A new self-signed CA. Its common name carries the creation time and a digest of its key, so
/// CAs that overlap in the bundle (or that two replicas race to create) have distinct
/// subjects, which keeps issuer matching unambiguous.
pub fn new_ca(now: i64) -> Result<Ca, CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let key_hash = hex::encode(sha2::Sha256::digest(key.subject_public_key_info()));
    params.distinguished_name =
        common_name(&format!("palisade-webhook-ca-{now}-{}", &key_hash[..8]));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = ca_key_usages();
    params.not_before = timestamp(now - BACKDATE)?;
    params.not_after = timestamp(now + CA_LIFETIME)?;
    let cert = params.self_signed(&key)?;
    Ca::from_parts(cert.pem(), key.serialize_pem())
}

/// A serving certificate for `dns_names` signed by `ca`, never outliving it.
pub fn new_leaf(now: i64, ca: &Ca, dns_names: &[String]) -> Result<Leaf, CertError> {
    let issuer = ca.issuer()?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(dns_names.to_vec())?;
    params.distinguished_name = common_name(dns_names.first().map_or("palisade-webhook", |n| n));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = timestamp(now - BACKDATE)?;
    params.not_after = timestamp((now + LEAF_LIFETIME).min(ca.validity.not_after))?;
    let cert = params.signed_by(&key, &issuer)?;
    let leaf = Leaf::from_parts(cert.pem(), key.serialize_pem())?;
    if !issued_by(&leaf, ca) {
        return Err(invalid(
            KEY_CA_BUNDLE,
            "the CA's subject is not one this operator creates (a CA from elsewhere?); delete the Secret to let the operator create its own",
        ));
    }
    Ok(leaf)
}

fn issued_by(leaf: &Leaf, ca: &Ca) -> bool {
    leaf.issuer_raw == ca.subject_raw
        && match (&leaf.authority_key_id, &ca.key_id) {
            (Some(a), Some(k)) => a == k,
            _ => true,
        }
}

fn subject_key_id(x509: &x509_parser::certificate::X509Certificate<'_>) -> Option<Vec<u8>> {
    x509.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
}

fn authority_key_id(x509: &x509_parser::certificate::X509Certificate<'_>) -> Option<Vec<u8>> {
    x509.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        })
}

fn validity(x509: &x509_parser::certificate::X509Certificate<'_>) -> Validity {
    Validity {
        not_before: x509.validity().not_before.timestamp(),
        not_after: x509.validity().not_after.timestamp(),
    }
}

fn pem_certs(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(what, e))
}

/// Every private key in `pem`, each re-encoded as its own PEM block.
fn pem_keys(what: &str, pem: &[u8]) -> Result<Vec<String>, CertError> {
    PrivateKeyDer::pem_slice_iter(pem)
        .map(|k| {
            let k = k.map_err(|e| invalid(what, e))?;
            let pair = KeyPair::try_from(&k).map_err(|e| invalid(what, e))?;
            Ok(pair.serialize_pem())
        })
        .collect()
}

fn single_cert(what: &str, pem: &str) -> Result<CertificateDer<'static>, CertError> {
    pem_certs(what, pem.as_bytes())?
        .into_iter()
        .next()
        .ok_or_else(|| invalid(what, "no certificate"))
}

fn der_to_pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    use std::fmt::Write;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        let _ = writeln!(out, "{}", String::from_utf8_lossy(chunk));
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn check_key(what: &str, key_pem: &str, spki: &[u8]) -> Result<(), CertError> {
    let key = KeyPair::from_pem(key_pem).map_err(|e| invalid(what, e))?;
    if key.subject_public_key_info() != spki {
        return Err(invalid(what, "the key does not belong to the certificate"));
    }
    Ok(())
}

/// A rustls certified key from PEM files (chain first certificate = the leaf).
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, CertError> {
    let certs = pem_certs(KEY_TLS_CERT, cert_pem)?;
    if certs.is_empty() {
        return Err(invalid(KEY_TLS_CERT, "no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| invalid(KEY_TLS_KEY, e))?;
    let provider = rustls::crypto::ring::default_provider();
    Ok(Arc::new(CertifiedKey::from_der(certs, key, &provider)?))
}

/// Reads `tls.crt` and `tls.key` from a directory (cert-manager mode: the Secret cert-manager
/// keeps, mounted by the kubelet). Returns the files' bytes too, to notice changes.
pub fn load_cert_dir(dir: &Path) -> Result<(Arc<CertifiedKey>, Vec<u8>), CertError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| CertError::Io { path, source })
    };
    let cert = read(KEY_TLS_CERT)?;
    let key = read(KEY_TLS_KEY)?;
    let key_pair = certified_key(&cert, &key)?;
    let mut seen = cert;
    seen.extend_from_slice(&key);
    Ok((key_pair, seen))
}

/// The certificate served on the next handshake; swapped in place when it is renewed or the
/// files change, so open connections keep theirs and new ones get the new one.
#[derive(Debug, Default)]
pub struct CertResolver {
    current: ArcSwapOption<CertifiedKey>,
}

impl CertResolver {
    pub fn set(&self, key: Arc<CertifiedKey>) {
        self.current.store(Some(key));
    }

    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    /// `None` (no certificate yet) fails the handshake, which the API server treats like an
    /// unreachable webhook (`failurePolicy`).
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}
