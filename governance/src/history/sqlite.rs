//! The compliance history in SQLite: the embedded store, a file of its own next to the hub's
//! object store. Records are only ever inserted; triggers refuse updates and deletes, so a
//! bug cannot rewrite history, and the hash chain shows it if someone with the file does.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::query::{Filter, Page, Paging};
use super::{Checkpoint, Event, HistoryError, Record};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
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
    standards TEXT NOT NULL,
    categories TEXT NOT NULL,
    controls TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_time ON records (time, seq);
CREATE INDEX IF NOT EXISTS records_by_key ON records (cluster, replica, template, time, seq);
CREATE INDEX IF NOT EXISTS records_by_policy ON records (policy, time);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY,
    head TEXT NOT NULL,
    time TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS records_are_never_updated BEFORE UPDATE ON records
    BEGIN SELECT RAISE(ABORT, 'compliance records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_are_never_deleted BEFORE DELETE ON records
    BEGIN SELECT RAISE(ABORT, 'compliance records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_are_never_updated BEFORE UPDATE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_are_never_deleted BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
";

const COLUMNS: &str = "seq, prev, hash, time, cluster, policy, replica, template, state, message, severity, standards, categories, controls";

/// The history in a SQLite file.
pub struct SqliteHistory {
    conn: Mutex<Connection>,
}

fn db(e: rusqlite::Error) -> HistoryError {
    HistoryError::Store(e.to_string())
}

fn list_json(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings serialise")
}

fn row_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let s: String = r.get(i)?;
        serde_json::from_str(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    Ok(Record {
        seq: r.get::<_, i64>(0)? as u64,
        prev: r.get(1)?,
        hash: r.get(2)?,
        event: Event {
            time: r.get(3)?,
            cluster: r.get(4)?,
            policy: r.get(5)?,
            replica: r.get(6)?,
            template: r.get(7)?,
            state: r.get(8)?,
            message: r.get(9)?,
            severity: r.get(10)?,
            standards: list(11)?,
            categories: list(12)?,
            controls: list(13)?,
        },
    })
}

/// A filter as SQL: a WHERE clause over `records` (or a row source named `table` with its
/// columns) and its parameters.
fn where_clause_on(f: &Filter, table: &str) -> (String, Vec<String>) {
    let mut clauses: Vec<String> = vec![];
    let mut params: Vec<String> = vec![];
    fn one_of(
        column: &str,
        values: &[String],
        clauses: &mut Vec<String>,
        params: &mut Vec<String>,
    ) {
        if values.is_empty() {
            return;
        }
        let marks = vec!["?"; values.len()].join(", ");
        clauses.push(format!("{column} IN ({marks})"));
        params.extend(values.iter().cloned());
    }
    if let Some(v) = &f.visible {
        let v: Vec<String> = v.iter().cloned().collect();
        if v.is_empty() {
            clauses.push("0".into());
        } else {
            one_of("cluster", &v, &mut clauses, &mut params);
        }
    }
    one_of("cluster", &f.clusters, &mut clauses, &mut params);
    one_of("state", &f.states, &mut clauses, &mut params);
    if !f.policies.is_empty() {
        let mut any = vec![];
        for p in &f.policies {
            if p.contains('/') {
                any.push("policy = ?".to_string());
                params.push(p.clone());
            } else {
                any.push("policy LIKE ? ESCAPE '\\'".to_string());
                params.push(format!("%/{}", like_escape(p)));
            }
        }
        clauses.push(format!("({})", any.join(" OR ")));
    }
    if !f.templates.is_empty() {
        let any: Vec<String> = f
            .templates
            .iter()
            .map(|t| {
                params.push(format!("%/{}", like_escape(t)));
                "template LIKE ? ESCAPE '\\'".to_string()
            })
            .collect();
        clauses.push(format!("({})", any.join(" OR ")));
    }
    if !f.namespaces.is_empty() {
        let any: Vec<String> = f
            .namespaces
            .iter()
            .map(|n| {
                params.push(format!("{}/%", like_escape(n)));
                "policy LIKE ? ESCAPE '\\'".to_string()
            })
            .collect();
        clauses.push(format!("({})", any.join(" OR ")));
    }
    // From the hashed columns themselves, so what verification covers is what is filtered.
    for (column, values) in [
        ("standards", &f.standards),
        ("categories", &f.categories),
        ("controls", &f.controls),
    ] {
        if values.is_empty() {
            continue;
        }
        let marks = vec!["?"; values.len()].join(", ");
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM json_each({table}.{column}) WHERE json_each.value IN ({marks}))"
        ));
        params.extend(values.iter().cloned());
    }
    if let Some(s) = &f.since {
        clauses.push("time >= ?".into());
        params.push(s.clone());
    }
    if let Some(u) = &f.until {
        clauses.push("time <= ?".into());
        params.push(u.clone());
    }
    if clauses.is_empty() {
        ("1".into(), params)
    } else {
        (clauses.join(" AND "), params)
    }
}

fn where_clause(f: &Filter) -> (String, Vec<String>) {
    where_clause_on(f, "records")
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

impl SqliteHistory {
    /// Opens (creating if needed) the history at `path`.
    pub fn open(path: &Path) -> Result<SqliteHistory, HistoryError> {
        let conn = Connection::open(path).map_err(|e| {
            HistoryError::Store(format!("cannot open the history {}: {e}", path.display()))
        })?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        Self::init(conn)
    }

    /// A history held in memory, for tests.
    pub fn in_memory() -> Result<SqliteHistory, HistoryError> {
        Self::init(Connection::open_in_memory().map_err(db)?)
    }

    fn init(conn: Connection) -> Result<SqliteHistory, HistoryError> {
        // LIKE is case-sensitive, as in PostgreSQL.
        conn.pragma_update(None, "case_sensitive_like", true)
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(|e| {
            HistoryError::Store(format!("the history's schema cannot be created: {e}"))
        })?;
        Ok(SqliteHistory {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `events`, in order, each chained to the one before; all or none.
    pub fn append(&self, events: &[Event]) -> Result<Vec<Record>, HistoryError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let mut last = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM records ORDER BY seq DESC LIMIT 1"),
                [],
                row_record,
            )
            .optional()
            .map_err(db)?;
        let mut out = Vec::with_capacity(events.len());
        {
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO records ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ))
                .map_err(db)?;
            for e in events {
                let r = Record::next(last.as_ref(), e.clone());
                let seq = r.seq as i64;
                insert
                    .execute(params![
                        seq,
                        r.prev,
                        r.hash,
                        e.time,
                        e.cluster,
                        e.policy,
                        e.replica,
                        e.template,
                        e.state,
                        e.message,
                        e.severity,
                        list_json(&e.standards),
                        list_json(&e.categories),
                        list_json(&e.controls),
                    ])
                    .map_err(db)?;
                out.push(r.clone());
                last = Some(r);
            }
        }
        tx.commit().map_err(db)?;
        Ok(out)
    }

    /// The last record.
    pub fn head(&self) -> Result<Option<Record>, HistoryError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM records ORDER BY seq DESC LIMIT 1"),
                [],
                row_record,
            )
            .optional()
            .map_err(db)
    }

    /// Signs the head with `key_pkcs8` at `time` unless the last checkpoint already covers it.
    pub fn checkpoint(
        &self,
        key_pkcs8: &[u8],
        time: &str,
    ) -> Result<Option<Checkpoint>, HistoryError> {
        let Some(head) = self.head()? else {
            return Ok(None);
        };
        let conn = self.conn();
        let covered: Option<i64> = conn
            .query_row("SELECT MAX(seq) FROM checkpoints", [], |r| r.get(0))
            .map_err(db)?;
        if covered.is_some_and(|c| c as u64 >= head.seq) {
            return Ok(None);
        }
        let c = Checkpoint::sign(&head, time, key_pkcs8).map_err(HistoryError::Key)?;
        conn.execute(
            "INSERT INTO checkpoints (seq, head, time, signature) VALUES (?1, ?2, ?3, ?4)",
            params![c.seq as i64, c.head, c.time, c.signature],
        )
        .map_err(db)?;
        Ok(Some(c))
    }

    /// Records from position `after + 1` on, at most `limit`, in stored order (the order of
    /// the table, which is what verification must see).
    pub fn records(&self, after: u64, limit: u64) -> Result<Vec<Record>, HistoryError> {
        let conn = self.conn();
        let mut q = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))
            .map_err(db)?;
        q.query_map(params![after as i64, limit as i64], row_record)
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    /// Up to `limit` records in stored order after the row `after` (`None`: from the first),
    /// whatever their numbers, and the cursor of the last one: the export, page by page.
    pub fn page(
        &self,
        after: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<Record>, Option<i64>), HistoryError> {
        let conn = self.conn();
        let mut q = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, rowid FROM records WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
            ))
            .map_err(db)?;
        let rows: Vec<(Record, i64)> = q
            .query_map(params![after.unwrap_or(i64::MIN), limit as i64], |r| {
                Ok((row_record(r)?, r.get::<_, i64>(14)?))
            })
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        let next = rows.last().map(|(_, id)| *id);
        Ok((rows.into_iter().map(|(r, _)| r).collect(), next))
    }

    /// Every record, by position (the table's key), negative ones included: for verification,
    /// which names a record renumbered by the number it had.
    pub fn scan(&self, f: &mut dyn FnMut(Record) -> bool) -> Result<(), HistoryError> {
        let conn = self.conn();
        let mut q = conn
            .prepare(&format!("SELECT {COLUMNS} FROM records ORDER BY rowid"))
            .map_err(db)?;
        let mut rows = q.query([]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            if !f(row_record(row).map_err(db)?) {
                break;
            }
        }
        Ok(())
    }

    /// Every checkpoint, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, HistoryError> {
        let conn = self.conn();
        let mut q = conn
            .prepare("SELECT seq, head, time, signature FROM checkpoints ORDER BY rowid")
            .map_err(db)?;
        q.query_map([], |r| {
            Ok(Checkpoint {
                seq: r.get::<_, i64>(0)? as u64,
                head: r.get(1)?,
                time: r.get(2)?,
                signature: r.get(3)?,
            })
        })
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)
    }

    /// One record by position.
    pub fn get(&self, seq: u64) -> Result<Option<Record>, HistoryError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM records WHERE seq = ?1"),
                [seq as i64],
                row_record,
            )
            .optional()
            .map_err(db)
    }

    /// A page of the records `f` matches.
    pub fn query(&self, f: &Filter, paging: &Paging) -> Result<Page, HistoryError> {
        let (clause, args) = where_clause(f);
        let conn = self.conn();
        let total: i64 = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM records WHERE {clause}"),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )
            .map_err(db)?;
        let dir = if paging.descending { "DESC" } else { "ASC" };
        let per_page = paging.per_page.clamp(1, super::query::MAX_PER_PAGE);
        let offset = paging.page.saturating_sub(1).saturating_mul(per_page);
        let mut q = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM records WHERE {clause} ORDER BY {col} {dir}, seq {dir} LIMIT {per_page} OFFSET {offset}",
                col = paging.sort.column()
            ))
            .map_err(db)?;
        let records = q
            .query_map(params_from_iter(args.iter()), row_record)
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        Ok(Page {
            records,
            page: paging.page.max(1),
            per_page,
            total: total as u64,
        })
    }

    /// The records `f` matches, all of them, oldest first.
    pub fn all(&self, f: &Filter) -> Result<Vec<Record>, HistoryError> {
        let (clause, args) = where_clause(f);
        let conn = self.conn();
        let mut q = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM records WHERE {clause} ORDER BY time, seq"
            ))
            .map_err(db)?;
        q.query_map(params_from_iter(args.iter()), row_record)
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    /// The record in force at `at` for each (cluster, replica, template) `f` matches: the last
    /// change at or before it.
    pub fn in_force_at(&self, f: &Filter, at: &str) -> Result<Vec<Record>, HistoryError> {
        // Each template's latest change at or before `at`, found by seeking the key index
        // (templates are enumerated by skipping from one key to the next, so the cost follows
        // the number of templates, not of changes); then the filters, tags last: a record
        // superseded by one that no longer names the control is not in force.
        let f = Filter {
            since: None,
            until: None,
            ..f.clone()
        };
        let (clause, more) = where_clause_on(&f, "latest");
        let mut args = vec![at.to_string()];
        args.extend(more);
        let conn = self.conn();
        let mut q = conn
            .prepare(&format!(
                "WITH RECURSIVE k(cluster, replica, template) AS (
                    SELECT * FROM (SELECT cluster, replica, template FROM records ORDER BY cluster, replica, template LIMIT 1)
                    UNION ALL
                    SELECT (SELECT n.cluster FROM records n WHERE (n.cluster, n.replica, n.template) > (k.cluster, k.replica, k.template) ORDER BY n.cluster, n.replica, n.template LIMIT 1),
                           (SELECT n.replica FROM records n WHERE (n.cluster, n.replica, n.template) > (k.cluster, k.replica, k.template) ORDER BY n.cluster, n.replica, n.template LIMIT 1),
                           (SELECT n.template FROM records n WHERE (n.cluster, n.replica, n.template) > (k.cluster, k.replica, k.template) ORDER BY n.cluster, n.replica, n.template LIMIT 1)
                    FROM k WHERE k.cluster IS NOT NULL
                )
                SELECT {COLUMNS} FROM (
                    SELECT r.* FROM k JOIN records r ON r.seq = (
                        SELECT x.seq FROM records x
                        WHERE x.cluster = k.cluster AND x.replica = k.replica AND x.template = k.template AND x.time <= ?1
                        ORDER BY x.time DESC, x.seq DESC LIMIT 1)
                ) AS latest
                WHERE {clause} ORDER BY seq"
            ))
            .map_err(db)?;
        q.query_map(params_from_iter(args.iter()), row_record)
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    /// The last recorded state of every (cluster, replica, template): where the recorder picks
    /// up after a restart. Times per template never go back (the recorder holds them), so this
    /// is the state in force at the end of time.
    pub fn latest(&self) -> Result<Vec<Record>, HistoryError> {
        self.in_force_at(&Filter::default(), "9999-12-31T23:59:59Z")
    }
}

impl SqliteHistory {
    /// Verifies every record, in the table's order, and every checkpoint with `public_key`.
    pub fn verify(
        &self,
        public_key: &[u8],
    ) -> Result<Result<super::Verified, super::Finding>, HistoryError> {
        let mut records = vec![];
        self.scan(&mut |r| {
            records.push(r);
            true
        })?;
        let checkpoints = self.checkpoints()?;
        Ok(super::verify(&records, &checkpoints, public_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{CheckpointKey, Finding, query};

    fn event(i: u64, cluster: &str, state: &str) -> Event {
        Event {
            time: format!("2026-03-{:02}T10:00:00Z", i),
            cluster: cluster.into(),
            policy: "policies/ac-2".into(),
            replica: "policies.ac-2".into(),
            template: "ConfigurationPolicy/accounts".into(),
            state: state.into(),
            message: format!("change {i}"),
            severity: "high".into(),
            standards: vec!["NIST SP 800-53".into()],
            categories: vec!["AC Access Control".into()],
            controls: vec![if i.is_multiple_of(2) { "AC-2" } else { "AC-3" }.into()],
        }
    }

    fn filled() -> (SqliteHistory, CheckpointKey) {
        let h = SqliteHistory::in_memory().unwrap();
        let key = CheckpointKey::generate().unwrap();
        let events: Vec<Event> = (1..=9)
            .map(|i| {
                event(
                    i,
                    ["c1", "c2", "c3"][(i % 3) as usize],
                    if i % 4 == 0 {
                        "NonCompliant"
                    } else {
                        "Compliant"
                    },
                )
            })
            .collect();
        h.append(&events[..5]).unwrap();
        h.checkpoint(key.pkcs8(), "2026-03-05T11:00:00Z").unwrap();
        h.append(&events[5..]).unwrap();
        (h, key)
    }

    #[test]
    fn appends_chain_and_verify_and_the_store_refuses_rewrites() {
        let (h, key) = filled();
        let v = h.verify(key.public_key()).unwrap().unwrap();
        assert_eq!((v.records, v.checkpoints, v.signed_through), (9, 1, 5));
        // A checkpoint only when there is something new.
        assert!(h.checkpoint(key.pkcs8(), "t").unwrap().is_some());
        assert!(h.checkpoint(key.pkcs8(), "t").unwrap().is_none());
        let conn = h.conn();
        for sql in [
            "UPDATE records SET state = 'Compliant' WHERE seq = 4",
            "DELETE FROM records WHERE seq = 4",
            "DELETE FROM checkpoints",
        ] {
            let e = conn.execute(sql, []).unwrap_err();
            assert!(e.to_string().contains("append-only"), "{sql}: {e}");
        }
    }

    #[test]
    fn an_edit_behind_the_stores_back_is_named() {
        let (h, key) = filled();
        {
            let conn = h.conn();
            conn.execute_batch(
                "DROP TRIGGER records_are_never_updated; UPDATE records SET state = 'Compliant' WHERE seq = 4;",
            )
            .unwrap();
        }
        assert_eq!(
            h.verify(key.public_key()).unwrap(),
            Err(Finding::Altered(4))
        );
    }

    #[test]
    fn queries_filter_sort_page_and_agree_with_the_reference() {
        let (h, _) = filled();
        let all = h.all(&query::Filter::default()).unwrap();
        assert_eq!(all.len(), 9);
        let f = query::Filter {
            controls: vec!["AC-2".into()],
            visible: Some(["c1".to_string(), "c2".to_string()].into()),
            ..Default::default()
        };
        let page = h
            .query(
                &f,
                &query::Paging {
                    per_page: 2,
                    ..Default::default()
                },
            )
            .unwrap();
        let expected: Vec<&Record> = all.iter().filter(|r| f.matches(r)).collect();
        assert_eq!(page.total as usize, expected.len());
        assert_eq!(page.records.len(), 2);
        assert_eq!(
            page.records[0].seq,
            expected.last().unwrap().seq,
            "newest first"
        );
        assert_eq!(page.pages(), (expected.len() as u64).div_ceil(2));
        for at in [
            "2026-03-01T00:00:00Z",
            "2026-03-04T12:00:00Z",
            "2026-04-01T00:00:00Z",
        ] {
            let got = h.in_force_at(&query::Filter::default(), at).unwrap();
            assert_eq!(got, query::in_force_at(&all, at), "at {at}");
        }
        let f = query::Filter {
            policies: vec!["ac_2".into()],
            ..Default::default()
        };
        assert_eq!(h.all(&f).unwrap().len(), 0, "_ is not a wildcard");
        let f = query::Filter {
            namespaces: vec!["policies".into()],
            states: vec!["NonCompliant".into()],
            ..Default::default()
        };
        assert_eq!(
            h.all(&f).unwrap().iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![4, 8]
        );
    }

    #[test]
    fn a_change_that_drops_a_control_ends_its_record_being_in_force() {
        let h = SqliteHistory::in_memory().unwrap();
        let mut dropped = event(3, "c1", "Compliant");
        dropped.controls = vec![];
        h.append(&[event(2, "c1", "NonCompliant"), dropped])
            .unwrap();
        let ac2 = query::Filter {
            controls: vec!["AC-2".into()],
            ..Default::default()
        };
        let at = |t: &str| {
            h.in_force_at(&ac2, t)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(at("2026-03-02T12:00:00Z"), vec![1]);
        assert_eq!(at("2026-03-04T00:00:00Z"), Vec::<u64>::new());
        assert_eq!(h.latest().unwrap().len(), 1);
        assert_eq!(h.latest().unwrap()[0].seq, 2);
    }
}
