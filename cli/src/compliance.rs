//! The compliance history for auditors: `garrison compliance report|history` and
//! `garrison audit verify|export|public-key`, and the adapter that serves the history's API
//! from the hub's API server.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use garrison_apiserver::http::{Caller, Extension, ExtensionAnswer};
use garrison_governance::history::api::ComplianceApi;
use garrison_governance::history::store::History;
use garrison_governance::history::{self, CheckpointKey, export, web};
use serde_json::Value;

use crate::admin::{Target, client, print_table, runtime, unreachable};

/// The history's API, served by the hub's API server.
pub struct HistoryApi(ComplianceApi);

impl HistoryApi {
    /// The API over `history`, with `key`'s public half for verification.
    pub fn new(history: History, key: &CheckpointKey, anchor: PathBuf) -> HistoryApi {
        HistoryApi(ComplianceApi::new(history, key).with_anchor(anchor))
    }
}

impl Extension for HistoryApi {
    fn serves(&self, path: &str) -> bool {
        ComplianceApi::serves(path) || web::serves(path)
    }

    fn public(&self, path: &str) -> bool {
        web::public(path)
    }

    fn get<'a>(
        &'a self,
        path: &'a str,
        query: Option<&'a str>,
        caller: Caller,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ExtensionAnswer> + Send + 'a>> {
        Box::pin(async move {
            let a = if web::serves(path) {
                let viewer = web::Viewer {
                    user: caller.user,
                    visible: caller.visible_clusters,
                    session: caller.session,
                };
                self.0.page(path, query, &viewer).await
            } else {
                self.0.get(path, query, caller.visible_clusters).await
            };
            let stream = a
                .stream
                .map(|s| -> garrison_apiserver::http::ExtensionStream {
                    use futures::StreamExt;
                    Box::pin(s.map(|chunk| {
                        chunk.map(bytes::Bytes::from).map_err(|e| {
                            tracing::error!(error = %e, "a compliance history answer broke off");
                            std::io::Error::other(e.to_string())
                        })
                    }))
                });
            ExtensionAnswer {
                code: a.code,
                content_type: a.content_type.to_string(),
                headers: a
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                body: a.body,
                stream,
            }
        })
    }
}

/// `garrison audit`.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify the compliance history: every record's hash and link, and every checkpoint's
    /// signature. Names the first record altered, removed, inserted or reordered, and exits
    /// non-zero. With --from, verifies an exported file offline with the hub's public key.
    Verify(VerifyArgs),
    /// Write the whole compliance history (records and signed checkpoints) to a file that an
    /// auditor verifies offline with `garrison audit verify --from FILE --key PEM`.
    Export(ExportArgs),
    /// Print the hub's checkpoint public key (PEM), to give auditors out of band.
    PublicKey(PublicKeyArgs),
}

/// Arguments of `audit verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// An exported history to verify offline instead of asking the hub.
    #[arg(
        long,
        value_name = "FILE",
        requires = "key",
        conflicts_with = "history_database"
    )]
    pub from: Option<PathBuf>,
    /// The hub's public key (PEM), obtained separately, to verify an export (--from) or the
    /// database (--history-database) with: the key inside an export proves nothing, since
    /// whoever rewrote the file could have replaced it.
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// An earlier export of the same hub, kept by the auditor: the history in --from must
    /// still hold what that export's newest checkpoint signed, so records removed since
    /// (with the checkpoints that covered them) or a rollback are caught.
    #[arg(long, value_name = "FILE", requires = "from")]
    pub after: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `audit export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Where to write the export (JSON lines).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `audit public-key`.
#[derive(Args, Debug)]
pub struct PublicKeyArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    target: Target,
}

/// `garrison compliance`.
#[derive(Subcommand, Debug)]
pub enum ComplianceCommand {
    /// Compliance per standard, category and control across the fleet, at a point in time or
    /// over a range, with the records behind each cell.
    Report(ReportArgs),
    /// Every recorded change of a policy's compliance, oldest first.
    History(HistoryArgs),
}

/// Output formats of the compliance commands.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A table, then the evidence.
    Table,
    /// CSV.
    Csv,
    /// JSON.
    Json,
}

/// Arguments of `compliance report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Only this standard (e.g. "NIST SP 800-53"); repeat or separate with commas for several.
    #[arg(long, value_name = "S")]
    pub standard: Vec<String>,
    /// Only this category.
    #[arg(long, value_name = "C")]
    pub category: Vec<String>,
    /// Only this control (e.g. AC-2).
    #[arg(long, value_name = "X")]
    pub control: Vec<String>,
    /// Only this cluster.
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Vec<String>,
    /// The state in force at this time (RFC 3339, or a date); default now.
    #[arg(long, value_name = "TIME", conflicts_with_all = ["since", "until"])]
    pub at: Option<String>,
    /// The start of a range (RFC 3339, or a date): the state at its end, and whether each cell
    /// was non-compliant at any time in it.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// The end of the range; default now.
    #[arg(long, value_name = "TIME", requires = "since")]
    pub until: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `compliance history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The root policy: NAME or NAMESPACE/NAME.
    #[arg(long, value_name = "POLICY")]
    pub policy: String,
    /// Only this cluster.
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    target: Target,
}

async fn get(client: &kube::Client, path_and_query: &str) -> Result<String> {
    let req = http::Request::get(path_and_query)
        .body(Vec::new())
        .map_err(|e| anyhow!("bad request {path_and_query}: {e}"))?;
    client.request_text(req).await.map_err(unreachable)
}

/// Reading the history from its store instead of from the hub.
#[derive(Args, Debug, Default)]
pub struct StoreArgs {
    /// Read the history from this PostgreSQL database itself instead of asking the hub: for a
    /// hub next to Kubernetes (`garrison hub --kubeconfig`), which keeps its history there.
    /// A read-only role is enough; whoever can read the database sees every cluster's records.
    #[arg(long, value_name = "URL")]
    pub history_database: Option<String>,
}

/// What a command reading the store needs of the hub's public key.
enum Key<'a> {
    /// Nothing: it only queries.
    None,
    /// The key the hub publishes; `hint` ends the message when it cannot be read.
    Needed { hint: &'static str },
    /// This file's, given by the auditor.
    Given(&'a std::path::Path),
}

/// Where the history is read: from the hub's API, or from its store through the same API run
/// here.
enum Source {
    Hub(kube::Client),
    Store(Box<ComplianceApi>),
}

/// What a hub next to Kubernetes publishes for auditors: its public key and the newest
/// checkpoint it signed.
async fn published(target: &Target) -> Result<(String, Option<history::Checkpoint>)> {
    use garrison_hub::compliance::{CHECKPOINT_ENTRY, HISTORY_CONFIGMAP, PUBLIC_KEY_ENTRY};
    use k8s_openapi::api::core::v1::ConfigMap;
    let ns = crate::hub_external::HUB_NAMESPACE;
    let (client, _) = client(target).await?;
    let cm = kube::Api::<ConfigMap>::namespaced(client, ns)
        .get_opt(HISTORY_CONFIGMAP)
        .await
        .map_err(unreachable)?
        .with_context(|| format!("the hub publishes no ConfigMap {ns}/{HISTORY_CONFIGMAP}: is its history kept (--history-database)?"))?;
    let mut data = cm.data.unwrap_or_default();
    let pem = data.remove(PUBLIC_KEY_ENTRY).with_context(|| {
        format!("ConfigMap {ns}/{HISTORY_CONFIGMAP} holds no {PUBLIC_KEY_ENTRY}")
    })?;
    let checkpoint = match data.remove(CHECKPOINT_ENTRY) {
        Some(text) => export::newest_checkpoint(&text).map_err(|e| {
            anyhow!("ConfigMap {ns}/{HISTORY_CONFIGMAP}: the remembered checkpoint: {e}")
        })?,
        None => None,
    };
    Ok((pem, checkpoint))
}

impl Source {
    /// The hub the target reaches, or, with --history-database, the store. For `Key::Needed`
    /// or `Key::Given`, the store's reader can verify, with the key given (the hub's public
    /// key, PEM, held by the auditor), else with the one the hub publishes; the newest
    /// checkpoint the hub publishes is compared with too, when it can be read.
    async fn open(store: &StoreArgs, target: &Target, key: Key<'_>) -> Result<Source> {
        let Some(url) = store.history_database.as_deref() else {
            let (client, _) = client(target).await?;
            return Ok(Source::Hub(client));
        };
        History::check(Some(url)).map_err(|e| anyhow!(e))?;
        let ns = crate::hub_external::HUB_NAMESPACE;
        let cm = garrison_hub::compliance::HISTORY_CONFIGMAP;
        let (pem, anchor) = match key {
            Key::Given(p) => {
                let pem = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the public key {}", p.display()))?;
                // The checkpoint the hub published still catches records removed from the
                // end; it is signed, so the auditor's own key checks it.
                let anchor = match published(target).await {
                    Ok((_, anchor)) => anchor,
                    Err(e) => {
                        eprintln!(
                            "note: the checkpoint the hub publishes ({ns}/{cm}) was not read ({e:#}); records removed from the end together with their checkpoints would not be caught"
                        );
                        None
                    }
                };
                (Some(pem), anchor)
            }
            Key::Needed { hint } => {
                let (pem, anchor) = published(target)
                    .await
                    .with_context(|| format!("cannot read the hub's public key{hint}"))?;
                eprintln!(
                    "public key: from ConfigMap {ns}/{cm}, as the hub published it (an auditor who holds the key gives it with `audit verify --key PEM`)"
                );
                (Some(pem), anchor)
            }
            Key::None => (None, None),
        };
        let history = History::open_reader(url).await.map_err(|e| anyhow!(e))?;
        let api = ComplianceApi::reader(history, pem.as_deref())
            .map_err(|e| anyhow!("the public key: {e}"))?
            .with_anchor_checkpoint(anchor);
        Ok(Source::Store(Box::new(api)))
    }

    /// GETs `path_and_query` of the history's API.
    async fn get(&self, path_and_query: &str) -> Result<String> {
        let api = match self {
            Source::Hub(client) => return get(client, path_and_query).await,
            Source::Store(api) => api,
        };
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let a = api.get(path, query, None).await;
        let body = String::from_utf8(a.body).context("the answer is not UTF-8")?;
        if a.code != 200 {
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            bail!("{}", v["message"].as_str().unwrap_or(&body));
        }
        Ok(body)
    }
}

fn query(pairs: &[(&str, String)]) -> String {
    serde_urlencoded::to_string(
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default()
}

/// Runs `garrison audit ...`.
pub fn audit(c: AuditCommand) -> Result<()> {
    match c {
        AuditCommand::Verify(a) => verify(a),
        AuditCommand::Export(a) => export_to(a),
        AuditCommand::PublicKey(a) => runtime()?.block_on(async {
            let source = Source::open(&a.store, &a.target, Key::Needed { hint: "" }).await?;
            print!("{}", source.get("/api/v1/audit/public-key").await?);
            Ok(())
        }),
    }
}

fn verify(a: VerifyArgs) -> Result<()> {
    if let Some(from) = &a.from {
        let key_path = a.key.as_ref().context("--key is required with --from")?;
        let key_pem = std::fs::read_to_string(key_path)
            .with_context(|| format!("cannot read the public key {}", key_path.display()))?;
        let key = history::parse_public_key_pem(&key_pem)
            .map_err(|e| anyhow!("{}: {e}", key_path.display()))?;
        let reading = crate::progress::spinner(format!("reading {}", from.display()));
        let text = std::fs::read_to_string(from)
            .with_context(|| format!("cannot read {}", from.display()))?;
        let exported = export::read(&text).map_err(|e| anyhow!("{}: {e}", from.display()))?;
        drop(text);
        reading.finish_and_clear();
        eprintln!(
            "verifying {} records and {} checkpoints from {}",
            exported.records.len(),
            exported.checkpoints.len(),
            from.display()
        );
        let anchor = match &a.after {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                let newest = export::newest_checkpoint(&text)
                    .map_err(|e| anyhow!("{}: {e}", p.display()))?;
                Some(newest.with_context(|| {
                    format!("{} holds no checkpoint to compare with", p.display())
                })?)
            }
            None => None,
        };
        let checkpoints = history::with_anchor(exported.checkpoints, anchor);
        let checking = crate::progress::spinner("checking the chain and every checkpoint");
        let outcome = history::verify(&exported.records, &checkpoints, &key);
        checking.finish_and_clear();
        return match outcome {
            Ok(v) => report_verified(v.records, v.checkpoints as u64, v.signed_through),
            Err(f) => bail!("verification FAILED: {f}"),
        };
    }
    if a.key.is_some() && a.store.history_database.is_none() {
        bail!(
            "--key goes with --from or --history-database: the hub verifies its own history with its own key"
        );
    }
    runtime()?.block_on(async {
        let key = match a.key.as_deref() {
            Some(p) => Key::Given(p),
            None => Key::Needed {
                hint: "; give it with --key PEM",
            },
        };
        let source = Source::open(&a.store, &a.target, key).await?;
        let waiting = crate::progress::spinner(match source {
            Source::Hub(_) => "the hub is verifying its history",
            Source::Store(_) => "verifying the history in the database",
        });
        let answer = source.get("/api/v1/audit/verify").await;
        waiting.finish_and_clear();
        let v: Value = serde_json::from_str(&answer?).context("the hub's answer is not JSON")?;
        if v["verified"] == true {
            let n = |k: &str| v[k].as_u64().unwrap_or(0);
            report_verified(n("records"), n("checkpoints"), n("signedThrough"))
        } else {
            bail!(
                "verification FAILED: {}",
                v["finding"].as_str().unwrap_or("no finding given")
            )
        }
    })
}

/// Prints a clean verification; with records and no checkpoint nothing vouches for them, so
/// that fails: a chain alone can be rebuilt by whoever rewrote it.
fn report_verified(records: u64, checkpoints: u64, signed_through: u64) -> Result<()> {
    if records > 0 && checkpoints == 0 {
        bail!(
            "verification FAILED: {records} records are chained but no checkpoint signs them; nothing vouches for them (a hub signs its first checkpoint within --checkpoint-interval)"
        );
    }
    println!(
        "verified: {records} records, {checkpoints} checkpoints, signed through record {signed_through}"
    );
    if signed_through < records {
        eprintln!(
            "note: records {} to {records} are chained but not yet signed by a checkpoint",
            signed_through + 1
        );
    }
    Ok(())
}

fn export_to(a: ExportArgs) -> Result<()> {
    runtime()?.block_on(async {
        let source = Source::open(&a.store, &a.target, Key::Needed { hint: "" }).await?;
        // Written as it arrives, through a temporary file: a transfer that breaks off leaves
        // no file that looks complete.
        let tmp = a.to.with_extension("partial");
        let counts = match source {
            Source::Hub(client) => {
                let req = http::Request::get("/api/v1/audit/export")
                    .body(Vec::new())
                    .context("cannot build the request")?;
                let body = client
                    .request_stream(req)
                    .await
                    .map_err(crate::admin::unreachable)?;
                copy_export(body, &tmp).await
            }
            Source::Store(api) => {
                use futures::TryStreamExt;
                let a = api.get("/api/v1/audit/export", None, None).await;
                let Some(stream) = a.stream else {
                    let v: Value = serde_json::from_slice(&a.body).unwrap_or_default();
                    bail!("{}", v["message"].as_str().unwrap_or("the export failed"));
                };
                let body = stream
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .into_async_read();
                copy_export(body, &tmp).await
            }
        };
        let (records, checkpoints) = match counts {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        std::fs::rename(&tmp, &a.to).with_context(|| format!("cannot write {}", a.to.display()))?;
        println!(
            "wrote {records} records and {checkpoints} checkpoints to {}; verify with `garrison audit verify --from {} --key hub.pem`",
            a.to.display(),
            a.to.display()
        );
        Ok(())
    })
}

/// Copies an export from the hub into `to` line by line, checking that it starts with the
/// export header and holds only records and checkpoints; returns how many of each.
async fn copy_export(
    body: impl futures::AsyncBufRead + Unpin,
    to: &std::path::Path,
) -> Result<(u64, u64)> {
    use futures::{AsyncBufReadExt, StreamExt};
    use std::io::Write;
    let file =
        std::fs::File::create(to).with_context(|| format!("cannot write {}", to.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut lines = body.lines();
    let (mut records, mut checkpoints, mut n) = (0u64, 0u64, 0u64);
    let bar = crate::progress::transfer("exporting");
    while let Some(line) = lines.next().await {
        let line = line.context("the hub's export broke off")?;
        n += 1;
        bar.inc(line.len() as u64 + 1);
        if n % 1000 == 0 {
            bar.set_message(format!("exporting ({records} records)"));
        }
        if n == 1 {
            export::read(&line).map_err(|e| anyhow!("the hub's export: {e}"))?;
        } else if line.starts_with("{\"record\":") {
            records += 1;
        } else if line.starts_with("{\"checkpoint\":") {
            checkpoints += 1;
        } else if !line.is_empty() {
            bail!("the hub's export: line {n} is neither a record nor a checkpoint");
        }
        writeln!(out, "{line}").with_context(|| format!("cannot write {}", to.display()))?;
    }
    bar.finish_and_clear();
    if n == 0 {
        bail!("the hub's export is empty");
    }
    out.flush()
        .with_context(|| format!("cannot write {}", to.display()))?;
    Ok((records, checkpoints))
}

/// Runs `garrison compliance ...`.
pub fn compliance(c: ComplianceCommand) -> Result<()> {
    match c {
        ComplianceCommand::Report(a) => report(a),
        ComplianceCommand::History(a) => history_of(a),
    }
}

fn joined(v: &[String]) -> String {
    v.join(",")
}

fn report(a: ReportArgs) -> Result<()> {
    for (flag, t) in [
        ("--at", &a.at),
        ("--since", &a.since),
        ("--until", &a.until),
    ] {
        if let Some(t) = t {
            history::query::normalise_time(t).map_err(|e| anyhow!("{flag}: {e}"))?;
        }
    }
    let q = query(&[
        ("standard", joined(&a.standard)),
        ("category", joined(&a.category)),
        ("control", joined(&a.control)),
        ("cluster", joined(&a.cluster)),
        ("at", a.at.clone().unwrap_or_default()),
        ("since", a.since.clone().unwrap_or_default()),
        ("until", a.until.clone().unwrap_or_default()),
    ]);
    runtime()?.block_on(async {
        let source = Source::open(&a.store, &a.target, Key::None).await?;
        let text = source
            .get(&format!("/api/v1/reports/compliance?{q}"))
            .await?;
        let v: Value = serde_json::from_str(&text).context("the hub's answer is not JSON")?;
        print_report(&v, a.output)
    })
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The report's cells, one row per (standard, category, control, cluster).
fn cells(v: &Value) -> Vec<Vec<String>> {
    let mut out = vec![];
    for row in v["rows"].as_array().into_iter().flatten() {
        for (cluster, cell) in row["clusters"].as_object().into_iter().flatten() {
            let evidence: Vec<String> = cell["evidence"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| format!("#{e}"))
                .collect();
            out.push(vec![
                s(&row["standard"]),
                s(&row["category"]),
                s(&row["control"]),
                cluster.clone(),
                cell["state"].as_str().unwrap_or("(no record)").to_string(),
                if cell["everNonCompliant"] == true {
                    "yes".into()
                } else {
                    "no".into()
                },
                evidence.join(" "),
            ]);
        }
    }
    out
}

fn print_report(v: &Value, format: Format) -> Result<()> {
    let ranged = v["when"]["since"].is_string();
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Format::Csv => {
            println!("standard,category,control,cluster,state,ever_noncompliant,evidence");
            for row in cells(v) {
                println!(
                    "{}",
                    row.iter()
                        .map(|c| export::csv_cell(c))
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
        Format::Table => {
            let when = if ranged {
                format!(
                    "from {} to {}",
                    s(&v["when"]["since"]),
                    s(&v["when"]["until"])
                )
            } else {
                format!("at {}", s(&v["when"]["at"]))
            };
            let rows = cells(v);
            if rows.is_empty() {
                println!("No compliance recorded {when} for what was asked.");
                return Ok(());
            }
            println!("Compliance {when}:");
            let mut header = vec!["STANDARD", "CATEGORY", "CONTROL", "CLUSTER", "STATE"];
            if ranged {
                header.push("NONCOMPLIANT IN RANGE");
            }
            header.push("EVIDENCE");
            let mut table = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
            for mut r in rows {
                if !ranged {
                    r.remove(5);
                }
                table.push(r);
            }
            print_table(&table);
            println!("\nEvidence:");
            for e in v["evidence"].as_array().into_iter().flatten() {
                println!("  {}", evidence_line(e));
            }
        }
    }
    Ok(())
}

fn evidence_line(e: &Value) -> String {
    format!(
        "#{} {} {} {}/{} {}/{} {}: {}",
        e["id"],
        s(&e["event"]["timestamp"]),
        s(&e["cluster"]["name"]),
        s(&e["parent_policy"]["namespace"]),
        s(&e["parent_policy"]["name"]),
        s(&e["policy"]["kind"]),
        s(&e["policy"]["name"]),
        s(&e["event"]["compliance"]),
        s(&e["event"]["message"]),
    )
}

fn history_of(a: HistoryArgs) -> Result<()> {
    let (ns, name) = match a.policy.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (String::new(), a.policy.clone()),
    };
    if name.is_empty() {
        bail!("--policy needs a name: NAME or NAMESPACE/NAME");
    }
    runtime()?.block_on(async {
        let source = Source::open(&a.store, &a.target, Key::None).await?;
        let mut events: Vec<Value> = vec![];
        let mut page = 1;
        loop {
            let q = query(&[
                ("parent_policy.name", name.replace(',', "\\,")),
                ("parent_policy.namespace", ns.replace(',', "\\,")),
                ("cluster.name", a.cluster.clone().unwrap_or_default()),
                ("sort", "event.timestamp".into()),
                ("direction", "asc".into()),
                ("per_page", "100".into()),
                ("page", page.to_string()),
            ]);
            let text = source
                .get(&format!("/api/v1/compliance-events?{q}"))
                .await?;
            let v: Value = serde_json::from_str(&text).context("the hub's answer is not JSON")?;
            events.extend(v["data"].as_array().cloned().unwrap_or_default());
            let pages = v["metadata"]["pages"].as_u64().unwrap_or(0);
            if page >= pages {
                break;
            }
            page += 1;
        }
        match a.output {
            Format::Json => println!("{}", serde_json::to_string_pretty(&events)?),
            Format::Csv => {
                println!("id,time,cluster,template,state,message");
                for e in &events {
                    let cells = [
                        s(&e["id"]),
                        s(&e["event"]["timestamp"]),
                        s(&e["cluster"]["name"]),
                        format!("{}/{}", s(&e["policy"]["kind"]), s(&e["policy"]["name"])),
                        s(&e["event"]["compliance"]),
                        s(&e["event"]["message"]),
                    ];
                    let line: Vec<String> = cells.iter().map(|c| export::csv_cell(c)).collect();
                    println!("{}", line.join(","));
                }
            }
            Format::Table => {
                if events.is_empty() {
                    println!("No compliance changes recorded for policy {}.", a.policy);
                    return Ok(());
                }
                let mut table = vec![
                    ["ID", "TIME", "CLUSTER", "TEMPLATE", "STATE", "MESSAGE"]
                        .iter()
                        .map(|h| h.to_string())
                        .collect::<Vec<_>>(),
                ];
                for e in &events {
                    let message = s(&e["event"]["message"]);
                    let short: String = message.chars().take(80).collect();
                    table.push(vec![
                        s(&e["id"]),
                        s(&e["event"]["timestamp"]),
                        s(&e["cluster"]["name"]),
                        format!("{}/{}", s(&e["policy"]["kind"]), s(&e["policy"]["name"])),
                        s(&e["event"]["compliance"]),
                        if short.len() < message.len() {
                            format!("{short}…")
                        } else {
                            short
                        },
                    ]);
                }
                print_table(&table);
            }
        }
        Ok(())
    })
}
