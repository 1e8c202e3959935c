//! `/graphql/ws` end to end over a real WebSocket: only subscriptions run, each is
//! authorized with its real root fields, and errors carry codes.

mod common;

use std::time::Duration;

use common::app::TestApp;
use diesel_async::SimpleAsyncConnection;
use enclave::auth::Role;
use enclave::auth::token;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn serve(t: &TestApp) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let router = t.router.clone();
    // Enclave's own server loop, as `serve` runs it: upgrades must go through it.
    tokio::spawn(enclave::http::serve::serve(
        listener,
        router,
        std::time::Duration::from_secs(10),
        std::future::pending(),
    ));
    address
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(address: std::net::SocketAddr, token: &str) -> Result<Socket, String> {
    let mut request = format!("ws://{address}/graphql/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
    let init =
        json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    socket.send(Message::text(init.to_string())).await.expect("init");
    match next(&mut socket).await {
        Some(ack) if ack["type"] == "connection_ack" => Ok(socket),
        other => Err(format!("{other:?}")),
    }
}

async fn next(socket: &mut Socket) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .ok()??
        {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(Message::Close(frame)) => {
                return Some(json!({ "type": "closed", "reason": frame.map(|f| f.reason.to_string()) }));
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

async fn subscribe(socket: &mut Socket, query: &str) -> Value {
    let message = json!({ "id": "1", "type": "subscribe", "payload": { "query": query } });
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("subscribe");
    json!(null)
}

#[tokio::test]
async fn only_authorized_subscriptions_run_over_the_websocket() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;
    let listener = t.app.changes.spawn_listener(t.db.url.clone());
    let admin = t.user("acme", "admin@acme.example", Role::Admin).await;
    let session = t.session("acme", &admin).await;
    let address = serve(&t).await;

    assert!(
        open(address, "forged").await.is_err(),
        "a forged token must not be acknowledged"
    );

    let mut socket = open(address, &session).await.expect("ack");
    subscribe(&mut socket, "{ me { role } }").await;
    let refused = next(&mut socket).await.expect("answer");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{refused}"
    );
    assert!(refused["payload"]["data"].is_null());

    let only_me =
        token::attenuate(&session, "check all root_field($f), [\"me\"].contains($f);").expect("attenuate");
    // Refused at connection_init, or at subscribe: either way the subscription never runs.
    match open(address, &only_me).await {
        Err(reason) => assert!(reason.contains("does not allow"), "{reason}"),
        Ok(mut limited) => {
            subscribe(&mut limited, "subscription { alertChanges { title } }").await;
            let denied = next(&mut limited).await.expect("answer");
            assert_eq!(
                denied["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
                "{denied}"
            );
        }
    }
    // A token restricted to the subscription field works.
    let only_alerts = token::attenuate(
        &session,
        "check all root_field($f), [\"alertChanges\"].contains($f);",
    )
    .expect("attenuate");
    let mut narrow = open(address, &only_alerts).await.expect("ack");
    subscribe(&mut narrow, "subscription { eventChanges { kind } }").await;
    let denied = next(&mut narrow).await.expect("answer");
    assert_eq!(
        denied["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{denied}"
    );

    let mut socket = open(address, &session).await.expect("ack");
    subscribe(&mut socket, "subscription { alertChanges { title } }").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.db.conn()
        .await
        .batch_execute(
            "INSERT INTO tenant_globex.alerts (severity, title) VALUES ('critical', 'globex secret'); \
             INSERT INTO tenant_acme.alerts (severity, title) VALUES ('major', 'acme over ws');",
        )
        .await
        .expect("alerts");
    let change = next(&mut socket).await.expect("a change");
    assert_eq!(
        change["payload"]["data"]["alertChanges"]["title"], "acme over ws",
        "{change}"
    );
    listener.abort();
}
