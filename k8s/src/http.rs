//! HTTP responses served the same way by the API server and the agent's endpoints.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

/// A JSON response.
pub fn json_response(code: u16, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The process's metrics in the Prometheus text format (the agent serves them too).
pub fn metrics_response() -> Response {
    let mut r = Response::new(Body::from(garrison_telemetry::render()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(garrison_telemetry::CONTENT_TYPE),
    );
    r
}
