//! The auditors' web view: plain HTML pages rendered by the hub from the same queries as the
//! API, so that a page and `garrison compliance report` show the same numbers.
//!
//! - `/ui/`: compliance by standard, then category, then control, at a time or over a range;
//! - `/ui/control`: one control, cluster by cluster, with the records behind each cell;
//! - `/ui/clusters`, `/ui/clusters/{name}`: per cluster;
//! - `/ui/policies`, `/ui/policies/{namespace}/{name}`: per policy, with its history timeline;
//! - `/ui/events/{id}`: one record;
//! - `/ui/verification`: the last verification of the chain, and a new one on request;
//! - `/ui/login`, `/ui/style.css`: the sign-in form and the stylesheet, served to anyone.
//!
//! No script runs anywhere: every page is a document, filters are GET forms, and downloads
//! are links to the API. Everything shown is escaped, for names, messages and annotations come
//! from clusters and policy authors, not from the auditor.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::Value;

use super::api::{Answer, ComplianceApi, parse_report_query};
use super::query::{Filter, Paging, SortKey, When};
use super::{HistoryError, Record};

/// Who looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The user's name.
    pub user: String,
    /// The clusters they may see (`None`: all).
    pub visible: Option<BTreeSet<String>>,
    /// Whether they came with a browser session, and so can sign out.
    pub session: bool,
}

/// Where the pages live.
pub const PREFIX: &str = "/ui";
/// Records per page of a timeline.
const TIMELINE_PAGE: u64 = 100;

/// Whether `path` is a page.
pub fn serves(path: &str) -> bool {
    path == PREFIX || path.starts_with("/ui/")
}

/// Whether `path` is served to anyone.
pub fn public(path: &str) -> bool {
    matches!(path, "/ui/login" | "/ui/style.css")
}

const STYLE: &str = "\
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#fafbfc}
header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.5em;background:#1d2430;color:#fff}
header a{color:#cfe0ff;text-decoration:none;margin-right:1em}
header .who{margin-left:auto;font-size:.9em}
header form{display:inline}
main{padding:1em 1.5em;max-width:80em}
table{border-collapse:collapse;margin:.5em 0 1.5em;background:#fff}
th,td{border:1px solid #d5dae1;padding:.3em .6em;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.state{font-weight:600}
.Compliant{color:#156c2f}.NonCompliant{color:#b3261e}.Pending{color:#8a5a00}.Disabled{color:#5f6368}
.bad{color:#b3261e}.good{color:#156c2f}
form.filters input{width:12em}
.msg{max-width:40em;white-space:pre-wrap;word-break:break-word}
ol.timeline{list-style:none;padding-left:0;border-left:3px solid #d5dae1}
ol.timeline li{margin:0 0 .7em;padding-left:1em}
code{font-size:.85em;word-break:break-all}
.error{background:#fde7e6;padding:.6em 1em;border-left:4px solid #b3261e}
";

/// Escapes text for HTML content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query string from pairs, empty values left out.
fn query(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .copied()
        .collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

/// A path segment, percent-encoded.
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Reverses [`segment`]; `None` when it is not valid UTF-8.
fn unsegment(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A comma-separated API list item, its commas escaped.
fn api_item(s: &str) -> String {
    s.replace(',', "\\,")
}

fn html(code: u16, body: String) -> Answer {
    Answer {
        code,
        content_type: "text/html; charset=utf-8",
        headers: vec![],
        body: body.into_bytes(),
        stream: None,
    }
}

fn redirect(to: &str) -> Answer {
    Answer {
        code: 303,
        content_type: "text/plain; charset=utf-8",
        headers: vec![("Location", to.to_string())],
        body: vec![],
        stream: None,
    }
}

fn state_class(s: &str) -> &'static str {
    match s {
        "Compliant" => "Compliant",
        "NonCompliant" => "NonCompliant",
        "Pending" => "Pending",
        "Disabled" => "Disabled",
        _ => "",
    }
}

fn state_cell(s: Option<&str>) -> String {
    match s {
        Some(s) => format!("<span class=\"state {}\">{}</span>", state_class(s), esc(s)),
        None => "<span class=\"state\">none recorded</span>".into(),
    }
}

/// The page around `body`.
fn page(viewer: &Viewer, title: &str, body: &str) -> String {
    let who = if viewer.session {
        format!(
            "Signed in as <span id=\"user\">{}</span> <form method=\"post\" action=\"/ui/logout\"><button type=\"submit\">Sign out</button></form>",
            esc(&viewer.user)
        )
    } else {
        format!("<span id=\"user\">{}</span>", esc(&viewer.user))
    };
    let scope = match &viewer.visible {
        None => String::new(),
        Some(v) if v.is_empty() => {
            "<p class=\"error\" id=\"scope\">You may see no cluster: nothing is shown. Ask for get on managedclusters.</p>".into()
        }
        Some(v) => format!(
            "<p id=\"scope\">You see {} cluster{}: {}.</p>",
            v.len(),
            if v.len() == 1 { "" } else { "s" },
            esc(&v.iter().cloned().collect::<Vec<_>>().join(", "))
        ),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t} · Garrison compliance</title><link rel=\"stylesheet\" href=\"/ui/style.css\"></head>\
<body><header><strong>Garrison compliance</strong><nav><a href=\"/ui/\">Controls</a><a href=\"/ui/clusters\">Clusters</a>\
<a href=\"/ui/policies\">Policies</a><a href=\"/ui/verification\">Verification</a></nav><span class=\"who\">{who}</span></header>\
<main><h1>{t}</h1>{scope}{body}</main></body></html>\n",
        t = esc(title)
    )
}

fn error_page(viewer: &Viewer, code: u16, title: &str, message: &str) -> Answer {
    html(
        code,
        page(
            viewer,
            title,
            &format!("<p class=\"error\" id=\"error\">{}</p>", esc(message)),
        ),
    )
}

/// The query pairs of a request, first value of each name.
fn pairs(q: Option<&str>) -> Result<BTreeMap<String, String>, String> {
    let all: Vec<(String, String)> = serde_urlencoded::from_str(q.unwrap_or(""))
        .map_err(|e| format!("malformed query string: {e}"))?;
    let mut out = BTreeMap::new();
    for (k, v) in all {
        out.entry(k).or_insert(v);
    }
    Ok(out)
}

/// The report selection of a request, empty fields (as forms send them) left out.
fn report_params(kept: &BTreeMap<String, String>) -> Result<(Filter, When), String> {
    let q = query(
        &kept
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    parse_report_query(Some(&q))
}

/// The time form's fields, kept from the request.
fn time_form(action: &str, q: &BTreeMap<String, String>, filters: bool) -> String {
    let field = |name: &str, label: &str, hint: &str| {
        format!(
            "<label>{label} <input name=\"{name}\" value=\"{}\" placeholder=\"{hint}\"></label> ",
            esc(q.get(name).map(String::as_str).unwrap_or(""))
        )
    };
    let mut out = format!("<form class=\"filters\" method=\"get\" action=\"{action}\">");
    if filters {
        out.push_str(&field("standard", "Standard", "any"));
        out.push_str(&field("category", "Category", "any"));
        out.push_str(&field("control", "Control", "any"));
        out.push_str(&field("cluster", "Cluster", "any"));
        out.push_str("<br>");
    }
    out.push_str(&field("at", "At", "empty for now, or 2026-03-03T12:00:00Z"));
    out.push_str("or ");
    out.push_str(&field("since", "From", "RFC 3339"));
    out.push_str(&field("until", "to", "empty for now"));
    out.push_str("<button type=\"submit\">Show</button></form>");
    out
}

fn when_line(when: &When) -> String {
    match when {
        When::At(at) => format!(
            "<p id=\"when\">State in force at <time>{}</time>.</p>",
            esc(at)
        ),
        When::Range { since, until } => format!(
            "<p id=\"when\">Changes from <time>{}</time> to <time>{}</time>; state in force at the end.</p>",
            esc(since),
            esc(until)
        ),
    }
}

/// Counts of a report row's cells by state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    compliant: usize,
    noncompliant: usize,
    pending: usize,
    other: usize,
    ever_noncompliant: usize,
}

impl Counts {
    fn add(&mut self, state: Option<&str>, ever: bool) {
        match state {
            Some("Compliant") => self.compliant += 1,
            Some("NonCompliant") => self.noncompliant += 1,
            Some("Pending") => self.pending += 1,
            _ => self.other += 1,
        }
        if ever {
            self.ever_noncompliant += 1;
        }
    }

    fn total(&self) -> usize {
        self.compliant + self.noncompliant + self.pending + self.other
    }

    fn cells(&self, range: bool) -> String {
        let mut out = String::new();
        for (class, n) in [
            ("compliant", self.compliant),
            ("noncompliant", self.noncompliant),
            ("pending", self.pending),
            ("other", self.other),
            ("total", self.total()),
        ] {
            let _ = write!(out, "<td class=\"n {class}\">{n}</td>");
        }
        if range {
            let _ = write!(out, "<td class=\"n ever\">{}</td>", self.ever_noncompliant);
        }
        out
    }

    /// The headings; `counted` names what the total counts (clusters, or templates).
    fn heads(range: bool, counted: &str) -> String {
        format!(
            "<th>Compliant</th><th>Non-compliant</th><th>Pending</th><th title=\"templates removed from their policy or cluster (Disabled), or a state Garrison does not know\">Disabled or other</th><th>{counted}</th>{}",
            if range {
                "<th>Ever non-compliant</th>"
            } else {
                ""
            }
        )
    }
}

fn row_counts(row: &Value) -> Counts {
    let mut c = Counts::default();
    if let Some(cells) = row["clusters"].as_object() {
        for cell in cells.values() {
            c.add(
                cell["state"].as_str(),
                cell["everNonCompliant"].as_bool().unwrap_or(false),
            );
        }
    }
    c
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The `at`/`since`/`until` pairs of `when`, to carry into links.
fn when_pairs(when: &When) -> Vec<(&'static str, String)> {
    match when {
        When::At(at) => vec![("at", at.clone())],
        When::Range { since, until } => vec![("since", since.clone()), ("until", until.clone())],
    }
}

fn link_query(base: &[(&str, &str)], when: &When) -> String {
    let w = when_pairs(when);
    let mut all: Vec<(&str, &str)> = base.to_vec();
    all.extend(w.iter().map(|(k, v)| (*k, v.as_str())));
    query(&all)
}

fn evidence_table(evidence: &[&Value]) -> String {
    let mut out = String::from(
        "<table id=\"evidence\"><thead><tr><th>Record</th><th>Time</th><th>Cluster</th><th>Policy</th><th>Template</th><th>State</th><th>Message</th></tr></thead><tbody>",
    );
    for e in evidence {
        let id = e["id"].as_u64().unwrap_or_default();
        let policy = format!(
            "{}/{}",
            text(&e["parent_policy"]["namespace"]),
            text(&e["parent_policy"]["name"])
        );
        let _ = write!(
            out,
            "<tr data-id=\"{id}\"><td><a href=\"/ui/events/{id}\">#{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
            esc(text(&e["event"]["timestamp"])),
            esc(text(&e["cluster"]["name"])),
            esc(&policy),
            esc(text(&e["policy"]["name"])),
            state_cell(e["event"]["compliance"].as_str()),
            esc(text(&e["event"]["message"])),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// Groups in-force records by `key`, counting their states.
fn group_counts<'a>(
    records: &'a [Record],
    key: impl Fn(&'a Record) -> &'a str,
) -> BTreeMap<&'a str, Counts> {
    let mut out: BTreeMap<&str, Counts> = BTreeMap::new();
    for r in records {
        out.entry(key(r))
            .or_default()
            .add(Some(r.event.state.as_str()), false);
    }
    out
}

impl ComplianceApi {
    /// Answers a GET of page `path?query` for `viewer`.
    pub async fn page(&self, path: &str, q: Option<&str>, viewer: &Viewer) -> Answer {
        match path {
            "/ui/style.css" => {
                return Answer {
                    code: 200,
                    content_type: "text/css; charset=utf-8",
                    headers: vec![("Cache-Control", "max-age=300".into())],
                    body: STYLE.as_bytes().to_vec(),
                    stream: None,
                };
            }
            "/ui/login" => return self.login_page(q, viewer),
            "/ui" => return redirect("/ui/"),
            _ => {}
        }
        let answer = match path.trim_end_matches('/') {
            "/ui" => self.controls(q, viewer).await,
            "/ui/control" => self.control(q, viewer).await,
            "/ui/clusters" => self.clusters(q, viewer).await,
            "/ui/policies" => self.policies(q, viewer).await,
            "/ui/verification" => self.verification(q, viewer).await,
            p => {
                if let Some(name) = p.strip_prefix("/ui/clusters/") {
                    self.cluster(name, q, viewer).await
                } else if let Some(rest) = p.strip_prefix("/ui/policies/") {
                    self.policy(rest, q, viewer).await
                } else if let Some(id) = p.strip_prefix("/ui/events/") {
                    self.event(id, viewer).await
                } else {
                    Ok(error_page(
                        viewer,
                        404,
                        "Not found",
                        "There is no such page.",
                    ))
                }
            }
        };
        answer.unwrap_or_else(|e| {
            error_page(
                viewer,
                503,
                "History unavailable",
                &format!("The compliance history is unavailable: {e}"),
            )
        })
    }

    fn login_page(&self, q: Option<&str>, viewer: &Viewer) -> Answer {
        let error = pairs(q)
            .ok()
            .and_then(|p| p.get("error").cloned())
            .map(|e| match e.as_str() {
                "refused" => {
                    "That token was refused: it is invalid, expired, or its account was removed."
                }
                "expired" => "Your session ended: the token expired or was revoked. Sign in again.",
                _ => "Paste the whole token, as printed by garrison auditor token.",
            });
        let signed_in = if viewer.session {
            format!(
                "<p>Signed in as {}. <a href=\"/ui/\">Go to the controls</a>.</p>",
                esc(&viewer.user)
            )
        } else {
            String::new()
        };
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · Garrison compliance</title>\
<link rel=\"stylesheet\" href=\"/ui/style.css\"></head><body><header><strong>Garrison compliance</strong></header><main>\
<h1>Sign in</h1>{signed_in}{}<form method=\"post\" action=\"/ui/login\"><p><label for=\"token\">Token</label><br>\
<textarea id=\"token\" name=\"token\" rows=\"6\" cols=\"70\" autocomplete=\"off\" spellcheck=\"false\" required></textarea></p>\
<p><button type=\"submit\" id=\"sign-in\">Sign in</button></p></form>\
<p>Get a read-only token from an administrator: <code>garrison auditor token --ttl 8h</code>. \
The session ends when the token expires.</p></main></body></html>\n",
            error
                .map(|e| format!("<p class=\"error\" id=\"error\">{}</p>", esc(e)))
                .unwrap_or_default()
        );
        html(200, body)
    }

    fn hidden_cluster(viewer: &Viewer, f: &Filter) -> Option<Answer> {
        let v = viewer.visible.as_ref()?;
        let c = f.clusters.iter().find(|c| !v.contains(*c))?;
        Some(error_page(
            viewer,
            403,
            "Forbidden",
            &format!("You may not see cluster {c}."),
        ))
    }

    /// `/ui/`: every control, by standard and category.
    async fn controls(&self, q: Option<&str>, viewer: &Viewer) -> Result<Answer, HistoryError> {
        let kept = match pairs(q) {
            Ok(k) => k,
            Err(e) => return Ok(error_page(viewer, 400, "Compliance by control", &e)),
        };
        let (f, when) = match report_params(&kept) {
            Ok(x) => x,
            Err(e) => return Ok(error_page(viewer, 400, "Compliance by control", &e)),
        };
        if let Some(a) = Self::hidden_cluster(viewer, &f) {
            return Ok(a);
        }
        let f = Filter {
            visible: viewer.visible.clone(),
            ..f
        };
        let report = self.compliance_report(&f, &when).await?;
        let range = matches!(when, When::Range { .. });
        let rows = report["rows"].as_array().cloned().unwrap_or_default();
        let mut body = time_form("/ui/", &kept, true);
        body.push_str(&when_line(&when));
        // Pinned to the page's time, so that the download is what the page shows.
        let selection: Vec<(&str, &str)> = kept
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "at" | "since" | "until"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let report_query = link_query(&selection, &when);
        let _ = write!(
            body,
            "<p>Download: <a id=\"download-json\" href=\"/api/v1/reports/compliance?{}\">this report (JSON)</a> · \
<a id=\"download-csv\" href=\"/api/v1/reports/compliance-events?{}\">the records (CSV)</a></p>",
            esc(&report_query),
            esc(&events_query(&f, &when))
        );
        if rows.is_empty() {
            body.push_str("<p id=\"empty\">No compliance was recorded for this selection.</p>");
        }
        let cluster_filter = kept.get("cluster").map(String::as_str).unwrap_or("");
        let policy_filter = kept.get("policy").map(String::as_str).unwrap_or("");
        // Standard, then category, then control.
        let mut grouped: BTreeMap<&str, BTreeMap<&str, Vec<&Value>>> = BTreeMap::new();
        for row in &rows {
            grouped
                .entry(text(&row["standard"]))
                .or_default()
                .entry(text(&row["category"]))
                .or_default()
                .push(row);
        }
        for (standard, categories) in grouped {
            let mut total = Counts::default();
            let mut section = String::new();
            for (category, rows) in categories {
                let _ = write!(
                    section,
                    "<h3>{}</h3><table class=\"report\"><thead><tr><th>Control</th>{}</tr></thead><tbody>",
                    esc(if category.is_empty() {
                        "(no category)"
                    } else {
                        category
                    }),
                    Counts::heads(range, "Clusters")
                );
                for row in rows {
                    let control = text(&row["control"]);
                    let c = row_counts(row);
                    total.compliant += c.compliant;
                    total.noncompliant += c.noncompliant;
                    total.pending += c.pending;
                    total.other += c.other;
                    total.ever_noncompliant += c.ever_noncompliant;
                    let href = format!(
                        "/ui/control?{}",
                        link_query(
                            &[
                                ("standard", standard),
                                ("category", category),
                                ("control", control),
                                ("cluster", cluster_filter),
                                ("policy", policy_filter),
                            ],
                            &when
                        )
                    );
                    let _ = write!(
                        section,
                        "<tr data-standard=\"{}\" data-category=\"{}\" data-control=\"{}\"><td><a href=\"{}\">{}</a></td>{}</tr>",
                        esc(standard),
                        esc(category),
                        esc(control),
                        esc(&href),
                        esc(if control.is_empty() {
                            "(no control)"
                        } else {
                            control
                        }),
                        c.cells(range)
                    );
                }
                section.push_str("</tbody></table>");
            }
            let _ = write!(
                body,
                "<section class=\"standard\" data-standard=\"{}\"><h2>{}</h2><p class=\"summary\">{} of {} control results compliant; {} non-compliant.</p>{section}</section>",
                esc(standard),
                esc(if standard.is_empty() {
                    "(no standard)"
                } else {
                    standard
                }),
                total.compliant,
                total.total(),
                total.noncompliant
            );
        }
        Ok(html(200, page(viewer, "Compliance by control", &body)))
    }

    /// `/ui/control`: one control, cluster by cluster, with the records behind each cell.
    async fn control(&self, q: Option<&str>, viewer: &Viewer) -> Result<Answer, HistoryError> {
        let kept = match pairs(q) {
            Ok(k) => k,
            Err(e) => return Ok(error_page(viewer, 400, "Control", &e)),
        };
        let (f, when) = match report_params(&kept) {
            Ok(x) => x,
            Err(e) => return Ok(error_page(viewer, 400, "Control", &e)),
        };
        if let Some(a) = Self::hidden_cluster(viewer, &f) {
            return Ok(a);
        }
        let want = |k: &str| kept.get(k).cloned().unwrap_or_default();
        let (standard, category, control) = (want("standard"), want("category"), want("control"));
        // The row is named exactly, commas and all.
        let exact = |v: &str| {
            if v.is_empty() {
                vec![]
            } else {
                vec![v.to_string()]
            }
        };
        let f = Filter {
            visible: viewer.visible.clone(),
            standards: exact(&standard),
            categories: exact(&category),
            controls: exact(&control),
            ..f
        };
        let report = self.compliance_report(&f, &when).await?;
        let row = report["rows"].as_array().and_then(|rows| {
            rows.iter().find(|r| {
                text(&r["standard"]) == standard
                    && text(&r["category"]) == category
                    && text(&r["control"]) == control
            })
        });
        let title = if control.is_empty() {
            "(no control)".to_string()
        } else {
            control.clone()
        };
        let range = matches!(when, When::Range { .. });
        let mut body = format!(
            "<p>Standard: {} · Category: {}</p>",
            esc(&standard),
            esc(&category)
        );
        body.push_str(&time_form("/ui/control", &kept, true));
        body.push_str(&when_line(&when));
        let Some(row) = row else {
            body.push_str("<p id=\"empty\">No compliance was recorded for this control.</p>");
            return Ok(html(200, page(viewer, &title, &body)));
        };
        let _ = write!(
            body,
            "<table id=\"clusters\"><thead><tr><th>Cluster</th><th>State</th>{}<th>Records</th></tr></thead><tbody>",
            if range {
                "<th>Ever non-compliant</th>"
            } else {
                ""
            }
        );
        let mut ids = BTreeSet::new();
        if let Some(cells) = row["clusters"].as_object() {
            for (cluster, cell) in cells {
                let evidence: Vec<u64> = cell["evidence"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                ids.extend(evidence.iter().copied());
                let links: Vec<String> = evidence
                    .iter()
                    .map(|id| format!("<a href=\"/ui/events/{id}\">#{id}</a>"))
                    .collect();
                let ever = if range {
                    format!(
                        "<td>{}</td>",
                        if cell["everNonCompliant"].as_bool() == Some(true) {
                            "yes"
                        } else {
                            "no"
                        }
                    )
                } else {
                    String::new()
                };
                let _ = write!(
                    body,
                    "<tr data-cluster=\"{}\"><td><a href=\"/ui/clusters/{}?{}\">{}</a></td><td class=\"cell-state\">{}</td>{ever}<td>{}</td></tr>",
                    esc(cluster),
                    esc(&segment(cluster)),
                    esc(&query(&[("at", at_of(&when))])),
                    esc(cluster),
                    state_cell(cell["state"].as_str()),
                    links.join(" ")
                );
            }
        }
        body.push_str("</tbody></table><h2>Records behind these cells</h2>");
        let evidence: Vec<&Value> = report["evidence"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["id"].as_u64().is_some_and(|id| ids.contains(&id)))
                    .collect()
            })
            .unwrap_or_default();
        body.push_str(&evidence_table(&evidence));
        Ok(html(200, page(viewer, &title, &body)))
    }

    /// The records in force at the request's time, and that time.
    async fn in_force(
        &self,
        q: &BTreeMap<String, String>,
        f: Filter,
    ) -> Result<Result<(Vec<Record>, String), String>, HistoryError> {
        let at = match q.get("at").filter(|s| !s.is_empty()) {
            Some(t) => match super::query::normalise_time(t) {
                Ok(t) => t,
                Err(e) => return Ok(Err(e)),
            },
            None => jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        };
        Ok(Ok((self.history.in_force_at(f, at.clone()).await?, at)))
    }

    fn at_form(action: &str, q: &BTreeMap<String, String>) -> String {
        format!(
            "<form class=\"filters\" method=\"get\" action=\"{}\"><label>At <input name=\"at\" value=\"{}\" placeholder=\"empty for now, or 2026-03-03T12:00:00Z\"></label> <button type=\"submit\">Show</button></form>",
            esc(action),
            esc(q.get("at").map(String::as_str).unwrap_or(""))
        )
    }

    /// `/ui/clusters`: each visible cluster's templates by state.
    async fn clusters(&self, q: Option<&str>, viewer: &Viewer) -> Result<Answer, HistoryError> {
        let kept = pairs(q).unwrap_or_default();
        let f = Filter {
            visible: viewer.visible.clone(),
            ..Filter::default()
        };
        let (records, at) = match self.in_force(&kept, f).await? {
            Ok(x) => x,
            Err(e) => return Ok(error_page(viewer, 400, "Clusters", &e)),
        };
        let mut body = Self::at_form("/ui/clusters", &kept);
        let _ = write!(
            body,
            "<p id=\"when\">Policy templates by state at <time>{}</time>.</p>",
            esc(&at)
        );
        let groups = group_counts(&records, |r| r.event.cluster.as_str());
        if groups.is_empty() {
            body.push_str("<p id=\"empty\">No compliance was recorded.</p>");
        } else {
            let _ = write!(
                body,
                "<table id=\"clusters\"><thead><tr><th>Cluster</th>{}</tr></thead><tbody>",
                Counts::heads(false, "Templates")
            );
            for (cluster, c) in groups {
                let _ = write!(
                    body,
                    "<tr data-cluster=\"{}\"><td><a href=\"/ui/clusters/{}?{}\">{}</a></td>{}</tr>",
                    esc(cluster),
                    esc(&segment(cluster)),
                    esc(&query(&[("at", at.as_str())])),
                    esc(cluster),
                    c.cells(false)
                );
            }
            body.push_str("</tbody></table>");
        }
        Ok(html(200, page(viewer, "Clusters", &body)))
    }

    /// `/ui/clusters/{name}`: every template on one cluster.
    async fn cluster(
        &self,
        name: &str,
        q: Option<&str>,
        viewer: &Viewer,
    ) -> Result<Answer, HistoryError> {
        let Some(name) = unsegment(name) else {
            return Ok(error_page(
                viewer,
                400,
                "Cluster",
                "The cluster name is malformed.",
            ));
        };
        if viewer.visible.as_ref().is_some_and(|v| !v.contains(&name)) {
            return Ok(error_page(
                viewer,
                403,
                "Forbidden",
                &format!("You may not see cluster {name}."),
            ));
        }
        let kept = pairs(q).unwrap_or_default();
        let f = Filter {
            visible: viewer.visible.clone(),
            clusters: vec![name.clone()],
            ..Filter::default()
        };
        let (records, at) = match self.in_force(&kept, f).await? {
            Ok(x) => x,
            Err(e) => return Ok(error_page(viewer, 400, &name, &e)),
        };
        let mut body = Self::at_form(&format!("/ui/clusters/{}", segment(&name)), &kept);
        let _ = write!(
            body,
            "<p id=\"when\">State in force at <time>{}</time>.</p>\
<p>Download: <a href=\"/api/v1/reports/compliance-events?{}\">this cluster's records (CSV)</a></p>",
            esc(&at),
            esc(&query(&[("cluster.name", &api_item(&name))]))
        );
        if records.is_empty() {
            body.push_str("<p id=\"empty\">No compliance was recorded for this cluster.</p>");
        } else {
            body.push_str("<table id=\"templates\"><thead><tr><th>Policy</th><th>Template</th><th>State</th><th>Since</th><th>Controls</th><th>Message</th><th>Record</th></tr></thead><tbody>");
            for r in &records {
                let e = &r.event;
                let _ = write!(
                    body,
                    "<tr data-policy=\"{}\"><td><a href=\"/ui/policies/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"msg\">{}</td><td><a href=\"/ui/events/{seq}\">#{seq}</a></td></tr>",
                    esc(&e.policy),
                    esc(&policy_path(&e.policy)),
                    esc(&e.policy),
                    esc(&e.template),
                    state_cell(Some(&e.state)),
                    esc(&e.time),
                    esc(&e.controls.join(", ")),
                    esc(&e.message),
                    seq = r.seq
                );
            }
            body.push_str("</tbody></table>");
        }
        Ok(html(200, page(viewer, &format!("Cluster {name}"), &body)))
    }

    /// `/ui/policies`: each root policy's clusters by state.
    async fn policies(&self, q: Option<&str>, viewer: &Viewer) -> Result<Answer, HistoryError> {
        let kept = pairs(q).unwrap_or_default();
        let f = Filter {
            visible: viewer.visible.clone(),
            ..Filter::default()
        };
        let (records, at) = match self.in_force(&kept, f).await? {
            Ok(x) => x,
            Err(e) => return Ok(error_page(viewer, 400, "Policies", &e)),
        };
        let mut body = Self::at_form("/ui/policies", &kept);
        let _ = write!(
            body,
            "<p id=\"when\">Policy templates on clusters by state at <time>{}</time>.</p>",
            esc(&at)
        );
        let groups = group_counts(&records, |r| r.event.policy.as_str());
        let mut controls: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for r in &records {
            controls
                .entry(r.event.policy.as_str())
                .or_default()
                .extend(r.event.controls.iter().map(String::as_str));
        }
        if groups.is_empty() {
            body.push_str("<p id=\"empty\">No compliance was recorded.</p>");
        } else {
            let _ = write!(
                body,
                "<table id=\"policies\"><thead><tr><th>Policy</th><th>Controls</th>{}</tr></thead><tbody>",
                Counts::heads(false, "Templates")
            );
            for (policy, c) in groups {
                let tags: Vec<&str> = controls
                    .get(policy)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                let _ = write!(
                    body,
                    "<tr data-policy=\"{}\"><td><a href=\"/ui/policies/{}\">{}</a></td><td>{}</td>{}</tr>",
                    esc(policy),
                    esc(&policy_path(policy)),
                    esc(policy),
                    esc(&tags.join(", ")),
                    c.cells(false)
                );
            }
            body.push_str("</tbody></table>");
        }
        Ok(html(200, page(viewer, "Policies", &body)))
    }

    /// `/ui/policies/{namespace}/{name}`: the policy's history, newest first.
    async fn policy(
        &self,
        rest: &str,
        q: Option<&str>,
        viewer: &Viewer,
    ) -> Result<Answer, HistoryError> {
        let parsed = rest
            .split_once('/')
            .and_then(|(ns, name)| Some((unsegment(ns)?, unsegment(name)?)));
        let Some((ns, name)) = parsed.filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
        else {
            return Ok(error_page(
                viewer,
                404,
                "Not found",
                "A policy page is /ui/policies/NAMESPACE/NAME.",
            ));
        };
        let kept = pairs(q).unwrap_or_default();
        let cluster = kept.get("cluster").cloned().filter(|c| !c.is_empty());
        let policy = format!("{ns}/{name}");
        let f = Filter {
            visible: viewer.visible.clone(),
            policies: vec![policy.clone()],
            clusters: cluster.iter().cloned().collect(),
            ..Filter::default()
        };
        if let Some(a) = Self::hidden_cluster(viewer, &f) {
            return Ok(a);
        }
        let page_no = match kept.get("page").map(|p| p.parse::<u64>()) {
            None => 1,
            Some(Ok(n)) if n >= 1 => n,
            Some(_) => {
                return Ok(error_page(
                    viewer,
                    400,
                    &policy,
                    "page must be a positive integer",
                ));
            }
        };
        let paging = Paging {
            page: page_no,
            per_page: TIMELINE_PAGE,
            sort: SortKey::Time,
            descending: true,
        };
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let current = self.history.in_force_at(f.clone(), now).await?;
        let page_of = self.history.query(f, paging).await?;
        let mut body = format!(
            "<form class=\"filters\" method=\"get\" action=\"/ui/policies/{}\"><label>Cluster <input name=\"cluster\" value=\"{}\" placeholder=\"all\"></label> <button type=\"submit\">Show</button></form>",
            esc(&policy_path(&policy)),
            esc(cluster.as_deref().unwrap_or(""))
        );
        let _ = write!(
            body,
            "<p>Download: <a href=\"/api/v1/reports/compliance-events?{}\">this policy's records (CSV)</a></p>",
            esc(&query(&[
                ("parent_policy.namespace", &api_item(&ns)),
                ("parent_policy.name", &api_item(&name)),
                (
                    "cluster.name",
                    &cluster.as_deref().map(api_item).unwrap_or_default()
                ),
            ]))
        );
        if !current.is_empty() {
            body.push_str("<h2>Now</h2><table id=\"current\"><thead><tr><th>Cluster</th><th>Template</th><th>State</th><th>Since</th></tr></thead><tbody>");
            for r in &current {
                let e = &r.event;
                let _ = write!(
                    body,
                    "<tr data-cluster=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&e.cluster),
                    esc(&e.cluster),
                    esc(&e.template),
                    state_cell(Some(&e.state)),
                    esc(&e.time)
                );
            }
            body.push_str("</tbody></table>");
        }
        let _ = write!(
            body,
            "<h2>History</h2><p id=\"count\">{} change{} recorded{}.</p><ol class=\"timeline\" id=\"timeline\">",
            page_of.total,
            if page_of.total == 1 { "" } else { "s" },
            if page_of.pages() > 1 {
                format!("; page {} of {}", page_of.page, page_of.pages())
            } else {
                String::new()
            }
        );
        for r in &page_of.records {
            let e = &r.event;
            let _ = write!(
                body,
                "<li data-id=\"{seq}\" data-cluster=\"{}\" data-state=\"{}\"><time>{}</time> · {} · {} became {} <a href=\"/ui/events/{seq}\">#{seq}</a><div class=\"msg\">{}</div></li>",
                esc(&e.cluster),
                esc(&e.state),
                esc(&e.time),
                esc(&e.cluster),
                esc(&e.template),
                state_cell(Some(&e.state)),
                esc(&e.message),
                seq = r.seq
            );
        }
        body.push_str("</ol>");
        let nav = |n: u64, label: &str| {
            format!(
                "<a href=\"/ui/policies/{}?{}\">{label}</a> ",
                esc(&policy_path(&policy)),
                esc(&query(&[
                    ("cluster", cluster.as_deref().unwrap_or("")),
                    ("page", &n.to_string())
                ]))
            )
        };
        if page_of.page > 1 {
            body.push_str(&nav(page_of.page - 1, "Newer"));
        }
        if page_of.page < page_of.pages() {
            body.push_str(&nav(page_of.page + 1, "Older"));
        }
        Ok(html(200, page(viewer, &format!("Policy {policy}"), &body)))
    }

    /// `/ui/events/{id}`: one record.
    async fn event(&self, id: &str, viewer: &Viewer) -> Result<Answer, HistoryError> {
        let Ok(seq) = id.parse::<u64>() else {
            return Ok(error_page(
                viewer,
                400,
                "Record",
                "A record is named by its number.",
            ));
        };
        let r = match self.history.get(seq).await? {
            Some(r)
                if viewer
                    .visible
                    .as_ref()
                    .is_none_or(|v| v.contains(&r.event.cluster)) =>
            {
                r
            }
            Some(_) => {
                return Ok(error_page(
                    viewer,
                    403,
                    "Forbidden",
                    "You may not see this record's cluster.",
                ));
            }
            None => {
                return Ok(error_page(
                    viewer,
                    404,
                    "Not found",
                    &format!("There is no record {seq}."),
                ));
            }
        };
        let e = &r.event;
        let mut rows: Vec<(&str, String)> = vec![
            ("Time", esc(&e.time)),
            (
                "Cluster",
                format!(
                    "<a href=\"/ui/clusters/{}\">{}</a>",
                    esc(&segment(&e.cluster)),
                    esc(&e.cluster)
                ),
            ),
            (
                "Policy",
                format!(
                    "<a href=\"/ui/policies/{}\">{}</a>",
                    esc(&policy_path(&e.policy)),
                    esc(&e.policy)
                ),
            ),
            ("Replicated policy", esc(&e.replica)),
            ("Template", esc(&e.template)),
            ("State", state_cell(Some(&e.state))),
            ("Severity", esc(&e.severity)),
            (
                "Message",
                format!("<span class=\"msg\">{}</span>", esc(&e.message)),
            ),
            ("Standards", esc(&e.standards.join(", "))),
            ("Categories", esc(&e.categories.join(", "))),
            ("Controls", esc(&e.controls.join(", "))),
        ];
        // The chain links only mean something to who may verify the whole chain.
        if viewer.visible.is_none() {
            rows.push(("Hash", format!("<code>{}</code>", esc(&r.hash))));
            rows.push(("Previous hash", format!("<code>{}</code>", esc(&r.prev))));
        }
        let mut body = String::from("<table id=\"record\"><tbody>");
        for (k, v) in rows {
            let _ = write!(body, "<tr><th>{k}</th><td>{v}</td></tr>");
        }
        body.push_str("</tbody></table>");
        Ok(html(200, page(viewer, &format!("Record #{seq}"), &body)))
    }

    /// `/ui/verification`: the last verification; `?run=1` verifies now.
    async fn verification(&self, q: Option<&str>, viewer: &Viewer) -> Result<Answer, HistoryError> {
        let title = "Verification";
        if viewer.visible.is_some() {
            return Ok(error_page(
                viewer,
                403,
                title,
                "You may not verify the history: it covers every cluster, so it needs get on all managedclusters.",
            ));
        }
        let run = pairs(q)
            .unwrap_or_default()
            .get("run")
            .is_some_and(|v| v == "1");
        let last = if run {
            Some(self.verify_now().await?)
        } else {
            self.last_verification()
        };
        let mut body = String::new();
        match &last {
            None => body.push_str(
                "<p id=\"verification\">The history was not verified since the hub started.</p>",
            ),
            Some(l) if l.result["verified"] == true => {
                let _ = write!(
                    body,
                    "<p id=\"verification\" class=\"good\">Verified at <time>{}</time>: {} records, {} checkpoints, signed through record {}.</p>",
                    esc(&l.time),
                    l.result["records"],
                    l.result["checkpoints"],
                    l.result["signedThrough"]
                );
            }
            Some(l) => {
                let _ = write!(
                    body,
                    "<p id=\"verification\" class=\"bad\">Verification failed at <time>{}</time>: {}.</p>",
                    esc(&l.time),
                    esc(text(&l.result["finding"]))
                );
            }
        }
        body.push_str(
            "<form method=\"get\" action=\"/ui/verification\"><input type=\"hidden\" name=\"run\" value=\"1\"><button type=\"submit\" id=\"verify-now\">Verify now</button></form>\
<p>Every record carries the hash of the one before, and the hub signs the head at intervals. \
To verify offline, download <a href=\"/api/v1/audit/export\">the whole history</a> and \
<a href=\"/api/v1/audit/public-key\">the hub's public key</a>, and run \
<code>garrison audit verify --from FILE --key PEM</code>; obtain the key from the hub's operator, \
not only from this page.</p>",
        );
        Ok(html(200, page(viewer, title, &body)))
    }
}

/// The instant a selection shows: its time, or its range's end.
fn at_of(when: &When) -> &str {
    match when {
        When::At(at) => at,
        When::Range { until, .. } => until,
    }
}

/// `ns/name` as a path under `/ui/policies/`.
fn policy_path(policy: &str) -> String {
    let (ns, name) = policy.split_once('/').unwrap_or(("", policy));
    format!("{}/{}", segment(ns), segment(name))
}

/// The API query of the records behind a report selection.
fn events_query(f: &Filter, when: &When) -> String {
    let join = |v: &[String]| v.iter().map(|s| api_item(s)).collect::<Vec<_>>().join(",");
    let (standards, categories, controls, clusters) = (
        join(&f.standards),
        join(&f.categories),
        join(&f.controls),
        join(&f.clusters),
    );
    let mut pairs = vec![
        ("parent_policy.standards", standards.as_str()),
        ("parent_policy.categories", categories.as_str()),
        ("parent_policy.controls", controls.as_str()),
        ("cluster.name", clusters.as_str()),
    ];
    let (since, until) = match when {
        When::At(at) => (None, at.as_str()),
        When::Range { since, until } => (Some(since.as_str()), until.as_str()),
    };
    // The API compares strictly; a second beyond includes the instant itself.
    let shifted = |t: &str, by: i64| {
        t.parse::<jiff::Timestamp>()
            .ok()
            .and_then(|t| t.checked_add(jiff::SignedDuration::from_secs(by)).ok())
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    let before = shifted(until, 1);
    let after = since.map(|s| shifted(s, -1)).unwrap_or_default();
    pairs.push(("event.timestamp_before", &before));
    pairs.push(("event.timestamp_after", &after));
    query(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_clusters_and_policy_authors_is_escaped() {
        assert_eq!(
            esc("<img src=x onerror=\"alert('1')\">&"),
            "&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;"
        );
        let viewer = Viewer {
            user: "<b>eve</b>".into(),
            visible: Some(["c<1>".to_string()].into()),
            session: true,
        };
        let html = page(&viewer, "<script>x</script>", "");
        assert!(!html.contains("<b>eve"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("c&lt;1&gt;"), "{html}");
    }

    #[test]
    fn path_segments_round_trip_and_refuse_what_is_not_text() {
        for s in ["c1", "a/b", "x y?#%", "é"] {
            assert_eq!(unsegment(&segment(s)).as_deref(), Some(s));
        }
        assert!(!segment("a/b").contains('/'));
        assert_eq!(unsegment("%ff"), None);
        assert_eq!(unsegment("%4"), None);
    }

    #[test]
    fn counts_follow_the_cells() {
        let row = serde_json::json!({"clusters": {
            "c1": {"state": "Compliant", "everNonCompliant": true},
            "c2": {"state": "NonCompliant", "everNonCompliant": true},
            "c3": {"state": null, "everNonCompliant": false},
            "c4": {"state": "Pending", "everNonCompliant": false}}});
        let c = row_counts(&row);
        assert_eq!(
            (
                c.compliant,
                c.noncompliant,
                c.pending,
                c.other,
                c.total(),
                c.ever_noncompliant
            ),
            (1, 1, 1, 1, 4, 2)
        );
        assert!(c.cells(true).contains("<td class=\"n ever\">2</td>"));
    }

    #[test]
    fn the_records_link_covers_the_report_instant() {
        let f = Filter {
            controls: vec!["AC-2".into(), "a,b".into()],
            ..Filter::default()
        };
        let q = events_query(&f, &When::At("2026-03-03T10:00:00Z".into()));
        assert!(q.contains("parent_policy.controls=AC-2%2Ca%5C%2Cb"), "{q}");
        assert!(
            q.contains("event.timestamp_before=2026-03-03T10%3A00%3A01Z"),
            "{q}"
        );
        assert!(!q.contains("cluster.name"), "{q}");
        assert!(!q.contains("timestamp_after"), "{q}");
        let q = events_query(
            &f,
            &When::Range {
                since: "2026-03-01T00:00:00Z".into(),
                until: "2026-03-31T00:00:00Z".into(),
            },
        );
        assert!(
            q.contains("event.timestamp_after=2026-02-28T23%3A59%3A59Z"),
            "{q}"
        );
    }
}
