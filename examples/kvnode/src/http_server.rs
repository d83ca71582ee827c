//! The HTTP API's connections, plain or over TLS (`serve --cert --key`,
//! and `--client-ca` to take client certificates). A client certificate
//! that chains to the client CA is an admin credential, like the bearer
//! token: each connection's requests carry [`ClientCert`] saying whether it
//! presented one. Every connection's answers pass through
//! [`JsonErrors`], so even the rejections hyper makes itself have the
//! API's JSON error shape.

use crate::http_errors::JsonErrors;
use crate::tls::{load_certs, load_key, load_roots, provider, TlsError};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the request's connection presented a client certificate that
/// chains to `--client-ca` (an admin credential).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClientCert(pub(crate) bool);

/// The API's TLS files.
#[derive(Clone, Debug)]
pub(crate) struct ApiTls {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// Clients may present a certificate from this CA (optional for them).
    pub(crate) client_ca: Option<PathBuf>,
}

impl ApiTls {
    /// The server configuration.
    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(load_roots(ca)?),
                    provider(),
                )
                .allow_unauthenticated()
                .build()?,
            ),
        };
        let config = builder.with_single_cert(load_certs(&self.cert)?, load_key(&self.key)?)?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) until `stop` turns
/// true.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopped => return,
        };
        let (tls, app) = (tls.clone(), app.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Some(tls) = tls else {
                return connection(tcp, app, false).await;
            };
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await
            else {
                return;
            };
            // The verifier checked any certificate presented.
            let certified = stream
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            connection(stream, app, certified).await;
        });
    }
}

/// Serves one connection's requests.
async fn connection<IO>(io: IO, app: Router, certified: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let served = Arc::new(AtomicBool::new(false));
    let service = Connection {
        app,
        served: served.clone(),
        cert: ClientCert(certified),
    };
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(JsonErrors::new(io, served)), service)
        .await;
}

/// One connection's requests on their way to the router: each is marked
/// with the connection's [`ClientCert`], and the connection as served (see
/// [`JsonErrors`]). Written out rather than built from layers, which
/// boxed a future and cloned a service per request.
#[derive(Clone)]
struct Connection {
    app: Router,
    served: Arc<AtomicBool>,
    cert: ClientCert,
}

impl hyper::service::Service<Request<Incoming>> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        self.served.store(true, Relaxed);
        req.extensions_mut().insert(self.cert);
        // A `Router` is always ready, and a clone of it is a reference
        // count: calling a clone is what a tower-to-hyper adapter does.
        tower_service::Service::call(&mut self.app.clone(), req)
    }
}
