//! Garrison's hub controllers. Each sees only a `kube::Client`: in embedded mode one served
//! in-process by the API server, otherwise one talking to a real kube-apiserver.

pub mod addon;
pub mod admission;
pub mod cache;
pub mod clusterset;
pub mod compliance;
pub mod leader;
pub mod metrics;
pub mod mwrs;
pub mod placement;
pub mod policy;
pub mod registration;
pub mod rollout;
pub mod supervisor;
