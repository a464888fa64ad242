//! `garrison policy`: tools for compliance teams' policies.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use garrison_governance::suite::{self, Outcome, Totals};

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
}

/// Runs a policy command.
pub fn run(cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Test(a) => test(a),
    }
}

fn test(args: TestArgs) -> Result<()> {
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
