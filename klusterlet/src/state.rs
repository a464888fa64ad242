//! The agent's data directory.
//!
//! | file | what | mode |
//! |---|---|---|
//! | `klusterlet.json` | hub URL, cluster name, agent id, how the managed cluster is reached | 0644 |
//! | `hub-ca.crt` | the hub CA, as pinned at join | 0644 |
//! | `bootstrap.token` | the bootstrap token, kept to re-bootstrap | 0600 |
//! | `client.pem` | the agent's certificate and private key, replaced atomically | 0600 |
//! | `pending.key` | the key of a CSR waiting for approval | 0600 |
//! | `klusterlet.lock` | held by the running agent | 0644 |
//!
//! The private key is generated on the spoke and never leaves this directory.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// How the agent reaches the cluster it manages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum SpokeSource {
    /// A simulated cluster held in the agent's memory.
    Simulated,
    /// A real cluster, through this kubeconfig.
    Kubeconfig {
        /// The kubeconfig path.
        path: PathBuf,
    },
    /// The cluster the agent runs in, with its pod's ServiceAccount.
    InCluster,
}

/// What `join` records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig {
    /// The hub's URL.
    pub hub_url: String,
    /// The pin the hub CA was checked against (`sha256:...`).
    pub ca_cert_hash: String,
    /// The managed cluster's name.
    pub cluster_name: String,
    /// The agent id, the last part of the agent's user name.
    pub agent_id: String,
    /// The managed cluster.
    pub spoke: SpokeSource,
    /// Lease period asked for at registration, in seconds.
    pub lease_duration_seconds: u32,
}

/// The agent's data directory.
#[derive(Debug, Clone)]
pub struct AgentDir {
    /// Its root.
    pub root: PathBuf,
}

impl AgentDir {
    /// The directory at `root` (not created).
    pub fn new(root: &Path) -> Self {
        AgentDir {
            root: root.to_path_buf(),
        }
    }
    /// `klusterlet.json`.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("klusterlet.json")
    }
    /// `simulated-cluster.db`: a simulated cluster's objects.
    pub fn simulated_store_file(&self) -> PathBuf {
        self.root.join("simulated-cluster.db")
    }
    /// `simulated-cluster.kubeconfig`: an admin kubeconfig for the simulated cluster.
    pub fn simulated_kubeconfig_file(&self) -> PathBuf {
        self.root.join("simulated-cluster.kubeconfig")
    }
    /// `hub-ca.crt`.
    pub fn hub_ca_file(&self) -> PathBuf {
        self.root.join("hub-ca.crt")
    }
    /// `bootstrap.token`.
    pub fn token_file(&self) -> PathBuf {
        self.root.join("bootstrap.token")
    }
    /// `client.pem`.
    pub fn client_file(&self) -> PathBuf {
        self.root.join("client.pem")
    }
    /// `pending.key`.
    pub fn pending_key_file(&self) -> PathBuf {
        self.root.join("pending.key")
    }

    /// Whether `join` has completed its first step here.
    pub fn is_joined(&self) -> bool {
        self.config_file().exists()
    }

    /// Creates the directory, owner-only.
    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        set_mode(&self.root, 0o700)
    }

    /// Takes the agent's lock, held until the file is dropped.
    pub fn lock(&self) -> Result<File> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("klusterlet.lock"))
            .with_context(|| format!("cannot open the lock file in {}", self.root.display()))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(fs::TryLockError::WouldBlock) => bail!(
                "another klusterlet is running with {}; stop it first",
                self.root.display()
            ),
            Err(fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", self.root.display()))
            }
        }
    }

    /// Reads `klusterlet.json`.
    pub fn load_config(&self) -> Result<AgentConfig> {
        let p = self.config_file();
        let raw = fs::read(&p).with_context(|| {
            format!(
                "{} is not a joined klusterlet directory (no klusterlet.json); run `garrison join` first",
                self.root.display()
            )
        })?;
        serde_json::from_slice(&raw).with_context(|| format!("{} is corrupt", p.display()))
    }

    /// Writes `klusterlet.json`.
    pub fn save_config(&self, cfg: &AgentConfig) -> Result<()> {
        write_file(&self.config_file(), &serde_json::to_vec_pretty(cfg)?, 0o644)
    }

    /// Reads the pinned hub CA.
    pub fn hub_ca(&self) -> Result<String> {
        fs::read_to_string(self.hub_ca_file())
            .with_context(|| format!("cannot read {}", self.hub_ca_file().display()))
    }

    /// Reads the bootstrap token, if kept.
    pub fn token(&self) -> Option<String> {
        fs::read_to_string(self.token_file())
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Reads the agent's certificate and key, if it has them.
    pub fn credentials(&self) -> Option<Credentials> {
        let pem = fs::read_to_string(self.client_file()).ok()?;
        Credentials::from_pem(&pem)
    }

    /// Replaces the agent's certificate and key in one rename.
    pub fn save_credentials(&self, creds: &Credentials) -> Result<()> {
        write_file(&self.client_file(), creds.to_pem().as_bytes(), 0o600)
    }
}

/// A certificate and its private key. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Splits one PEM file into its certificate and its key.
    pub fn from_pem(pem: &str) -> Option<Self> {
        let mut cert = String::new();
        let mut key = String::new();
        let mut current: Option<&mut String> = None;
        for line in pem.lines() {
            if line.starts_with("-----BEGIN CERTIFICATE") {
                current = Some(&mut cert);
            } else if line.starts_with("-----BEGIN") && line.contains("PRIVATE KEY") {
                current = Some(&mut key);
            }
            if let Some(buf) = current.as_deref_mut() {
                buf.push_str(line);
                buf.push('\n');
            }
            if line.starts_with("-----END") {
                current = None;
            }
        }
        (!cert.is_empty() && !key.is_empty()).then_some(Credentials {
            cert_pem: cert,
            key_pem: key,
        })
    }

    /// One PEM file: certificate, then key.
    pub fn to_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }
}

/// Sets a path's Unix mode.
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set permissions on {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Writes a file atomically (temporary file, fsync, rename) with `mode` from its creation.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = OpenOptions::new();
        opts.create(true).write(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::io::Write::write_all(&mut f, data)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all()?;
    }
    set_mode(&tmp, mode)?;
    fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_and_never_print_the_key() {
        let c = Credentials {
            cert_pem: "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n".into(),
        };
        assert_eq!(Credentials::from_pem(&c.to_pem()), Some(c.clone()));
        assert!(!format!("{c:?}").contains("BBB"));
        assert_eq!(Credentials::from_pem(&c.cert_pem), None);
    }

    #[test]
    fn private_files_are_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AgentDir::new(&tmp.path().join("agent"));
        dir.create().unwrap();
        let c = Credentials {
            cert_pem: "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nB\n-----END PRIVATE KEY-----\n".into(),
        };
        dir.save_credentials(&c).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.client_file())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = fs::metadata(&dir.root).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        assert_eq!(dir.credentials(), Some(c));
    }
}
