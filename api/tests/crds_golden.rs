//! The CRD files committed under `deploy/crds/` are exactly what the crate generates.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use garrison_api::crds;

const REGENERATE: &str = "run `cargo run -p garrison-api --example gen_crds` and commit the result";

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds")
}

#[test]
fn every_committed_crd_file_matches_the_generated_crd() {
    let mut drifted = Vec::new();
    for crd in crds::all() {
        let name = crds::file_name(&crd);
        let path = crd_dir().join(&name);
        match fs::read_to_string(&path) {
            Ok(committed) if committed == crds::to_yaml(&crd) => {}
            Ok(_) => drifted.push(format!("{name} differs from the generated CRD")),
            Err(e) => drifted.push(format!("{name} cannot be read: {e}")),
        }
    }
    assert!(
        drifted.is_empty(),
        "deploy/crds is out of date ({REGENERATE}):\n  {}",
        drifted.join("\n  ")
    );
}

#[test]
fn deploy_crds_holds_no_file_that_no_crd_produces() {
    let produced: BTreeSet<String> = crds::all().iter().map(crds::file_name).collect();
    let stray: Vec<String> = fs::read_dir(crd_dir())
        .expect("deploy/crds exists")
        .map(|entry| entry.expect("a readable entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !produced.contains(name))
        .collect();
    assert!(
        stray.is_empty(),
        "deploy/crds has files no CRD produces ({REGENERATE}, or delete them): {stray:?}"
    );
}

#[test]
fn crd_file_names_are_plural_dot_group_dot_yaml() {
    let names: Vec<String> = crds::all().iter().map(crds::file_name).collect();
    assert!(names.contains(&"managedclusters.cluster.open-cluster-management.io.yaml".into()));
    assert!(names.contains(&"manifestworks.work.open-cluster-management.io.yaml".into()));
    for (crd, name) in crds::all().iter().zip(&names) {
        let metadata_name = crd.metadata.name.as_deref().expect("a CRD has a name");
        assert_eq!(*name, format!("{metadata_name}.yaml"));
    }
}
