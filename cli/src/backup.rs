//! `garrison backup` and `garrison restore`.
//!
//! A backup is one SQLite file: an online copy of the store (SQLite's backup API, consistent
//! while the hub keeps writing) plus a table holding the hub's settings and PKI files. It holds
//! the CA keys, so it is written mode 0600 and must be kept as secret as the hub itself.

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
    println!("The file contains the hub's CA keys: store it as securely as the hub itself.");
    Ok(())
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
    {
        let c = Connection::open(&tmp)?;
        c.execute_batch("DROP TABLE garrison_backup_files")?;
        c.pragma_update(None, "journal_mode", "WAL")?;
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", dir.store().display()));
    }
    std::fs::rename(&tmp, dir.store()).context("cannot move the restored store into place")?;
    set_mode(&dir.store(), 0o600)?;
    for (path, data) in &files {
        if !FILES.contains(&path.as_str()) {
            continue;
        }
        write_private(&dir.root.join(path), data)?;
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
