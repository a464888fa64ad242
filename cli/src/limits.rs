//! Process limits a server with thousands of connections needs.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft limit on open files to `want` (each connection, watch socket and agent lock
/// is one), as far as the hard limit allows, and the hard limit too where the process may
/// (root). Go programs such as kube-apiserver do the same at start. Warns when the limit stays
/// below `need`.
pub fn raise_open_files(want: u64, need: u64) {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let current = current.unwrap_or(u64::MAX);
    if current >= want {
        return;
    }
    let hard = maximum.unwrap_or(u64::MAX);
    let raised = if hard < want
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: Some(want),
            },
        )
        .is_ok()
    {
        want
    } else {
        let soft = want.min(hard);
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(soft),
                maximum,
            },
        ) {
            Ok(()) => soft,
            Err(_) => current,
        }
    };
    if raised < need {
        eprintln!("warning: at most {raised} open files (ulimit -n); {need} may be needed");
    }
}
