//! TLS for PostgreSQL connections through rustls, honouring libpq's `sslmode` and `sslrootcert`.
//!
//! tokio-postgres itself knows only disable / prefer / require, so the URL's `sslmode` is read
//! here and turned into a rustls verifier:
//!
//! | sslmode       | encrypted     | certificate chain checked | host name checked |
//! |---------------|---------------|---------------------------|-------------------|
//! | `disable`     | no            | -                         | -                 |
//! | `prefer`      | if offered    | no                        | no                |
//! | `require`     | yes           | no (yes with sslrootcert, as libpq does) | no |
//! | `verify-ca`   | yes           | yes                       | no                |
//! | `verify-full` | yes           | yes                       | yes               |
//!
//! Roots come from `sslrootcert` (a PEM file) or, when it is unset or `system`, the Mozilla
//! root set (Neon's certificates chain to it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(raw: &str) -> Result<Self> {
        Ok(match raw {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::Config(format!(
                    "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres must do during the handshake.
    pub fn driver_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as M;
        match self {
            SslMode::Disable => M::Disable,
            SslMode::Prefer => M::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => M::Require,
        }
    }
}

/// The TLS part of a connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls client configuration for these options.
pub fn client_config(opts: &TlsOptions) -> Result<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?;
    let verify_chain = matches!(opts.mode, SslMode::VerifyCa | SslMode::VerifyFull)
        || (opts.mode == SslMode::Require && opts.root_cert.is_some());
    // Without a chain to verify, the standard verifier still checks the handshake signatures;
    // its roots (the public ones) are then not used.
    let roots = Arc::new(load_roots(if verify_chain { opts.root_cert.as_deref() } else { None })?);
    let standard = WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?;
    let config = if opts.mode == SslMode::VerifyFull {
        builder.with_webpki_verifier(standard).with_no_client_auth()
    } else {
        let relaxed = Relaxed { standard, chain: verify_chain };
        builder.dangerous().with_custom_certificate_verifier(Arc::new(relaxed)).with_no_client_auth()
    };
    Ok(config)
}

fn load_roots(path: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match path {
        Some(p) if p.as_os_str() != "system" => {
            let pem = std::fs::read(p)
                .map_err(|e| Error::Config(format!("sslrootcert={}: cannot read the file: {e}", p.display())))?;
            let mut reader = pem.as_slice();
            for cert in rustls_pemfile::certs(&mut reader) {
                let cert = cert
                    .map_err(|e| Error::Config(format!("sslrootcert={}: not a PEM certificate: {e}", p.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Config(format!("sslrootcert={}: unusable certificate: {e}", p.display())))?;
            }
            if roots.is_empty() {
                return Err(Error::Config(format!("sslrootcert={}: holds no certificate", p.display())));
            }
        }
        _ => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// Less than verify-full: verify-ca (`chain`: the chain must lead to a trusted root, the name in
/// the certificate is not checked) and prefer / require (libpq semantics: encrypted, the
/// certificate is not checked). The handshake signatures are checked either way, by the standard
/// verifier, so the session keys belong to whoever holds the certificate's key.
#[derive(Debug)]
struct Relaxed {
    standard: Arc<WebPkiServerVerifier>,
    chain: bool,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.chain {
            return Ok(ServerCertVerified::assertion());
        }
        match self.standard.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.standard.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.standard.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.standard.supported_verify_schemes()
    }
}
