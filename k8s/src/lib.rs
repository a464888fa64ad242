//! Kubernetes plumbing shared by Garrison's API server, its agent and its CLI: the `Status`
//! errors every API answers with, TLS configuration and a plain HTTPS server, certificates for
//! tests and simulated clusters, kubeconfigs, and kube client helpers. It holds no store and
//! no server logic, so the agent links it without the API server.

// `ApiError` carries a full Kubernetes Status (message, subject, causes). It is built only on the
// failure path of a request, so its size costs nothing measurable.
#![allow(clippy::result_large_err)]

pub mod certs;
pub mod client;
pub mod error;
pub mod http;
pub mod json;
pub mod kubeconfig;
pub mod tls;
