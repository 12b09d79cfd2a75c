//! TLS client configurations: the roots every connection trusts and a client configuration
//! over them (with a client certificate for mTLS). Shared by the suite loader, which builds
//! an endpoint's configuration from its `tls:` PEM files, and by the drivers and sinks, which
//! connect with it; it depends on neither.

use std::sync::Arc;

/// The roots every TLS connection trusts: the system's bundle (`SSL_CERT_FILE`, or Debian's
/// and Red Hat's usual files) when one is readable, otherwise the Mozilla roots compiled in.
pub fn system_roots() -> rustls::RootCertStore {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    let files = std::env::var("SSL_CERT_FILE").ok().into_iter().chain(
        [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ]
        .map(String::from),
    );
    for f in files {
        if let Ok(iter) = CertificateDer::pem_file_iter(&f) {
            let certs: Vec<CertificateDer<'static>> = iter.filter_map(Result::ok).collect();
            let (added, _) = roots.add_parsable_certificates(certs);
            if added > 0 {
                return roots;
            }
        }
    }
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

/// A client configuration over `roots`, with a client certificate when given (mTLS).
pub fn client_config(
    roots: rustls::RootCertStore,
    client: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
