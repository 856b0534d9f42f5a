//! A throwaway certificate authority, generated at test time.
//!
//! Certificates are generated per run instead of being checked in so that
//! they never expire under the suite and no private key lives in the
//! repository.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A self-signed CA that can issue leaf certificates.
pub struct TestCa {
    /// The CA certificate in PEM form: what clients put in their root store
    /// (`sslrootcert=` for libpq) to verify certificates from [`TestCa::issue`].
    pub cert_pem: String,
    /// Kept so that `issue` can sign; never handed out, because no test
    /// should need to forge a certificate from this CA by other means.
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// Panics instead of returning an error: key generation only fails on a
    /// broken crypto backend, which no test can recover from.
    pub fn new(common_name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Palisade tests");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign CA certificate");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Leaf certificate signed by this CA with the given DNS names / IP
    /// addresses as SANs (IP strings like "127.0.0.1" become IP SANs, which
    /// is what verify-full needs when a client connects by address).
    ///
    /// Returns `(cert_pem, key_pem)`; the key is PKCS#8 ECDSA P-256, which
    /// both OpenSSL (PostgreSQL) and rustls (the sidecar) load.
    ///
    /// The certificate carries both the serverAuth and clientAuth extended
    /// key usages so that the same helper can mint client certificates for
    /// mutual-TLS tests; verifiers only check that the usage they need is
    /// present.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("generate leaf key");
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("leaf params (bad SAN?)");
        let cn = names.first().copied().unwrap_or("palisade-test-leaf");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign leaf certificate");
        (cert.pem(), key.serialize_pem())
    }
}

impl TestCa {
    /// A client certificate for Kubernetes' x509 authenticator, which takes the user name from
    /// the subject's CommonName and the groups from its Organizations (`system:masters` makes
    /// a cluster admin). One group only: rcgen keeps one value per attribute type.
    /// Returns `(cert_pem, key_pem)`.
    pub fn issue_client(&self, user: &str, group: Option<&str>) -> (String, String) {
        let key = KeyPair::generate().expect("generate client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, user);
        if let Some(group) = group {
            params
                .distinguished_name
                .push(DnType::OrganizationName, group);
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign client certificate");
        (cert.pem(), key.serialize_pem())
    }
}

impl std::fmt::Debug for TestCa {
    /// Hand-written so the private key never ends up in a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}
