//! The REST API's client: kube's HTTP client with the kubeconfig user's credentials, sent to
//! `--server` instead of the Kubernetes API; and the failures, with their exit codes.

use crate::cli::Cli;
use crate::exit_code::ExitCode;
use http::{Method, Request, StatusCode};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shepherd_types::api::ErrorBody;
use shepherd_types::api::paths;

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: ExitCode,
    pub message: String,
}

impl Failure {
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            code: ExitCode::Failure,
            message: message.into(),
        }
    }

    pub fn from_status(status: StatusCode, body: &[u8]) -> Self {
        let error: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let (code, message) = match error {
            Some(e) => (e.code, e.message),
            None => (
                status.as_str().to_string(),
                String::from_utf8_lossy(body).trim().to_string(),
            ),
        };
        Self {
            code: ExitCode::from_status(status),
            message: format!("{code}: {message}"),
        }
    }
}

pub struct ApiClient {
    client: kube::Client,
}

impl ApiClient {
    pub async fn new(cli: &Cli) -> Result<Self, Failure> {
        let server = cli.server.as_deref().ok_or_else(|| Failure {
            code: ExitCode::Usage,
            message: "no API server: pass --server or set SHEPHERD_API_URL".into(),
        })?;
        let options = KubeConfigOptions {
            context: cli.context.clone(),
            ..Default::default()
        };
        let mut config = match &cli.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path).map_err(|e| {
                    Failure::other(format!("reading kubeconfig {}: {e}", path.display()))
                })?;
                kube::Config::from_custom_kubeconfig(kc, &options).await
            }
            None => kube::Config::from_kubeconfig(&options).await,
        }
        .map_err(|e| Failure::other(format!("loading the kubeconfig: {e}")))?;
        config.cluster_url = server
            .parse()
            .map_err(|e| Failure::other(format!("--server {server:?}: {e}")))?;
        config.tls_server_name = None;
        config.root_cert_file = None;
        config.root_cert = match &cli.certificate_authority {
            Some(path) => Some(
                CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| Failure::other(format!("reading CA {}: {e}", path.display())))?
                    .into_iter()
                    .map(|c| c.to_vec())
                    .collect(),
            ),
            None => None,
        };
        config.accept_invalid_certs = cli.insecure_skip_tls_verify;
        let client = kube::Client::try_from(config)
            .map_err(|e| Failure::other(format!("building the HTTP client: {e}")))?;
        Ok(Self { client })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Failure> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| Failure::other(e.to_string()))?,
            None => vec![],
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(kube::client::Body::from(bytes))
            .map_err(|e| Failure::other(e.to_string()))?;
        let response = self.client.send(request).await.map_err(|e| Failure {
            code: ExitCode::Unavailable,
            message: format!("unavailable: cannot reach the Shepherd API: {e}"),
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| Failure {
                code: ExitCode::Unavailable,
                message: format!("unavailable: reading the answer: {e}"),
            })?;
        if !status.is_success() {
            return Err(Failure::from_status(status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| Failure::other(format!("unexpected answer from the API: {e}")))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// POSTs `body` as JSON.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Failure> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Follows `nextCursor` until the pages run out (or `max` items are collected).
    pub async fn all_pages<P: DeserializeOwned, T>(
        &self,
        path: &str,
        max: usize,
        split: impl Fn(P) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, Failure> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=500&cursor={}", paths::encode(c)),
                None => format!("{path}{sep}limit=500"),
            };
            let (page, next) = split(self.get::<P>(&url).await?);
            items.extend(page);
            if items.len() >= max {
                items.truncate(max);
                return Ok(items);
            }
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(items),
            }
        }
    }
}

/// `key=value&...` of the parameters that are set, percent-encoded.
pub fn query(params: &[(&str, Option<String>)]) -> String {
    let pairs: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", paths::encode(v))))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_encode_values_and_skip_unset() {
        assert_eq!(
            query(&[
                ("a", Some("x y&z".into())),
                ("b", None),
                ("c", Some("ok".into()))
            ]),
            "?a=x%20y%26z&c=ok"
        );
        assert_eq!(query(&[("a", None)]), "");
    }

    #[test]
    fn api_errors_map_to_documented_exit_codes() {
        let body = br#"{"code":"conflict","message":"ticket is already Approved","details":null}"#;
        let f = Failure::from_status(StatusCode::CONFLICT, body);
        assert_eq!(f.code, ExitCode::Conflict);
        assert_eq!(f.message, "conflict: ticket is already Approved");
        let f = Failure::from_status(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert_eq!(f.code, ExitCode::Unavailable);
    }

    #[test]
    fn a_body_that_is_not_an_error_body_is_quoted_with_the_status() {
        let f = Failure::from_status(StatusCode::BAD_GATEWAY, b"  upstream gone\n");
        assert_eq!(f.code, ExitCode::Failure);
        assert_eq!(f.message, "502: upstream gone");
    }
}
