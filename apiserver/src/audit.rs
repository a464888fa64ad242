//! The audit log: one JSON line per request, for security admins and auditors.
//!
//! Lines carry who (user, groups, source address), what (verb, resource, namespace, name) and
//! the outcome (code, latency). Request and response bodies are never logged, so secrets and
//! keys never reach the log.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One audit record.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// RFC 3339 time the request arrived.
    pub time: String,
    /// The user, or `system:anonymous`.
    pub user: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// The client address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source_ip: String,
    /// The Kubernetes verb, or the HTTP method for non-resource requests.
    pub verb: String,
    /// API group of the resource.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// Resource plural, with `/subresource` when there is one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Object name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Request path for non-resource requests.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// HTTP response code.
    pub code: u16,
    /// Milliseconds until the response started (for watches: until the stream opened).
    pub latency_ms: u64,
    /// The client's user agent.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
}

/// An append-only JSON-lines audit file.
pub struct AuditLog {
    out: Mutex<BufWriter<File>>,
}

impl AuditLog {
    /// Opens (appending) the audit log at `path`, readable only by its owner.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(path)?;
        Ok(AuditLog {
            out: Mutex::new(BufWriter::new(file)),
        })
    }

    /// Writes one record. Failures are reported through tracing, never to the client.
    pub fn record(&self, entry: &AuditEntry) {
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        let mut out = self.out.lock().expect("audit lock");
        if let Err(e) = out.write_all(&line).and_then(|_| out.flush()) {
            tracing::error!(error = %e, "audit log write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_is_one_json_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let log = AuditLog::open(&p).unwrap();
        log.record(&AuditEntry {
            user: "alice".into(),
            verb: "get".into(),
            resource: "configmaps".into(),
            code: 200,
            ..Default::default()
        });
        log.record(&AuditEntry {
            user: "bob".into(),
            verb: "list".into(),
            code: 403,
            ..Default::default()
        });
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["user"], "bob");
        assert_eq!(lines[1]["code"], 403);
    }
}
