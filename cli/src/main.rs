//! The `garrison` binary: the hub daemon and the admin verbs.
//!
//! `main` stays thin: parse arguments (no side effects), then run the chosen command. Every
//! failure ends as one line on stderr naming the cause, and a non-zero exit.

mod addon;
mod admin;
mod agent;
mod auditor;
mod backup;
mod certs;
mod compliance;
mod datadir;
mod hub;
mod hub_external;
mod image;
mod init;
mod install;
mod limits;
mod placement;
mod policy;
mod progress;
mod quickstart;
mod sim;
mod token;
mod webhook;
mod work;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Garrison: Open Cluster Management with policy and security at its centre.
#[derive(Parser, Debug)]
#[command(name = "garrison", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Arguments of `garrison completion`.
#[derive(clap::Args, Debug)]
struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a hub and 3 simulated clusters here, join and accept them, and deploy a sample
    /// workload with a ManifestWork. Runs until Ctrl-C; a second run reuses DIR.
    Quickstart(quickstart::QuickstartArgs),
    /// Create a new hub: CAs, serving certificate and an admin kubeconfig in DIR.
    ///
    /// Writes DIR/pki (hub CA, client CA, serving certificate; keys mode 0600),
    /// DIR/admin.kubeconfig (user garrison-admin in group system:masters, certificates embedded)
    /// and DIR/hub.json. Refuses to touch an existing hub unless --force is given.
    Init(init::InitArgs),
    /// Run the hub: the Kubernetes-compatible API server over HTTPS, with the OCM CRDs installed.
    ///
    /// Authenticates clients by certificate (signed by the hub's client CA) or bootstrap token,
    /// authorizes with RBAC, stores in DIR/store.db (SQLite) and appends one JSON line per request
    /// to DIR/audit.log. Stops gracefully on SIGTERM or Ctrl-C.
    Hub(hub::HubArgs),
    /// Run the generic API server alone: no OCM CRDs, admission rules or controllers, only what
    /// kube-apiserver (and kube-controller-manager's client-certificate signer) would do.
    ///
    /// A stand-in for a real Kubernetes control plane on one machine: point
    /// `garrison hub --kubeconfig DIR/admin.kubeconfig` at it to run the hub the way it runs
    /// next to kube-apiserver. DIR is made by `garrison init`.
    Apiserver(hub::ApiServerArgs),
    /// Print the YAML that runs Garrison on a Kubernetes cluster, for `kubectl apply -f -`.
    #[command(subcommand)]
    Install(install::InstallCommand),
    /// Copy a hub's store and PKI into one backup file. Safe while the hub is running.
    Backup(backup::BackupArgs),
    /// Restore a backup file into a data directory. The hub must be stopped.
    Restore(backup::RestoreArgs),
    /// Manage bootstrap tokens (`token create --ttl 1h`). Tokens always expire (default 24h, at most 7d).
    Token(token::TokenArgs),
    /// Show when the hub's CAs, serving certificate and admin kubeconfig expire
    /// (`certs check-expiration`), and renew the serving certificate and admin kubeconfig
    /// (`certs renew serving|admin|all`).
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Register this cluster with a hub, then run its agent in the foreground.
    ///
    /// Checks the hub's CA against --ca-cert-hash before sending anything, generates the agent's
    /// key locally (it never leaves DIR), creates the ManagedCluster and a certificate request,
    /// and waits for `garrison accept NAME` on the hub.
    Join(agent::JoinArgs),
    /// Run a joined agent again (after `garrison join`), from its data directory.
    Klusterlet(agent::KlusterletArgs),
    /// Simulate a fleet: N clusters in this process, each joined and run by the real agent
    /// (bootstrap, CSR, lease, status, work agent) over its own mTLS connection to the hub.
    ///
    /// Each cluster is an in-memory API server whose Deployments, Jobs and Pods get the status
    /// a healthy cluster gives. The hub's administrator accepts the clusters as usual
    /// (`garrison accept`). Prints progress while agents start, and the simulator's own memory
    /// and CPU per cluster when stopped (Ctrl-C or --duration).
    Sim(sim::SimArgs),
    /// Accept clusters: show each pending certificate request (requester, identity, key
    /// fingerprint), then approve them and set hubAcceptsClient=true. Returns once the hub has
    /// created each cluster's namespace and RBAC, so add-ons and works can follow at once.
    Accept(admin::AcceptArgs),
    /// Deny a cluster: hubAcceptsClient=false. Its certificates are refused at once, its RBAC is
    /// removed and its pending requests are denied.
    Deny(admin::DenyArgs),
    /// Put clusters into cluster sets, and bind sets to namespaces for placements.
    #[command(subcommand)]
    Clusterset(placement::ClusterSetCommand),
    /// Enable or disable an add-on on clusters (`addon enable managed-serviceaccount --clusters a,b`).
    #[command(subcommand)]
    Addon(addon::AddonCommand),
    /// Work with policies: run Gatekeeper test suites (`policy test PATH...`).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Verify images against image policies (`image verify IMAGE --policy FILE`).
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// The compliance history for auditors: reports by standard, category and control at a
    /// time or over a range, with the records behind them; a policy's history.
    #[command(subcommand)]
    Compliance(compliance::ComplianceCommand),
    /// Prove the compliance history untouched: verify its hash chain and signed checkpoints,
    /// export it for offline verification, print the hub's public key.
    #[command(subcommand)]
    Audit(compliance::AuditCommand),
    /// Give auditors read-only access: `auditor token --ttl 8h [--cluster C]` issues a
    /// short-lived token for the compliance web view (https://HUB/ui/) and API; `auditor
    /// revoke NAME` ends it.
    #[command(subcommand)]
    Auditor(auditor::AuditorCommand),
    /// Print a shell completion script: `source <(garrison completion bash)`, or for zsh
    /// `garrison completion zsh > "${fpath[1]}/_garrison"`, or for fish
    /// `garrison completion fish > ~/.config/fish/completions/garrison.fish`.
    Completion(CompletionArgs),
    /// Show clusters, works, placements, the hub, or an agent.
    #[command(subcommand)]
    Get(GetCommand),
    /// Create a ManifestWork or a Placement.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Delete a ManifestWork; its agent removes what it applied.
    #[command(subcommand)]
    Delete(DeleteCommand),
}

#[derive(Subcommand, Debug)]
enum CreateCommand {
    /// Deliver manifests to clusters as a ManifestWork in each cluster's namespace.
    ///
    /// FILE holds plain manifests (YAML documents separated by ---, or a List), or one whole
    /// ManifestWork. Deployments, DaemonSets, Jobs and Pods get WellKnownStatus feedback unless
    /// --no-feedback is given.
    Work(work::CreateWorkArgs),
    /// Choose clusters from the cluster sets bound to a namespace: by labels, ranked by
    /// prioritizers, up to a count. The hub publishes the choice as PlacementDecisions.
    Placement(placement::CreatePlacementArgs),
}

#[derive(Subcommand, Debug)]
enum DeleteCommand {
    /// Delete a work. The agent deletes the resources it applied (per the work's delete option),
    /// then removes its finalizer; this waits for that, up to --wait.
    Work(work::DeleteWorkArgs),
}

#[derive(Subcommand, Debug)]
enum GetCommand {
    /// The managed clusters: acceptance, joined, availability (-o wide|json|yaml).
    Clusters(admin::GetClustersArgs),
    /// The ManifestWorks: Applied, Available and Degraded, and status feedback (-o wide|json|yaml).
    Works(work::GetWorksArgs),
    /// The placements: whether satisfied, how many clusters, and which (-o wide|json|yaml).
    Placements(placement::GetPlacementsArgs),
    /// The add-ons enabled on clusters and their availability per cluster (-o wide|json|yaml).
    Addons(addon::GetAddonsArgs),
    /// The policies on the hub, their compliance and how many clusters comply
    /// (-o wide adds each cluster's state and the standards and controls).
    Policies(policy::GetPoliciesArgs),
    /// Every policy bound to one cluster, per template, with its latest message.
    Compliance(policy::GetComplianceArgs),
    /// The ClusterImagePolicies in the hub's policies: images covered, authorities, mode, and
    /// on how many clusters they are enforced (-o wide|json|yaml).
    #[command(name = "imagepolicies", alias = "image-policies")]
    Imagepolicies(image::GetImagePoliciesArgs),
    /// The hub's URL and CA pin (what a spoke needs to join), and the fleet at a glance.
    HubInfo(admin::HubInfoArgs),
    /// An agent's identity, certificate, rotation time and pending request, from its data directory.
    KlusterletInfo(agent::KlusterletInfoArgs),
}

fn main() -> ExitCode {
    // A panic is a bug; still, the user sees one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let loc = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error{loc}: {msg} (please report this)");
    }));
    let cli = Cli::parse();
    // Daemons set up logging and traces themselves; a one-shot command exports a span of its
    // own when OTEL_EXPORTER_OTLP_ENDPOINT is set, which its requests to the hub continue.
    let daemon = matches!(
        cli.command,
        Command::Hub(_)
            | Command::Apiserver(_)
            | Command::Join(_)
            | Command::Klusterlet(_)
            | Command::Sim(_)
            | Command::Quickstart(_)
    );
    let (traces, root) = if daemon {
        (None, tracing::Span::none())
    } else {
        command_traces()
    };
    let entered = root.enter();
    let result = match cli.command {
        Command::Quickstart(a) => quickstart::run(a),
        Command::Init(a) => init::run(a),
        Command::Hub(a) => hub::run(a),
        Command::Apiserver(a) => hub::run_apiserver(a),
        Command::Install(c) => install::run(c),
        Command::Backup(a) => backup::run_backup(a),
        Command::Restore(a) => backup::run_restore(a),
        Command::Token(a) => token::run(a),
        Command::Certs(c) => certs::run(c),
        Command::Join(a) => agent::join(a),
        Command::Klusterlet(a) => agent::klusterlet(a),
        Command::Sim(a) => sim::run(a),
        Command::Accept(a) => admin::accept(a),
        Command::Deny(a) => admin::deny(a),
        Command::Get(GetCommand::Clusters(a)) => admin::get_clusters(a),
        Command::Get(GetCommand::HubInfo(a)) => admin::hub_info(a),
        Command::Get(GetCommand::Works(a)) => work::get(a),
        Command::Get(GetCommand::Placements(a)) => placement::get(a),
        Command::Clusterset(c) => placement::clusterset(c),
        Command::Addon(c) => addon::run(c),
        Command::Policy(c) => policy::run(c),
        Command::Image(c) => image::run(c),
        Command::Compliance(c) => compliance::compliance(c),
        Command::Audit(c) => compliance::audit(c),
        Command::Auditor(c) => auditor::run(c),
        Command::Completion(a) => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(a.shell, &mut cmd, "garrison", &mut std::io::stdout());
            Ok(())
        }
        Command::Get(GetCommand::Addons(a)) => addon::get(a),
        Command::Get(GetCommand::Policies(a)) => policy::get_policies(a),
        Command::Get(GetCommand::Compliance(a)) => policy::get_compliance(a),
        Command::Get(GetCommand::Imagepolicies(a)) => image::get(a),
        Command::Create(CreateCommand::Placement(a)) => placement::create(a),
        Command::Create(CreateCommand::Work(a)) => work::create(a),
        Command::Delete(DeleteCommand::Work(a)) => work::delete(a),
        Command::Get(GetCommand::KlusterletInfo(a)) => agent::info(a),
    };
    drop(entered);
    drop(root);
    // Flushes the command's spans.
    drop(traces);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            let mut line = chain.join(": ");
            line = line.replace('\n', " ");
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

/// With OTEL_EXPORTER_OTLP_ENDPOINT set, exports this command's spans as `garrison-cli`: the
/// guard that flushes them, and the command's root span (`garrison create work`, say).
fn command_traces() -> (Option<garrison_telemetry::traces::Guard>, tracing::Span) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let Some(endpoint) = garrison_telemetry::traces::endpoint(None) else {
        return (None, tracing::Span::none());
    };
    let (layer, guard) = match garrison_telemetry::traces::start("garrison-cli", &endpoint) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("warning: OTEL_EXPORTER_OTLP_ENDPOINT: {e}; not exporting traces");
            return (None, tracing::Span::none());
        }
    };
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .try_init();
    let words: Vec<String> = std::env::args()
        .skip(1)
        .take_while(|a| !a.starts_with('-'))
        .take(2)
        .collect();
    let name = format!("garrison {}", words.join(" "));
    let span = tracing::info_span!("command", otel.name = %name, otel.kind = "client");
    (Some(guard), span)
}

/// The default data directory flag value shared by the commands.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("garrison-data")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn completion_scripts_know_the_verbs_and_their_flags() {
        for (shell, needle) in [
            (clap_complete::Shell::Bash, "garrison__subcmd__accept"),
            (
                clap_complete::Shell::Zsh,
                "_garrison__subcmd__accept_commands",
            ),
            (
                clap_complete::Shell::Fish,
                "__fish_garrison_using_subcommand accept",
            ),
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "garrison", &mut out);
            let script = String::from_utf8(out).unwrap();
            assert!(script.contains(needle), "{shell}: no {needle}");
            assert!(script.contains("kubeconfig"), "{shell}: no --kubeconfig");
        }
    }
}
