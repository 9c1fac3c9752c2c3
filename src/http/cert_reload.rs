//! The serving certificate of a TLS listener, re-read from its PEM files while the process
//! runs: cert-manager renews the Secret, the kubelet swaps the mounted files (an atomic
//! `..data` symlink switch), and new handshakes get the new certificate without a restart.
//!
//! [`ReloadingCert`] compares the bytes it reads with those it last saw (no inotify, which
//! misses symlink swaps of Secret volumes). A pair that does not parse, or whose key does not
//! belong to the certificate, is not installed: the previous one stays in service and a
//! warning names the files and the reason, once per distinct bad content.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::tls::TlsError;

/// How often a listener re-reads its certificate files.
pub(crate) const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The shortest pause between two checks of the background task, whatever it was given
/// (a zero interval would spin).
const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// The bytes of both files as read, or why reading failed; what a check compares.
type Snapshot = (Result<Vec<u8>, String>, Result<Vec<u8>, String>);

/// A [`ResolvesServerCert`] serving the certified key last read successfully from a
/// certificate chain file and a private key file.
pub(crate) struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    /// What handshakes are served; only swapped for a pair that loaded completely.
    current: RwLock<Arc<CertifiedKey>>,
    /// What the last checks saw.
    seen: Mutex<Seen>,
}

struct Seen {
    /// The files' bytes of the pair in service.
    installed: (Vec<u8>, Vec<u8>),
    /// The last content that was refused (already warned about).
    rejected: Option<Snapshot>,
}

/// What one [`ReloadingCert::check`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The files hold the pair in service, or the bad content already warned about.
    Unchanged,
    /// A new pair is in service.
    Reloaded,
    /// The files changed but cannot be used; the previous pair stays in service.
    Rejected,
}

impl ReloadingCert {
    /// Serves `key`, loaded from `files` (the bytes of `cert_path` and `key_path`), until
    /// a [`check`](Self::check) finds a different usable pair.
    pub(crate) fn new(
        cert_path: &Path,
        key_path: &Path,
        files: (Vec<u8>, Vec<u8>),
        key: CertifiedKey,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        Self {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new(Seen {
                installed: files,
                rejected: None,
            }),
        }
    }

    /// The certified key handshakes are served with now.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads both files and installs the pair if it changed and is usable. Blocking
    /// (small files, std::fs); the background task runs it off the async workers.
    pub(crate) fn check(&self) -> Checked {
        let snapshot: Snapshot = (
            read(&self.cert_path).map_err(|e| e.to_string()),
            read(&self.key_path).map_err(|e| e.to_string()),
        );
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let (Ok(cert), Ok(key)) = &snapshot
            && (cert, key) == (&seen.installed.0, &seen.installed.1)
        {
            // Back to the pair in service (e.g. a bad write was undone): nothing to do, and
            // a later repeat of that bad content deserves a warning again.
            seen.rejected = None;
            return Checked::Unchanged;
        }
        if seen.rejected.as_ref() == Some(&snapshot) {
            return Checked::Unchanged;
        }
        let loaded = match &snapshot {
            (Ok(cert), Ok(key)) => {
                certified_key(&self.cert_path, cert, &self.key_path, key, &self.provider)
            }
            (Err(reason), _) => Err(TlsError::Certificate {
                path: self.cert_path.clone(),
                source: pem::Error::Io(io::Error::other(reason.clone())),
            }),
            (_, Err(reason)) => Err(TlsError::PrivateKey {
                path: self.key_path.clone(),
                source: pem::Error::Io(io::Error::other(reason.clone())),
            }),
        };
        match loaded {
            Ok(key) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                let (Ok(cert), Ok(key)) = snapshot else {
                    unreachable!("a pair loaded only from bytes read")
                };
                seen.installed = (cert, key);
                seen.rejected = None;
                tracing::info!(
                    cert = %self.cert_path.display(),
                    key = %self.key_path.display(),
                    "TLS certificate reloaded"
                );
                Checked::Reloaded
            }
            Err(e) => {
                seen.rejected = Some(snapshot);
                tracing::warn!(
                    cert = %self.cert_path.display(),
                    key = %self.key_path.display(),
                    error = %e,
                    "TLS certificate files changed but cannot be used; still serving the previous certificate"
                );
                Checked::Rejected
            }
        }
    }

    /// Checks the files every `every` (at least [`MIN_CHECK_INTERVAL`]) until the resolver
    /// is dropped; the listener also aborts it when it stops serving.
    pub(crate) async fn watch(this: Weak<Self>, every: Duration) {
        let every = every.max(MIN_CHECK_INTERVAL);
        loop {
            tokio::time::sleep(every).await;
            let Some(resolver) = this.upgrade() else {
                return;
            };
            // A panicking check (it should not) only loses this round.
            let _ = tokio::task::spawn_blocking(move || resolver.check()).await;
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl fmt::Debug for ReloadingCert {
    // Not derived: the key file's bytes are kept for comparison and must not be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// The certified key from the files' bytes, with the errors (and messages) start-up
/// reports: the chain (leaf first), the key (PKCS#8, PKCS#1 or SEC1), and whether the key
/// belongs to the leaf.
pub(crate) fn certified_key(
    cert_path: &Path,
    cert_bytes: &[u8],
    key_path: &Path,
    key_bytes: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let (certs, key) = parse_pair(cert_path, cert_bytes, key_path, key_bytes)?;
    CertifiedKey::from_der(certs, key, provider).map_err(|source| TlsError::Tls {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    })
}

/// The certificate chain and private key from PEM bytes.
pub(crate) fn parse_pair(
    cert_path: &Path,
    cert_bytes: &[u8],
    key_path: &Path,
    key_bytes: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Certificate {
            path: cert_path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_bytes).map_err(|source| TlsError::PrivateKey {
        path: key_path.to_path_buf(),
        source,
    })?;
    Ok((certs, key))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed serving pair: (certificate PEM, key PEM, certificate DER).
    pub(crate) fn pair() -> (String, String, CertificateDer<'static>) {
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        (
            generated.cert.pem(),
            generated.signing_key.serialize_pem(),
            generated.cert.der().clone(),
        )
    }

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(test: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!(
            "shepherd-cert-reload-{test}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    /// The resolver as a listener builds it (files read once, start-up errors).
    fn load(cert: &Path, key: &Path) -> Result<ReloadingCert, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let files = (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap());
        let certified = certified_key(cert, &files.0, key, &files.1, &provider)?;
        Ok(ReloadingCert::new(cert, key, files, certified, provider))
    }

    fn served(resolver: &ReloadingCert) -> CertificateDer<'static> {
        resolver.current().cert[0].clone()
    }

    #[test]
    fn a_renewed_pair_is_served_and_a_broken_one_is_not() {
        let dir = dir("swap");
        let (cert, key) = (dir.0.join("tls.crt"), dir.0.join("tls.key"));
        let (a_cert, a_key, a_der) = pair();
        std::fs::write(&cert, &a_cert).unwrap();
        std::fs::write(&key, &a_key).unwrap();
        let resolver = load(&cert, &key).unwrap();
        assert_eq!(served(&resolver), a_der);
        assert_eq!(resolver.check(), Checked::Unchanged);
        assert_eq!(served(&resolver), a_der);

        let (b_cert, b_key, b_der) = pair();
        std::fs::write(&cert, &b_cert).unwrap();
        std::fs::write(&key, &b_key).unwrap();
        assert_eq!(resolver.check(), Checked::Reloaded);
        assert_eq!(served(&resolver), b_der);
        assert_eq!(resolver.check(), Checked::Unchanged);

        // A key that is not PEM: refused once, then not looked at again until it changes.
        std::fs::write(&key, "not a key").unwrap();
        assert_eq!(resolver.check(), Checked::Rejected);
        assert_eq!(served(&resolver), b_der);
        assert_eq!(resolver.check(), Checked::Unchanged);
        assert_eq!(served(&resolver), b_der);

        // A key that parses but belongs to another certificate (a half-written renewal).
        std::fs::write(&key, &a_key).unwrap();
        assert_eq!(resolver.check(), Checked::Rejected);
        assert_eq!(served(&resolver), b_der);

        // A missing file.
        std::fs::remove_file(&cert).unwrap();
        assert_eq!(resolver.check(), Checked::Rejected);
        assert_eq!(resolver.check(), Checked::Unchanged);
        assert_eq!(served(&resolver), b_der);

        // Once both files are whole again, the pair is served.
        std::fs::write(&cert, &a_cert).unwrap();
        assert_eq!(resolver.check(), Checked::Reloaded);
        assert_eq!(served(&resolver), a_der);
    }

    /// Kubernetes Secret volumes: the files are symlinks through `..data`, which the
    /// kubelet points at a new directory in one rename.
    #[cfg(unix)]
    #[test]
    fn a_secret_volume_symlink_swap_is_picked_up() {
        let dir = dir("symlink");
        let write_version = |name: &str| {
            let (cert, key, der) = pair();
            let version = dir.0.join(name);
            std::fs::create_dir_all(&version).unwrap();
            std::fs::write(version.join("tls.crt"), cert).unwrap();
            std::fs::write(version.join("tls.key"), key).unwrap();
            der
        };
        let a_der = write_version("..v1");
        std::os::unix::fs::symlink("..v1", dir.0.join("..data")).unwrap();
        for file in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), dir.0.join(file)).unwrap();
        }
        let resolver = load(&dir.0.join("tls.crt"), &dir.0.join("tls.key")).unwrap();
        assert_eq!(served(&resolver), a_der);

        let b_der = write_version("..v2");
        std::os::unix::fs::symlink("..v2", dir.0.join("..data_tmp")).unwrap();
        std::fs::rename(dir.0.join("..data_tmp"), dir.0.join("..data")).unwrap();
        assert_eq!(resolver.check(), Checked::Reloaded);
        assert_eq!(served(&resolver), b_der);
    }

    #[tokio::test]
    async fn the_background_task_reloads_and_stops_with_the_resolver() {
        let dir = dir("task");
        let (cert, key) = (dir.0.join("tls.crt"), dir.0.join("tls.key"));
        let (a_cert, a_key, a_der) = pair();
        std::fs::write(&cert, &a_cert).unwrap();
        std::fs::write(&key, &a_key).unwrap();
        let resolver = Arc::new(load(&cert, &key).unwrap());
        let task = tokio::spawn(ReloadingCert::watch(
            Arc::downgrade(&resolver),
            Duration::ZERO,
        ));
        assert_eq!(served(&resolver), a_der);

        let (b_cert, b_key, b_der) = pair();
        std::fs::write(&cert, &b_cert).unwrap();
        std::fs::write(&key, &b_key).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while served(&resolver) != b_der {
            assert!(tokio::time::Instant::now() < deadline, "not reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        drop(resolver);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ends once the resolver is gone")
            .unwrap();
    }
}
