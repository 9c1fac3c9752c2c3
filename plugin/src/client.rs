//! The REST API's client: kube's HTTP client with the kubeconfig user's credentials, sent to
//! `--server` instead of the Kubernetes API; and the failures, with their exit codes.

use crate::cli::Cli;
use crate::exit_code::ExitCode;
use http::{Method, Request, StatusCode, Uri};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shepherd_types::api::ErrorBody;
use shepherd_types::api::paths;
use std::net::IpAddr;

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

/// The `--server` URL, checked before any credential is loaded. Every request carries the
/// kubeconfig user's credentials (a bearer token), which plain HTTP would hand to anyone on
/// the path, and kube's client sends them to an `http://` URL as readily as to `https://`.
/// So the URL must be `https://HOST[:PORT]`; `http://` only to a loopback IP address, and
/// only with `--allow-loopback-http`.
pub fn server_url(server: &str, allow_loopback_http: bool) -> Result<Uri, Failure> {
    let usage = |message: String| Failure {
        code: ExitCode::Usage,
        message,
    };
    let uri: Uri = server
        .parse()
        .map_err(|e| Failure::other(format!("--server {server:?}: {e}")))?;
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Err(usage(format!(
            "--server {server:?}: not an absolute URL; write it as https://HOST[:PORT]"
        )));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(uri),
        "http" => {
            let loopback = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback());
            if loopback && allow_loopback_http {
                Ok(uri)
            } else if loopback {
                Err(usage(format!(
                    "--server {server:?}: refusing to send your kubeconfig credentials over \
                     plain HTTP; use an https:// URL, or pass --allow-loopback-http for a local \
                     development API on this loopback address"
                )))
            } else {
                Err(usage(format!(
                    "--server {server:?}: refusing to send your kubeconfig credentials over \
                     plain HTTP; use an https:// URL (http:// is allowed only to a loopback IP \
                     address, 127.0.0.1 or [::1], with --allow-loopback-http)"
                )))
            }
        }
        other => Err(usage(format!(
            "--server {server:?}: scheme {other:?} is not supported; use an https:// URL"
        ))),
    }
}

impl ApiClient {
    pub async fn new(cli: &Cli) -> Result<Self, Failure> {
        let server = cli.server.as_deref().ok_or_else(|| Failure {
            code: ExitCode::Usage,
            message: "no API server: pass --server or set SHEPHERD_API_URL".into(),
        })?;
        // Before the kubeconfig is read: no credential is loaded (or exec plugin run) for a
        // server that may not have it.
        let server_url = server_url(server, cli.allow_loopback_http)?;
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
        config.cluster_url = server_url;
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
        // kube retries 429, 503 and 504 up to 15 times with backoff: minutes of silence for a
        // command line. The answer (and its Retry-After) goes to the user instead.
        config.default_retry = false;
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
    use clap::Parser;
    use shepherd_types::api::Whoami;

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
    fn the_server_must_be_https() {
        for ok in [
            "https://shepherd.example:8443",
            "https://10.0.0.1",
            "HTTPS://shepherd.example/",
        ] {
            assert!(server_url(ok, false).is_ok(), "{ok}");
        }
        let refused = |server: &str, allow: bool| {
            let f = server_url(server, allow).expect_err(server);
            assert_eq!(f.code, ExitCode::Usage, "{server}");
            f.message
        };
        let m = refused("http://shepherd.example:8080", false);
        assert_eq!(
            m,
            "--server \"http://shepherd.example:8080\": refusing to send your kubeconfig \
             credentials over plain HTTP; use an https:// URL (http:// is allowed only to a \
             loopback IP address, 127.0.0.1 or [::1], with --allow-loopback-http)"
        );
        // The opt-out covers loopback IP addresses only, not names that may resolve anywhere.
        for server in [
            "http://shepherd.example:8080",
            "http://10.0.0.1:8080",
            "http://localhost:8080",
            "http://127.0.0.1.nip.io:8080",
        ] {
            assert!(refused(server, true).contains("plain HTTP"), "{server}");
        }
        assert!(refused("ftp://shepherd.example", true).contains("scheme \"ftp\""));
        assert!(refused("shepherd.example:8443", false).contains("https://HOST[:PORT]"));
        assert!(refused("/api/v1", false).contains("not an absolute URL"));
    }

    #[test]
    fn loopback_http_needs_the_flag() {
        for server in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080",
            "http://[::ffff:127.0.0.1]:8080",
        ] {
            let f = server_url(server, false).expect_err(server);
            assert!(
                f.message.contains("pass --allow-loopback-http"),
                "{}",
                f.message
            );
            assert!(server_url(server, true).is_ok(), "{server}");
        }
    }

    /// Runs `whoami` against a listener on 127.0.0.1 as `http://`, with a kubeconfig whose
    /// user has a bearer token; returns what the listener received, if anything.
    async fn plain_http_request(extra_args: &[&str]) -> (Result<Whoami, Failure>, Option<String>) {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        let dir = std::env::temp_dir().join(format!(
            "kubectl-shepherd-test-{}-{}",
            std::process::id(),
            extra_args.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{name: k, cluster: {server: 'https://kubernetes.invalid'}}]\n\
             users: [{name: u, user: {token: secret-token}}]\n\
             contexts: [{name: c, context: {cluster: k, user: u}}]\n",
        )
        .unwrap();
        let mut args = vec!["kubectl-shepherd", "--server", &server, "--kubeconfig"];
        args.push(kubeconfig.to_str().unwrap());
        args.extend(extra_args);
        args.push("whoami");
        let cli = Cli::try_parse_from(args).unwrap();
        let call = async {
            let api = ApiClient::new(&cli).await?;
            api.get::<Whoami>(paths::WHOAMI).await
        };
        // Reads the request (if one comes within a second) and closes the connection.
        let listen = async {
            let accepted =
                tokio::time::timeout(std::time::Duration::from_secs(1), listener.accept()).await;
            let (mut stream, _) = accepted.ok()?.ok()?;
            let mut buf = vec![0; 4096];
            let n = stream.read(&mut buf).await.ok()?;
            Some(String::from_utf8_lossy(&buf[..n]).into_owned())
        };
        let result = tokio::join!(call, listen);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    #[tokio::test]
    async fn credentials_are_never_sent_to_a_plain_http_server() {
        let (result, received) = plain_http_request(&[]).await;
        assert_eq!(received, None, "the request went out over plain HTTP");
        let f = result.expect_err("refused");
        assert_eq!(f.code, ExitCode::Usage);
        assert!(
            f.message
                .contains("refusing to send your kubeconfig credentials over plain HTTP")
        );
    }

    #[tokio::test]
    async fn with_the_flag_loopback_http_is_reached() {
        // The counterpart of the test above: the listener does see a request (and its token)
        // when plain HTTP is allowed, so "nothing received" there means "nothing sent".
        let (result, received) = plain_http_request(&["--allow-loopback-http"]).await;
        let received = received.expect("a request");
        assert!(received.starts_with("GET /api/v1/whoami "), "{received}");
        assert!(
            received
                .to_ascii_lowercase()
                .contains("authorization: bearer secret-token"),
            "{received}"
        );
        assert_eq!(
            result.expect_err("connection closed").code,
            ExitCode::Unavailable
        );
    }

    #[test]
    fn a_body_that_is_not_an_error_body_is_quoted_with_the_status() {
        let f = Failure::from_status(StatusCode::BAD_GATEWAY, b"  upstream gone\n");
        assert_eq!(f.code, ExitCode::Failure);
        assert_eq!(f.message, "502: upstream gone");
    }
}
