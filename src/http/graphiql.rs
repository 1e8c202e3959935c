//! `/graphiql`: the GraphiQL IDE for admins, served entirely by Enclave (no CDN). The
//! bundles come from pinned npm packages (`web/graphiql/package.json`) embedded at build
//! time. The page takes the token from the URL fragment (`/graphiql#token=…`), which
//! browsers never send to a server, and uses it for queries and subscriptions.
//!
//! `/` and `/graphiql/` redirect here, and a browser's `GET /graphql` (one that accepts
//! `text/html`, not JSON) gets this page too.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

/// GraphiQL's browser bundles.
pub struct Assets {
    pub react_js: &'static [u8],
    pub react_dom_js: &'static [u8],
    pub graphiql_js: &'static [u8],
    pub graphiql_css: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/graphiql_assets.rs"));

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="robots" content="noindex">
  <title>Enclave GraphiQL</title>
  <link rel="stylesheet" href="/graphiql/graphiql.css">
  <style>body { margin: 0; } #graphiql { height: 100vh; }</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="/graphiql/react.js"></script>
  <script src="/graphiql/react-dom.js"></script>
  <script src="/graphiql/graphiql.js"></script>
  <script>
    // The token travels in the fragment (#token=…): it never reaches a server log.
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    const bearer = token ? { authorization: "Bearer " + token } : undefined;
    const fetcher = GraphiQL.createFetcher({
      url: "/graphql",
      subscriptionUrl: (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/graphql/ws",
      wsConnectionParams: bearer,
    });
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {
        fetcher,
        defaultHeaders: bearer ? JSON.stringify({ Authorization: bearer.authorization }, null, 2) : undefined,
        shouldPersistHeaders: false,
        defaultQuery: "# Your tenant's devices that are down, with their interfaces and open alerts.\n" +
          "{\n  me { role tenant { slug name } }\n" +
          "  devices(first: 10, filter: { status: [DOWN] }) {\n    totalCount\n" +
          "    edges { node { hostname ip status interfaces { nodes { name operStatus } } openAlerts { nodes { severity title } } } }\n  }\n}\n",
      })
    );
  </script>
</body>
</html>
"##;

/// Routes of the IDE, under `/graphiql`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/graphiql") }))
        .route("/graphiql/", get(|| async { Redirect::temporary("/graphiql") }))
        .route("/graphiql", get(page))
        .route(
            "/graphiql/react.js",
            get(|| asset(|a| a.react_js, "text/javascript")),
        )
        .route(
            "/graphiql/react-dom.js",
            get(|| asset(|a| a.react_dom_js, "text/javascript")),
        )
        .route(
            "/graphiql/graphiql.js",
            get(|| asset(|a| a.graphiql_js, "text/javascript")),
        )
        .route(
            "/graphiql/graphiql.css",
            get(|| asset(|a| a.graphiql_css, "text/css")),
        )
}

const NOT_BUILT: &str =
    "GraphiQL was not built into this server: run `npm ci --prefix web/graphiql` and rebuild.";

/// The IDE's page (503 when this build has no GraphiQL bundles).
pub async fn page() -> Response {
    match ASSETS {
        Some(_) => Html(PAGE).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, NOT_BUILT).into_response(),
    }
}

async fn asset(pick: fn(&Assets) -> &'static [u8], content_type: &'static str) -> Response {
    match &ASSETS {
        Some(assets) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            pick(assets),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, NOT_BUILT).into_response(),
    }
}
