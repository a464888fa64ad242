//! The history as others read it: the export file an auditor verifies offline (JSON lines: a
//! header with the hub's public key, then every record as stored, then every checkpoint), the
//! JSON of one compliance event in the shape of upstream's former compliance history API, and
//! its CSV report.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Checkpoint, Event, HistoryError, Record};

/// The header line's `kind`.
pub const KIND: &str = "GarrisonComplianceHistory";

/// The CSV report's columns, as upstream's report named them.
pub const CSV_COLUMNS: [&str; 20] = [
    "compliance_events_id",
    "compliance_events_compliance",
    "compliance_events_message",
    "compliance_events_metadata",
    "compliance_events_reported_by",
    "compliance_events_timestamp",
    "clusters_cluster_id",
    "clusters_name",
    "parent_policies_id",
    "parent_policies_name",
    "parent_policies_namespace",
    "parent_policies_categories",
    "parent_policies_controls",
    "parent_policies_standards",
    "policies_id",
    "policies_api_group",
    "policies_kind",
    "policies_name",
    "policies_namespace",
    "policies_severity",
];

/// Who reports compliance events: the policy add-on, through its cluster's replicated policy.
pub const REPORTED_BY: &str = "garrison-policy-addon";

/// A record as one export line.
pub fn record_line(r: &Record) -> String {
    let e = &r.event;
    json!({"record": {
        "seq": r.seq, "prev": r.prev, "hash": r.hash, "time": e.time, "cluster": e.cluster,
        "policy": e.policy, "replica": e.replica, "template": e.template, "state": e.state,
        "message": e.message, "severity": e.severity, "standards": e.standards,
        "categories": e.categories, "controls": e.controls,
    }})
    .to_string()
}

/// A checkpoint as one export line.
pub fn checkpoint_line(c: &Checkpoint) -> String {
    json!({"checkpoint": {
        "seq": c.seq, "head": c.head, "time": c.time, "signature": hex(&c.signature),
    }})
    .to_string()
}

/// The header line, naming the hub's public key (for information: an auditor verifies with a
/// key obtained separately).
pub fn header_line(public_key_pem: &str) -> String {
    json!({"kind": KIND, "version": 1, "publicKey": public_key_pem}).to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// An export, read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exported {
    /// The public key the file names (PEM), not to be trusted on its own.
    pub public_key_pem: String,
    /// Records, in the file's order.
    pub records: Vec<Record>,
    /// Checkpoints, in the file's order.
    pub checkpoints: Vec<Checkpoint>,
}

fn field<'a>(o: &'a Value, k: &str, line: usize) -> Result<&'a Value, HistoryError> {
    o.get(k)
        .ok_or_else(|| HistoryError::Format(format!("line {line}: missing field {k:?}")))
}

fn text(o: &Value, k: &str, line: usize) -> Result<String, HistoryError> {
    field(o, k, line)?
        .as_str()
        .map(String::from)
        .ok_or_else(|| HistoryError::Format(format!("line {line}: {k:?} is not a string")))
}

fn number(o: &Value, k: &str, line: usize) -> Result<u64, HistoryError> {
    field(o, k, line)?.as_u64().ok_or_else(|| {
        HistoryError::Format(format!("line {line}: {k:?} is not a non-negative integer"))
    })
}

fn strings(o: &Value, k: &str, line: usize) -> Result<Vec<String>, HistoryError> {
    field(o, k, line)?
        .as_array()
        .and_then(|a| a.iter().map(|v| v.as_str().map(String::from)).collect())
        .ok_or_else(|| HistoryError::Format(format!("line {line}: {k:?} is not a list of strings")))
}

/// Reads an export file. Every line must be what [`record_line`], [`checkpoint_line`] or
/// [`header_line`] writes; the first problem is named with its line.
pub fn read(text_in: &str) -> Result<Exported, HistoryError> {
    let mut out = Exported::default();
    let mut header = false;
    for (i, raw) in text_in.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| HistoryError::Format(format!("line {line}: not JSON: {e}")))?;
        if !header {
            if v["kind"] != KIND {
                return Err(HistoryError::Format(format!(
                    "line {line}: not a Garrison compliance history export (its first line must have kind {KIND})"
                )));
            }
            if v["version"] != 1 {
                return Err(HistoryError::Format(format!(
                    "line {line}: export version {} is not supported (expected 1)",
                    v["version"]
                )));
            }
            out.public_key_pem = text(&v, "publicKey", line)?;
            header = true;
            continue;
        }
        if let Some(r) = v.get("record") {
            out.records.push(Record {
                seq: number(r, "seq", line)?,
                prev: text(r, "prev", line)?,
                hash: text(r, "hash", line)?,
                event: Event {
                    time: text(r, "time", line)?,
                    cluster: text(r, "cluster", line)?,
                    policy: text(r, "policy", line)?,
                    replica: text(r, "replica", line)?,
                    template: text(r, "template", line)?,
                    state: text(r, "state", line)?,
                    message: text(r, "message", line)?,
                    severity: text(r, "severity", line)?,
                    standards: strings(r, "standards", line)?,
                    categories: strings(r, "categories", line)?,
                    controls: strings(r, "controls", line)?,
                },
            });
        } else if let Some(c) = v.get("checkpoint") {
            let signature = unhex(&text(c, "signature", line)?).ok_or_else(|| {
                HistoryError::Format(format!("line {line}: \"signature\" is not hex"))
            })?;
            out.checkpoints.push(Checkpoint {
                seq: number(c, "seq", line)?,
                head: text(c, "head", line)?,
                time: text(c, "time", line)?,
                signature,
            });
        } else {
            return Err(HistoryError::Format(format!(
                "line {line}: neither a record nor a checkpoint"
            )));
        }
    }
    if !header {
        return Err(HistoryError::Format(
            "the file is empty: no export header".into(),
        ));
    }
    Ok(out)
}

/// The file that remembers the newest checkpoint the hub signed, outside the history's store:
/// an export holding that checkpoint alone.
pub fn anchor_file(c: &Checkpoint, public_key_pem: &str) -> String {
    format!("{}\n{}\n", header_line(public_key_pem), checkpoint_line(c))
}

/// The newest checkpoint of an export (or of an anchor file); `None` when it holds none.
pub fn newest_checkpoint(text_in: &str) -> Result<Option<Checkpoint>, HistoryError> {
    Ok(read(text_in)?.checkpoints.into_iter().max_by_key(|c| c.seq))
}

/// The API group of a template kind, as far as Garrison knows it.
fn api_group(kind: &str) -> Option<&'static str> {
    match kind {
        "ConfigurationPolicy" | "CertificatePolicy" | "OperatorPolicy" => {
            Some("policy.open-cluster-management.io")
        }
        "ConstraintTemplate" => Some("templates.gatekeeper.sh"),
        "ClusterImagePolicy" | "TrustRoot" => Some("policy.sigstore.dev"),
        "" => None,
        _ => Some("constraints.gatekeeper.sh"),
    }
}

/// One compliance event as upstream's compliance history API answered it, with Garrison's
/// chain fields in `event.metadata` when `chain` (a record's `prev` is the hash of another
/// record, often another cluster's, so callers who see only some clusters do not get them).
pub fn api_event(r: &Record, chain: bool) -> Value {
    let e = &r.event;
    let (ns, name) = e.policy.split_once('/').unwrap_or(("", &e.policy));
    let (kind, template) = e.template.split_once('/').unwrap_or(("", &e.template));
    let or_null = |s: &str| {
        if s.is_empty() {
            Value::Null
        } else {
            Value::from(s)
        }
    };
    json!({
        "id": r.seq,
        "cluster": {"name": e.cluster, "cluster_id": Value::Null},
        "event": {
            "compliance": e.state,
            "message": e.message,
            "timestamp": e.time,
            "metadata": metadata(r, chain),
            "reported_by": REPORTED_BY,
        },
        "policy": {
            "apiGroup": api_group(kind), "kind": kind, "name": template,
            "namespace": Value::Null, "severity": or_null(&e.severity),
        },
        "parent_policy": {
            "name": name, "namespace": ns, "categories": e.categories,
            "controls": e.controls, "standards": e.standards,
        },
    })
}

fn metadata(r: &Record, chain: bool) -> Value {
    if chain {
        json!({"replicatedPolicy": r.event.replica, "hash": r.hash, "prev": r.prev})
    } else {
        json!({"replicatedPolicy": r.event.replica})
    }
}

/// One CSV cell: quoted when it must be, and a leading `=`, `+`, `-`, `@`, tab or carriage
/// return defused with a `'`, so that a message cannot become a spreadsheet formula.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The CSV header line.
pub fn csv_header() -> String {
    CSV_COLUMNS.join(",") + "\n"
}

/// One record as a CSV line (with its chain fields when `chain`, as [`api_event`]).
pub fn csv_line(r: &Record, chain: bool) -> String {
    let e = &r.event;
    let (ns, name) = e.policy.split_once('/').unwrap_or(("", &e.policy));
    let (kind, template) = e.template.split_once('/').unwrap_or(("", &e.template));
    let metadata = metadata(r, chain);
    let cells = [
        r.seq.to_string(),
        e.state.clone(),
        e.message.clone(),
        metadata.to_string(),
        REPORTED_BY.to_string(),
        e.time.clone(),
        String::new(),
        e.cluster.clone(),
        String::new(),
        name.to_string(),
        ns.to_string(),
        e.categories.join(", "),
        e.controls.join(", "),
        e.standards.join(", "),
        String::new(),
        api_group(kind).unwrap_or_default().to_string(),
        kind.to_string(),
        template.to_string(),
        String::new(),
        e.severity.clone(),
    ];
    let mut line = cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record::next(
            None,
            Event {
                time: "2026-03-03T10:00:00Z".into(),
                cluster: "c1".into(),
                policy: "policies/ac-2".into(),
                replica: "policies.ac-2".into(),
                template: "ConfigurationPolicy/accounts".into(),
                state: "NonCompliant".into(),
                message: "=HYPERLINK(\"x\"), \"quoted\"\nnext".into(),
                severity: "high".into(),
                standards: vec!["NIST SP 800-53".into()],
                categories: vec!["AC Access Control".into()],
                controls: vec!["AC-2".into(), "AC-3".into()],
            },
        )
    }

    #[test]
    fn an_export_reads_back_as_written() {
        let r = record();
        let c = Checkpoint {
            seq: 1,
            head: r.hash.clone(),
            time: "t".into(),
            signature: vec![0, 1, 254],
        };
        let file = [header_line("PEM"), record_line(&r), checkpoint_line(&c)].join("\n");
        let read = read(&file).unwrap();
        assert_eq!(read.records, vec![r]);
        assert_eq!(read.checkpoints, vec![c]);
        assert_eq!(read.public_key_pem, "PEM");
    }

    #[test]
    fn malformed_exports_are_refused_with_the_line() {
        assert!(read("").unwrap_err().to_string().contains("empty"));
        assert!(
            read("{\"kind\":\"Other\"}")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
        let h = header_line("PEM");
        let e = read(&format!("{h}\n{{\"record\":{{\"seq\":-1}}}}")).unwrap_err();
        assert!(e.to_string().starts_with("line 2: \"seq\""), "{e}");
        let e = read(&format!("{h}\n{{\"checkpoint\":{{\"seq\":1,\"head\":\"h\",\"time\":\"t\",\"signature\":\"zz\"}}}}")).unwrap_err();
        assert!(e.to_string().contains("not hex"), "{e}");
        let e = read(&format!("{h}\n[1]")).unwrap_err();
        assert!(e.to_string().contains("neither"), "{e}");
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let line = csv_line(&record(), true);
        assert!(line.contains("\"'=HYPERLINK(\"\"x\"\"), \"\"quoted\"\"\nnext\""));
        assert!(line.contains(",\"AC-2, AC-3\","));
        assert_eq!(csv_header().split(',').count(), 20);
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("plain"), "plain");
    }

    #[test]
    fn api_events_have_upstreams_shape() {
        let v = api_event(&record(), true);
        assert!(
            api_event(&record(), false)["event"]["metadata"]
                .get("prev")
                .is_none()
        );
        assert_eq!(v["id"], 1);
        assert_eq!(v["cluster"]["name"], "c1");
        assert_eq!(v["event"]["compliance"], "NonCompliant");
        assert_eq!(v["policy"]["kind"], "ConfigurationPolicy");
        assert_eq!(v["policy"]["apiGroup"], "policy.open-cluster-management.io");
        assert_eq!(v["parent_policy"]["namespace"], "policies");
        assert_eq!(v["parent_policy"]["controls"], json!(["AC-2", "AC-3"]));
    }
}
