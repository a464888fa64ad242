//! The compliance history's HTTP API, read-only, in the shape of upstream's former compliance
//! history API, plus the auditors' endpoints:
//!
//! - `GET /api/v1/compliance-events`: filtered, sorted, paged events,
//!   `{data, metadata: {page, pages, per_page, total}}`;
//! - `GET /api/v1/compliance-events/{id}`: one event;
//! - `GET /api/v1/reports/compliance-events`: the same filters, as CSV;
//! - `GET /api/v1/reports/compliance`: compliance per standard, category and control, per
//!   cluster, at a time (`at`) or over a range (`since`, `until`), with the records behind
//!   each cell (Garrison's own);
//! - `GET /api/v1/audit/public-key`: the hub's checkpoint key, PEM;
//! - `GET /api/v1/audit/export`: every record and checkpoint, as the export file;
//! - `GET /api/v1/audit/verify`: the chain and checkpoints verified now.
//!
//! Transport and authentication belong to the server that mounts it: it passes the clusters the
//! caller may `get` (`None`: all), and every answer is filtered by them. The export and the
//! verification cover every cluster, so they need `get` on all ManagedClusters.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::export;
use super::query::{Filter, MAX_PER_PAGE, Paging, SortKey, When, normalise_time};
use super::store::History;
use super::{Checkpoint, CheckpointKey, HistoryError};

/// The paths served, by prefix.
pub const PREFIXES: [&str; 4] = [
    "/api/v1/compliance-events",
    "/api/v1/reports/compliance-events",
    "/api/v1/reports/compliance",
    "/api/v1/audit/",
];

/// The most a JSON page holds, as upstream.
pub const MAX_API_PER_PAGE: u64 = 100;

/// A body sent as it is produced: a failure midway ends the answer short, which the client
/// sees as a broken transfer, never as a complete one.
pub type BodyStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, HistoryError>> + Send>>;

/// An answer.
pub struct Answer {
    /// HTTP status.
    pub code: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The body as a stream instead, for answers too large to hold (the export).
    pub stream: Option<BodyStream>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("code", &self.code)
            .field("content_type", &self.content_type)
            .field("body_bytes", &self.body.len())
            .field("streamed", &self.stream.is_some())
            .finish()
    }
}

impl Answer {
    fn json(code: u16, v: &Value) -> Answer {
        Answer {
            code,
            content_type: "application/json",
            headers: vec![],
            body: serde_json::to_vec(v).unwrap_or_default(),
            stream: None,
        }
    }

    /// A failure as a Kubernetes `Status`, whose `message` is where upstream's clients read it.
    pub fn error(code: u16, reason: &str, message: impl Into<String>) -> Answer {
        Answer::json(
            code,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message.into(), "reason": reason, "code": code}),
        )
    }
}

/// The outcome of the last verification, for the web view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastVerification {
    /// When it ran, RFC 3339.
    pub time: String,
    /// Its JSON, as `/api/v1/audit/verify` answered.
    pub result: Value,
}

/// The API over one history.
pub struct ComplianceApi {
    pub(super) history: History,
    /// The public key checkpoints are verified with (raw, and PEM); `None` for a reader that
    /// only queries.
    public_key: Option<(Vec<u8>, String)>,
    last: Mutex<Option<LastVerification>>,
    anchor: AnchorAt,
    verifying: std::sync::atomic::AtomicBool,
}

/// Where verification finds the checkpoint remembered outside the store.
enum AnchorAt {
    /// Nowhere.
    None,
    /// In an anchor file, read at each verification.
    File(std::path::PathBuf),
    /// This one, read once by the caller.
    Given(Checkpoint),
}

/// What can be filtered on, by its API name.
const FILTERS: [&str; 10] = [
    "cluster.name",
    "event.compliance",
    "event.timestamp_after",
    "event.timestamp_before",
    "parent_policy.categories",
    "parent_policy.controls",
    "parent_policy.name",
    "parent_policy.namespace",
    "parent_policy.standards",
    "policy.name",
];
const OTHER: [&str; 4] = ["direction", "page", "per_page", "sort"];

/// Splits a comma-separated list (`\,` escapes a comma; empty items are dropped).
fn list(v: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                cur.push(',');
                chars.next();
            }
            ',' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Reads the query: filters and paging, or the reason it is wrong.
pub fn parse_query(query: Option<&str>, csv: bool) -> Result<(Filter, Paging), String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| format!("malformed query string: {e}"))?;
    let mut f = Filter::default();
    let mut p = Paging::default();
    if csv {
        p.per_page = MAX_PER_PAGE;
    }
    let mut seen = BTreeSet::new();
    for (k, v) in pairs {
        // The first value of a parameter counts, as upstream.
        if !seen.insert(k.clone()) {
            continue;
        }
        if !FILTERS.contains(&k.as_str()) && !OTHER.contains(&k.as_str()) {
            let mut all: Vec<&str> = FILTERS.iter().chain(OTHER.iter()).copied().collect();
            all.sort_unstable();
            return Err(format!(
                "an invalid query argument was provided ({k}), choose from: {}",
                all.join(", ")
            ));
        }
        if v.is_empty() {
            return Err(format!("invalid query argument: {k} must have a value"));
        }
        let after = |t: &str| -> Result<String, String> {
            let n = normalise_time(t).map_err(|_| {
                format!("invalid query argument: {k} must be in the format of RFC 3339")
            })?;
            Ok(n)
        };
        match k.as_str() {
            "cluster.name" => f.clusters = list(&v),
            "event.compliance" => {
                f.states = list(&v);
                for s in &f.states {
                    if !["Compliant", "NonCompliant", "Pending", "Disabled"].contains(&s.as_str()) {
                        return Err(format!(
                            "invalid query argument: event.compliance {s:?} is none of Compliant, NonCompliant, Pending, Disabled"
                        ));
                    }
                }
            }
            // Upstream compares strictly; times are whole seconds.
            "event.timestamp_after" => f.since = Some(shift(&after(&v)?, 1)?),
            "event.timestamp_before" => f.until = Some(shift(&after(&v)?, -1)?),
            "parent_policy.categories" => f.categories = list(&v),
            "parent_policy.controls" => f.controls = list(&v),
            "parent_policy.standards" => f.standards = list(&v),
            "parent_policy.name" => f.policies = list(&v),
            "parent_policy.namespace" => f.namespaces = list(&v),
            "policy.name" => f.templates = list(&v),
            "direction" => {
                p.descending = match v.as_str() {
                    "desc" => true,
                    "asc" => false,
                    _ => return Err("direction must be one of: asc, desc".into()),
                }
            }
            "page" => {
                p.page = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or("page must be a positive integer")?
            }
            "per_page" => {
                let max = if csv { MAX_PER_PAGE } else { MAX_API_PER_PAGE };
                p.per_page = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or(format!("per_page must be a value between 1 and {max}"))?
            }
            "sort" => {
                let keys = list(&v);
                let [one] = keys.as_slice() else {
                    return Err("sort takes one option".into());
                };
                p.sort = SortKey::parse(one)?;
            }
            _ => unreachable!("every accepted name is handled"),
        }
    }
    Ok((f, p))
}

/// Reads a report's query: `standard`, `category`, `control`, `cluster` (comma-separated
/// lists), and `at`, or `since` and `until` (RFC 3339); neither means now.
pub fn parse_report_query(query: Option<&str>) -> Result<(Filter, When), String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| format!("malformed query string: {e}"))?;
    let mut f = Filter::default();
    let (mut at, mut since, mut until) = (None, None, None);
    for (k, v) in pairs {
        match k.as_str() {
            "standard" => f.standards = list(&v),
            "category" => f.categories = list(&v),
            "control" => f.controls = list(&v),
            "cluster" => f.clusters = list(&v),
            "policy" => f.policies = list(&v),
            "at" => at = Some(normalise_time(&v)?),
            "since" => since = Some(normalise_time(&v)?),
            "until" => until = Some(normalise_time(&v)?),
            other => {
                return Err(format!(
                    "an invalid query argument was provided ({other}), choose from: at, category, cluster, control, policy, since, standard, until"
                ));
            }
        }
    }
    let now = || {
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let when = match (at, since, until) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err("give either at, or since and until, not both".into());
        }
        (Some(at), None, None) => When::At(at),
        (None, None, None) => When::At(now()),
        (None, Some(s), u) => {
            let u = u.unwrap_or_else(now);
            if s > u {
                return Err(format!("since ({s}) is after until ({u})"));
            }
            When::Range { since: s, until: u }
        }
        (None, None, Some(_)) => return Err("until needs since".into()),
    };
    Ok((f, when))
}

fn shift(t: &str, secs: i64) -> Result<String, String> {
    let ts: jiff::Timestamp = t.parse().map_err(|e| format!("invalid time {t}: {e}"))?;
    let moved = ts
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .map_err(|e| format!("invalid time {t}: {e}"))?;
    Ok(moved.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn store_failed(e: HistoryError) -> Answer {
    Answer::error(
        503,
        "ServiceUnavailable",
        format!("the compliance history is unavailable: {e}"),
    )
}

impl ComplianceApi {
    /// The API over `history`, whose checkpoints `key` signs.
    pub fn new(history: History, key: &CheckpointKey) -> ComplianceApi {
        ComplianceApi {
            history,
            public_key: Some((key.public_key().to_vec(), key.public_key_pem())),
            last: Mutex::new(None),
            anchor: AnchorAt::None,
            verifying: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The API over `history` for a reader outside the hub (reading the store itself), who
    /// verifies with the hub's public key `public_key_pem` when given; without it, the public
    /// key, the export and verification are refused.
    pub fn reader(
        history: History,
        public_key_pem: Option<&str>,
    ) -> Result<ComplianceApi, HistoryError> {
        let public_key = match public_key_pem {
            Some(pem) => Some((super::parse_public_key_pem(pem)?, pem.to_string())),
            None => None,
        };
        Ok(ComplianceApi {
            history,
            public_key,
            last: Mutex::new(None),
            anchor: AnchorAt::None,
            verifying: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Verifies against the checkpoint remembered in `path` too (see [`read_anchor`]).
    pub fn with_anchor(mut self, path: std::path::PathBuf) -> ComplianceApi {
        self.anchor = AnchorAt::File(path);
        self
    }

    /// Verifies against `checkpoint`, remembered outside the store, too.
    pub fn with_anchor_checkpoint(mut self, checkpoint: Option<Checkpoint>) -> ComplianceApi {
        self.anchor = checkpoint.map_or(AnchorAt::None, AnchorAt::Given);
        self
    }

    fn no_key() -> Answer {
        Answer::error(
            400,
            "BadRequest",
            "the hub's public key is needed for this: give --key PEM, or --kubeconfig for a hub that publishes it",
        )
    }

    /// Whether `path` is served here.
    pub fn serves(path: &str) -> bool {
        PREFIXES.iter().any(|p| path.starts_with(p))
    }

    /// The last verification, if one ran.
    pub fn last_verification(&self) -> Option<LastVerification> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Answers a GET of `path?query` for a caller who may see `visible` clusters (`None`: all).
    pub async fn get(
        &self,
        path: &str,
        query: Option<&str>,
        visible: Option<BTreeSet<String>>,
    ) -> Answer {
        let path = path.trim_end_matches('/');
        match path {
            "/api/v1/compliance-events" => self.list(query, visible, false).await,
            "/api/v1/reports/compliance-events" => self.list(query, visible, true).await,
            "/api/v1/reports/compliance" => self.report(query, visible).await,
            "/api/v1/audit/public-key" => match &self.public_key {
                Some((_, pem)) => Answer {
                    code: 200,
                    content_type: "application/x-pem-file",
                    headers: vec![],
                    body: pem.clone().into_bytes(),
                    stream: None,
                },
                None => Self::no_key(),
            },
            "/api/v1/audit/export" | "/api/v1/audit/verify" if visible.is_some() => Answer::error(
                403,
                "Forbidden",
                "the whole history covers every cluster: it needs get on all managedclusters.cluster.open-cluster-management.io",
            ),
            "/api/v1/audit/export" => self.export().await,
            "/api/v1/audit/verify" => self.verify().await,
            _ => match path.strip_prefix("/api/v1/compliance-events/") {
                Some(id) => self.one(id, visible.as_ref()).await,
                None => Answer::error(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            },
        }
    }

    async fn list(
        &self,
        query: Option<&str>,
        visible: Option<BTreeSet<String>>,
        csv: bool,
    ) -> Answer {
        let (mut f, p) = match parse_query(query, csv) {
            Ok(x) => x,
            Err(e) => return Answer::error(400, "BadRequest", e),
        };
        if let Some(v) = &visible {
            let hidden: Vec<&str> = f
                .clusters
                .iter()
                .filter(|c| !v.contains(*c))
                .map(String::as_str)
                .collect();
            if !hidden.is_empty() {
                return Answer::error(
                    403,
                    "Forbidden",
                    format!(
                        "the request is not allowed: the following cluster filters are not authorized: {}",
                        hidden.join(", ")
                    ),
                );
            }
        }
        f.visible = visible;
        let chain = f.visible.is_none();
        let page = match self.history.query(f, p).await {
            Ok(page) => page,
            Err(e) => return store_failed(e),
        };
        if csv {
            let mut body = export::csv_header();
            for r in &page.records {
                body.push_str(&export::csv_line(r, chain));
            }
            return Answer {
                code: 200,
                content_type: "text/csv",
                headers: vec![
                    (
                        "Content-Disposition",
                        "attachment; filename=reports.csv".into(),
                    ),
                    ("X-Content-Type-Options", "nosniff".into()),
                ],
                body: body.into_bytes(),
                stream: None,
            };
        }
        let data: Vec<Value> = page
            .records
            .iter()
            .map(|r| export::api_event(r, chain))
            .collect();
        Answer::json(
            200,
            &json!({"data": data, "metadata": {
                "page": page.page, "pages": page.pages(), "per_page": page.per_page, "total": page.total}}),
        )
    }

    async fn report(&self, query: Option<&str>, visible: Option<BTreeSet<String>>) -> Answer {
        let (f, when) = match parse_report_query(query) {
            Ok(x) => x,
            Err(e) => return Answer::error(400, "BadRequest", e),
        };
        if let Some(v) = &visible
            && let Some(c) = f.clusters.iter().find(|c| !v.contains(*c))
        {
            return Answer::error(
                403,
                "Forbidden",
                format!(
                    "the request is not allowed: the following cluster filters are not authorized: {c}"
                ),
            );
        }
        let f = Filter { visible, ..f };
        match self.compliance_report(&f, &when).await {
            Ok(v) => Answer::json(200, &v),
            Err(e) => store_failed(e),
        }
    }

    /// The report for `f` and `when`, as `/api/v1/reports/compliance` answers it.
    pub async fn compliance_report(&self, f: &Filter, when: &When) -> Result<Value, HistoryError> {
        let (in_force, changes) = match when {
            When::At(at) => (
                self.history.in_force_at(f.clone(), at.clone()).await?,
                vec![],
            ),
            When::Range { since, until } => {
                let mut changes = self.history.in_force_at(f.clone(), since.clone()).await?;
                let during = Filter {
                    since: Some(since.clone()),
                    until: Some(until.clone()),
                    ..f.clone()
                };
                changes.extend(self.history.all(during).await?);
                (
                    self.history.in_force_at(f.clone(), until.clone()).await?,
                    changes,
                )
            }
        };
        let report = super::query::report(&in_force, &changes);
        let mut evidence = std::collections::BTreeMap::new();
        for r in in_force.iter().chain(changes.iter()) {
            evidence
                .entry(r.seq)
                .or_insert_with(|| export::api_event(r, f.visible.is_none()));
        }
        let rows: Vec<Value> = report
            .rows
            .iter()
            .map(|((standard, category, control), cells)| {
                let clusters: serde_json::Map<String, Value> = cells
                    .iter()
                    .map(|(c, cell)| {
                        (
                            c.clone(),
                            json!({"state": cell.state, "everNonCompliant": cell.ever_noncompliant,
                                "evidence": cell.evidence}),
                        )
                    })
                    .collect();
                json!({"standard": standard, "category": category, "control": control,
                    "clusters": clusters})
            })
            .collect();
        let when = match when {
            When::At(at) => json!({"at": at}),
            When::Range { since, until } => json!({"since": since, "until": until}),
        };
        Ok(json!({"when": when, "rows": rows,
            "evidence": evidence.into_values().collect::<Vec<_>>()}))
    }

    async fn one(&self, id: &str, visible: Option<&BTreeSet<String>>) -> Answer {
        let Ok(seq) = id.parse::<u64>() else {
            return Answer::error(
                400,
                "BadRequest",
                "The provided compliance event ID is invalid",
            );
        };
        match self.history.get(seq).await {
            Ok(Some(r)) if visible.is_none_or(|v| v.contains(&r.event.cluster)) => {
                Answer::json(200, &export::api_event(&r, visible.is_none()))
            }
            // Another cluster's event is as absent as a missing one would be, but says so.
            Ok(Some(_)) => Answer::error(403, "Forbidden", "Forbidden"),
            Ok(None) => Answer::error(
                404,
                "NotFound",
                "The requested compliance event was not found",
            ),
            Err(e) => store_failed(e),
        }
    }

    async fn export(&self) -> Answer {
        // Checkpoints first: one signed meanwhile would cover records the file lacks.
        let checkpoints = match self.history.checkpoints().await {
            Ok(c) => c,
            Err(e) => return store_failed(e),
        };
        let Some((_, pem)) = &self.public_key else {
            return Self::no_key();
        };
        let header = format!("{}\n", export::header_line(pem));
        Answer {
            code: 200,
            content_type: "application/x-ndjson",
            headers: vec![],
            body: vec![],
            stream: Some(export_stream(self.history.clone(), header, checkpoints)),
        }
    }

    async fn verify(&self) -> Answer {
        match self.verify_now().await {
            Ok(v) => Answer::json(200, &v.result),
            Err(e) => store_failed(e),
        }
    }

    /// Verifies the whole history now, and remembers the outcome as the last verification.
    pub async fn verify_now(&self) -> Result<LastVerification, HistoryError> {
        use std::sync::atomic::Ordering;
        // One at a time: each reads the whole history.
        if self.verifying.swap(true, Ordering::AcqRel) {
            return Err(HistoryError::Store(
                "a verification is already running; try again when it ends".into(),
            ));
        }
        let outcome = self.verify_once().await;
        self.verifying.store(false, Ordering::Release);
        outcome
    }

    async fn verify_once(&self) -> Result<LastVerification, HistoryError> {
        let time = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let anchor = match &self.anchor {
            AnchorAt::File(p) => read_anchor(p)?,
            AnchorAt::Given(c) => Some(c.clone()),
            AnchorAt::None => None,
        };
        let Some((key, _)) = &self.public_key else {
            return Err(HistoryError::Store(
                "the hub's public key is needed to verify: give --key PEM".into(),
            ));
        };
        let result = match self.history.verify(key, anchor).await? {
            Ok(v) => json!({"verified": true, "time": time, "records": v.records,
                "checkpoints": v.checkpoints, "signedThrough": v.signed_through}),
            Err(finding) => {
                json!({"verified": false, "time": time, "finding": finding.to_string(),
                "record": finding.record()})
            }
        };
        let last = LastVerification { time, result };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(last.clone());
        Ok(last)
    }
}

/// Records per page of an export: a page is held while it is sent, never the whole history.
const EXPORT_PAGE: u64 = 5_000;

enum ExportPart {
    Header(String),
    Records(Option<i64>),
    Checkpoints,
    Done,
}

/// The export as a stream: the header, the records page by page, then the checkpoints.
fn export_stream(history: History, header: String, checkpoints: Vec<Checkpoint>) -> BodyStream {
    let checkpoints = std::sync::Arc::new(checkpoints);
    Box::pin(futures::stream::unfold(
        ExportPart::Header(header),
        move |part| {
            let history = history.clone();
            let checkpoints = checkpoints.clone();
            async move {
                match part {
                    ExportPart::Header(h) => Some((Ok(h.into_bytes()), ExportPart::Records(None))),
                    ExportPart::Records(after) => match history.page(after, EXPORT_PAGE).await {
                        Ok((records, Some(next))) => {
                            let mut chunk = String::new();
                            for r in &records {
                                chunk.push_str(&export::record_line(r));
                                chunk.push('\n');
                            }
                            Some((Ok(chunk.into_bytes()), ExportPart::Records(Some(next))))
                        }
                        Ok((_, None)) => Some((Ok(vec![]), ExportPart::Checkpoints)),
                        Err(e) => Some((Err(e), ExportPart::Done)),
                    },
                    ExportPart::Checkpoints => {
                        let mut chunk = String::new();
                        for c in checkpoints.iter() {
                            chunk.push_str(&export::checkpoint_line(c));
                            chunk.push('\n');
                        }
                        Some((Ok(chunk.into_bytes()), ExportPart::Done))
                    }
                    ExportPart::Done => None,
                }
            }
        },
    ))
}

/// The checkpoint remembered in `path` (`None` when the file does not exist yet). A file that
/// exists but cannot be read is an error: verification does not go on without it.
pub fn read_anchor(path: &std::path::Path) -> Result<Option<super::Checkpoint>, HistoryError> {
    match std::fs::read_to_string(path) {
        Ok(text) => export::newest_checkpoint(&text).map_err(|e| {
            HistoryError::Store(format!("the remembered checkpoint is unreadable: {e}"))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HistoryError::Store(format!(
            "cannot read the remembered checkpoint: {}",
            e.kind()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_take_upstreams_names_and_refuse_the_rest() {
        let (f, p) = parse_query(
            Some("cluster.name=c1,c2&parent_policy.controls=AC-2&event.timestamp_after=2026-03-03T10:00:00Z&sort=cluster.name&direction=asc&page=2&per_page=5"),
            false,
        )
        .unwrap();
        assert_eq!(f.clusters, vec!["c1", "c2"]);
        assert_eq!(f.controls, vec!["AC-2"]);
        assert_eq!(f.since.as_deref(), Some("2026-03-03T10:00:01Z"));
        assert_eq!(
            (p.page, p.per_page, p.sort, p.descending),
            (2, 5, SortKey::Cluster, false)
        );
        assert_eq!(list("a\\,b,,c"), vec!["a,b", "c"]);
        for (q, why) in [
            ("nonsense=1", "invalid query argument"),
            ("per_page=101", "per_page must be"),
            ("page=0", "page must be"),
            ("direction=up", "direction must be"),
            ("sort=event.nope", "invalid sort"),
            ("event.timestamp_before=yesterday", "RFC 3339"),
            ("event.compliance=Maybe", "none of"),
            ("cluster.name=", "must have a value"),
        ] {
            let e = parse_query(Some(q), false).unwrap_err();
            assert!(e.contains(why), "{q}: {e}");
        }
        // CSV reports are not limited to 100 rows.
        assert_eq!(parse_query(None, true).unwrap().1.per_page, MAX_PER_PAGE);
    }

    #[tokio::test]
    async fn the_export_streams_every_record_page_by_page_and_verifies() {
        use futures::StreamExt;
        let history = History::Sqlite(std::sync::Arc::new(
            super::super::sqlite::SqliteHistory::in_memory().unwrap(),
        ));
        let n = EXPORT_PAGE * 2 + 7;
        let events: Vec<super::super::Event> = (0..n)
            .map(|i| super::super::Event {
                time: format!("2026-03-03T10:{:02}:{:02}Z", (i / 60) % 60, i % 60),
                cluster: format!("c{}", i % 3),
                policy: "policies/p".into(),
                state: if i % 2 == 0 {
                    "Compliant"
                } else {
                    "NonCompliant"
                }
                .into(),
                ..Default::default()
            })
            .collect();
        history.append(events).await.unwrap();
        let key = CheckpointKey::generate().unwrap();
        history
            .checkpoint(key.pkcs8().to_vec(), "2026-03-03T11:00:00Z".into())
            .await
            .unwrap();
        let api = ComplianceApi::new(history, &key);
        let answer = api.get("/api/v1/audit/export", None, None).await;
        assert_eq!(answer.code, 200);
        let mut body = vec![];
        let mut chunks = answer.stream.expect("the export is streamed");
        while let Some(chunk) = chunks.next().await {
            body.extend(chunk.unwrap());
        }
        let exported = export::read(std::str::from_utf8(&body).unwrap()).unwrap();
        assert_eq!(exported.records.len() as u64, n);
        assert_eq!(exported.checkpoints.len(), 1);
        let v = super::super::verify(&exported.records, &exported.checkpoints, key.public_key())
            .unwrap();
        assert_eq!((v.records, v.signed_through), (n, n));
    }
}
