//! One history, whichever store holds it: SQLite (embedded, the default) or PostgreSQL. Both
//! answer the same queries and verify the same way; SQLite's calls run on blocking threads.

use std::sync::Arc;

use super::postgres::PgHistory;
use super::query::{Filter, Page, Paging};
use super::sqlite::SqliteHistory;
use super::{Checkpoint, Event, Finding, HistoryError, Record, StreamingVerifier, Verified};

/// The history's store.
#[derive(Clone)]
pub enum History {
    /// The embedded store.
    Sqlite(Arc<SqliteHistory>),
    /// PostgreSQL.
    Postgres(Arc<PgHistory>),
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            History::Sqlite(_) => "History::Sqlite",
            History::Postgres(_) => "History::Postgres",
        })
    }
}

macro_rules! either {
    ($self:ident, $s:ident => $sqlite:expr, $p:ident => $pg:expr) => {
        match $self {
            History::Sqlite(h) => {
                let $s = h.clone();
                tokio::task::spawn_blocking(move || $sqlite)
                    .await
                    .map_err(|e| HistoryError::Store(format!("the store's thread failed: {e}")))?
            }
            History::Postgres($p) => $pg,
        }
    };
}

impl History {
    /// Checks `database` as [`History::open`] would take it, without connecting.
    pub fn check(database: Option<&str>) -> Result<(), HistoryError> {
        match database {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                super::postgres::check_url(url).map(|_| ())
            }
            // The value is not repeated: it may hold a password.
            Some(_) => Err(HistoryError::Store(
                "--history-database is not a postgres:// URL; leave it out to keep the history in the data directory".into(),
            )),
            None => Ok(()),
        }
    }

    /// Which store: `postgres://…` (or `postgresql://…`) connects to PostgreSQL; anything else
    /// is the SQLite file `default`.
    pub async fn open(
        database: Option<&str>,
        default: &std::path::Path,
    ) -> Result<History, HistoryError> {
        match database {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(History::Postgres(Arc::new(PgHistory::connect(url).await?)))
            }
            Some(_) => Err(HistoryError::Store(
                "--history-database is not a postgres:// URL; leave it out to keep the history in the data directory".into(),
            )),
            None => {
                let path = default.to_path_buf();
                let h = tokio::task::spawn_blocking(move || SqliteHistory::open(&path))
                    .await
                    .map_err(|e| HistoryError::Store(e.to_string()))??;
                Ok(History::Sqlite(Arc::new(h)))
            }
        }
    }

    /// The PostgreSQL history in `url`, opened to be read only (see
    /// [`PgHistory::connect_reader`]).
    pub async fn open_reader(url: &str) -> Result<History, HistoryError> {
        // Refuses a URL that is not postgres:// with the same words as the hub.
        Self::check(Some(url))?;
        Ok(History::Postgres(Arc::new(
            PgHistory::connect_reader(url).await?,
        )))
    }

    /// Appends `events`, chained.
    pub async fn append(&self, events: Vec<Event>) -> Result<Vec<Record>, HistoryError> {
        either!(self, h => h.append(&events), p => p.append(&events).await)
    }

    /// Signs the head unless already signed.
    pub async fn checkpoint(
        &self,
        key_pkcs8: Vec<u8>,
        time: String,
    ) -> Result<Option<Checkpoint>, HistoryError> {
        either!(self, h => h.checkpoint(&key_pkcs8, &time), p => p.checkpoint(&key_pkcs8, &time).await)
    }

    /// Every record, in the store's order.
    pub async fn records(&self) -> Result<Vec<Record>, HistoryError> {
        either!(self, h => {
            let mut out = vec![];
            h.scan(&mut |r| { out.push(r); true }).map(|_| out)
        }, p => {
            let mut out = vec![];
            p.scan(&mut |r| { out.push(r); true }).await.map(|_| out)
        })
    }

    /// Up to `limit` records in the store's order after cursor `after` (`None`: from the
    /// first), and the cursor to go on from: the export, in constant memory.
    pub async fn page(
        &self,
        after: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<Record>, Option<i64>), HistoryError> {
        either!(self, h => h.page(after, limit), p => p.page(after, limit).await)
    }

    /// Every checkpoint.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, HistoryError> {
        either!(self, h => h.checkpoints(), p => p.checkpoints().await)
    }

    /// One record.
    pub async fn get(&self, seq: u64) -> Result<Option<Record>, HistoryError> {
        either!(self, h => h.get(seq), p => p.get(seq).await)
    }

    /// A page.
    pub async fn query(&self, f: Filter, paging: Paging) -> Result<Page, HistoryError> {
        either!(self, h => h.query(&f, &paging), p => p.query(&f, &paging).await)
    }

    /// Everything `f` matches, oldest first.
    pub async fn all(&self, f: Filter) -> Result<Vec<Record>, HistoryError> {
        either!(self, h => h.all(&f), p => p.all(&f).await)
    }

    /// The records in force at `at`.
    pub async fn in_force_at(&self, f: Filter, at: String) -> Result<Vec<Record>, HistoryError> {
        either!(self, h => h.in_force_at(&f, &at), p => p.in_force_at(&f, &at).await)
    }

    /// The last record per (cluster, replica, template).
    pub async fn latest(&self) -> Result<Vec<Record>, HistoryError> {
        either!(self, h => h.latest(), p => p.latest().await)
    }

    /// Verifies every record and checkpoint with `public_key`, and `anchor` (a checkpoint
    /// remembered outside the store) as one of them: streaming, in constant memory; on the
    /// first anomaly, the history is read again to name it.
    pub async fn verify(
        &self,
        public_key: &[u8],
        anchor: Option<super::Checkpoint>,
    ) -> Result<Result<Verified, Finding>, HistoryError> {
        let checkpoints = super::with_anchor(self.checkpoints().await?, anchor);
        let key = public_key.to_vec();
        let streamed = {
            let mut v = StreamingVerifier::new(checkpoints.clone());
            either!(self, h => h.scan(&mut |r| v.push(&r)).map(|_| v), p => {
                p.scan(&mut |r| v.push(&r)).await.map(|_| v)
            })?
        };
        if let Some(outcome) = streamed.finish(&key) {
            return Ok(outcome);
        }
        let records = self.records().await?;
        tokio::task::spawn_blocking(move || super::verify(&records, &checkpoints, &key))
            .await
            .map_err(|e| HistoryError::Store(format!("verification failed: {e}")))
    }
}
