//! The compliance history end to end: three simulated clusters evaluate a policy annotated with
//! a NIST SP 800-53 control and flip between compliant and non-compliant; the hub records each
//! change once; `garrison compliance report --at` gives the state in force between flips with
//! the records behind it; `garrison audit verify` proves the history untouched and names what an
//! edit of the store changed; an export verifies offline with the public key alone; a user who
//! may get only one cluster sees only its events. The auditors' web view is opened in headless
//! Chromium (Debian's chromium, driven by its chromedriver): an auditor signs in with a token
//! from `garrison auditor token` and sees the numbers the CLI report gives; an auditor limited
//! to one cluster sees only it; markup in a policy's annotations is shown, never run.

use std::path::Path;

use garrison_api::policy::v1::Policy;
use garrison_e2e::{Hub, eventually, garrison, join_and_accept, ok};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

const POLICY: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: policies
---
apiVersion: cluster.open-cluster-management.io/v1beta2
kind: ManagedClusterSetBinding
metadata:
  name: default
  namespace: policies
spec:
  clusterSet: default
---
apiVersion: cluster.open-cluster-management.io/v1beta1
kind: Placement
metadata:
  name: all-clusters
  namespace: policies
spec:
  clusterSets:
    - default
---
apiVersion: policy.open-cluster-management.io/v1
kind: Policy
metadata:
  name: account-management
  namespace: policies
  annotations:
    policy.open-cluster-management.io/standards: NIST SP 800-53
    policy.open-cluster-management.io/categories: AC Access Control
    policy.open-cluster-management.io/controls: AC-2
spec:
  remediationAction: inform
  disabled: false
  policy-templates:
    - objectDefinition:
        apiVersion: policy.open-cluster-management.io/v1
        kind: ConfigurationPolicy
        metadata:
          name: accounts-namespace
        spec:
          remediationAction: inform
          severity: high
          object-templates:
            - complianceType: musthave
              objectDefinition:
                apiVersion: v1
                kind: Namespace
                metadata:
                  name: accounts
---
apiVersion: policy.open-cluster-management.io/v1
kind: PlacementBinding
metadata:
  name: account-management
  namespace: policies
placementRef:
  apiGroup: cluster.open-cluster-management.io
  kind: Placement
  name: all-clusters
subjects:
  - apiGroup: policy.open-cluster-management.io
    kind: Policy
    name: account-management
"#;

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Waits until cluster `c`'s replica reports `state`.
async fn replica_becomes(admin: &kube::Client, c: &str, state: &str) {
    let api: Api<Policy> = Api::namespaced(admin.clone(), c);
    eventually(90, &format!("{c} {state}"), || async {
        let p = api.get("policies.account-management").await.ok()?;
        (p.status?.compliant.as_deref() == Some(state)).then_some(())
    })
    .await;
}

fn run_json(args: &[&str]) -> Value {
    let out = ok(garrison(args));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn cell(report: &Value, cluster: &str) -> (Option<String>, Vec<u64>) {
    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["control"] == "AC-2")
        .unwrap_or_else(|| panic!("no AC-2 row: {report}"));
    let c = &row["clusters"][cluster];
    (
        c["state"].as_str().map(String::from),
        c["evidence"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
    )
}

/// `garrison audit verify` against the hub: Ok(stdout) or Err(stderr).
fn audit_verify(dir: &str) -> Result<String, String> {
    let out = garrison(&["audit", "verify", "--data-dir", dir]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Where the hub keeps the history, as the test edits it behind the hub's back.
enum Store {
    Sqlite(std::path::PathBuf),
    Postgres(garrison_e2e::Postgres),
}

impl Store {
    fn table(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "records",
            Store::Postgres(_) => "compliance_records",
        }
    }

    /// The statements that lift the store's protection against updates and deletes.
    fn unprotect(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => {
                "DROP TRIGGER records_are_never_updated; DROP TRIGGER records_are_never_deleted;"
            }
            Store::Postgres(_) => {
                "ALTER TABLE compliance_records DISABLE TRIGGER USER; ALTER TABLE compliance_records DROP CONSTRAINT compliance_records_seq_check;"
            }
        }
    }

    fn checkpoint_table(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "checkpoints",
            Store::Postgres(_) => "compliance_checkpoints",
        }
    }

    /// The statements that lift the checkpoints' protection against deletes.
    fn unprotect_checkpoints(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "DROP TRIGGER checkpoints_are_never_deleted;",
            Store::Postgres(_) => "ALTER TABLE compliance_checkpoints DISABLE TRIGGER USER;",
        }
    }

    fn empty_list(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "'[]'",
            Store::Postgres(_) => "'{}'",
        }
    }

    async fn pg(pg: &garrison_e2e::Postgres) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    async fn exec(&self, sql: &str) {
        match self {
            Store::Sqlite(db) => {
                let conn = rusqlite::Connection::open(db).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .unwrap();
                conn.execute_batch(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Store::Postgres(pg) => Self::pg(pg)
                .await
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    async fn pair(&self, sql: &str) -> (String, String) {
        match self {
            Store::Sqlite(db) => rusqlite::Connection::open(db)
                .unwrap()
                .query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap(),
            Store::Postgres(pg) => {
                let row = Self::pg(pg).await.query_one(sql, &[]).await.unwrap();
                (row.get(0), row.get(1))
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_history_in_the_embedded_store() {
    run(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_history_in_postgresql() {
    run(Some(garrison_e2e::Postgres::start().unwrap())).await;
}

/// Compliance flips are recorded, reported at a time between them, and proven untouched; edits
/// of the store are named; each cluster's events are seen only by who may get the cluster.
async fn run(pg: Option<garrison_e2e::Postgres>) {
    let url = pg.as_ref().map(|p| p.url());
    let mut args = vec!["--checkpoint-interval", "10s"];
    if let Some(u) = &url {
        args.extend(["--history-database", u.as_str()]);
    }
    let hub = Hub::start_with(&args).await.unwrap();
    let store = match pg {
        Some(pg) => Store::Postgres(pg),
        None => Store::Sqlite(hub.data_dir().join("compliance-history.db")),
    };
    let agents = join_and_accept(&hub, &["c1", "c2", "c3"], &[]).await;
    let dir = hub.data_dir().to_str().unwrap().to_string();
    ok(garrison(&[
        "addon",
        "enable",
        "governance-policy-framework",
        "--clusters",
        "c1,c2,c3",
        "--data-dir",
        &dir,
    ]));
    let file = hub.dir.path().join("policy.yaml");
    std::fs::write(&file, POLICY).unwrap();
    ok(hub.kubectl(&["apply", "-f", file.to_str().unwrap()]));
    let admin = hub.client().await.unwrap();

    // No cluster has the namespace: all three NonCompliant.
    for c in ["c1", "c2", "c3"] {
        replica_becomes(&admin, c, "NonCompliant").await;
    }
    // c1 and c2 comply.
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "accounts"}})).unwrap();
    for a in &agents[..2] {
        Api::<Namespace>::all(a.spoke().await)
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    for c in ["c1", "c2"] {
        replica_becomes(&admin, c, "Compliant").await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let between = now();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    // c1 drifts back.
    Api::<Namespace>::all(agents[0].spoke().await)
        .delete("accounts", &DeleteParams::default())
        .await
        .unwrap();
    replica_becomes(&admin, "c1", "NonCompliant").await;

    // Six changes recorded, once each: three NonCompliant, two Compliant, c1 NonCompliant.
    let history = eventually(30, "six recorded changes", || async {
        let v = run_json(&[
            "compliance",
            "history",
            "--policy",
            "policies/account-management",
            "-o",
            "json",
            "--data-dir",
            &dir,
        ]);
        (v.as_array()?.len() == 6).then_some(v)
    })
    .await;
    let states: Vec<(String, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["cluster"]["name"].as_str().unwrap().to_string(),
                e["event"]["compliance"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (c, s) in [
        ("c1", "NonCompliant"),
        ("c1", "Compliant"),
        ("c2", "Compliant"),
        ("c3", "NonCompliant"),
    ] {
        assert!(
            states.contains(&(c.to_string(), s.to_string())),
            "{states:?}"
        );
    }
    assert_eq!(history[0]["parent_policy"]["controls"], json!(["AC-2"]));

    // Each cluster has a PolicyReport with a result per template, readable with kubectl.
    let polr = eventually(30, "c1's PolicyReport to fail", || async {
        let out = hub.kubectl(&[
            "get",
            "policyreports",
            "-n",
            "c1",
            "c1-policyreport",
            "-o",
            "json",
        ]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["summary"]["fail"] == 1).then_some(v)
    })
    .await;
    let result = &polr["results"][0];
    assert_eq!(result["policy"], "policies.account-management", "{polr}");
    assert_eq!(result["rule"], "accounts-namespace");
    assert_eq!(result["severity"], "high");
    assert_eq!(result["category"], "AC Access Control");
    assert_eq!(polr["scope"]["kind"], "ManagedCluster");
    let c2 = ok(hub.kubectl(&[
        "get",
        "polr",
        "-n",
        "c2",
        "c2-policyreport",
        "-o",
        "jsonpath={.summary.pass}",
    ]));
    assert_eq!(c2.trim(), "1");

    // The state in force between the flips, with its evidence; and now.
    let at = run_json(&[
        "compliance",
        "report",
        "--control",
        "AC-2",
        "--at",
        &between,
        "-o",
        "json",
        "--data-dir",
        &dir,
    ]);
    let (c1, evidence) = cell(&at, "c1");
    assert_eq!(c1.as_deref(), Some("Compliant"), "{at}");
    assert_eq!(cell(&at, "c2").0.as_deref(), Some("Compliant"));
    assert_eq!(cell(&at, "c3").0.as_deref(), Some("NonCompliant"));
    let shown: Vec<u64> = at["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .collect();
    assert!(evidence.iter().all(|e| shown.contains(e)), "{at}");
    let now_report = run_json(&[
        "compliance",
        "report",
        "--control",
        "AC-2",
        "-o",
        "json",
        "--data-dir",
        &dir,
    ]);
    assert_eq!(cell(&now_report, "c1").0.as_deref(), Some("NonCompliant"));
    // The table names the cells and the records behind them.
    let table = ok(garrison(&[
        "compliance",
        "report",
        "--control",
        "AC-2",
        "--at",
        &between,
        "--data-dir",
        &dir,
    ]));
    assert!(
        table.contains("AC-2") && table.contains("Evidence:"),
        "{table}"
    );

    // Untouched, it verifies, once a checkpoint covers the head.
    let verified = eventually(30, "a checkpoint over the history", || async {
        let out = audit_verify(&dir).ok()?;
        out.contains("signed through record 6").then_some(out)
    })
    .await;
    assert!(verified.starts_with("verified: 6 records"), "{verified}");

    // A backup carries the embedded history and its key; restored, it verifies.
    if let Store::Sqlite(_) = &store {
        let file = hub.dir.path().join("backup.db");
        let out = ok(garrison(&[
            "backup",
            "--data-dir",
            &dir,
            "--to",
            file.to_str().unwrap(),
        ]));
        assert!(out.contains("compliance history: 6 records"), "{out}");
        let restored = tempfile::tempdir().unwrap();
        let out = ok(garrison(&[
            "restore",
            "--from",
            file.to_str().unwrap(),
            "--data-dir",
            restored.path().to_str().unwrap(),
        ]));
        assert!(out.contains("compliance history: 6 records"), "{out}");
        let key = garrison_governance::history::CheckpointKey::from_pem(
            &std::fs::read_to_string(restored.path().join("pki/history.key")).unwrap(),
        )
        .unwrap();
        let h = garrison_governance::history::sqlite::SqliteHistory::open(
            &restored.path().join("compliance-history.db"),
        )
        .unwrap();
        let v = h.verify(key.public_key()).unwrap().unwrap();
        assert_eq!((v.records, v.signed_through), (6, 6));
    }

    // An export verifies offline with the public key alone; an edited one does not.
    let export = hub.dir.path().join("history.jsonl");
    let pem = hub.dir.path().join("hub.pem");
    ok(garrison(&[
        "audit",
        "export",
        "--to",
        export.to_str().unwrap(),
        "--data-dir",
        &dir,
    ]));
    std::fs::write(
        &pem,
        ok(garrison(&["audit", "public-key", "--data-dir", &dir])),
    )
    .unwrap();
    let offline = |f: &Path| {
        garrison(&[
            "audit",
            "verify",
            "--from",
            f.to_str().unwrap(),
            "--key",
            pem.to_str().unwrap(),
        ])
    };
    assert!(ok(offline(&export)).contains("verified: 6 records"));
    let text = std::fs::read_to_string(&export).unwrap();
    let edited = hub.dir.path().join("edited.jsonl");
    std::fs::write(
        &edited,
        text.replacen("\"NonCompliant\"", "\"Compliant\"", 1),
    )
    .unwrap();
    let out = offline(&edited);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was altered"), "{err}");
    // Another key does not vouch for the hub's checkpoints.
    let other = hub.dir.path().join("other.pem");
    std::fs::write(
        &other,
        garrison_governance::history::CheckpointKey::generate()
            .unwrap()
            .public_key_pem(),
    )
    .unwrap();
    let out = garrison(&[
        "audit",
        "verify",
        "--from",
        export.to_str().unwrap(),
        "--key",
        other.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed by the hub's key"));

    if let Store::Sqlite(_) = &store {
        web_view(&hub, &dir, &between, &at, &now_report).await;
    }

    // Edits made in the store itself, behind the hub's back, are named; undone, it verifies.
    let t = store.table();
    store.exec(store.unprotect()).await;
    let (state, message) = store
        .pair(&format!("SELECT state, message FROM {t} WHERE seq = 2"))
        .await;
    store
        .exec(&format!(
            "UPDATE {t} SET state = 'Compliant', message = 'nothing to see' WHERE seq = 2"
        ))
        .await;
    let e = audit_verify(&dir).unwrap_err();
    assert!(e.contains("record 2 was altered"), "{e}");
    store
        .exec(&format!(
            "UPDATE {t} SET state = {}, message = {} WHERE seq = 2",
            quote(&state),
            quote(&message)
        ))
        .await;
    assert!(audit_verify(&dir).is_ok());
    // Removed.
    store
        .exec(&format!(
            "CREATE TABLE kept AS SELECT * FROM {t} WHERE seq = 3; DELETE FROM {t} WHERE seq = 3;"
        ))
        .await;
    let e = audit_verify(&dir).unwrap_err();
    assert!(e.contains("record 3 was removed"), "{e}");
    store
        .exec(&format!(
            "INSERT INTO {t} SELECT * FROM kept; DROP TABLE kept;"
        ))
        .await;
    assert!(audit_verify(&dir).is_ok());
    // Reordered: records 3 and 4 swap numbers.
    let swap = format!(
        "UPDATE {t} SET seq = -3 WHERE seq = 3; UPDATE {t} SET seq = 3 WHERE seq = 4; UPDATE {t} SET seq = 4 WHERE seq = -3;"
    );
    store.exec(&swap).await;
    let e = audit_verify(&dir).unwrap_err();
    assert!(e.contains("record 4 appears at position 3"), "{e}");
    store.exec(&swap).await;
    assert!(audit_verify(&dir).is_ok());
    // Truncated: the newest record removed with the checkpoint that signed it, so that the
    // store's own checkpoints all agree with what is left. The hub remembers the newest
    // checkpoint outside the store, and an auditor keeps an earlier export.
    let (last, _) = store
        .pair(&format!("SELECT CAST(MAX(seq) AS TEXT), '' FROM {t}"))
        .await;
    let last: u64 = last.parse().unwrap();
    eventually(30, "a checkpoint over the newest record", || async {
        audit_verify(&dir)
            .ok()?
            .contains(&format!("signed through record {last}"))
            .then_some(())
    })
    .await;
    let earlier = hub.dir.path().join("earlier.jsonl");
    ok(garrison(&[
        "audit",
        "export",
        "--to",
        earlier.to_str().unwrap(),
        "--data-dir",
        &dir,
    ]));
    let ct = store.checkpoint_table();
    store.exec(store.unprotect_checkpoints()).await;
    store
        .exec(&format!(
            "CREATE TABLE kept_r AS SELECT * FROM {t} WHERE seq = {last};
             CREATE TABLE kept_c AS SELECT * FROM {ct} WHERE seq = {last};
             DELETE FROM {t} WHERE seq = {last}; DELETE FROM {ct} WHERE seq = {last};"
        ))
        .await;
    let e = audit_verify(&dir).unwrap_err();
    assert!(
        e.contains(&format!(
            "checkpoint at record {last} covers records missing"
        )),
        "{e}"
    );
    // The file alone cannot tell; against the earlier export it can.
    let truncated = hub.dir.path().join("truncated.jsonl");
    ok(garrison(&[
        "audit",
        "export",
        "--to",
        truncated.to_str().unwrap(),
        "--data-dir",
        &dir,
    ]));
    assert!(ok(offline(&truncated)).starts_with("verified:"));
    let out = garrison(&[
        "audit",
        "verify",
        "--from",
        truncated.to_str().unwrap(),
        "--key",
        pem.to_str().unwrap(),
        "--after",
        earlier.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("covers records missing"), "{err}");
    // The hub does not sign over the gap: a checkpoint interval later it still shows.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    assert!(audit_verify(&dir).is_err());
    assert!(
        hub.log().contains("no longer holds record"),
        "{}",
        hub.log()
    );
    store
        .exec(&format!(
            "INSERT INTO {t} SELECT * FROM kept_r; INSERT INTO {ct} SELECT * FROM kept_c;
             DROP TABLE kept_r; DROP TABLE kept_c;"
        ))
        .await;
    assert!(audit_verify(&dir).is_ok());
    // Inserted: a well-formed record slipped in at 2, the rest renumbered to make room.
    let (time, prev) = store
        .pair(&format!("SELECT time, hash FROM {t} WHERE seq = 1"))
        .await;
    let before = garrison_governance::history::Record {
        seq: 1,
        prev: String::new(),
        hash: prev,
        event: Default::default(),
    };
    let forged = garrison_governance::history::Record::next(
        Some(&before),
        garrison_governance::history::Event {
            time,
            cluster: "c1".into(),
            policy: "policies/account-management".into(),
            state: "Compliant".into(),
            ..Default::default()
        },
    );
    let empty = store.empty_list();
    store
        .exec(&format!(
            "UPDATE {t} SET seq = -seq WHERE seq >= 2; UPDATE {t} SET seq = 1 - seq WHERE seq < 0;
             INSERT INTO {t} (seq, prev, hash, time, cluster, policy, replica, template, state, message, severity, standards, categories, controls)
             VALUES (2, {}, {}, {}, 'c1', 'policies/account-management', '', '', 'Compliant', '', '', {empty}, {empty}, {empty});",
            quote(&forged.prev),
            quote(&forged.hash),
            quote(&forged.event.time)
        ))
        .await;
    let e = audit_verify(&dir).unwrap_err();
    assert!(e.contains("record 2 was inserted"), "{e}");

    // A user who may get only c1 sees only c1's events, through the API and the CLI.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "c1-auditor"},
        "rules": [{"apiGroups": ["cluster.open-cluster-management.io"], "resources": ["managedclusters"],
            "resourceNames": ["c1"], "verbs": ["get"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "c1-auditor"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "c1-auditor"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ann"}]});
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    Api::<ClusterRole>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(role).unwrap(),
        )
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(binding).unwrap(),
        )
        .await
        .unwrap();
    let ann = hub.kubeconfig_for("ann", &[]).unwrap();
    let ann_client = garrison_e2e::client_from(&ann).await.unwrap();
    let list = |q: &'static str| {
        let c = ann_client.clone();
        async move {
            let req = http::Request::get(format!("/api/v1/compliance-events{q}"))
                .body(Vec::new())
                .unwrap();
            c.request_text(req).await
        }
    };
    let v: Value = serde_json::from_str(&list("?per_page=100").await.unwrap()).unwrap();
    let clusters: std::collections::BTreeSet<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["cluster"]["name"].as_str())
        .collect();
    assert_eq!(clusters, ["c1"].into(), "{v}");
    let e = list("?cluster.name=c2").await.unwrap_err();
    assert_eq!(garrison_e2e::api_code(&e), 403, "{e}");
    let csv = {
        let req = http::Request::get("/api/v1/reports/compliance-events")
            .body(Vec::new())
            .unwrap();
        ann_client.request_text(req).await.unwrap()
    };
    assert!(csv.starts_with("compliance_events_id,"), "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.contains(",c1,")), "{csv}");
    // The whole history is not hers to export or verify.
    let out = garrison(&[
        "audit",
        "export",
        "--to",
        "/dev/null",
        "--kubeconfig",
        ann.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs get on all managedclusters"));
    let report = run_json(&[
        "compliance",
        "report",
        "--control",
        "AC-2",
        "-o",
        "json",
        "--kubeconfig",
        ann.to_str().unwrap(),
    ]);
    let row = &report["rows"][0]["clusters"];
    assert!(
        row.get("c1").is_some() && row.get("c2").is_none(),
        "{report}"
    );
    // Writes are refused.
    let req = http::Request::post("/api/v1/compliance-events")
        .body(b"{}".to_vec())
        .unwrap();
    let e = admin.request_text(req).await.unwrap_err();
    assert_eq!(garrison_e2e::api_code(&e), 405, "{e}");
    drop(agents);
}

/// A policy of two templates under control AC-2: `accounts-namespace` (NonCompliant: no cluster
/// has the namespace) and, when `both`, `no-forbidden-namespace` (Compliant).
fn two_templates(both: bool) -> String {
    let forbidden = r#"
    - objectDefinition:
        apiVersion: policy.open-cluster-management.io/v1
        kind: ConfigurationPolicy
        metadata:
          name: no-forbidden-namespace
        spec:
          remediationAction: inform
          severity: low
          object-templates:
            - complianceType: mustnothave
              objectDefinition:
                apiVersion: v1
                kind: Namespace
                metadata:
                  name: forbidden"#;
    // POLICY's one template is accounts-namespace.
    let (head, rest) = POLICY.split_once("  policy-templates:").unwrap();
    let binding = rest
        .find("---\napiVersion: policy.open-cluster-management.io/v1\nkind: PlacementBinding")
        .unwrap();
    let accounts = rest[..binding].trim_end();
    let templates = if both {
        format!("{accounts}{forbidden}")
    } else {
        forbidden.to_string()
    };
    format!("{head}  policy-templates:{templates}\n{}", &rest[binding..])
}

/// The history of policies/account-management, oldest first.
fn history(dir: &str) -> Vec<Value> {
    run_json(&[
        "compliance",
        "history",
        "--policy",
        "policies/account-management",
        "-o",
        "json",
        "--data-dir",
        dir,
    ])
    .as_array()
    .cloned()
    .unwrap_or_default()
}

/// What goes away is recorded as upstream records it: a template removed from its policy, then
/// the policy removed from its clusters, each followed by one `Disabled` record with upstream's
/// message, in the cells the template was counted in; reports and PolicyReports stop counting
/// them; a restart records nothing twice, and the history still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removals_are_recorded_as_disabled() {
    let mut hub = Hub::start_with(&["--checkpoint-interval", "10s"])
        .await
        .unwrap();
    let agents = join_and_accept(&hub, &["c1", "c2"], &[]).await;
    let dir = hub.data_dir().to_str().unwrap().to_string();
    ok(garrison(&[
        "addon",
        "enable",
        "governance-policy-framework",
        "--clusters",
        "c1,c2",
        "--data-dir",
        &dir,
    ]));
    let file = hub.dir.path().join("policy.yaml");
    std::fs::write(&file, two_templates(true)).unwrap();
    ok(hub.kubectl(&["apply", "-f", file.to_str().unwrap()]));
    let states = |h: &[Value]| -> Vec<(String, String, String)> {
        h.iter()
            .map(|e| {
                (
                    e["cluster"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    e["policy"]["name"].as_str().unwrap_or_default().to_string(),
                    e["event"]["compliance"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    };
    eventually(90, "four first records", || async {
        let h = history(&dir);
        (h.len() == 4).then_some(())
    })
    .await;
    let first = states(&history(&dir));
    for c in ["c1", "c2"] {
        assert!(
            first.contains(&(c.into(), "accounts-namespace".into(), "NonCompliant".into())),
            "{first:?}"
        );
        assert!(
            first.contains(&(
                c.into(),
                "no-forbidden-namespace".into(),
                "Compliant".into()
            )),
            "{first:?}"
        );
    }
    let control = || {
        run_json(&[
            "compliance",
            "report",
            "--control",
            "AC-2",
            "-o",
            "json",
            "--data-dir",
            &dir,
        ])
    };
    assert_eq!(cell(&control(), "c1").0.as_deref(), Some("NonCompliant"));

    // The non-compliant template leaves the policy.
    std::fs::write(&file, two_templates(false)).unwrap();
    ok(hub.kubectl(&["apply", "-f", file.to_str().unwrap()]));
    let h = eventually(60, "the removed template's records", || async {
        let h = history(&dir);
        (h.len() == 6).then_some(h)
    })
    .await;
    let mut removed_on = vec![];
    for e in &h[4..] {
        removed_on.push(e["cluster"]["name"].as_str().unwrap().to_string());
        assert_eq!(e["event"]["compliance"], "Disabled", "{e}");
        assert_eq!(
            e["event"]["message"],
            "The policy was removed from the parent policy"
        );
        assert_eq!(e["policy"]["name"], "accounts-namespace");
        assert_eq!(e["policy"]["severity"], "high");
        assert_eq!(e["parent_policy"]["controls"], json!(["AC-2"]));
    }
    removed_on.sort();
    assert_eq!(removed_on, ["c1", "c2"]);
    // AC-2 now rests on the template left, and so does each PolicyReport.
    let now_report = control();
    for c in ["c1", "c2"] {
        let (state, evidence) = cell(&now_report, c);
        assert_eq!(state.as_deref(), Some("Compliant"), "{now_report}");
        assert_eq!(
            evidence.len(),
            2,
            "the compliant template and the removal: {now_report}"
        );
    }
    let polr = eventually(
        30,
        "c1's PolicyReport without the removed template",
        || async {
            let out = hub.kubectl(&[
                "get",
                "policyreports",
                "-n",
                "c1",
                "c1-policyreport",
                "-o",
                "json",
            ]);
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            (v["results"].as_array()?.len() == 1).then_some(v)
        },
    )
    .await;
    assert_eq!(
        polr["results"][0]["rule"], "no-forbidden-namespace",
        "{polr}"
    );
    assert_eq!(
        (
            polr["summary"]["pass"].as_u64(),
            polr["summary"]["fail"].as_u64()
        ),
        (Some(1), Some(0))
    );

    // The binding goes: the policy no longer applies to either cluster.
    ok(hub.kubectl(&[
        "delete",
        "placementbinding",
        "-n",
        "policies",
        "account-management",
    ]));
    let h = eventually(60, "the removed replicas' records", || async {
        let h = history(&dir);
        (h.len() == 8).then_some(h)
    })
    .await;
    let mut clusters = vec![];
    for e in &h[6..] {
        assert_eq!(e["event"]["compliance"], "Disabled", "{e}");
        assert_eq!(
            e["event"]["message"],
            "The policy was removed because the parent policy no longer applies to this cluster"
        );
        assert_eq!(e["policy"]["name"], "no-forbidden-namespace");
        clusters.push(e["cluster"]["name"].as_str().unwrap().to_string());
    }
    clusters.sort();
    assert_eq!(clusters, ["c1", "c2"]);
    let gone = control();
    for c in ["c1", "c2"] {
        assert_eq!(cell(&gone, c).0.as_deref(), Some("Disabled"), "{gone}");
    }
    eventually(30, "c1's PolicyReport emptied", || async {
        let out = hub.kubectl(&[
            "get",
            "policyreports",
            "-n",
            "c1",
            "c1-policyreport",
            "-o",
            "jsonpath={.summary.pass}",
        ]);
        (String::from_utf8_lossy(&out.stdout).trim() == "0").then_some(())
    })
    .await;

    // A restart records nothing twice: once the binding is back, the only new records are the
    // template's state on each cluster again, after its removal.
    hub.restart().await.unwrap();
    let binding = two_templates(false);
    let binding = &binding[binding
        .find("apiVersion: policy.open-cluster-management.io/v1\nkind: PlacementBinding")
        .unwrap()..];
    std::fs::write(&file, binding).unwrap();
    ok(hub.kubectl(&["apply", "-f", file.to_str().unwrap()]));
    let h = eventually(90, "the policy's state recorded again", || async {
        let h = history(&dir);
        (h.len() >= 10).then_some(h)
    })
    .await;
    assert_eq!(h.len(), 10, "{:?}", states(&h));
    for e in &h[8..] {
        assert_eq!(e["event"]["compliance"], "Compliant", "{e}");
        assert_eq!(e["policy"]["name"], "no-forbidden-namespace");
        assert!(e["event"]["timestamp"].as_str() >= h[7]["event"]["timestamp"].as_str());
    }
    let verified = eventually(30, "a checkpoint over the history", || async {
        let out = audit_verify(&dir).ok()?;
        out.contains("signed through record 10").then_some(out)
    })
    .await;
    assert!(verified.starts_with("verified: 10 records"), "{verified}");
    drop(agents);
}

/// The history of a hub next to Kubernetes (`garrison hub --kubeconfig`, as the hub's
/// ServiceAccount with only the install's rights): kept in PostgreSQL, signed with a key the
/// replicas share in a Secret, its public key and newest checkpoint published in a ConfigMap.
/// Auditors read it from the database with the same commands; the published checkpoint
/// catches a truncation that the store's own checkpoints cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_of_a_hub_next_to_kubernetes() {
    let pg = garrison_e2e::Postgres::start().unwrap();
    let url = pg.url();
    let mut hub = Hub::start_external_with(
        1,
        &["--history-database", &url, "--checkpoint-interval", "10s"],
    )
    .await
    .unwrap();
    let dir = hub.data_dir().to_str().unwrap().to_string();
    let (spoke, _agent) = garrison_e2e::Agent::join_networked(&hub, "edge").await;
    let admin = hub.client().await.unwrap();
    let clusters: Api<garrison_api::ManagedCluster> = Api::all(admin.clone());
    eventually(30, "the cluster to ask to join", || async {
        clusters.get_opt("edge").await.ok().flatten()
    })
    .await;
    ok(garrison(&["accept", "edge", "--yes", "--data-dir", &dir]));
    ok(garrison(&[
        "addon",
        "enable",
        "governance-policy-framework",
        "--clusters",
        "edge",
        "--data-dir",
        &dir,
    ]));
    let file = hub.dir.path().join("policy.yaml");
    std::fs::write(&file, POLICY).unwrap();
    ok(hub.kubectl(&["apply", "-f", file.to_str().unwrap()]));
    let replicas: Api<Policy> = Api::namespaced(admin.clone(), "edge");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while replicas
        .get_opt("policies.account-management")
        .await
        .ok()
        .flatten()
        .and_then(|p| p.status?.compliant)
        .as_deref()
        != Some("NonCompliant")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "edge's replica never reported: {:?}\nagent: {}\n{}",
            replicas.get_opt("policies.account-management").await,
            std::fs::read_to_string(hub.data_dir().join("agent-edge.log")).unwrap_or_default(),
            hub.replica_logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "accounts"}})).unwrap();
    Api::<Namespace>::all(spoke.client().await.unwrap())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    replica_becomes(&admin, "edge", "Compliant").await;

    // Read from the database, with the commands auditors use against an embedded hub.
    let db = ["--history-database", url.as_str()];
    let history = eventually(60, "two records in PostgreSQL", || async {
        let mut args = vec![
            "compliance",
            "history",
            "--policy",
            "policies/account-management",
            "-o",
            "json",
        ];
        args.extend(db);
        let v = run_json(&args);
        (v.as_array()?.len() == 2).then_some(v)
    })
    .await;
    assert_eq!(
        history[0]["event"]["compliance"], "NonCompliant",
        "{history}"
    );
    assert_eq!(history[1]["event"]["compliance"], "Compliant", "{history}");
    assert_eq!(history[1]["cluster"]["name"], "edge");
    let mut args = vec!["compliance", "report", "--control", "AC-2", "-o", "json"];
    args.extend(db);
    assert_eq!(
        cell(&run_json(&args), "edge").0.as_deref(),
        Some("Compliant")
    );

    // The public key the hub publishes verifies the history, once a checkpoint covers it.
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify"];
        args.extend(db);
        args.extend(extra);
        garrison(&args)
    };
    let verified = eventually(40, "a checkpoint over both records", || async {
        let out = verify(&["--data-dir", &dir]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.contains("signed through record 2")).then_some(text)
    })
    .await;
    assert!(verified.starts_with("verified: 2 records"), "{verified}");
    let mut args = vec!["audit", "public-key", "--data-dir", &dir];
    args.extend(db);
    let pem = ok(garrison(&args));
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let key = hub.dir.path().join("hub.pem");
    std::fs::write(&key, &pem).unwrap();
    // An auditor with the key alone (no access to the hub) verifies too, and is told what
    // that cannot catch; another key fails.
    let alone = verify(&[
        "--key",
        key.to_str().unwrap(),
        "--kubeconfig",
        "/nonexistent",
    ]);
    assert!(String::from_utf8_lossy(&alone.stdout).starts_with("verified: 2 records"));
    assert!(String::from_utf8_lossy(&alone.stderr).contains("was not read"));
    let other = hub.dir.path().join("other.pem");
    std::fs::write(
        &other,
        garrison_governance::history::CheckpointKey::generate()
            .unwrap()
            .public_key_pem(),
    )
    .unwrap();
    let out = verify(&["--key", other.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not signed by the hub's key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The export carries the records and verifies offline.
    let export = hub.dir.path().join("history.jsonl");
    let mut args = vec![
        "audit",
        "export",
        "--to",
        export.to_str().unwrap(),
        "--data-dir",
        &dir,
    ];
    args.extend(db);
    assert!(ok(garrison(&args)).contains("wrote 2 records"));
    assert!(
        ok(garrison(&[
            "audit",
            "verify",
            "--from",
            export.to_str().unwrap(),
            "--key",
            key.to_str().unwrap()
        ]))
        .starts_with("verified: 2 records")
    );

    // An auditor's read-only role reads and verifies; a database without the history is
    // named, not shown as an empty history.
    let store = Store::Postgres(pg);
    store
        .exec("CREATE ROLE auditor LOGIN; GRANT SELECT ON compliance_records, compliance_checkpoints TO auditor;")
        .await;
    // Alone: not in a transaction.
    store.exec("CREATE DATABASE empty").await;
    let reader = url.replacen("garrison@", "auditor@", 1);
    let out = ok(garrison(&[
        "audit",
        "verify",
        "--history-database",
        &reader,
        "--key",
        key.to_str().unwrap(),
        "--data-dir",
        &dir,
    ]));
    assert!(out.starts_with("verified: 2 records"), "{out}");
    let empty = url.replace("/postgres", "/empty");
    let out = garrison(&["compliance", "report", "--history-database", &empty]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no compliance history"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // While no hub runs, the policy stops applying to edge: the hub records the removal when
    // it is back.
    hub.kill_replica(0);
    ok(hub.kubectl(&[
        "delete",
        "placementbinding",
        "-n",
        "policies",
        "account-management",
    ]));
    ok(hub.kubectl(&[
        "delete",
        "policy",
        "-n",
        "edge",
        "policies.account-management",
    ]));
    hub.start_replica(0).unwrap();
    let h = eventually(60, "the removal recorded after the restart", || async {
        let mut args = vec![
            "compliance",
            "history",
            "--policy",
            "policies/account-management",
            "-o",
            "json",
        ];
        args.extend(db);
        let v = run_json(&args);
        (v.as_array()?.len() == 3).then_some(v)
    })
    .await;
    assert_eq!(h[2]["event"]["compliance"], "Disabled", "{h}");
    assert_eq!(
        h[2]["event"]["message"],
        "The policy was removed because the parent policy no longer applies to this cluster"
    );
    eventually(40, "a checkpoint over the removal", || async {
        let out = verify(&["--data-dir", &dir]);
        String::from_utf8_lossy(&out.stdout)
            .contains("signed through record 3")
            .then_some(())
    })
    .await;

    // The newest record removed with the checkpoint that signed it: the store agrees with
    // itself, but the checkpoint the hub published does not, whichever key verifies.
    store.exec(store.unprotect()).await;
    store.exec(store.unprotect_checkpoints()).await;
    store
        .exec("DELETE FROM compliance_records WHERE seq = 3; DELETE FROM compliance_checkpoints WHERE seq = 3;")
        .await;
    for extra in [
        vec!["--data-dir", dir.as_str()],
        vec!["--key", key.to_str().unwrap(), "--data-dir", dir.as_str()],
    ] {
        let out = verify(&extra);
        assert!(!out.status.success(), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("checkpoint at record 3 covers records missing"),
            "{extra:?}: {err}"
        );
    }
    // The hub, too, refuses to sign over the gap.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    assert!(
        hub.replica_logs().contains("no longer holds record"),
        "{}",
        hub.replica_logs()
    );
}

/// Debian's chromium, headless, driven by Debian's chromedriver over WebDriver.
struct Browser {
    client: fantoccini::Client,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
    base: String,
}

impl Browser {
    async fn start(base: &str) -> Browser {
        let port = garrison_e2e::free_port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/test installs Debian's chromium-driver)");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.path().display())]},
        });
        let caps = caps.as_object().unwrap().clone();
        let client = eventually(30, "chromedriver to start a session", || {
            let caps = caps.clone();
            async move {
                fantoccini::ClientBuilder::new(
                    hyper_util::client::legacy::connect::HttpConnector::new(),
                )
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .ok()
            }
        })
        .await;
        Browser {
            client,
            driver,
            _profile: profile,
            base: base.to_string(),
        }
    }

    async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    async fn text(&self, css: &str) -> String {
        let e = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.text().await.unwrap()
    }

    /// The element's text, or None while it is not on the page (during a navigation).
    async fn try_text(&self, css: &str) -> Option<String> {
        let e = self.client.find(fantoccini::Locator::Css(css)).await.ok()?;
        e.text().await.ok()
    }

    async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(fantoccini::Locator::Css(css))
            .await
            .unwrap()
            .len()
    }

    /// Waits for a navigation that a click started to land on `path`.
    async fn lands_on(&self, path: &str, what: &str) {
        let mut seen = String::new();
        for _ in 0..100 {
            seen = self.path().await;
            if seen == path {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!("{what}: the browser is on {seen}, not {path}");
    }

    async fn click(&self, css: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn sign_in(&self, token: &str) {
        self.open("/ui/").await;
        assert_eq!(
            self.path().await,
            "/ui/login",
            "a visitor is sent to sign in"
        );
        self.client
            .find(fantoccini::Locator::Css("textarea#token"))
            .await
            .unwrap()
            .send_keys(token)
            .await
            .unwrap();
        self.click("#sign-in").await;
        self.lands_on("/ui/", "signing in").await;
    }

    async fn sign_out(&self) {
        self.click("header form button").await;
        self.lands_on("/ui/login", "signing out").await;
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Counts of a report row's cells by state, as the CLI's JSON gives them.
fn counts(report: &Value, control: &str) -> (usize, usize) {
    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["control"] == control)
        .unwrap_or_else(|| panic!("{control} in {report}"));
    let cells = row["clusters"].as_object().unwrap();
    let n = |s: &str| cells.values().filter(|c| c["state"] == s).count();
    (n("Compliant"), n("NonCompliant"))
}

/// Markup a policy author slips into a policy's annotations, which the web view must show
/// as text and never run.
const MARKUP_POLICY: &str = r#"
apiVersion: policy.open-cluster-management.io/v1
kind: Policy
metadata:
  name: markup-probe
  namespace: policies
  annotations:
    policy.open-cluster-management.io/standards: NIST SP 800-53
    policy.open-cluster-management.io/categories: "<script>document.title='pwned'</script>"
    policy.open-cluster-management.io/controls: "<img src=x onerror=\"document.title='pwned'\">"
spec:
  remediationAction: inform
  disabled: false
  policy-templates:
    - objectDefinition:
        apiVersion: policy.open-cluster-management.io/v1
        kind: ConfigurationPolicy
        metadata:
          name: probe-namespace
        spec:
          remediationAction: inform
          severity: low
          object-templates:
            - complianceType: musthave
              objectDefinition:
                apiVersion: v1
                kind: Namespace
                metadata:
                  name: accounts
---
apiVersion: policy.open-cluster-management.io/v1
kind: PlacementBinding
metadata:
  name: markup-probe
  namespace: policies
placementRef:
  apiGroup: cluster.open-cluster-management.io
  kind: Placement
  name: all-clusters
subjects:
  - apiGroup: policy.open-cluster-management.io
    kind: Policy
    name: markup-probe
"#;

/// The web view in headless Chromium: the numbers match the CLI's report, the pages show the
/// records, an auditor limited to c1 sees only c1, and annotations' markup stays text.
async fn web_view(hub: &Hub, dir: &str, between: &str, at: &Value, now_report: &Value) {
    let base = format!("https://127.0.0.1:{}", hub.port);
    let token = ok(garrison(&[
        "auditor",
        "token",
        "--ttl",
        "1h",
        "--data-dir",
        dir,
    ]));
    let token = token.trim();
    let browser = Browser::start(&base).await;
    browser.sign_in(token).await;
    // The session cookie is kept from scripts and from plain HTTP.
    let cookie = browser
        .client
        .get_named_cookie("__Host-garrison-session")
        .await
        .unwrap();
    assert_eq!(
        (cookie.http_only(), cookie.secure()),
        (Some(true), Some(true))
    );
    assert!(
        browser
            .text("#user")
            .await
            .contains("garrison-auditors:auditor")
    );
    // The session is a credential for the history's pages and API, never for the Kubernetes
    // API, read or write; and a login posted from another site is refused.
    let anon = garrison_e2e::client_from(&hub.anonymous_kubeconfig().unwrap())
        .await
        .unwrap();
    let with_cookie = |method: &str, path: &str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("cookie", format!("__Host-garrison-session={token}"))
            .body(Vec::new())
            .unwrap()
    };
    let events = anon
        .request_text(with_cookie("GET", "/api/v1/compliance-events"))
        .await
        .unwrap();
    assert!(events.contains("\"total\":6"), "{events}");
    for (method, path) in [
        (
            "GET",
            "/apis/cluster.open-cluster-management.io/v1/managedclusters",
        ),
        (
            "DELETE",
            "/apis/cluster.open-cluster-management.io/v1/managedclusters/c1",
        ),
        ("POST", "/api/v1/compliance-events"),
    ] {
        let e = anon
            .request_text(with_cookie(method, path))
            .await
            .unwrap_err();
        assert_eq!(garrison_e2e::api_code(&e), 401, "{method} {path}: {e}");
    }
    let cross_site = http::Request::post("/ui/login")
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}").into_bytes())
        .unwrap();
    let e = anon.request_text(cross_site).await.unwrap_err();
    assert_eq!(garrison_e2e::api_code(&e), 403, "{e}");

    // Between the flips, and now: the same numbers as `garrison compliance report`.
    for (query, report, expected) in [
        (format!("?control=AC-2&at={between}"), at, (2, 1)),
        ("?control=AC-2".to_string(), now_report, (1, 2)),
    ] {
        assert_eq!(counts(report, "AC-2"), expected, "{report}");
        browser.open(&format!("/ui/{query}")).await;
        let row = "tr[data-control=\"AC-2\"]";
        let shown = (
            browser.text(&format!("{row} td.compliant")).await,
            browser.text(&format!("{row} td.noncompliant")).await,
        );
        assert_eq!(
            shown,
            (expected.0.to_string(), expected.1.to_string()),
            "{query}"
        );
        assert_eq!(browser.text(&format!("{row} td.total")).await, "3");
    }
    // The control's page: cluster by cluster at that time, with the same records behind it.
    browser
        .open(&format!(
            "/ui/control?standard=NIST+SP+800-53&category=AC+Access+Control&control=AC-2&at={between}"
        ))
        .await;
    for (c, s) in [
        ("c1", "Compliant"),
        ("c2", "Compliant"),
        ("c3", "NonCompliant"),
    ] {
        assert_eq!(
            browser
                .text(&format!("#clusters tr[data-cluster=\"{c}\"] .cell-state"))
                .await,
            s
        );
    }
    let (_, evidence) = cell(at, "c1");
    for id in evidence {
        assert_eq!(
            browser
                .count(&format!("#evidence tr[data-id=\"{id}\"]"))
                .await,
            1,
            "record {id} behind c1's cell"
        );
    }
    // Per cluster, per policy with its timeline, one record, the verification.
    browser.open("/ui/clusters").await;
    assert_eq!(browser.count("#clusters tbody tr").await, 3);
    assert_eq!(
        browser
            .text("#clusters tr[data-cluster=\"c1\"] td.noncompliant")
            .await,
        "1"
    );
    browser.open("/ui/clusters/c2").await;
    assert_eq!(
        browser
            .text("#templates tr[data-policy=\"policies/account-management\"] .state")
            .await,
        "Compliant"
    );
    browser
        .open("/ui/policies/policies/account-management")
        .await;
    assert!(browser.text("#count").await.starts_with("6 changes"));
    assert_eq!(browser.count("#timeline li").await, 6);
    assert_eq!(
        browser
            .count("#timeline li[data-cluster=\"c1\"][data-state=\"NonCompliant\"]")
            .await,
        2
    );
    browser.open("/ui/events/1").await;
    assert_eq!(
        browser.count("#record code").await,
        2,
        "hash and previous hash"
    );
    browser.open("/ui/verification").await;
    browser.click("#verify-now").await;
    // The click navigates; until the new page is there, the element may be missing.
    let verification = eventually(20, "the verification to show", || async {
        let v = browser.try_text("#verification").await?;
        v.starts_with("Verified").then_some(v)
    })
    .await;
    assert!(
        verification.starts_with("Verified") && verification.contains("6 records"),
        "{verification}"
    );
    // Signed out, the pages send the browser to sign in again.
    browser.sign_out().await;
    browser.open("/ui/clusters").await;
    assert_eq!(browser.path().await, "/ui/login");

    // An auditor limited to c1 sees c1 alone.
    let limited = ok(garrison(&[
        "auditor",
        "token",
        "--name",
        "c1-only",
        "--cluster",
        "c1",
        "--ttl",
        "1h",
        "--data-dir",
        dir,
    ]));
    // Widening an auditor behind its earlier tokens' back takes --update.
    let out = garrison(&[
        "auditor",
        "token",
        "--name",
        "c1-only",
        "--ttl",
        "1h",
        "--data-dir",
        dir,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auditor c1-only exists and sees clusters c1") && err.contains("--update"),
        "{err}"
    );
    browser.sign_in(limited.trim()).await;
    assert!(browser.text("#scope").await.contains("1 cluster: c1"));
    browser.open("/ui/?control=AC-2").await;
    assert_eq!(
        browser.text("tr[data-control=\"AC-2\"] td.total").await,
        "1"
    );
    browser.open("/ui/clusters").await;
    assert_eq!(browser.count("#clusters tbody tr").await, 1);
    assert_eq!(browser.count("#clusters tr[data-cluster=\"c1\"]").await, 1);
    for page in ["/ui/clusters/c2", "/ui/verification", "/ui/?cluster=c3"] {
        browser.open(page).await;
        assert!(browser.text("#error").await.contains("may not"), "{page}");
    }
    browser
        .open("/ui/policies/policies/account-management")
        .await;
    assert_eq!(browser.count("#timeline li").await, 3, "c1's three changes");
    assert_eq!(browser.count("#timeline li[data-cluster=\"c1\"]").await, 3);
    // Revoked, the session ends at once.
    ok(garrison(&[
        "auditor",
        "revoke",
        "c1-only",
        "--data-dir",
        dir,
    ]));
    browser.open("/ui/clusters").await;
    assert_eq!(browser.path().await, "/ui/login");
    assert!(browser.text("#error").await.contains("session ended"));

    // A policy author's markup in annotations is shown as text, never run.
    let file = hub.dir.path().join("markup.yaml");
    std::fs::write(&file, MARKUP_POLICY).unwrap();
    ok(hub.kubectl(&["apply", "-f", file.to_str().unwrap()]));
    eventually(90, "the markup policy's three records", || async {
        let v = run_json(&[
            "compliance",
            "history",
            "--policy",
            "policies/markup-probe",
            "-o",
            "json",
            "--data-dir",
            dir,
        ]);
        (v.as_array()?.len() == 3).then_some(())
    })
    .await;
    browser.sign_in(token).await;
    for page in [
        "/ui/?standard=NIST+SP+800-53".to_string(),
        "/ui/policies".to_string(),
        "/ui/clusters/c1".to_string(),
    ] {
        browser.open(&page).await;
        let main = browser.text("main").await;
        assert!(
            main.contains("<img src=x onerror=\"document.title='pwned'\">"),
            "{page}: {main}"
        );
        assert_eq!(browser.count("main img, main script").await, 0, "{page}");
        assert_ne!(browser.client.title().await.unwrap(), "pwned", "{page}");
    }
    browser.open("/ui/?standard=NIST+SP+800-53").await;
    assert!(
        browser
            .text("main")
            .await
            .contains("<script>document.title='pwned'</script>")
    );
    browser.close().await;
}
