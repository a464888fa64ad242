//! Authentication (who is asking) and authorization (may they), with kube-apiserver's semantics.

pub mod authn;
pub mod rbac;
pub mod tokens;

pub use authn::UserInfo;
