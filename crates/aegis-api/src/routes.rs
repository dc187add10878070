//! The API port's routes, as one table: the router is built from it and the tests compare it
//! with the OpenAPI document and `docs/api.md`, so a route cannot be served undocumented.

use std::sync::Arc;
use std::time::Duration;

use aegis_storage::StorageError;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware;
use axum::routing::{MethodRouter, get, post};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::limits::{ApiLimits, Guard, guard};
use crate::{
    ApiError, NodeStatus, blocks, chain, events, explorer, health, openapi, peers, server,
    transactions,
};

/// What the API port's handlers share.
#[derive(Debug)]
pub struct ClientApi {
    pub status: Arc<NodeStatus>,
    pub limits: ApiLimits,
    /// Cancelled when the server stops: event streams end with it.
    pub shutdown: CancellationToken,
    /// One permit per open `GET /v1/events` stream.
    pub event_streams: Arc<Semaphore>,
}

/// One route of the API port.
#[derive(Debug)]
pub struct ApiRoute {
    pub method: Method,
    /// In axum's syntax, which is also OpenAPI's: `/v1/blocks/{height}`.
    pub path: &'static str,
    handler: MethodRouter<Arc<ClientApi>>,
}

/// Every route of the API port.
pub fn api_routes() -> Vec<ApiRoute> {
    let route = |method, path, handler| ApiRoute {
        method,
        path,
        handler,
    };
    vec![
        route(Method::GET, "/health", get(health::health)),
        route(Method::POST, "/v1/transactions", post(transactions::submit)),
        route(
            Method::GET,
            "/v1/transactions/{id}",
            get(transactions::get_transaction),
        ),
        route(Method::GET, "/v1/blocks/latest", get(blocks::latest_block)),
        route(Method::GET, "/v1/blocks/{height}", get(blocks::get_block)),
        route(Method::GET, "/v1/events", get(events::events)),
        route(Method::GET, "/v1/openapi.json", get(openapi::openapi_json)),
        route(Method::GET, "/v1/node", get(chain::node_info)),
        route(Method::GET, "/v1/peers", get(peers::peers)),
        route(Method::GET, "/", get(explorer::index)),
        route(Method::GET, "/explorer/{asset}", get(explorer::asset)),
    ]
}

/// The API port's router: every route of [`api_routes`], the JSON 404 and 405 answers, and
/// the per-request limits ([`crate::limits`]) in front of all of them.
pub fn router(status: Arc<NodeStatus>, limits: ApiLimits, shutdown: CancellationToken) -> Router {
    let api = Arc::new(ClientApi {
        status,
        limits,
        shutdown,
        event_streams: Arc::new(Semaphore::new(limits.max_event_streams)),
    });
    let routes = api_routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        .with_state(api);
    server::with_fallbacks(routes)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(Guard::new(limits), guard))
}

/// How long a client is asked to wait when the ledger does not answer.
pub const STORAGE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A failed ledger read, as the client sees it (503); the cause goes to the log.
pub fn storage_error(error: StorageError) -> ApiError {
    aegis_telemetry::warn!(%error, "ledger read for an HTTP request failed");
    ApiError::Unavailable {
        message: "the ledger is unavailable; retry later".into(),
        retry_after: Some(STORAGE_RETRY_AFTER),
    }
}
