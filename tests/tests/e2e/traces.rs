//! OpenTelemetry traces, end to end: the CLI, the hub and an agent export spans over OTLP/HTTP
//! to a receiver in this test, and one trace holds the CLI's command, the hub's handling of
//! the ManifestWork's creation, and the agent's reconcile of that work.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use garrison_e2e::{Hub, eventually, garrison_bin, join_and_accept};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// One received span: its service, trace, name, id and parent's id.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace: Vec<u8>,
    name: String,
    id: Vec<u8>,
    parent: Vec<u8>,
    /// The `generation` attribute, on the agent's passes.
    generation: Option<i64>,
}

/// An OTLP/HTTP receiver on a loopback port: it answers every POST with 200 and keeps the
/// spans of each protobuf `ExportTraceServiceRequest`.
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Received>>>,
}

fn read_request(reader: &mut BufReader<std::net::TcpStream>) -> Option<Vec<u8>> {
    let mut length = 0usize;
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if first {
            first = false;
            continue;
        }
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = spans.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut out = conn.try_clone().unwrap();
                    let mut reader = BufReader::new(conn);
                    while let Some(body) = read_request(&mut reader) {
                        if let Ok(req) = ExportTraceServiceRequest::decode(body.as_slice()) {
                            let mut kept = kept.lock().unwrap();
                            for rs in req.resource_spans {
                                let service = rs
                                    .resource
                                    .iter()
                                    .flat_map(|r| &r.attributes)
                                    .find(|a| a.key == "service.name")
                                    .and_then(|a| a.value.as_ref())
                                    .map(|v| format!("{:?}", v.value))
                                    .unwrap_or_default();
                                for ss in rs.scope_spans {
                                    for s in ss.spans {
                                        kept.push(Received {
                                            service: service.clone(),
                                            trace: s.trace_id,
                                            name: s.name,
                                            generation: s
                                                .attributes
                                                .iter()
                                                .find(|a| a.key == "generation")
                                                .and_then(|a| a.value.as_ref())
                                                .and_then(|v| match v.value {
                                                    Some(Value::IntValue(n)) => Some(n),
                                                    _ => None,
                                                }),
                                            id: s.span_id,
                                            parent: s.parent_span_id,
                                        });
                                    }
                                }
                            }
                        }
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if out.write_all(ok).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver { port, spans }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_holds_a_works_creation_on_the_hub_and_its_reconcile_on_the_agent() {
    let receiver = Receiver::start();
    let url = receiver.url();
    let hub = Hub::start_with(&["--otlp-endpoint", &url]).await.unwrap();
    let _agents = join_and_accept(&hub, &["c1"], &["--otlp-endpoint", &url]).await;

    let manifests = hub.data_dir().join("app.yaml");
    std::fs::write(
        &manifests,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: traced\n  namespace: default\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(garrison_bin())
        .args(["create", "work", "traced", "-f"])
        .arg(&manifests)
        .args(["--cluster", "c1", "--data-dir"])
        .arg(hub.data_dir())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &url)
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The CLI's span is the root; the hub's handling of the creation is its child, and the
    // agent's pass over the work is the child of that.
    let (root, created, reconciled) = eventually(30, "one trace from the CLI to the agent", || {
        let spans = receiver.spans();
        async move {
            let root = spans
                .iter()
                .find(|s| s.name == "garrison create work" && s.service.contains("garrison-cli"))?
                .clone();
            let created = spans
                .iter()
                .find(|s| {
                    s.name == "create manifestworks"
                        && s.service.contains("garrison-hub")
                        && s.trace == root.trace
                })?
                .clone();
            let reconciled = spans
                .iter()
                .find(|s| {
                    s.name == "reconcile work"
                        && s.service.contains("garrison-klusterlet")
                        && s.trace == root.trace
                })?
                .clone();
            Some((root, created, reconciled))
        }
    })
    .await;
    assert!(root.parent.is_empty(), "the command's span is the root");
    assert_eq!(
        created.parent, root.id,
        "the hub's span is the command's child"
    );
    assert_eq!(
        reconciled.parent, created.id,
        "the agent's pass is the hub span's child"
    );
    assert_eq!(root.trace.len(), 16);
    // A PUT that keeps the spec keeps the stamp: the write stays a no-op.
    let admin = hub.client().await.unwrap();
    let works: kube::Api<garrison_api::ManifestWork> = kube::Api::namespaced(admin, "c1");
    let before = works.get("traced").await.unwrap();
    let stamp = |w: &garrison_api::ManifestWork| {
        let a = w.metadata.annotations.clone().unwrap_or_default();
        (
            a.get("tracing.garrison.io/traceparent").cloned(),
            a.get("tracing.garrison.io/generation").cloned(),
        )
    };
    assert_eq!(stamp(&before).1.as_deref(), Some("1"));
    let same = works
        .replace("traced", &kube::api::PostParams::default(), &before)
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        before.metadata.resource_version
    );
    // A new spec by PUT is stamped with its generation, in the trace of that request.
    let mut changed = same.clone();
    changed.spec.workload.as_mut().unwrap().manifests[0].0["data"]["a"] = serde_json::json!("2");
    let replaced = works
        .replace("traced", &kube::api::PostParams::default(), &changed)
        .await
        .unwrap();
    let (tp, generation) = stamp(&replaced);
    assert_eq!(generation.as_deref(), Some("2"));
    assert_ne!(tp, stamp(&before).0);
    // A patch is not stamped: the agent's pass over generation 3 starts a trace of its own.
    works
        .patch(
            "traced",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"workload": {"manifests": [
                {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "traced", "namespace": "default"}, "data": {"a": "3"}}]}}})),
        )
        .await
        .unwrap();
    let third = eventually(30, "the agent's pass over generation 3", || {
        let spans = receiver.spans();
        async move {
            spans
                .into_iter()
                .find(|s| s.name == "reconcile work" && s.generation == Some(3))
        }
    })
    .await;
    assert!(
        third.parent.is_empty(),
        "a patched generation joined an old trace: {third:?}"
    );
    let second = receiver
        .spans()
        .into_iter()
        .find(|s| s.name == "reconcile work" && s.generation == Some(2) && !s.parent.is_empty());
    assert!(
        second.is_some(),
        "the pass over generation 2 did not continue its PUT's trace"
    );

    // The hub's controllers trace their reconciles too.
    let all = receiver.spans();
    assert!(
        all.iter()
            .any(|s| s.name == "reconcile managedcluster" && s.service.contains("garrison-hub")),
        "no controller reconcile among {:?}",
        all.iter()
            .map(|s| &s.name)
            .collect::<std::collections::BTreeSet<_>>()
    );
}
