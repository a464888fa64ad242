//! Writes every CRD of `garrison-api` to `deploy/crds/` at the workspace root, one YAML file
//! per CRD, and removes YAML files there that no CRD produces.
//!
//! Run with `cargo run -p garrison-api --example gen_crds`.

use std::collections::BTreeSet;
use std::path::Path;
use std::{fs, io};

use garrison_api::crds;

fn main() -> io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    fs::create_dir_all(&dir)?;

    let mut written = BTreeSet::new();
    for crd in crds::all() {
        let name = crds::file_name(&crd);
        fs::write(dir.join(&name), crds::to_yaml(&crd))?;
        println!("wrote deploy/crds/{name}");
        written.insert(name);
    }

    for entry in fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && !written.contains(&name) {
            fs::remove_file(dir.join(&name))?;
            println!("removed stale deploy/crds/{name}");
        }
    }
    Ok(())
}
