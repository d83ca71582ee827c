//! Mutual TLS between members: every member holds a certificate signed by
//! the cluster's CA whose subject names include `node-ID` (its member id),
//! and checks the same of every peer, in both directions. A connection
//! then speaks only for the member its certificate names: a frame whose
//! `from` is another member is refused (`transport`).
//!
//! `kvnode certs` (and `kvnode cluster`, for its own members) makes a CA
//! and the members' certificates with [`generate`].

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why the TLS material could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM of the kind expected.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The certificates and key do not make a valid configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The CA cannot verify client certificates.
    #[error("TLS client verification: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A certificate cannot be made.
    #[error("making certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// Some `--peer-*` flags are given but not all three.
    #[error("peer TLS needs all of --peer-cert, --peer-key and --peer-ca")]
    Incomplete,
}

/// The subject name a member's certificate must carry: `node-ID`.
pub fn member_name(id: u64) -> String {
    format!("node-{id}")
}

/// Whether `name` has the form of a member identity, `node-<digits>`.
pub fn is_member_name(name: &str) -> bool {
    name.strip_prefix("node-")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Where a member's TLS files are: its certificate chain, its key, and the
/// cluster CA's certificate (PEM).
#[derive(Clone, Debug)]
pub struct PeerFiles {
    /// This member's certificate (chain), PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// The cluster CA's certificate, PEM: every peer's must chain to it.
    pub ca: PathBuf,
}

impl PeerFiles {
    /// The files from the three optional flags: all or none.
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        ca: Option<PathBuf>,
    ) -> Result<Option<Self>, TlsError> {
        match (cert, key, ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(PeerFiles { cert, key, ca })),
            _ => Err(TlsError::Incomplete),
        }
    }
}

/// The peer transport's TLS: the acceptor requires and verifies a client
/// certificate from the CA; the connector presents this member's and
/// verifies the dialed member's name.
#[derive(Clone)]
pub struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path, what: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        what: what.to_string(),
    }
}

/// Every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| pem_error(path, e))
}

/// A root store holding every certificate of the CA file.
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| pem_error(path, e))?;
    }
    Ok(roots)
}

/// The crypto this binary uses (ring), named once.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl PeerTls {
    /// Loads a member's certificate, key and the CA.
    pub fn load(files: &PeerFiles) -> Result<Self, TlsError> {
        let certs = load_certs(&files.cert)?;
        let key = load_key(&files.key)?;
        let roots = Arc::new(load_roots(&files.ca)?);
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()?;
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())?;
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?;
        Ok(PeerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// The server side of a peer connection.
    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The client side of a connection to member `id`.
    pub(crate) fn connector(&self) -> &TlsConnector {
        &self.connector
    }

    /// The name member `id`'s certificate must carry, as TLS wants it.
    pub(crate) fn server_name(id: u64) -> ServerName<'static> {
        // "node-<digits>" is always a valid DNS name.
        ServerName::try_from(member_name(id))
            .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()))
    }
}

/// Whether `cert` (already verified against the CA) names member `id`.
pub(crate) fn names_member(cert: &CertificateDer<'_>, id: u64) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&PeerTls::server_name(id))
        .is_ok()
}

/// The CA's fixed subject and usages: re-created identically to sign with
/// a CA key made earlier.
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kvnode cluster CA");
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn write(path: &Path, contents: &str) -> Result<(), TlsError> {
    std::fs::write(path, contents).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The files [`generate`] writes for member `id` under `dir`.
pub fn member_files(dir: &Path, id: u64) -> PeerFiles {
    PeerFiles {
        cert: dir.join(format!("node-{id}.crt")),
        key: dir.join(format!("node-{id}.key")),
        ca: dir.join("ca.crt"),
    }
}

/// Makes (or reuses) a CA under `dir` (`ca.crt`, `ca.key`) and, for each
/// id without one yet, a member certificate `node-ID.crt` and key
/// `node-ID.key` naming `node-ID`, valid for both ends of a connection.
/// `hosts` are added to every member certificate as further names (the
/// addresses clients may dial). Returns the files of each id.
pub fn generate(dir: &Path, ids: &[u64], hosts: &[String]) -> Result<Vec<PeerFiles>, TlsError> {
    // A host name of the `node-ID` form would make every certificate name
    // that member too.
    if let Some(h) = hosts.iter().find(|h| is_member_name(h)) {
        return Err(TlsError::Pem {
            path: dir.to_owned(),
            what: format!("--hosts {h}: names of the form node-ID are member identities"),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let ca_keypair = if ca_key.exists() && ca_crt.exists() {
        let pem = String::from_utf8_lossy(&read(&ca_key)?).into_owned();
        KeyPair::from_pem(&pem)?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write(&ca_crt, &cert.pem())?;
        write_private(&ca_key, &key.serialize_pem())?;
        key
    };
    let issuer = Issuer::new(ca_params()?, ca_keypair);
    let mut out = Vec::new();
    for &id in ids {
        let files = member_files(dir, id);
        if !(files.cert.exists() && files.key.exists()) {
            let mut names = vec![member_name(id)];
            names.extend(hosts.iter().cloned());
            let mut params = CertificateParams::new(names)?;
            params
                .distinguished_name
                .push(DnType::CommonName, member_name(id));
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            write(&files.cert, &cert.pem())?;
            write_private(&files.key, &key.serialize_pem())?;
        }
        out.push(files);
    }
    Ok(out)
}

/// A file readable by its owner only (a private key, a token).
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_name_their_member_only_and_are_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = generate(dir.path(), &[1, 2], &["127.0.0.1".into()]).expect("generate");
        let cert = load_certs(&files[0].cert).expect("cert");
        assert!(names_member(&cert[0], 1));
        assert!(!names_member(&cert[0], 2));
        assert!(!names_member(&cert[0], 11));
        PeerTls::load(&files[1]).expect("a usable configuration");
        // A second run keeps the CA and the certificates, and signs a new
        // member's with the same CA.
        let before = std::fs::read(&files[0].cert).expect("read");
        let again = generate(dir.path(), &[1, 2, 3], &[]).expect("again");
        assert_eq!(std::fs::read(&again[0].cert).expect("read"), before);
        PeerTls::load(&again[2]).expect("the new member's");
        // Host names that are member identities are refused.
        assert!(generate(dir.path(), &[4], &["node-2".into()]).is_err());
        assert!(is_member_name("node-12") && !is_member_name("node-") && !is_member_name("db-1"));
    }
}
