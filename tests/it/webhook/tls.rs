//! The webhook served over TLS, and the listener's refusals of unusable certificate files.

use super::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::PathBuf;

struct Files {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    cert_der: CertificateDer<'static>,
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn files(test: &str) -> Files {
    let dir = std::env::temp_dir().join(format!("shepherd-webhook-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    Files {
        dir,
        cert,
        key,
        cert_der: generated.cert.der().clone(),
    }
}

#[tokio::test]
async fn mutate_answers_over_https_with_a_trusted_certificate() {
    let files = files("https");
    let listener = TlsListener::bind("127.0.0.1:0".parse().unwrap(), &files.cert, &files.key)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server =
        tokio::spawn(
            listener.run("admission webhook", webhook(Arc::new(AllowAll)), async {
                let _ = stopped.await;
            }),
        );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(files.cert_der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the server presents the certificate we trust");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    let client = tokio::spawn(connection);

    let created = object("VmRequest", Some("team-a"), "web-01", None);
    let review = Review::shepherd("VmRequest", "CREATE", Some("team-a"))
        .with_object(created.clone())
        .json();
    let request = hyper::Request::post("/mutate")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(review.to_string())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["response"]["uid"], REQUEST_UID);
    let patched = apply(&reply["response"], &created);
    assert_eq!(verify(&patched, "VmRequest"), Ok(alice()));

    drop(sender);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops on shutdown")
        .unwrap();
    let _ = client.await;
}

#[tokio::test]
async fn errors_name_the_file_that_failed() {
    let files = files("errors");
    let addr = "127.0.0.1:0".parse().unwrap();
    let missing = files.dir.join("absent.crt");
    let never = std::future::pending::<()>();

    let err = serve(
        "admission webhook",
        addr,
        &missing,
        &files.key,
        webhook(Arc::new(AllowAll)),
        never,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TlsError::Certificate { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.crt"), "{err}");

    let err = TlsListener::bind(addr, &files.cert, files.dir.join("absent.key"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TlsError::PrivateKey { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.key"), "{err}");

    // A key file given as the certificate holds no certificate.
    let err = TlsListener::bind(addr, &files.key, &files.key)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
    assert!(err.to_string().contains("tls.key"), "{err}");

    // A key that does not belong to the certificate.
    let other = rcgen::KeyPair::generate().unwrap();
    let other_key = files.dir.join("other.key");
    std::fs::write(&other_key, other.serialize_pem()).unwrap();
    let err = TlsListener::bind(addr, &files.cert, &other_key)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TlsError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("other.key"), "{err}");
}
