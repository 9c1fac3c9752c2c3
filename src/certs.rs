//! `shepherd certs`: a private CA and a serving certificate for the admission webhook, for
//! development and for clusters without cert-manager. The CA goes into the webhook
//! configurations' `caBundle`.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `dir` for `hosts` (DNS names
/// or IP addresses).
pub fn write_webhook_certs(dir: &Path, hosts: &[String]) -> Result<(), CertError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "kubevirt-shepherd webhook CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut serving = CertificateParams::new(hosts.to_vec())?;
    serving.distinguished_name.push(
        DnType::CommonName,
        hosts.first().map(String::as_str).unwrap_or("localhost"),
    );
    serving.use_authority_key_identifier_extension = true;
    serving.key_usages.push(KeyUsagePurpose::DigitalSignature);
    serving
        .extended_key_usages
        .push(ExtendedKeyUsagePurpose::ServerAuth);
    let key = KeyPair::generate()?;
    let cert = serving.signed_by(&key, &issuer)?;

    let write = |name: &str, text: &str, private: bool| -> Result<(), CertError> {
        let path = dir.join(name);
        let err = |source| CertError::Write {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        std::fs::write(&path, text).map_err(err)?;
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
        Ok(())
    };
    write("ca.crt", &ca_cert.pem(), false)?;
    write("tls.crt", &cert.pem(), false)?;
    write("tls.key", &key.serialize_pem(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ca_and_a_serving_pair_the_webhook_accepts() {
        let dir = std::env::temp_dir().join(format!("shepherd-certs-{}", std::process::id()));
        write_webhook_certs(&dir, &["127.0.0.1".into(), "shepherd.svc".into()]).unwrap();
        for f in ["ca.crt", "tls.crt"] {
            assert!(
                std::fs::read_to_string(dir.join(f))
                    .unwrap()
                    .starts_with("-----BEGIN CERTIFICATE-----")
            );
        }
        // The webhook's own TLS loader takes the pair.
        crate::http::tls::tls_config(&dir.join("tls.crt"), &dir.join("tls.key")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
