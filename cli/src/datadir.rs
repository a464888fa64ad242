//! The hub's data directory: its layout, its creation checks, and the lock that keeps two hubs
//! (or a hub and a restore) off the same store.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Paths inside a hub data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The directory.
    pub root: PathBuf,
}

impl DataDir {
    /// The data directory at `root` (not checked).
    pub fn new(root: &Path) -> Self {
        DataDir {
            root: root.to_path_buf(),
        }
    }
    /// The hub settings written by `init`.
    pub fn config(&self) -> PathBuf {
        self.root.join("hub.json")
    }
    /// The SQLite store.
    pub fn store(&self) -> PathBuf {
        self.root.join("store.db")
    }
    /// The compliance history.
    pub fn history(&self) -> PathBuf {
        self.root.join("compliance-history.db")
    }
    /// The newest checkpoint the hub signed, kept apart from the history's store.
    pub fn history_anchor(&self) -> PathBuf {
        self.root.join("compliance-history.head")
    }
    /// The audit log.
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.log")
    }
    /// The PKI directory.
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
    /// A file in the PKI directory.
    pub fn pki_file(&self, name: &str) -> PathBuf {
        self.pki().join(name)
    }
    /// The admin kubeconfig.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.root.join("admin.kubeconfig")
    }
    fn lock_file(&self) -> PathBuf {
        self.root.join("hub.lock")
    }

    /// Whether `init` has run here.
    pub fn is_initialized(&self) -> bool {
        self.config().exists()
    }

    /// Fails with a clear message unless the directory holds an initialised hub.
    pub fn require_initialized(&self) -> Result<()> {
        if !self.root.is_dir() {
            bail!(
                "data directory {} does not exist; run `garrison init --data-dir {}` first",
                self.root.display(),
                self.root.display()
            );
        }
        if !self.is_initialized() {
            bail!(
                "{} is not a Garrison hub data directory (no hub.json); run `garrison init --data-dir {}` first",
                self.root.display(),
                self.root.display()
            );
        }
        Ok(())
    }

    /// Creates the directory (mode 0700) or checks an existing one is writable.
    pub fn create(&self) -> Result<()> {
        if self.root.exists() && !self.root.is_dir() {
            bail!("{} exists and is not a directory", self.root.display());
        }
        fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create data directory {}", self.root.display()))?;
        set_mode(&self.root, 0o700)?;
        let probe = self.root.join(".write-test");
        fs::write(&probe, b"")
            .with_context(|| format!("data directory {} is not writable", self.root.display()))?;
        let _ = fs::remove_file(probe);
        fs::create_dir_all(self.pki())
            .with_context(|| format!("cannot create {}", self.pki().display()))?;
        set_mode(&self.pki(), 0o700)?;
        Ok(())
    }

    /// Takes the directory's exclusive lock, held until the returned file is dropped.
    pub fn lock(&self, purpose: &str) -> Result<File> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_file())
            .with_context(|| format!("cannot open lock file in {}", self.root.display()))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(fs::TryLockError::WouldBlock) => {
                bail!(
                    "another garrison process is using {} (a running hub?); stop it before {purpose}",
                    self.root.display()
                )
            }
            Err(fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", self.root.display()))
            }
        }
    }
}

pub use garrison_klusterlet::state::set_mode;

/// Writes a file readable only by its owner (for keys and kubeconfigs), atomically.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    garrison_klusterlet::state::write_file(path, data, 0o600)
}
