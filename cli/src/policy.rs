//! `garrison policy`: tools for compliance teams' policies.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use garrison_api::policy::v1::Policy;
use garrison_api::policy::{CONTROLS_ANNOTATION, ROOT_POLICY_LABEL, STANDARDS_ANNOTATION};
use garrison_governance::suite::{self, Outcome, Totals};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::admin::{Output, Target, age, client, print_list, print_table, runtime, unreachable};

/// Policy commands.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Run Gatekeeper `gator verify` test suites with Garrison's Rego engine.
    ///
    /// PATH is a Suite file (`apiVersion: test.gatekeeper.sh/v1alpha1`, `kind: Suite`) or a
    /// directory, searched recursively for suite files. Each test's ConstraintTemplate is
    /// compiled, its Constraint checked against the template's schema, and every case's object
    /// (or AdmissionReview) judged with the case's inventory; each assertion (`violations`: a
    /// count, `yes` or `no`; `message`: a regular expression) must hold. Prints one line per
    /// case and a last line `N passed, M failed`; exits non-zero if any case failed.
    Test(TestArgs),
}

/// Arguments of `policy test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Suite files or directories holding them.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The Rego engine: `machine` runs each template's violation rule on regorus's bytecode
    /// virtual machine, as the agent does (templates it cannot run, or whose rules might
    /// conflict, fall back to the interpreter); `interpreter` runs everything on regorus's
    /// tree-walking interpreter, the slower reference. Both must give the same verdicts.
    #[arg(long, value_enum, default_value_t = Engine::Machine)]
    pub engine: Engine,
}

/// Which of regorus's engines evaluates templates.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The bytecode virtual machine, where a template allows it (the agent's choice).
    Machine,
    /// The tree-walking interpreter alone.
    Interpreter,
}

/// Runs a policy command.
pub fn run(cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Test(a) => test(a),
    }
}

fn test(args: TestArgs) -> Result<()> {
    garrison_governance::rego::set_interpreter_only(args.engine == Engine::Interpreter);
    let suites = suite::find(&args.paths)?;
    if suites.is_empty() {
        bail!(
            "no suites found under {} (files of apiVersion test.gatekeeper.sh/v1alpha1, kind Suite)",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut totals = Totals::default();
    for path in &suites {
        let result = match suite::run(path) {
            Ok(r) => r,
            Err(e) => {
                println!("FAIL  {}: {e}", path.display());
                totals.failed += 1;
                continue;
            }
        };
        for (test, note) in &result.notes {
            eprintln!("note: {}: {test}: {note}", path.display());
        }
        for c in &result.cases {
            let name = match &c.case {
                Some(case) => format!("{} / {case}", c.test),
                None => c.test.clone(),
            };
            match &c.outcome {
                Outcome::Pass => println!("PASS  {}: {name}", path.display()),
                Outcome::Skip => println!("SKIP  {}: {name}", path.display()),
                Outcome::Fail(why) => {
                    let why = why.replace('\n', " ");
                    println!("FAIL  {}: {name}: {why}", path.display())
                }
            }
        }
        totals.add(&result);
    }
    let skipped = if totals.skipped > 0 {
        format!(", {} skipped", totals.skipped)
    } else {
        String::new()
    };
    println!(
        "{} passed, {} failed{skipped}",
        totals.passed, totals.failed
    );
    if totals.failed > 0 {
        bail!(
            "{} of {} cases failed",
            totals.failed,
            totals.passed + totals.failed
        );
    }
    Ok(())
}

/// Arguments of `get policies`.
#[derive(Args, Debug)]
pub struct GetPoliciesArgs {
    /// Only the policies of this namespace.
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Every namespace's (the default without `-n`; accepted as kubectl accepts it).
    // Refused beside `-n` by clap, so no code needs to read it.
    #[arg(long, short = 'A', conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format; `wide` adds each cluster's compliance and the standards and controls.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `get compliance`.
#[derive(Args, Debug)]
pub struct GetComplianceArgs {
    /// The cluster.
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    target: Target,
}

fn or_dash(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

/// `garrison get policies`: the root policies, their compliance and how many clusters comply.
pub fn get_policies(args: GetPoliciesArgs) -> Result<()> {
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let api: Api<Policy> = match &args.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let lp = ListParams::default().labels(&format!("!{ROOT_POLICY_LABEL}"));
        let mut items = api.list(&lp).await.map_err(unreachable)?.items;
        items.sort_by_key(|p| (p.namespace().unwrap_or_default(), p.name_any()));
        if matches!(args.output, Output::Json | Output::Yaml) {
            return print_list(&items, args.output);
        }
        if items.is_empty() {
            eprintln!(
                "No policies. Write one with `kubectl apply -f examples/policies.yaml` and bind it with a PlacementBinding."
            );
            return Ok(());
        }
        let wide = args.output == Output::Wide;
        let mut header = vec!["NAMESPACE", "NAME", "REMEDIATION", "COMPLIANCE", "CLUSTERS", "AGE"];
        if wide {
            header.extend(["PER CLUSTER", "STANDARDS", "CONTROLS"]);
        }
        let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
        let mut compliant = 0;
        for p in &items {
            let st = p.status.clone().unwrap_or_default();
            let ok = st
                .status
                .iter()
                .filter(|c| c.compliant.as_deref() == Some("Compliant"))
                .count();
            if st.compliant.as_deref() == Some("Compliant") {
                compliant += 1;
            }
            let state = if p.spec.disabled {
                "Disabled".to_string()
            } else {
                or_dash(st.compliant.as_deref())
            };
            let mut row = vec![
                p.namespace().unwrap_or_default(),
                p.name_any(),
                or_dash(p.spec.remediation_action.as_deref()),
                state,
                format!("{ok}/{}", st.status.len()),
                age(p.metadata.creation_timestamp.as_ref()),
            ];
            if wide {
                let per: Vec<String> = st
                    .status
                    .iter()
                    .map(|c| format!("{}={}", c.clustername, c.compliant.as_deref().unwrap_or("Unknown")))
                    .collect();
                row.push(if per.is_empty() { "-".into() } else { per.join(",") });
                row.push(or_dash(p.annotations().get(STANDARDS_ANNOTATION).map(String::as_str)));
                row.push(or_dash(p.annotations().get(CONTROLS_ANNOTATION).map(String::as_str)));
            }
            rows.push(row);
        }
        print_table(&rows);
        eprintln!("{compliant}/{} policies compliant", items.len());
        Ok(())
    })
}

/// `garrison get compliance --cluster C`: every policy on one cluster, per template, with its
/// latest message (the violations when NonCompliant).
pub fn get_compliance(args: GetComplianceArgs) -> Result<()> {
    runtime()?.block_on(async {
        let (client, _) = client(&args.target).await?;
        let clusters: Api<garrison_api::ManagedCluster> = Api::all(client.clone());
        if clusters
            .get_opt(&args.cluster)
            .await
            .map_err(unreachable)?
            .is_none()
        {
            bail!(
                "cluster {:?} not found; `garrison get clusters` lists them",
                args.cluster
            );
        }
        let api: Api<Policy> = Api::namespaced(client.clone(), &args.cluster);
        let mut items = api
            .list(&ListParams::default().labels(ROOT_POLICY_LABEL))
            .await
            .map_err(unreachable)?
            .items;
        items.sort_by_key(|p| p.name_any());
        if matches!(args.output, Output::Json | Output::Yaml) {
            return print_list(&items, args.output);
        }
        if items.is_empty() {
            eprintln!("No policies are bound to cluster {}.", args.cluster);
            return Ok(());
        }
        let mut rows = vec![
            ["POLICY", "COMPLIANCE", "TEMPLATE", "STATE", "MESSAGE"]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        ];
        let mut non_compliant = 0;
        for p in &items {
            let st = p.status.clone().unwrap_or_default();
            if st.compliant.as_deref() == Some("NonCompliant") {
                non_compliant += 1;
            }
            let root = p
                .labels()
                .get(ROOT_POLICY_LABEL)
                .cloned()
                .unwrap_or_else(|| p.name_any());
            if st.details.is_empty() {
                rows.push(vec![
                    root,
                    or_dash(st.compliant.as_deref()),
                    "-".into(),
                    "-".into(),
                    "not evaluated yet".into(),
                ]);
                continue;
            }
            for d in &st.details {
                let meta = d.template_meta.clone().unwrap_or_default();
                rows.push(vec![
                    root.clone(),
                    or_dash(st.compliant.as_deref()),
                    format!(
                        "{}/{}",
                        meta["kind"].as_str().unwrap_or("-"),
                        meta["name"].as_str().unwrap_or("-")
                    ),
                    or_dash(d.compliant.as_deref()),
                    d.history
                        .first()
                        .map(|h| h.message.clone())
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
        }
        print_table(&rows);
        eprintln!(
            "{} policies on {}, {non_compliant} NonCompliant",
            items.len(),
            args.cluster
        );
        Ok(())
    })
}
