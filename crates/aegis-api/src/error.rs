//! The one error type of the HTTP endpoints, and the one place it becomes a response.
//!
//! Every error answer has the body `{"error": "<code>", "message": "<text>"}`: `code` is
//! stable (clients and the OpenAPI description match on it), `message` is for people and
//! may change. [`ApiError::Conflict`] adds `"id"`; [`ApiError::TooManyRequests`] and
//! [`ApiError::Unavailable`] may add a `Retry-After` header (whole seconds);
//! [`ApiError::RequestTimeout`] closes the connection (`Connection: close`).

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// What [`ApiError::Internal`] tells the client: the details go to the node's log only.
pub const INTERNAL_MESSAGE: &str = "internal error; the node's log has the details";

/// An HTTP error answer. Handlers return `Result<_, ApiError>`; the status, headers and
/// body for each variant are decided in its `IntoResponse` implementation and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (syntax, encoding, a missing field).
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such resource (or no such route).
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not for this method; `Allow` lists the methods.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with what exists, named by `id` (such as a transaction
    /// id already in the ledger).
    #[error("{message}")]
    Conflict { id: String, message: String },
    /// 408: the request was not received and answered within `limit` (a slow client).
    #[error("request not completed within {} ms", limit.as_millis())]
    RequestTimeout { limit: Duration },
    /// 413: the request body is over `limit_bytes`.
    #[error("request body over the limit of {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    /// 413: one part of the request is over its own bound (a transaction's size, the
    /// number of transactions in an array).
    #[error("{0}")]
    TooLarge(String),
    /// 422: well-formed but invalid (a bad signature, a wrong chain id).
    #[error("{0}")]
    Unprocessable(String),
    /// 431: the request's headers (with the request target) are over `limit_bytes`.
    #[error("request headers over the limit of {limit_bytes} bytes")]
    HeadersTooLarge { limit_bytes: usize },
    /// 429: too many requests from this client; try again after `retry_after`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: Duration,
    },
    /// 503: the node cannot serve this now (syncing, storage fault, shutting down).
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 500: a fault of the node. The text is logged, never sent ([`INTERNAL_MESSAGE`]).
    #[error("{0}")]
    Internal(String),
}

/// The JSON body of every error answer (`ErrorResponse` in the OpenAPI document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = ErrorResponse)]
pub struct ErrorBody {
    /// Stable code: `bad_request`, `not_found`, `method_not_allowed`, `request_timeout`,
    /// `conflict`, `payload_too_large`, `too_large`, `unprocessable`, `headers_too_large`,
    /// `too_many_requests`, `unavailable` or `internal`.
    #[schema(example = "conflict")]
    pub error: &'static str,
    /// For people; may change between versions.
    pub message: String,
    /// The conflicting transaction's id (409 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub id: Option<String>,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } | ApiError::TooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the body's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::RequestTimeout { .. } => "request_timeout",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::TooLarge(_) => "too_large",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::HeadersTooLarge { .. } => "headers_too_large",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// How long the client should wait before retrying, if this error says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            ApiError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// `Retry-After` in whole seconds, rounded up and at least 1 (0 would invite a retry storm).
pub fn retry_after_seconds(after: Duration) -> u64 {
    let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    seconds.max(1)
}

impl ApiError {
    /// The JSON body of this error, as sent. Logs it where it is handled: refusals are the
    /// client's business (or load) and a flood of them must not flood the log, so only node
    /// faults go above debug. An internal error's details stay in the log.
    pub fn body(&self) -> ErrorBody {
        let message = if let ApiError::Internal(detail) = self {
            aegis_telemetry::error!(error = %detail, "HTTP request failed");
            INTERNAL_MESSAGE.to_owned()
        } else {
            let text = self.to_string();
            aegis_telemetry::debug!(code = self.code(), message = %text, "HTTP request refused");
            text
        };
        let id = match self {
            ApiError::Conflict { id, .. } => Some(id.clone()),
            _ => None,
        };
        ErrorBody {
            error: self.code(),
            message,
            id,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Some(after) = self.retry_after() {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_seconds(after)),
            );
        }
        if matches!(self, ApiError::RequestTimeout { .. }) {
            // The request may be half read: the connection cannot carry another one.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Status, `Retry-After` and JSON body of `error`'s response.
    async fn answer(error: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/json",
            "{status}"
        );
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|value| value.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        (status, retry_after, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn each_variant_has_its_status_code_and_message() {
        let cases = [
            (
                ApiError::BadRequest("body is not JSON".into()),
                400,
                "bad_request",
                "body is not JSON",
            ),
            (
                ApiError::NotFound("no block at height 9".into()),
                404,
                "not_found",
                "no block at height 9",
            ),
            (
                ApiError::MethodNotAllowed("POST is not allowed on /health".into()),
                405,
                "method_not_allowed",
                "POST is not allowed on /health",
            ),
            (
                ApiError::PayloadTooLarge { limit_bytes: 1024 },
                413,
                "payload_too_large",
                "request body over the limit of 1024 bytes",
            ),
            (
                ApiError::Unprocessable("signature does not verify".into()),
                422,
                "unprocessable",
                "signature does not verify",
            ),
            (
                ApiError::TooLarge("101 transactions, at most 100 per request".into()),
                413,
                "too_large",
                "101 transactions, at most 100 per request",
            ),
            (
                ApiError::HeadersTooLarge { limit_bytes: 16384 },
                431,
                "headers_too_large",
                "request headers over the limit of 16384 bytes",
            ),
        ];
        for (error, status, code, message) in cases {
            let (got_status, retry_after, body) = answer(error).await;
            assert_eq!(got_status.as_u16(), status, "{body}");
            assert_eq!(retry_after, None, "{body}");
            assert_eq!(
                body,
                serde_json::json!({ "error": code, "message": message }),
                "exactly these two fields"
            );
        }
    }

    #[tokio::test]
    async fn conflict_names_the_conflicting_id() {
        let (status, retry_after, body) = answer(ApiError::Conflict {
            id: "ab12".into(),
            message: "transaction ab12 is already in the ledger".into(),
        })
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(retry_after, None);
        assert_eq!(
            body,
            serde_json::json!({
                "error": "conflict",
                "message": "transaction ab12 is already in the ledger",
                "id": "ab12",
            })
        );
    }

    #[tokio::test]
    async fn too_many_requests_says_when_to_retry_in_whole_seconds_rounded_up() {
        for (after, header) in [
            (Duration::from_secs(3), "3"),
            (Duration::from_millis(2500), "3"),
            (Duration::from_millis(10), "1"),
            (Duration::ZERO, "1"),
        ] {
            let (status, retry_after, body) = answer(ApiError::TooManyRequests {
                message: "rate limit of 100 requests per minute".into(),
                retry_after: after,
            })
            .await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(retry_after.as_deref(), Some(header), "{after:?}");
            assert_eq!(body["error"], "too_many_requests");
            assert_eq!(body["message"], "rate limit of 100 requests per minute");
        }
    }

    #[tokio::test]
    async fn unavailable_has_retry_after_only_when_given() {
        let (status, retry_after, body) = answer(ApiError::Unavailable {
            message: "mempool full".into(),
            retry_after: Some(Duration::from_secs(5)),
        })
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after.as_deref(), Some("5"));
        assert_eq!(
            body,
            serde_json::json!({ "error": "unavailable", "message": "mempool full" })
        );

        let (status, retry_after, body) = answer(ApiError::Unavailable {
            message: "shutting down".into(),
            retry_after: None,
        })
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after, None);
        assert_eq!(body["message"], "shutting down");
    }

    #[tokio::test]
    async fn internal_errors_do_not_leak_their_details() {
        let (status, retry_after, body) = answer(ApiError::Internal(
            "disk I/O error at /opt/aegis/data/blockchain.db".into(),
        ))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after, None);
        assert_eq!(
            body,
            serde_json::json!({ "error": "internal", "message": INTERNAL_MESSAGE })
        );
    }

    #[tokio::test]
    async fn a_timeout_closes_the_connection() {
        let response = ApiError::RequestTimeout {
            limit: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "request_timeout",
                "message": "request not completed within 1500 ms",
            })
        );
    }

    #[test]
    fn codes_are_distinct() {
        let all = [
            ApiError::BadRequest(String::new()),
            ApiError::NotFound(String::new()),
            ApiError::MethodNotAllowed(String::new()),
            ApiError::Conflict {
                id: String::new(),
                message: String::new(),
            },
            ApiError::RequestTimeout {
                limit: Duration::ZERO,
            },
            ApiError::PayloadTooLarge { limit_bytes: 0 },
            ApiError::TooLarge(String::new()),
            ApiError::Unprocessable(String::new()),
            ApiError::HeadersTooLarge { limit_bytes: 0 },
            ApiError::TooManyRequests {
                message: String::new(),
                retry_after: Duration::ZERO,
            },
            ApiError::Unavailable {
                message: String::new(),
                retry_after: None,
            },
            ApiError::Internal(String::new()),
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(ApiError::code).collect();
        let statuses: std::collections::HashSet<_> = all.iter().map(ApiError::status).collect();
        assert_eq!(codes.len(), all.len());
        // Two kinds of 413: the whole body, or one bound inside it.
        assert_eq!(statuses.len(), all.len() - 1);
    }
}
