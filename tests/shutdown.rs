//! Graceful shutdown of `enclave serve`: on the signal no connection is accepted, requests
//! in flight finish and commit, and the server exits once they have, or once the grace
//! period is over.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::app::TestApp;
use diesel_async::SimpleAsyncConnection;
use enclave::auth::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Sends one HTTP/1.1 request on a new connection and returns the raw answer.
async fn http(address: SocketAddr, request: String) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

fn post(token: &str, body: &str) -> String {
    format!(
        "POST /graphql HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn until_ready(address: SocketAddr) {
    for _ in 0..600 {
        let ready = http(
            address,
            "GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into(),
        )
        .await;
        if ready.is_ok_and(|a| a.starts_with("HTTP/1.1 200")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never became ready");
}

const WAITING: &str = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
                       AND application_name = 'enclave' AND wait_event_type = 'Lock'";

#[tokio::test]
async fn shutdown_refuses_new_connections_and_lets_requests_in_flight_commit() {
    for grace_ms in [60_000, 300] {
        // The blocked mutation would wait this long for its lock: only the grace period can
        // end the server's wait before.
        let t = TestApp::with(|database, _| database.lock_timeout_ms = 120_000).await;
        t.tenant("acme", &[]).await;
        let admin = t.user("acme", "admin@acme.example", Role::Admin).await;
        let token = t.session("acme", &admin).await;
        let address = free_port();
        let mut server = enclave::config::ServerConfig::on(address.to_string());
        server.shutdown_grace_ms = grace_ms;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = t.app.clone();
        let running = tokio::spawn(async move {
            enclave::listen(app, &server, false, async {
                let _ = stopped.await;
            })
            .await
        });
        until_ready(address).await;

        // A mutation in flight, blocked on a lock.
        let mut locker = t.db.conn().await;
        locker
            .batch_execute("BEGIN; LOCK TABLE tenant_acme.devices IN ACCESS EXCLUSIVE MODE")
            .await
            .expect("lock");
        let in_flight = tokio::spawn(http(
            address,
            post(
                &token,
                r#"{"query":"mutation { createDevice(input: {hostname: \"late\"}) { device { hostname } } }"}"#,
            ),
        ));
        for _ in 0..200 {
            if t.db.count(WAITING).await > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            t.db.count(WAITING).await,
            1,
            "the mutation is waiting on the lock"
        );

        stop.send(()).expect("signal");
        let mut refused = false;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(address).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(refused, "new connections are still accepted after the signal");

        if grace_ms == 300 {
            // Past the grace period the server exits although the mutation still waits.
            let exited = tokio::time::timeout(Duration::from_secs(30), running).await;
            assert!(exited.is_ok(), "the server outlived its grace period");
            locker.batch_execute("ROLLBACK").await.expect("unlock");
            continue;
        }
        locker.batch_execute("COMMIT").await.expect("unlock");
        let answer = in_flight
            .await
            .expect("request task")
            .expect("the request in flight is answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"hostname\":\"late\""), "{answer}");
        running
            .await
            .expect("server task")
            .expect("the server exits cleanly");
        assert_eq!(
            t.db.count("SELECT count(*) AS n FROM tenant_acme.devices WHERE hostname = 'late'")
                .await,
            1,
            "the mutation in flight committed"
        );
    }
}

#[tokio::test]
async fn open_websockets_are_closed_with_going_away_on_shutdown() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    let admin = t.user("acme", "admin@acme.example", Role::Admin).await;
    let token = t.session("acme", &admin).await;
    let address = free_port();
    let server = enclave::config::ServerConfig::on(address.to_string());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = t.app.clone();
    let running = tokio::spawn(async move {
        enclave::listen(app, &server, false, async {
            let _ = stopped.await;
        })
        .await
    });
    until_ready(address).await;

    let mut request = format!("ws://{address}/graphql/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
    let init = format!(r#"{{"type":"connection_init","payload":{{"authorization":"Bearer {token}"}}}}"#);
    socket.send(Message::text(init)).await.expect("init");
    let ack = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("an answer")
        .expect("a message")
        .expect("a frame");
    assert!(ack.to_string().contains("connection_ack"), "{ack}");
    let subscribe =
        r#"{"id":"1","type":"subscribe","payload":{"query":"subscription { alertChanges { title } }"}}"#;
    socket.send(Message::text(subscribe)).await.expect("subscribe");

    stop.send(()).expect("signal");
    let mut code = None;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
        match frame {
            Ok(Message::Close(frame)) => {
                code = frame.map(|f| u16::from(f.code));
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert_eq!(code, Some(1001), "closed with 1001 (going away)");
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the server exits once its WebSockets are closed")
        .expect("server task")
        .expect("a clean exit");
}
