//! `garrison backup` and `garrison restore`.
//!
//! A backup is one SQLite file: an online copy of the store (SQLite's backup API, consistent
//! while the hub keeps writing), a table holding the hub's settings and PKI files, and the
//! compliance history kept in the data directory (its records and checkpoints, read in
//! one transaction). It holds the CA keys, so it is written mode 0600 and must be kept as
//! secret as the hub itself. A history kept in PostgreSQL is backed up with PostgreSQL's tools.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use rusqlite::{Connection, params};

use crate::datadir::{DataDir, set_mode, write_private};

/// Arguments of `garrison backup`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The hub's data directory.
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// The backup file to write (must not exist).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
}

/// Arguments of `garrison restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The data directory to restore into (created if missing).
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// Replace an existing hub in DIR.
    #[arg(long)]
    pub force: bool,
}

const FILES: [&str; 8] = [
    "hub.json",
    "admin.kubeconfig",
    "pki/ca.crt",
    "pki/ca.key",
    "pki/client-ca.crt",
    "pki/client-ca.key",
    "pki/serving.crt",
    "pki/serving.key",
];

/// Files backed up when present: keys made on first use by newer hubs.
const OPTIONAL_FILES: [&str; 2] = ["pki/sa.key", "pki/history.key"];

/// The compliance history's tables, and their names inside a backup.
const HISTORY_TABLES: [(&str, &str); 2] = [
    ("records", "garrison_backup_history_records"),
    ("checkpoints", "garrison_backup_history_checkpoints"),
];

/// Runs `garrison backup`.
pub fn run_backup(args: BackupArgs) -> Result<()> {
    let dir = DataDir::new(&args.data_dir);
    dir.require_initialized()?;
    if args.to.exists() {
        bail!(
            "{} already exists; choose a new file name",
            args.to.display()
        );
    }
    if !dir.store().exists() {
        bail!(
            "{} has no store yet; start the hub once before backing it up",
            dir.root.display()
        );
    }
    let tmp = args.to.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let mut history_records = None;
    garrison_apiserver::store::backup_file(&dir.store(), &tmp)
        .with_context(|| format!("cannot back up {}", dir.store().display()))?;
    set_mode(&tmp, 0o600)?;
    {
        let conn =
            Connection::open(&tmp).with_context(|| format!("cannot open {}", tmp.display()))?;
        conn.execute_batch(
            "CREATE TABLE garrison_backup_files (path TEXT PRIMARY KEY, data BLOB NOT NULL)",
        )?;
        for f in FILES {
            let p = dir.root.join(f);
            let data = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
            conn.execute(
                "INSERT INTO garrison_backup_files (path, data) VALUES (?1, ?2)",
                params![f, data],
            )?;
        }
        for f in OPTIONAL_FILES {
            if let Ok(data) = std::fs::read(dir.root.join(f)) {
                conn.execute(
                    "INSERT INTO garrison_backup_files (path, data) VALUES (?1, ?2)",
                    params![f, data],
                )?;
            }
        }
        if dir.history().exists() {
            history_records = Some(copy_history(&conn, &dir.history())?);
        }
        conn.pragma_update(None, "journal_mode", "DELETE")?;
    }
    std::fs::rename(&tmp, &args.to)
        .with_context(|| format!("cannot write {}", args.to.display()))?;
    let (objects, rv) = garrison_apiserver::store::verify_file(&args.to)?;
    println!(
        "Backed up {} objects (resourceVersion {rv}) and the hub PKI to {}",
        objects,
        args.to.display()
    );
    if let Some(n) = history_records {
        println!("Backed up the compliance history: {n} records and their checkpoints");
    }
    println!("The file contains the hub's CA keys: store it as securely as the hub itself.");
    Ok(())
}

/// Copies the compliance history's tables into the backup `conn`, in one read transaction of
/// the history so records and checkpoints agree. Returns the records copied.
fn copy_history(conn: &Connection, history: &std::path::Path) -> Result<u64> {
    conn.execute("ATTACH DATABASE ?1 AS history", [history.to_string_lossy()])
        .with_context(|| format!("cannot open {}", history.display()))?;
    conn.execute_batch("BEGIN")?;
    for (table, copy) in HISTORY_TABLES {
        conn.execute_batch(&format!(
            "CREATE TABLE main.{copy} AS SELECT * FROM history.{table}"
        ))
        .with_context(|| format!("cannot copy the compliance history's {table}"))?;
    }
    conn.execute_batch("COMMIT; DETACH DATABASE history")?;
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM garrison_backup_history_records",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Writes the backup's compliance history into a new history file at `to`.
fn restore_history(from: &std::path::Path, to: &std::path::Path) -> Result<u64> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", to.display()));
    }
    // The schema and its append-only triggers, as the hub makes them.
    drop(
        garrison_governance::history::sqlite::SqliteHistory::open(to)
            .map_err(|e| anyhow::anyhow!(e))?,
    );
    let c = Connection::open(to)?;
    c.execute("ATTACH DATABASE ?1 AS backup", [from.to_string_lossy()])?;
    c.execute_batch("BEGIN")?;
    for (table, copy) in HISTORY_TABLES {
        c.execute_batch(&format!(
            "INSERT INTO main.{table} SELECT * FROM backup.{copy}"
        ))
        .with_context(|| format!("cannot restore the compliance history's {table}"))?;
    }
    c.execute_batch("COMMIT; DETACH DATABASE backup")?;
    set_mode(to, 0o600)?;
    Ok(c.query_row("SELECT COUNT(*) FROM records", [], |r| r.get::<_, i64>(0))? as u64)
}

/// Runs `garrison restore`.
pub fn run_restore(args: RestoreArgs) -> Result<()> {
    if !args.from.is_file() {
        bail!("backup file {} does not exist", args.from.display());
    }
    let (objects, rv) = garrison_apiserver::store::verify_file(&args.from)
        .with_context(|| format!("{} is not a usable backup", args.from.display()))?;
    let conn = Connection::open_with_flags(&args.from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    {
        let mut st = conn
            .prepare("SELECT path, data FROM garrison_backup_files")
            .with_context(|| format!("{} is a store but not a garrison backup (no PKI files); make backups with `garrison backup`", args.from.display()))?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        for r in rows {
            files.push(r?);
        }
    }
    for f in FILES {
        if !files.iter().any(|(p, _)| p == f) {
            bail!(
                "{} is missing {f}; it is not a complete garrison backup",
                args.from.display()
            );
        }
    }
    let dir = DataDir::new(&args.data_dir);
    if dir.is_initialized() && !args.force {
        bail!(
            "{} already holds a hub; use --force to replace it with the backup",
            dir.root.display()
        );
    }
    dir.create()?;
    let _lock = dir.lock("restoring into it")?;
    // The store first, through a temporary file, without the backup's file table.
    let tmp = dir.root.join("store.db.restoring");
    let _ = std::fs::remove_file(&tmp);
    garrison_apiserver::store::backup_file(&args.from, &tmp)?;
    let has_history = {
        let c = Connection::open(&tmp)?;
        c.execute_batch("DROP TABLE garrison_backup_files")?;
        let has: bool = c.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'garrison_backup_history_records'",
            [],
            |r| r.get(0),
        )?;
        for (_, copy) in HISTORY_TABLES {
            c.execute_batch(&format!("DROP TABLE IF EXISTS {copy}"))?;
        }
        c.pragma_update(None, "journal_mode", "WAL")?;
        has
    };
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", dir.store().display()));
    }
    std::fs::rename(&tmp, dir.store()).context("cannot move the restored store into place")?;
    set_mode(&dir.store(), 0o600)?;
    for (path, data) in &files {
        if !FILES.contains(&path.as_str()) && !OPTIONAL_FILES.contains(&path.as_str()) {
            continue;
        }
        write_private(&dir.root.join(path), data)?;
    }
    if has_history {
        let n = restore_history(&args.from, &dir.history())?;
        println!("Restored the compliance history: {n} records and their checkpoints");
    }
    // The checkpoint a replaced hub remembered may be newer than the backup's history: a
    // deliberate restore starts over from the backup's own checkpoints.
    let anchor = dir.history_anchor();
    if anchor.exists() {
        std::fs::remove_file(&anchor)
            .with_context(|| format!("cannot remove {}", anchor.display()))?;
        println!(
            "Forgot the replaced hub's newest checkpoint: the history now verifies against the backup's"
        );
    }
    println!(
        "Restored {objects} objects (resourceVersion {rv}) and the hub PKI into {}",
        dir.root.display()
    );
    println!(
        "Start the hub with: garrison hub --data-dir {}",
        dir.root.display()
    );
    Ok(())
}
