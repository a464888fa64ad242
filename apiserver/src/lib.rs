//! Garrison's embedded Kubernetes-compatible API server.
//!
//! It serves the subset of kube-apiserver's contract that OCM controllers, kube-rs, kubectl and
//! Argo CD use: discovery and OpenAPI, the CRUD, patch and watch verbs, metadata semantics
//! (status subresource, generation, finalizers, garbage collection, namespace lifecycle), the
//! built-in kinds the hub needs, CustomResourceDefinitions with structural-schema validation,
//! client-certificate and bootstrap-token authentication, RBAC, and a JSON-lines audit log.
//! Objects live in SQLite (see [`store`]).

// `ApiError` carries a full Kubernetes Status (message, subject, causes). It is built only on the
// failure path of a request, so its size costs nothing measurable; boxing it would make every
// handler noisier for no gain.
#![allow(clippy::result_large_err)]

pub use garrison_k8s::{certs, client, error, kubeconfig};

pub mod admission;
pub mod apply;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod bootstrap_signer;
pub mod conversion;
pub mod events;
pub mod gc;
pub mod health;
pub mod http;
pub mod ocm;
pub mod ops;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub use garrison_api::structural as schema;
pub mod selectors;
pub mod server;
pub mod slis;
pub mod store;
pub mod tls;
pub mod validation;
pub mod webhooks;
