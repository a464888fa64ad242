//! OpenTelemetry traces over OTLP/HTTP, when an endpoint is given (`--otlp-endpoint`, or the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
//!
//! Spans come from `tracing`: a [`layer`] turns them into OpenTelemetry spans and a batch
//! exporter sends them. Context crosses processes in W3C `traceparent` headers ([`inject`],
//! [`set_parent_from_headers`]), and crosses the hub-to-agent hop in the object itself: a
//! ManifestWork written while tracing carries its writer's context in the annotation
//! [`ANNOTATION`], which the agent's reconcile continues.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::global;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The annotation that carries a writer's trace context on a ManifestWork.
pub const ANNOTATION: &str = "tracing.garrison.io/traceparent";
/// The generation that writer wrote: the agent continues the trace only for that generation.
pub const GENERATION_ANNOTATION: &str = "tracing.garrison.io/generation";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The traces endpoint: the flag's base URL with `/v1/traces`, else the standard variables
/// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is, `OTEL_EXPORTER_OTLP_ENDPOINT` with
/// `/v1/traces`); None when none is set.
pub fn endpoint(flag: Option<&str>) -> Option<String> {
    let base = |b: &str| format!("{}/v1/traces", b.trim_end_matches('/'));
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    match flag.filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(base(f)),
        None => env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT").map(|b| base(&b))),
    }
}

/// Flushes and stops the exporter when dropped (at the end of the command).
pub struct Guard {
    provider: SdkTracerProvider,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("warning: cannot flush traces: {e}");
        }
    }
}

/// A tracing layer for any subscriber built on a registry.
pub type Layer<S> = tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>;

/// Starts exporting spans of `service` to `endpoint` (a full traces URL, see [`endpoint`]):
/// the layer to add to the subscriber, and the guard that flushes at the end.
pub fn start<S>(service: &str, endpoint: &str) -> Result<(Layer<S>, Guard), String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
        return Err(format!(
            "the OTLP endpoint {endpoint:?} is not an http:// or https:// URL"
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot export traces to {endpoint}: {e}"))?;
    // Spans leave within a second, so a short command's trace is complete when it ends.
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_secs(1))
                .build(),
        )
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_span_processor(batch)
        .build();
    global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("garrison");
    ENABLED.store(true, Ordering::Relaxed);
    Ok((
        tracing_opentelemetry::layer().with_tracer(tracer),
        Guard { provider },
    ))
}

/// The current span's context as a `traceparent` value, when tracing.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = tracing::Span::current().context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Adds the current span's context to outgoing request headers, when tracing.
pub fn inject(headers: &mut http::HeaderMap) {
    if let Some(tp) = current_traceparent()
        && let Ok(v) = http::HeaderValue::from_str(&tp)
    {
        headers.insert("traceparent", v);
    }
}

/// Makes `span` a child of the context in `traceparent`, when it is well-formed.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if !enabled() {
        return;
    }
    let carrier: HashMap<String, String> =
        HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}

/// Makes `span` a child of the context in the request's `traceparent` header, if any.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        set_parent(span, tp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_comes_from_the_flag_then_the_standard_variables() {
        assert_eq!(
            endpoint(Some("http://127.0.0.1:4318/")).as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(endpoint(Some(" ")), endpoint(None));
    }

    #[test]
    fn a_bad_endpoint_is_named() {
        let Err(e) = start::<tracing_subscriber::Registry>("t", "collector:4318") else {
            panic!("a URL without a scheme was taken");
        };
        assert!(e.contains("collector:4318"), "{e}");
    }
}
