//! The compliance history in PostgreSQL, for long retention at fleet scale: the same records,
//! queries and verification as the embedded store. Triggers refuse updates, deletes and
//! truncation; appends take a table lock so that several hub replicas keep one chain.

use tokio_postgres::{Client, NoTls, Row, types::ToSql};

use super::query::{Filter, MAX_PER_PAGE, Page, Paging, SortKey};
use super::{Checkpoint, Event, HistoryError, Record};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS compliance_records (
    seq BIGINT PRIMARY KEY CHECK (seq > 0),
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    time TEXT NOT NULL,
    cluster TEXT NOT NULL,
    policy TEXT NOT NULL,
    replica TEXT NOT NULL,
    template TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL,
    severity TEXT NOT NULL,
    standards TEXT[] NOT NULL,
    categories TEXT[] NOT NULL,
    controls TEXT[] NOT NULL
);
CREATE INDEX IF NOT EXISTS compliance_records_by_time ON compliance_records (time, seq);
CREATE INDEX IF NOT EXISTS compliance_records_by_key ON compliance_records (cluster, replica, template, time, seq);
CREATE INDEX IF NOT EXISTS compliance_records_by_policy ON compliance_records (policy, time);
CREATE INDEX IF NOT EXISTS compliance_records_by_control ON compliance_records USING GIN (controls);
CREATE INDEX IF NOT EXISTS compliance_records_by_standard ON compliance_records USING GIN (standards);
CREATE INDEX IF NOT EXISTS compliance_records_by_category ON compliance_records USING GIN (categories);
CREATE TABLE IF NOT EXISTS compliance_checkpoints (
    seq BIGINT PRIMARY KEY,
    head TEXT NOT NULL,
    time TEXT NOT NULL,
    signature BYTEA NOT NULL
);
CREATE OR REPLACE FUNCTION garrison_history_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'compliance records are append-only';
END
$$ LANGUAGE plpgsql;
CREATE OR REPLACE TRIGGER compliance_records_append_only BEFORE UPDATE OR DELETE ON compliance_records
    FOR EACH ROW EXECUTE FUNCTION garrison_history_append_only();
CREATE OR REPLACE TRIGGER compliance_records_never_truncated BEFORE TRUNCATE ON compliance_records
    FOR EACH STATEMENT EXECUTE FUNCTION garrison_history_append_only();
CREATE OR REPLACE TRIGGER compliance_checkpoints_append_only BEFORE UPDATE OR DELETE ON compliance_checkpoints
    FOR EACH ROW EXECUTE FUNCTION garrison_history_append_only();
CREATE OR REPLACE TRIGGER compliance_checkpoints_never_truncated BEFORE TRUNCATE ON compliance_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION garrison_history_append_only();
";

const COLUMNS: &str = "seq, prev, hash, time, cluster, policy, replica, template, state, message, severity, standards, categories, controls";

/// The history in a PostgreSQL database: one connection for reads, one for appends.
pub struct PgHistory {
    client: Client,
    writer: tokio::sync::Mutex<Client>,
}

fn db(e: tokio_postgres::Error) -> HistoryError {
    // The driver's message names the failing statement's error, never the password.
    HistoryError::Store(
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string()),
    )
}

fn row_record(r: &Row) -> Record {
    Record {
        seq: r.get::<_, i64>(0) as u64,
        prev: r.get(1),
        hash: r.get(2),
        event: Event {
            time: r.get(3),
            cluster: r.get(4),
            policy: r.get(5),
            replica: r.get(6),
            template: r.get(7),
            state: r.get(8),
            message: r.get(9),
            severity: r.get(10),
            standards: r.get(11),
            categories: r.get(12),
            controls: r.get(13),
        },
    }
}

/// Whether `url` reaches the database over loopback or a Unix socket: the connection is not
/// encrypted, so nothing else is accepted.
pub fn check_url(url: &str) -> Result<tokio_postgres::Config, HistoryError> {
    let cfg: tokio_postgres::Config = url.parse().map_err(|e| {
        HistoryError::Store(format!(
            "--history-database is not a PostgreSQL URL (postgres://user@host/db): {e}"
        ))
    })?;
    if cfg.get_hosts().is_empty() {
        return Err(HistoryError::Store(
            "--history-database names no host: give postgres://user@127.0.0.1/db, or a Unix socket directory as host".into(),
        ));
    }
    if !cfg.get_hostaddrs().iter().all(|ip| ip.is_loopback()) {
        return Err(HistoryError::Store(
            "the history database must be reached over loopback or a Unix socket: connections to PostgreSQL are not encrypted yet".into(),
        ));
    }
    for h in cfg.get_hosts() {
        let local = match h {
            tokio_postgres::config::Host::Unix(_) => true,
            tokio_postgres::config::Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        };
        if !local {
            return Err(HistoryError::Store(
                "the history database must be reached over loopback or a Unix socket: connections to PostgreSQL are not encrypted yet".into(),
            ));
        }
    }
    Ok(cfg)
}

/// A filter as SQL over `compliance_records`, with parameters from `$first` on.
fn where_clause(f: &Filter, first: usize) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut clauses: Vec<String> = vec![];
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![];
    let next = |params: &mut Vec<Box<dyn ToSql + Sync + Send>>, v: Box<dyn ToSql + Sync + Send>| {
        params.push(v);
        format!("${}", first + params.len() - 1)
    };
    if let Some(v) = &f.visible {
        let v: Vec<String> = v.iter().cloned().collect();
        let p = next(&mut params, Box::new(v));
        clauses.push(format!("cluster = ANY({p})"));
    }
    for (column, values) in [("cluster", &f.clusters), ("state", &f.states)] {
        if !values.is_empty() {
            let p = next(&mut params, Box::new(values.clone()));
            clauses.push(format!("{column} = ANY({p})"));
        }
    }
    let like = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    };
    if !f.policies.is_empty() {
        let mut any = vec![];
        for p in &f.policies {
            if p.contains('/') {
                let n = next(&mut params, Box::new(p.clone()));
                any.push(format!("policy = {n}"));
            } else {
                let n = next(&mut params, Box::new(format!("%/{}", like(p))));
                any.push(format!("policy LIKE {n}"));
            }
        }
        clauses.push(format!("({})", any.join(" OR ")));
    }
    for (column, values, pattern) in [
        ("template", &f.templates, "%/{}"),
        ("policy", &f.namespaces, "{}/%"),
    ] {
        if values.is_empty() {
            continue;
        }
        let any: Vec<String> = values
            .iter()
            .map(|v| {
                let n = next(&mut params, Box::new(pattern.replace("{}", &like(v))));
                format!("{column} LIKE {n}")
            })
            .collect();
        clauses.push(format!("({})", any.join(" OR ")));
    }
    for (column, values) in [
        ("standards", &f.standards),
        ("categories", &f.categories),
        ("controls", &f.controls),
    ] {
        if !values.is_empty() {
            let p = next(&mut params, Box::new(values.clone()));
            clauses.push(format!("{column} && {p}::text[]"));
        }
    }
    if let Some(s) = &f.since {
        let p = next(&mut params, Box::new(s.clone()));
        clauses.push(format!("time >= {p}"));
    }
    if let Some(u) = &f.until {
        let p = next(&mut params, Box::new(u.clone()));
        clauses.push(format!("time <= {p}"));
    }
    if clauses.is_empty() {
        ("TRUE".into(), params)
    } else {
        (clauses.join(" AND "), params)
    }
}

fn refs(p: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// One connection to `cfg`, driven in the background: a broken connection shows in the next
/// call on its client, which fails.
async fn open(cfg: &tokio_postgres::Config) -> Result<tokio_postgres::Client, HistoryError> {
    let (client, connection) = cfg.connect(NoTls).await.map_err(|e| {
        let cause = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        HistoryError::Store(format!(
            "cannot connect to the history database: {e}{cause}"
        ))
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl PgHistory {
    /// Connects to `url` (loopback or a Unix socket only) and creates the schema if needed.
    pub async fn connect(url: &str) -> Result<PgHistory, HistoryError> {
        let cfg = check_url(url)?;
        let client = open(&cfg).await?;
        let writer = open(&cfg).await?;
        client.batch_execute(SCHEMA).await.map_err(|e| {
            HistoryError::Store(format!("the history's schema cannot be created: {}", db(e)))
        })?;
        Ok(PgHistory {
            client,
            writer: tokio::sync::Mutex::new(writer),
        })
    }

    /// Connects to the history in `url` to read it, as an auditor with a read-only role does:
    /// nothing is created or changed, and a database that holds no history is an error rather
    /// than an empty history.
    pub async fn connect_reader(url: &str) -> Result<PgHistory, HistoryError> {
        let cfg = check_url(url)?;
        let client = open(&cfg).await?;
        let row = client
            .query_one(
                "SELECT to_regclass('compliance_records') IS NOT NULL AND to_regclass('compliance_checkpoints') IS NOT NULL",
                &[],
            )
            .await
            .map_err(db)?;
        if !row.get::<_, bool>(0) {
            return Err(HistoryError::Store(
                "the database holds no compliance history (no compliance_records table): is it the hub's --history-database?".into(),
            ));
        }
        // A reader never appends; its writer is a second handle on nothing it uses.
        let writer = open(&cfg).await?;
        Ok(PgHistory {
            client,
            writer: tokio::sync::Mutex::new(writer),
        })
    }

    /// Appends `events`, chained, all or none.
    pub async fn append(&self, events: &[Event]) -> Result<Vec<Record>, HistoryError> {
        if events.is_empty() {
            return Ok(vec![]);
        }
        let mut writer = self.writer.lock().await;
        let tx = writer.transaction().await.map_err(db)?;
        // One chain however many writers: appends wait for each other.
        tx.batch_execute("LOCK TABLE compliance_records IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(db)?;
        let last = tx
            .query_opt(
                &format!("SELECT {COLUMNS} FROM compliance_records ORDER BY seq DESC LIMIT 1"),
                &[],
            )
            .await
            .map_err(db)?
            .map(|r| row_record(&r));
        let mut out: Vec<Record> = Vec::with_capacity(events.len());
        for e in events {
            let r = Record::next(out.last().or(last.as_ref()), e.clone());
            out.push(r);
        }
        let col = |f: &dyn Fn(&Record) -> String| out.iter().map(f).collect::<Vec<String>>();
        let seqs: Vec<i64> = out.iter().map(|r| r.seq as i64).collect();
        let list = |f: &dyn Fn(&Record) -> &Vec<String>| {
            out.iter()
                .map(|r| serde_json::to_string(f(r)).expect("strings serialise"))
                .collect::<Vec<String>>()
        };
        let (prev, hash, time, cluster, policy, replica, template, state, message, severity) = (
            col(&|r| r.prev.clone()),
            col(&|r| r.hash.clone()),
            col(&|r| r.event.time.clone()),
            col(&|r| r.event.cluster.clone()),
            col(&|r| r.event.policy.clone()),
            col(&|r| r.event.replica.clone()),
            col(&|r| r.event.template.clone()),
            col(&|r| r.event.state.clone()),
            col(&|r| r.event.message.clone()),
            col(&|r| r.event.severity.clone()),
        );
        let (standards, categories, controls) = (
            list(&|r| &r.event.standards),
            list(&|r| &r.event.categories),
            list(&|r| &r.event.controls),
        );
        tx.execute(
            &format!(
                "INSERT INTO compliance_records ({COLUMNS})
                 SELECT s, p, h, t, c, po, r, te, st, m, se,
                   ARRAY(SELECT jsonb_array_elements_text(sd::jsonb)),
                   ARRAY(SELECT jsonb_array_elements_text(ca::jsonb)),
                   ARRAY(SELECT jsonb_array_elements_text(co::jsonb))
                 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
                   AS u(s, p, h, t, c, po, r, te, st, m, se, sd, ca, co)"
            ),
            &[
                &seqs, &prev, &hash, &time, &cluster, &policy, &replica, &template, &state,
                &message, &severity, &standards, &categories, &controls,
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    /// The last record.
    pub async fn head(&self) -> Result<Option<Record>, HistoryError> {
        Ok(self
            .client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM compliance_records ORDER BY seq DESC LIMIT 1"),
                &[],
            )
            .await
            .map_err(db)?
            .map(|r| row_record(&r)))
    }

    /// Signs the head at `time` unless the last checkpoint covers it.
    pub async fn checkpoint(
        &self,
        key_pkcs8: &[u8],
        time: &str,
    ) -> Result<Option<Checkpoint>, HistoryError> {
        let Some(head) = self.head().await? else {
            return Ok(None);
        };
        let covered: Option<i64> = self
            .client
            .query_one("SELECT MAX(seq) FROM compliance_checkpoints", &[])
            .await
            .map_err(db)?
            .get(0);
        if covered.is_some_and(|c| c as u64 >= head.seq) {
            return Ok(None);
        }
        let c = Checkpoint::sign(&head, time, key_pkcs8).map_err(HistoryError::Key)?;
        self.client
            .execute(
                "INSERT INTO compliance_checkpoints (seq, head, time, signature) VALUES ($1, $2, $3, $4) ON CONFLICT (seq) DO NOTHING",
                &[&(c.seq as i64), &c.head, &c.time, &c.signature],
            )
            .await
            .map_err(db)?;
        Ok(Some(c))
    }

    /// Up to `limit` records by position after `after` (`None`: from the lowest, whatever
    /// its number), and the cursor of the last one: the export, page by page.
    pub async fn page(
        &self,
        after: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<Record>, Option<i64>), HistoryError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM compliance_records WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                &[&after.unwrap_or(i64::MIN), &(limit as i64)],
            )
            .await
            .map_err(db)?;
        let next = rows.last().map(|r| r.get::<_, i64>(0));
        Ok((rows.iter().map(row_record).collect(), next))
    }

    /// Every record, by position, in pages; `f` returns false to stop.
    pub async fn scan(
        &self,
        f: &mut (dyn FnMut(Record) -> bool + Send),
    ) -> Result<(), HistoryError> {
        // Every row, whatever its number: the first page has no lower bound.
        let mut after: Option<i64> = None;
        loop {
            let rows = match after {
                None => {
                    self.client
                        .query(
                            &format!("SELECT {COLUMNS} FROM compliance_records ORDER BY seq LIMIT 10000"),
                            &[],
                        )
                        .await
                }
                Some(a) => {
                    self.client
                        .query(
                            &format!("SELECT {COLUMNS} FROM compliance_records WHERE seq > $1 ORDER BY seq LIMIT 10000"),
                            &[&a],
                        )
                        .await
                }
            }
            .map_err(db)?;
            if rows.is_empty() {
                return Ok(());
            }
            for r in &rows {
                after = Some(r.get::<_, i64>(0));
                if !f(row_record(r)) {
                    return Ok(());
                }
            }
        }
    }

    /// Every checkpoint, oldest first.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, HistoryError> {
        Ok(self
            .client
            .query(
                "SELECT seq, head, time, signature FROM compliance_checkpoints ORDER BY seq",
                &[],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| Checkpoint {
                seq: r.get::<_, i64>(0) as u64,
                head: r.get(1),
                time: r.get(2),
                signature: r.get(3),
            })
            .collect())
    }

    /// One record by position.
    pub async fn get(&self, seq: u64) -> Result<Option<Record>, HistoryError> {
        Ok(self
            .client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM compliance_records WHERE seq = $1"),
                &[&(seq as i64)],
            )
            .await
            .map_err(db)?
            .map(|r| row_record(&r)))
    }

    /// A page of the records `f` matches.
    pub async fn query(&self, f: &Filter, paging: &Paging) -> Result<Page, HistoryError> {
        let (clause, params) = where_clause(f, 1);
        let total: i64 = self
            .client
            .query_one(
                &format!("SELECT COUNT(*) FROM compliance_records WHERE {clause}"),
                &refs(&params),
            )
            .await
            .map_err(db)?
            .get(0);
        let dir = if paging.descending { "DESC" } else { "ASC" };
        let per_page = paging.per_page.clamp(1, MAX_PER_PAGE);
        let offset = paging.page.saturating_sub(1).saturating_mul(per_page);
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM compliance_records WHERE {clause} ORDER BY {col} {dir}, seq {dir} LIMIT {per_page} OFFSET {offset}",
                    // Byte order, as SQLite sorts, whatever the database's locale.
                    col = match paging.sort {
                        SortKey::Id => "seq".to_string(),
                        other => format!("{} COLLATE \"C\"", other.column()),
                    }
                ),
                &refs(&params),
            )
            .await
            .map_err(db)?;
        Ok(Page {
            records: rows.iter().map(row_record).collect(),
            page: paging.page.max(1),
            per_page,
            total: total as u64,
        })
    }

    /// The records `f` matches, oldest first.
    pub async fn all(&self, f: &Filter) -> Result<Vec<Record>, HistoryError> {
        let (clause, params) = where_clause(f, 1);
        Ok(self
            .client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM compliance_records WHERE {clause} ORDER BY time, seq"
                ),
                &refs(&params),
            )
            .await
            .map_err(db)?
            .iter()
            .map(row_record)
            .collect())
    }

    /// The record in force at `at` per (cluster, replica, template) that `f` matches.
    pub async fn in_force_at(&self, f: &Filter, at: &str) -> Result<Vec<Record>, HistoryError> {
        // As in SQLite: each template's latest change at or before `at` by seeking the key
        // index, templates enumerated by skipping from key to key; then the filters.
        let f = Filter {
            since: None,
            until: None,
            ..f.clone()
        };
        let (clause, mut params) = where_clause(&f, 2);
        params.insert(0, Box::new(at.to_string()));
        Ok(self
            .client
            .query(
                &format!(
                    "WITH RECURSIVE k AS (
                        (SELECT cluster, replica, template FROM compliance_records ORDER BY cluster, replica, template LIMIT 1)
                        UNION ALL
                        SELECT n.cluster, n.replica, n.template FROM k, LATERAL (
                            SELECT cluster, replica, template FROM compliance_records
                            WHERE (cluster, replica, template) > (k.cluster, k.replica, k.template)
                            ORDER BY cluster, replica, template LIMIT 1) n
                    )
                    SELECT {COLUMNS} FROM (
                        SELECT r.* FROM k CROSS JOIN LATERAL (
                            SELECT * FROM compliance_records x
                            WHERE x.cluster = k.cluster AND x.replica = k.replica AND x.template = k.template AND x.time <= $1
                            ORDER BY x.time DESC, x.seq DESC LIMIT 1) r
                    ) AS latest
                    WHERE {clause} ORDER BY seq"
                ),
                &refs(&params),
            )
            .await
            .map_err(db)?
            .iter()
            .map(row_record)
            .collect())
    }

    /// The last recorded state of every (cluster, replica, template), as in SQLite.
    pub async fn latest(&self) -> Result<Vec<Record>, HistoryError> {
        self.in_force_at(&Filter::default(), "9999-12-31T23:59:59Z")
            .await
    }
}
