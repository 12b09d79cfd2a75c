//! TLS with a private CA and client certificates (mTLS): an endpoint's `tls: {ca, cert, key}`
//! against a real rustls server that requires a client certificate signed by its CA.

mod common;
use common::*;
use std::io::Write;
use std::sync::Arc;

struct Pki {
    ca: String,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
    client_cert: String,
    client_key: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut srv = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let srv_key = KeyPair::generate().unwrap();
    let srv_cert = srv.signed_by(&srv_key, &ca, &ca_key).unwrap();
    let mut cli = CertificateParams::new(vec!["canary-probe".to_string()]).unwrap();
    cli.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cli_key = KeyPair::generate().unwrap();
    let cli_cert = cli.signed_by(&cli_key, &ca, &ca_key).unwrap();
    Pki {
        ca: ca.pem(),
        ca_der: ca.der().clone(),
        server_chain: vec![srv_cert.der().clone()],
        server_key: rustls::pki_types::PrivateKeyDer::try_from(srv_key.serialize_der()).unwrap(),
        client_cert: cli_cert.pem(),
        client_key: cli_key.serialize_pem(),
    }
}

/// A TLS server requiring client certificates of `ca`, answering every request with JSON.
fn serve(pki: &Pki) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = Arc::new(config);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut stream = stream;
                let mut tls = rustls::Stream::new(&mut conn, &mut stream);
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut tls, &mut buf);
                let body = b"{\"ok\": true}";
                let _ = write!(tls, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = tls.write_all(body);
                let _ = tls.flush();
            });
        }
    });
    port
}

#[test]
fn mtls_with_a_private_ca_works_and_each_missing_piece_is_a_tls_error() {
    let pki = pki();
    let port = serve(&pki);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ca.pem", &pki.ca);
    write(dir.path(), "client.pem", &pki.client_cert);
    write(dir.path(), "client.key", &pki.client_key);
    write(
        dir.path(),
        "g.jsonl",
        "{\"id\": \"c1\", \"input\": {\"body\": {\"q\": 1}}}\n",
    );
    let url = format!("https://127.0.0.1:{port}/check");
    let s = write(
        dir.path(),
        "s.yaml",
        &format!(
            r#"suite: mtls
defaults: {{ timeout: 5s }}
endpoints:
  full: {{ protocol: http-json, url: "{url}", tls: {{ ca: ca.pem, cert: client.pem, key: client.key }} }}
  no-client-cert: {{ protocol: http-json, url: "{url}", tls: {{ ca: ca.pem }} }}
  no-ca: {{ protocol: http-json, url: "{url}" }}
probes:
  - {{ name: full, endpoint: full, golden: g.jsonl }}
  - {{ name: no-client-cert, endpoint: no-client-cert, golden: g.jsonl }}
  - {{ name: no-ca, endpoint: no-ca, golden: g.jsonl }}
"#
        ),
    );
    let (out, r) = run_with_report(&s, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let outcome = |e: &str| {
        r["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["endpoint"] == e)
            .unwrap()["outcome"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(outcome("full"), "ok", "{r}");
    assert_eq!(
        outcome("no-ca"),
        "tls",
        "an unknown issuer fails the handshake"
    );
    // TLS 1.3 reports a refused client certificate after the handshake, on the first read.
    assert!(
        matches!(
            outcome("no-client-cert").as_str(),
            "tls" | "reset" | "protocol"
        ),
        "{}",
        outcome("no-client-cert")
    );
    // A bad path is a load error naming the file.
    let bad = write(
        dir.path(),
        "bad.yaml",
        &format!("suite: bad\nendpoints:\n  e: {{ protocol: http-json, url: \"{url}\", tls: {{ ca: nope.pem, cert: client.pem }} }}\nprobes:\n  - {{ name: p, endpoint: e, golden: g.jsonl }}\n"),
    );
    let out = canary(&["validate", bad.to_str().unwrap()], &[]);
    let (_, e) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        e.contains("nope.pem") && e.contains("needs both `cert` and `key`"),
        "{e}"
    );
}
