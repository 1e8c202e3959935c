//! Serving a router on a TCP listener, with hyper directly rather than `axum::serve`, for
//! the one limit axum's server does not offer: a header-read timeout. Without it a client
//! that trickles its request headers (slowloris) holds a connection and a task for as long
//! as it likes. The whole-request timeout is a router layer (see `http::time_limit`).
//!
//! Every request carries its peer address as `ConnectInfo<SocketAddr>` (the login
//! throttle limits by it). On shutdown the server stops accepting, lets the requests in
//! flight finish, then returns.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

/// Serves `router` on `listener` until `shutdown` resolves, closing any connection whose
/// request headers take longer than `header_read_timeout` to arrive.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    // Dropping `stop` tells the connections to finish; each holds a clone of `open` until
    // it is closed, so `open_tx.closed()` resolves once every connection is gone.
    let (stop, stop_rx) = watch::channel(());
    let (open_tx, open) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if !is_connection_error(&error) {
                        // Out of file descriptors, say: back off instead of spinning.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(service) = make_service.clone().oneshot(remote).await;
        let service = TowerToHyperService::new(
            service.map_request(|request: Request<Incoming>| request.map(Body::new)),
        );
        let mut stop = stop_rx.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let mut connection = pin!(
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
            );
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(%error, %remote, "connection ended with an error");
                    }
                }
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(stop);
    drop(open);
    open_tx.closed().await;
    Ok(())
}

/// Errors of one connection (the client went away before it was accepted), not of the
/// listener.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}
