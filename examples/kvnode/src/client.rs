//! An HTTP client for the cluster: starts at the last known leader, follows
//! redirects, moves to the next endpoint when one fails, and retries with
//! back-off until its deadline. Writes carry a session (client id +
//! sequence) that every retry repeats, so a retry never applies twice.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest response body read.
const MAX_RESPONSE: usize = 64 << 20;
/// Longest wait for one attempt (the server gives up on a decision at 5 s).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);
/// Redirects followed in a row before backing off.
const MAX_HOPS: usize = 5;
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(250);

/// One answer.
#[derive(Clone, Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Response {
    /// The body as text (lossy), for messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error` field of a JSON error body, or the body itself.
    pub(crate) fn error(&self) -> String {
        serde_json::from_slice::<crate::api::ErrorJson>(&self.body)
            .map(|e| e.error)
            .unwrap_or_else(|_| self.text())
    }
}

/// Why a request failed for good.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// No endpoint is given.
    #[error("no endpoints given")]
    NoEndpoints,
    /// An endpoint that is not `host:port`.
    #[error("endpoint `{0}` is not HOST:PORT")]
    BadEndpoint(String),
    /// Nothing answered usefully before the deadline.
    #[error("no answer within {0:?}: {1}")]
    Unavailable(Duration, String),
    /// The TLS files given cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// A cluster client. Clones share the connection pool and the leader hint.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `http`, or `https` once given a CA to trust.
    scheme: &'static str,
    endpoints: Arc<Vec<String>>,
    /// Where the last success came from: the leader, most likely.
    preferred: Arc<Mutex<Option<String>>>,
    timeout: Duration,
    /// Sent as `Authorization: Bearer` with every request, when set.
    token: Option<Arc<str>>,
}

/// `host:port` of an endpoint written with or without `http://` or
/// `https://`.
pub(crate) fn authority(endpoint: &str) -> String {
    let e = endpoint.trim();
    let e = e.strip_prefix("http://").unwrap_or(e);
    let e = e.strip_prefix("https://").unwrap_or(e);
    e.split('/').next().unwrap_or(e).to_owned()
}

/// A pooled HTTP/1 client: plain HTTP (a `tls` with no roots), or HTTPS
/// only once given a CA (`https_only`: never a plain request that would
/// carry the admin token in the clear).
fn hyper_client(
    tls: rustls::ClientConfig,
    https_only: bool,
) -> HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(2)));
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
    let builder = if https_only {
        builder.https_only()
    } else {
        builder.https_or_http()
    };
    let connector = builder.enable_http1().wrap_connector(http);
    HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// The path and query of a URL (`/` when it has none).
fn path_of(url: &str) -> &str {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// A request error, with its causes, saying plainly when the server's
/// certificate is not trusted.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    if text.contains("invalid peer certificate") {
        format!(
            "the server's certificate is not trusted (give --cacert with the CA that signed it): {text}"
        )
    } else {
        text
    }
}

impl Client {
    /// A client for `endpoints` (HTTP addresses) giving up after `timeout`.
    pub(crate) fn new(endpoints: &[String], timeout: Duration) -> Result<Self, ClientError> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|e| authority(e))
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        for e in &endpoints {
            let port = e
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(_))) if !host.is_empty()) {
                return Err(ClientError::BadEndpoint(e.clone()));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Ok(Client {
            http: hyper_client(tls, false),
            scheme: "http",
            endpoints: Arc::new(endpoints),
            preferred: Arc::new(Mutex::new(None)),
            timeout,
            token: None,
        })
    }

    /// The same client over HTTPS, trusting the CA in `ca` and presenting
    /// `identity` (a certificate and key file), if given.
    pub(crate) fn with_tls(
        mut self,
        ca: &std::path::Path,
        identity: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<Self, ClientError> {
        let tls_err = |e: &dyn std::fmt::Display| ClientError::Tls(e.to_string());
        let roots = crate::tls::load_roots(ca).map_err(|e| tls_err(&e))?;
        let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(&e))?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let certs = crate::tls::load_certs(cert).map_err(|e| tls_err(&e))?;
                let key = crate::tls::load_key(key).map_err(|e| tls_err(&e))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| tls_err(&e))?
            }
        };
        self.http = hyper_client(config, true);
        self.scheme = "https";
        Ok(self)
    }

    /// The URL of `path` at `endpoint`.
    pub(crate) fn url(&self, endpoint: &str, path: &str) -> String {
        format!("{}://{endpoint}{path}", self.scheme)
    }

    /// The same client, presenting the admin `token`.
    pub(crate) fn with_token(mut self, token: String) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The endpoints, as `host:port`.
    pub(crate) fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// One request to one URL, no retries.
    pub(crate) async fn once(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, String)],
        body: &Bytes,
    ) -> Result<(Response, Option<String>), String> {
        let mut req = Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        if let Some(token) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(body.clone()))
            .map_err(|e| format!("bad request for {url}: {e}"))?;
        let resp = tokio::time::timeout(ATTEMPT_TIMEOUT, self.http.request(req))
            .await
            .map_err(|_| format!("{url}: timed out"))?
            .map_err(|e| format!("{url}: {}", describe(&e)))?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| format!("{url}: reading the answer: {e}"))?
            .to_bytes();
        Ok((Response { status, body }, location))
    }

    /// Sends `method path` to the cluster until a definite answer: follows
    /// redirects to the leader, moves on from endpoints that fail or have
    /// no leader (503), and backs off between rounds.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let start = self.lock_preferred().clone();
        let mut index = start
            .as_ref()
            .and_then(|p| self.endpoints.iter().position(|e| e == p))
            .unwrap_or(0);
        let mut url = self.url(
            &start.unwrap_or_else(|| self.endpoints[index].clone()),
            path,
        );
        let mut backoff = BACKOFF_MIN;
        let mut hops = 0;
        let mut last_error;
        loop {
            match self.once(&method, &url, headers, &body).await {
                Ok((resp, Some(location))) if resp.status == StatusCode::TEMPORARY_REDIRECT => {
                    last_error = format!("redirected to {location}");
                    // Followed with this client's own scheme: a redirect
                    // cannot downgrade HTTPS (and the token) to plain HTTP.
                    let target = authority(&location);
                    url = self.url(&target, path_of(&location));
                    *self.lock_preferred() = Some(target);
                    hops += 1;
                    if hops < MAX_HOPS {
                        continue;
                    }
                }
                Ok((resp, _)) if resp.status == StatusCode::SERVICE_UNAVAILABLE => {
                    last_error = resp.error();
                }
                Ok((resp, _)) => {
                    *self.lock_preferred() = Some(authority(&url));
                    return Ok(resp);
                }
                Err(e) => {
                    last_error = e;
                    *self.lock_preferred() = None;
                }
            }
            if Instant::now() + backoff >= deadline {
                return Err(ClientError::Unavailable(self.timeout, last_error));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            hops = 0;
            index = (index + 1) % self.endpoints.len();
            url = self.url(&self.endpoints[index], path);
        }
    }

    fn lock_preferred(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        match self.preferred.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_normalize_to_authorities() {
        assert_eq!(
            authority("http://127.0.0.1:8001/kv/x?seq=1"),
            "127.0.0.1:8001"
        );
        assert_eq!(authority(" 127.0.0.1:8002 "), "127.0.0.1:8002");
        assert_eq!(path_of("http://127.0.0.1:8001/kv/x?seq=1"), "/kv/x?seq=1");
        assert_eq!(path_of("https://h:1"), "/");
        assert!(matches!(
            Client::new(&[" ".into()], Duration::from_secs(1)),
            Err(ClientError::NoEndpoints)
        ));
        for bad in ["nonsense", "host:", ":80", "host:99999"] {
            assert!(
                matches!(
                    Client::new(&[bad.into()], Duration::from_secs(1)),
                    Err(ClientError::BadEndpoint(_))
                ),
                "{bad}"
            );
        }
        assert!(Client::new(&["localhost:8001".into()], Duration::from_secs(1)).is_ok());
    }
}
