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
    let listener = Listener::tls("127.0.0.1:0".parse().unwrap(), &files.cert, &files.key)
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

    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&files)));
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

    let err = Listener::tls(addr, &files.cert, files.dir.join("absent.key"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TlsError::PrivateKey { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.key"), "{err}");

    // A key file given as the certificate holds no certificate.
    let err = Listener::tls(addr, &files.key, &files.key)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
    assert!(err.to_string().contains("tls.key"), "{err}");

    // A key that does not belong to the certificate.
    let other = rcgen::KeyPair::generate().unwrap();
    let other_key = files.dir.join("other.key");
    std::fs::write(&other_key, other.serialize_pem()).unwrap();
    let err = Listener::tls(addr, &files.cert, &other_key)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TlsError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("other.key"), "{err}");
}

fn tight_limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        max_connections: 1,
    }
}

/// A client that trusts the test's self-signed server certificate.
fn client_builder(
    files: &Files,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(files.cert_der.clone()).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
}

fn client_config(files: &Files) -> rustls::ClientConfig {
    client_builder(files).with_no_client_auth()
}

/// Whether the server closes a connection on which `half` was written, within `within`.
async fn closed_within<S>(mut stream: S, half: &[u8], within: Duration) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(half).await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // hyper may answer 408 before closing; keep reading to the end.
            Ok(Ok(_)) => continue,
        }
    }
}

const HALF_A_REQUEST: &[u8] = b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Le";

/// A slowloris client (half a request, then nothing) is cut off within the header timeout,
/// and one that connects and says nothing within the idle timeout, over TLS and plain HTTP;
/// meanwhile nobody else can take its one slot, and afterwards the listener serves again.
#[tokio::test]
async fn slow_and_idle_clients_are_disconnected_and_the_cap_holds() {
    let files = files("slowloris");
    let tls = Listener::tls("127.0.0.1:0".parse().unwrap(), &files.cert, &files.key)
        .await
        .unwrap()
        .with_limits(tight_limits());
    let plain = Listener::plain("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .with_limits(tight_limits());
    let (tls_addr, plain_addr) = (tls.local_addr().unwrap(), plain.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(tls.run(
        "webhook",
        webhook(Arc::new(AllowAll)),
        stop.clone().cancelled_owned(),
    ));
    tokio::spawn(plain.run(
        "api",
        webhook(Arc::new(AllowAll)),
        stop.clone().cancelled_owned(),
    ));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&files)));
    let tls_connect = || async {
        let tcp = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    };
    // Liveness bounds with slack for a loaded machine; the timeouts are one and two seconds.
    let bound = Duration::from_secs(8);

    let slow = tls_connect().await;
    // While the slow client holds the only slot, a second client is not served.
    let queued = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    let queued_handshake = tokio::spawn({
        let connector = connector.clone();
        async move {
            connector
                .connect(ServerName::try_from("localhost").unwrap(), queued)
                .await
        }
    });
    assert!(
        closed_within(slow, HALF_A_REQUEST, bound).await,
        "TLS slowloris closed"
    );
    // The slot is free again: the queued client gets its handshake.
    let queued = tokio::time::timeout(bound, queued_handshake)
        .await
        .expect("served once the slot is free")
        .unwrap()
        .unwrap();
    drop(queued);

    let plain_slow = tokio::net::TcpStream::connect(plain_addr).await.unwrap();
    assert!(
        closed_within(plain_slow, HALF_A_REQUEST, bound).await,
        "plain slowloris closed"
    );
    let silent = tokio::net::TcpStream::connect(plain_addr).await.unwrap();
    assert!(
        closed_within(silent, b"", bound).await,
        "idle plain connection closed"
    );
    let silent = tls_connect().await;
    assert!(
        closed_within(silent, b"", bound).await,
        "idle TLS connection closed"
    );
    stop.cancel();
}

/// With a client CA, only clients presenting a certificate it signed are served: the
/// webhook no longer signs stamps for whoever reaches its port.
#[tokio::test]
async fn with_a_client_ca_only_its_clients_are_served() {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer};
    let files = files("client-ca");
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut client = CertificateParams::new(vec!["kube-apiserver".to_string()]).unwrap();
    client
        .extended_key_usages
        .push(ExtendedKeyUsagePurpose::ClientAuth);
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();
    let ca_path = files.dir.join("client-ca.crt");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();

    let listener = Listener::tls_verifying_clients(
        "127.0.0.1:0".parse().unwrap(),
        &files.cert,
        &files.key,
        Some(&ca_path),
    )
    .await
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(listener.run(
        "webhook",
        webhook(Arc::new(AllowAll)),
        stop.clone().cancelled_owned(),
    ));

    let post = |config: rustls::ClientConfig| async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .ok()?;
        tokio::spawn(connection);
        let review = Review::shepherd("VmRequest", "CREATE", Some("team-a"))
            .with_object(object("VmRequest", Some("team-a"), "web-01", None))
            .json();
        let request = hyper::Request::post("/mutate")
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(review.to_string())))
            .unwrap();
        Some(sender.send_request(request).await.ok()?.status())
    };
    assert_eq!(
        post(client_config(&files)).await,
        None,
        "no client certificate, no answer"
    );

    let with_cert = client_builder(&files)
        .with_client_auth_cert(
            vec![client_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(client_key.serialize_der()).unwrap(),
        )
        .unwrap();
    assert_eq!(post(with_cert).await, Some(StatusCode::OK));
    stop.cancel();
}
