//! OpenTelemetry traces, end to end: the CLI, the hub and an agent export spans over OTLP/HTTP
//! to a receiver in this test, and one trace holds the CLI's command, the hub's handling of
//! the ManifestWork's creation, and the agent's reconcile of that work.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use garrison_e2e::{Hub, eventually, garrison_bin, join_and_accept};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// One received span: its service, trace, name and whether it has a parent.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace: Vec<u8>,
    name: String,
    has_parent: bool,
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
                                            has_parent: !s.parent_span_id.is_empty(),
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
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The CLI's span is the root; the hub's request and the agent's reconcile join its trace.
    let (trace, spans) = eventually(30, "one trace from the CLI to the agent", || {
        let spans = receiver.spans();
        async move {
            let root = spans
                .iter()
                .find(|s| s.name == "garrison create work" && s.service.contains("garrison-cli"))?;
            let same: Vec<Received> = spans
                .iter()
                .filter(|s| s.trace == root.trace)
                .cloned()
                .collect();
            let created = same.iter().any(|s| {
                s.name == "create manifestworks"
                    && s.service.contains("garrison-hub")
                    && s.has_parent
            });
            let reconciled = same.iter().any(|s| {
                s.name == "reconcile work"
                    && s.service.contains("garrison-klusterlet")
                    && s.has_parent
            });
            (created && reconciled).then(|| (root.trace.clone(), same))
        }
    })
    .await;
    assert!(
        !spans
            .iter()
            .find(|s| s.name == "garrison create work")
            .unwrap()
            .has_parent
    );
    assert_eq!(trace.len(), 16);
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
