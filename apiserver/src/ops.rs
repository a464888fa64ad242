//! The verbs on objects — get, list, create, update, patch, delete, deletecollection — with
//! kube-apiserver's metadata semantics, independent of HTTP.
//!
//! Semantics kept here: server-owned metadata (uid, creationTimestamp, resourceVersion,
//! generation), optimistic concurrency, the status subresource, finalizers and
//! `deletionTimestamp`, deletion propagation, and namespace existence and termination.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::admission::{self, FieldValidation, now_rfc3339};
use crate::apply::{self, Writer};
use crate::auth::UserInfo;
use crate::auth::rbac::Authorizer;
use crate::error::{ApiError, ApiResult, Cause};
use crate::patch;
use crate::resources::{Builtin, Registry, Resource};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Mutation, Store};
use crate::validation;

/// Finalizer that makes deletion wait for dependents to be deleted first.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Finalizer that makes deletion orphan dependents first.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// Patch media types accepted for built-in kinds.
pub const PATCH_TYPES: &str = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml";
/// Patch media types accepted for custom resources (no strategic merge, as kube-apiserver).
pub const PATCH_TYPES_CUSTOM: &str =
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

/// Who is writing, and how.
pub struct WriteCtx<'a> {
    /// The requesting user.
    pub user: &'a UserInfo,
    /// The field manager.
    pub manager: String,
    /// `dryRun=All`: validate and answer, but store nothing.
    pub dry_run: bool,
    /// Unknown-field handling.
    pub field_validation: FieldValidation,
    /// Warnings collected for the response.
    pub warnings: Vec<String>,
}

/// The shared state the verbs work on.
pub struct Objects {
    /// The store.
    pub store: Arc<Store>,
    /// The resource registry.
    pub registry: Arc<Registry>,
    /// The authorizer, for RBAC escalation checks in admission.
    pub authz: Arc<Authorizer>,
    /// Conversions between served and stored versions.
    pub conversions: Arc<crate::conversion::Conversions>,
    /// A simulated cluster's stand-in for an admission webhook: objects annotated with
    /// [`SIMULATED_REJECT_ANNOTATION`] are refused, for tests of failed applies.
    pub simulated_rejections: bool,
}

/// Annotation a simulated cluster refuses objects for; its value is the denial message.
pub const SIMULATED_REJECT_ANNOTATION: &str = "simulation.garrison.dev/reject";

fn simulated_rejection(obj: &Value) -> ApiResult<()> {
    if let Some(msg) = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(SIMULATED_REJECT_ANNOTATION))
        .and_then(Value::as_str)
    {
        return Err(ApiError::bad_request(format!(
            "admission webhook \"simulation.garrison.dev\" denied the request: {msg}"
        )));
    }
    Ok(())
}

/// Options of a list.
#[derive(Default)]
pub struct ListOptions {
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// Page size, 0 for all.
    pub limit: usize,
    /// Continue token from a previous page.
    pub continue_token: Option<String>,
}

/// Options of a delete.
#[derive(Default, Clone)]
pub struct DeleteOptions {
    /// Orphan, Background or Foreground.
    pub propagation: Option<String>,
    /// Precondition on the uid.
    pub uid: Option<String>,
    /// Precondition on the resourceVersion.
    pub resource_version: Option<String>,
    /// Do not persist.
    pub dry_run: bool,
}

/// Whether an update leaves the object as it was, apart from managedFields and the
/// resourceVersion; such an update writes nothing.
fn unchanged(old: &Value, next: &Value) -> bool {
    let (Some(a), Some(b)) = (old.as_object(), next.as_object()) else {
        return old == next;
    };
    equal_but(a, b, &["metadata"])
        && match (a.get("metadata"), b.get("metadata")) {
            (Some(Value::Object(ma)), Some(Value::Object(mb))) => {
                equal_but(ma, mb, &["managedFields", "resourceVersion"])
            }
            (ma, mb) => ma == mb,
        }
}

/// Whether two JSON objects are equal apart from the keys in `skip`; compares in place, as
/// the write path runs it on every update of every object.
fn equal_but(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
    skip: &[&str],
) -> bool {
    let kept = |k: &String| !skip.contains(&k.as_str());
    a.keys().filter(|k| kept(k)).count() == b.keys().filter(|k| kept(k)).count()
        && a.iter()
            .filter(|(k, _)| kept(k))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// Whether an update removes the last finalizer of an object being deleted, so the object goes.
fn completes_deletion(res: &Resource, next: &Value) -> bool {
    let finalizers_empty = next
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|f| f.is_empty());
    let deleting = next.pointer("/metadata/deletionTimestamp").is_some();
    let ns_pending = res.builtin == Some(Builtin::Namespace)
        && next
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
    deleting && finalizers_empty && !ns_pending
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn random_suffix() -> String {
    // kube's generateName alphabet: no vowels, no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = [0u8; 5];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("system randomness");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A write of a custom resource's main resource ignores `status` when the status subresource
/// exists, as kube-apiserver does: on create status starts empty, on update it stays as stored.
/// It is dropped before validation, so whatever a client sent there cannot fail the write.
fn without_status(res: &Resource, subresource: &str, mut body: Value) -> Value {
    if subresource.is_empty()
        && res.has_status()
        && res.is_custom()
        && let Some(m) = body.as_object_mut()
    {
        m.remove("status");
    }
    body
}

/// Whether two objects differ outside metadata and (when the status subresource exists) status.
fn spec_changed(res: &Resource, old: &Value, new: &Value) -> bool {
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let skip: &[&str] = if res.has_status() {
        &["metadata", "status"]
    } else {
        &["metadata"]
    };
    !equal_but(a, b, skip)
}

fn tracks_generation(res: &Resource) -> bool {
    res.is_custom() || res.builtin == Some(Builtin::CustomResourceDefinition)
}

/// The continue token: the list's resourceVersion and the last key returned.
pub fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"v": "garrison/1", "rv": rv, "ns": ns, "n": name}).to_string())
}

/// How long a patch is applied again, as often as needed, to an object that keeps changing
/// while it is applied: kube-apiserver's guaranteed update tries until the request's deadline.
const WRITE_RETRIES: std::time::Duration = std::time::Duration::from_secs(30);

/// The attempts of a write that is computed again when it races: the first at once, the
/// others until `WRITE_RETRIES` after the first, each letting the writers it raced with go
/// first.
struct Attempts {
    started: std::time::Instant,
    first: bool,
}

impl Attempts {
    fn new() -> Self {
        Attempts {
            started: std::time::Instant::now(),
            first: true,
        }
    }

    /// Whether another attempt may be made.
    fn next(&mut self) -> bool {
        if std::mem::take(&mut self.first) {
            return true;
        }
        std::thread::yield_now();
        self.started.elapsed() < WRITE_RETRIES
    }
}

/// The message of a write refused because its object changed, as kube-apiserver words it.
const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// What a write expects of the object it replaces.
enum Expect {
    /// Nothing: the write replaces whatever is stored.
    Nothing,
    /// The resourceVersion the caller gave: another one stored is a conflict for the caller
    /// to resolve.
    Caller(String),
    /// The resourceVersion of the object the write was computed from: another one stored
    /// means the object changed meanwhile, and the write is computed again.
    Read(String),
}

/// Whether a patch document (a merge or strategic patch's object, or a JSON patch's
/// operations) writes `metadata.resourceVersion`.
fn patch_names_version(doc: &Value) -> bool {
    match doc {
        Value::Array(ops) => ops.iter().any(|op| {
            op["path"]
                .as_str()
                .is_some_and(|p| p == "/metadata/resourceVersion" || p == "/metadata")
                && matches!(op["op"].as_str(), Some("add" | "replace" | "copy" | "move"))
        }),
        _ => doc.pointer("/metadata/resourceVersion").is_some(),
    }
}

/// `obj`'s resourceVersion, empty when it has none.
fn resource_version(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn decode_continue(token: &str) -> ApiResult<(u64, String, String)> {
    use base64::Engine;
    let bad =
        || ApiError::bad_request("continue key is not valid: it was not issued by this server");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v["v"] != "garrison/1" {
        return Err(bad());
    }
    Ok((
        v["rv"].as_u64().ok_or_else(bad)?,
        v["ns"].as_str().ok_or_else(bad)?.into(),
        v["n"].as_str().ok_or_else(bad)?.into(),
    ))
}

impl Objects {
    /// Reads one object.
    pub fn get(&self, res: &Resource, ns: &str, name: &str) -> ApiResult<Value> {
        let obj = self
            .store
            .get(&res.key(), ns, name)?
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
        Ok(self.present(res, obj))
    }

    /// Rewrites a stored object for the version it is read at.
    pub fn present(&self, res: &Resource, obj: Value) -> Value {
        let want = res.api_version();
        self.conversions
            .convert(res, obj, &want)
            .unwrap_or_else(|e| {
                tracing::error!(resource = %res.key(), version = %want, error = %e.message, "cannot convert a stored object");
                let mut o = e.object;
                o["apiVersion"] = json!(want);
                o
            })
    }

    /// Converts an object of the version `res` serves to the stored version.
    pub fn to_storage(&self, res: &Resource, obj: Value) -> ApiResult<Value> {
        let stored = res.storage_api_version();
        self.conversions.convert(res, obj, &stored).map_err(|e| {
            ApiError::internal(format!("conversion to {stored} failed: {}", e.message))
        })
    }

    /// Lists objects, filtered and paged; returns the items, the list resourceVersion and the
    /// continue token.
    pub fn list(
        &self,
        res: &Resource,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<(Vec<Value>, u64, Option<String>)> {
        // Every page of a list carries the first page's resourceVersion, as kube-apiserver's
        // do: a client that lists page by page and then watches from that version sees every
        // change made while it was paging (some twice, which watchers tolerate), instead of
        // missing changes to objects on pages it had already read.
        let mut first_rv = None;
        let after = match &opts.continue_token {
            Some(t) => {
                let (rv, ns, name) = decode_continue(t)?;
                if rv < self.store.watch().horizon().saturating_sub(1_000_000) {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result.",
                    ));
                }
                first_rv = Some(rv);
                Some((ns, name))
            }
            None => None,
        };
        let key = res.key();
        let mut items = Vec::new();
        let mut cursor = after;
        let filtering = !opts.labels.is_empty() || !opts.fields.requirements.is_empty();
        loop {
            let want = if opts.limit == 0 {
                0
            } else {
                opts.limit - items.len()
            };
            let page = self.store.list(
                &key,
                ns,
                cursor.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                if filtering && want > 0 {
                    want.max(500)
                } else {
                    want
                },
            )?;
            let rv = first_rv.unwrap_or(page.rv);
            let mut last = None;
            for obj in page.items {
                let meta_ns = obj
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                last = Some((meta_ns.clone(), name_of(&obj).to_string()));
                if opts.labels.matches_object(&obj) && opts.fields.matches(&obj) {
                    items.push(self.present(res, obj));
                    if opts.limit != 0 && items.len() == opts.limit {
                        let (n_ns, n_name) = last.clone().expect("last item");
                        let more = self
                            .store
                            .list(&key, ns, Some((&n_ns, &n_name)), 1)?
                            .items
                            .len()
                            == 1;
                        let token = more.then(|| encode_continue(rv, &n_ns, &n_name));
                        return Ok((items, rv, token));
                    }
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok((items, rv, None)),
            }
            if last.is_none() {
                return Ok((items, rv, None));
            }
        }
    }

    fn check_namespace(&self, res: &Resource, ns: &str) -> ApiResult<()> {
        if !res.namespaced {
            return Ok(());
        }
        let namespace = self
            .store
            .get("/namespaces", "", ns)?
            .ok_or_else(|| ApiError::not_found("", "namespaces", ns))?;
        if namespace.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::forbidden(format!(
                "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                crate::error::qualified(&res.group, &res.plural)
            ))
            .with_subject(&res.group, &res.plural, ""));
        }
        Ok(())
    }

    /// Checks apiVersion and kind of a body against the resource.
    fn check_type(&self, res: &Resource, obj: &Value) -> ApiResult<()> {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.is_empty() || api_version.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Object 'Kind' or 'apiVersion' is missing in the request body for {}",
                res.plural
            )));
        }
        if kind != res.kind || api_version != res.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) and kind ({kind}) do not match the request path ({}, {})",
                res.api_version(),
                res.kind
            )));
        }
        Ok(())
    }

    fn check_body_namespace(res: &Resource, ns: &str, obj: &mut Value) -> ApiResult<()> {
        let meta = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::bad_request("metadata is required"))?;
        if res.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    /// Creates an object.
    pub fn create(
        &self,
        res: &Resource,
        ns: &str,
        body: Value,
        ctx: &mut WriteCtx<'_>,
    ) -> ApiResult<Value> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON or YAML object",
            ));
        }
        self.check_type(res, &body)?;
        if self.simulated_rejections {
            simulated_rejection(&body)?;
        }
        let body = without_status(res, "", body);
        let (mut obj, warnings) = admission::decode(res, body, ctx.field_validation, None)?;
        if res.builtin == Some(Builtin::EventV1) {
            let causes = crate::events::validate_v1_create(&obj);
            if !causes.is_empty() {
                return Err(ApiError::invalid(
                    &res.group,
                    &res.kind,
                    name_of(&obj),
                    causes,
                ));
            }
        }
        ctx.warnings.extend(warnings);
        Self::check_body_namespace(res, ns, &mut obj)?;
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let generate = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !generate.is_empty() {
                let prefix: String = generate.chars().take(63 - 5).collect();
                name = format!("{prefix}{}", random_suffix());
            }
        }
        if let Err(why) = validation::check_name(&name, res.name_rule) {
            return Err(ApiError::invalid(
                &res.group,
                &res.kind,
                &name,
                vec![Cause::invalid("metadata.name", why)],
            ));
        }
        meta.insert("name".into(), json!(name));
        let now = now_rfc3339();
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now));
        for k in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "resourceVersion",
            "managedFields",
        ] {
            meta.remove(k);
        }
        if tracks_generation(res) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if res.has_status()
            && res.is_custom()
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        admission::prepare_create(res, ctx.user, &self.authz, ns, &mut obj)?;
        self.check_namespace(res, ns)?;
        let api_version = res.api_version();
        apply::record_update(
            None,
            &mut obj,
            &Writer {
                manager: &ctx.manager,
                api_version: &api_version,
                subresource: "",
                now: &now,
            },
        );
        if ctx.dry_run || res.virtual_only {
            return Ok(obj);
        }
        let key = res.key();
        let obj = self.to_storage(res, obj)?;
        let out = self
            .store
            .mutate(&key, ns, &name, |current, _| match current {
                Some(_) => Err(ApiError::already_exists(&res.group, &res.plural, &name)),
                None => Ok(Mutation::Put(obj)),
            })?;
        Ok(self.present(res, out.into_object()))
    }

    /// Replaces an object (PUT), on the main resource or a subresource.
    pub fn update(
        &self,
        res: &Resource,
        ns: &str,
        name: &str,
        subresource: &str,
        body: Value,
        ctx: &mut WriteCtx<'_>,
    ) -> ApiResult<Value> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON or YAML object",
            ));
        }
        if self.simulated_rejections && subresource.is_empty() {
            simulated_rejection(&body)?;
        }
        self.check_type(res, &body)?;
        let body_name = name_of(&body);
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let rv_required = res.is_custom() || res.builtin == Some(Builtin::CustomResourceDefinition);
        let body_rv = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from);
        if rv_required && body_rv.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                &res.group,
                &res.kind,
                name,
                vec![Cause::invalid(
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )],
            ));
        }
        let body = without_status(res, subresource, body);
        // A custom resource's update is held to its schema where it changes the object stored
        // (ratcheting). Its resourceVersion is required, so the object read here is the one it
        // replaces, or the update fails as a conflict.
        let old = match &res.schema {
            Some(_) => self
                .store
                .get(&res.key(), ns, name)?
                .map(|o| self.present(res, o)),
            None => None,
        };
        let expect = match (&old, body_rv) {
            // Validated against the object read, the update is stored over that object only.
            (Some(old), Some(rv)) => {
                if resource_version(old) != rv {
                    return Err(ApiError::conflict(&res.group, &res.plural, name, MODIFIED));
                }
                Expect::Read(rv)
            }
            (_, rv) => rv.map_or(Expect::Nothing, Expect::Caller),
        };
        let (obj, warnings) = admission::decode(res, body, ctx.field_validation, old.as_ref())?;
        ctx.warnings.extend(warnings);
        self.replace(res, ns, name, subresource, obj, expect, ctx)?
            .ok_or_else(|| ApiError::conflict(&res.group, &res.plural, name, MODIFIED))
    }

    /// Writes `new` over the current object with all update semantics. `expect` is what it
    /// expects of the object it replaces. Returns None when `new` was computed from an object
    /// that has changed since (`Expect::Read`): the caller computes it again.
    #[allow(clippy::too_many_arguments)]
    fn replace(
        &self,
        res: &Resource,
        ns: &str,
        name: &str,
        subresource: &str,
        new: Value,
        expect: Expect,
        ctx: &mut WriteCtx<'_>,
    ) -> ApiResult<Option<Value>> {
        let mut new = self.to_storage(res, new)?;
        Self::check_body_namespace(res, ns, &mut new)?;
        let key = res.key();
        let api_version = res.api_version();
        let dry_run = ctx.dry_run;
        let user = ctx.user;
        let manager = ctx.manager.clone();
        let authz = self.authz.clone();
        let raced = std::cell::Cell::new(false);
        let out = self.store.mutate(&key, ns, name, |current, _| {
            let old = current.ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
            let stored_rv = old.pointer("/metadata/resourceVersion").and_then(Value::as_str);
            match &expect {
                Expect::Caller(rv) if !rv.is_empty() && stored_rv != Some(rv.as_str()) => {
                    return Err(ApiError::conflict(&res.group, &res.plural, name, MODIFIED));
                }
                Expect::Read(rv) if stored_rv != Some(rv.as_str()) => {
                    raced.set(true);
                    return Ok(Mutation::Keep(old));
                }
                _ => {}
            }
            let mut next = match subresource {
                // A status write changes only status.
                "status" => {
                    if res.builtin == Some(Builtin::CertificateSigningRequest)
                        && new.pointer("/status/certificate") != old.pointer("/status/certificate")
                    {
                        admission::check_signer_permission(user, &authz, "sign", &old)?;
                    }
                    let mut n = old.clone();
                    n["status"] = new.get("status").cloned().unwrap_or(Value::Null);
                    if n["status"].is_null()
                        && let Some(m) = n.as_object_mut()
                    {
                        m.remove("status");
                    }
                    n
                }
                "approval" => {
                    admission::check_signer_permission(user, &authz, "approve", &old)?;
                    let mut n = old.clone();
                    let conditions = new.pointer("/status/conditions").cloned().unwrap_or(json!([]));
                    check_approval(&old, &conditions)?;
                    n["status"]["conditions"] = conditions;
                    n
                }
                "finalize" => {
                    let mut n = old.clone();
                    n["spec"]["finalizers"] = new.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
                    n
                }
                _ => {
                    let mut n = new.clone();
                    if res.has_status() {
                        match old.get("status") {
                            Some(s) => n["status"] = s.clone(),
                            None => {
                                if let Some(m) = n.as_object_mut() {
                                    m.remove("status");
                                }
                            }
                        }
                    }
                    admission::prepare_update(res, user, &authz, ns, &old, &mut n)?;
                    n
                }
            };
            // Server-owned metadata stays as it was.
            let old_meta = old["metadata"].clone();
            {
                let meta = next["metadata"].as_object_mut().ok_or_else(|| ApiError::bad_request("metadata is required"))?;
                if let Some(uid) = meta.get("uid").and_then(Value::as_str)
                    && Some(uid) != old_meta["uid"].as_str()
                {
                    return Err(ApiError::conflict(&res.group, &res.plural, name, format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", old_meta["uid"].as_str().unwrap_or_default())));
                }
                for k in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "name", "namespace", "generateName"] {
                    match old_meta.get(k) {
                        Some(v) => {
                            meta.insert(k.into(), v.clone());
                        }
                        None => {
                            meta.remove(k);
                        }
                    }
                }
                meta.insert("resourceVersion".into(), old_meta["resourceVersion"].clone());
                if subresource.is_empty() {
                    if old_meta.get("deletionTimestamp").is_some() {
                        let old_f: Vec<&Value> = old_meta["finalizers"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
                        if let Some(new_f) = meta.get("finalizers").and_then(Value::as_array)
                            && new_f.iter().any(|f| !old_f.contains(&f))
                        {
                            return Err(ApiError::invalid(&res.group, &res.kind, name, vec![Cause::forbidden("metadata.finalizers", "no new finalizers can be added if the object is being deleted")]));
                        }
                    }
                } else {
                    // Subresource writes keep metadata; managedFields are recorded below.
                    for (k, v) in old_meta.as_object().into_iter().flatten() {
                        if k != "managedFields" {
                            meta.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            if tracks_generation(res) && spec_changed(res, &old, &next) {
                let g = old_meta["generation"].as_i64().unwrap_or(0) + 1;
                next["metadata"]["generation"] = json!(g);
            }
            apply::record_update(Some(&old), &mut next, &Writer { manager: &manager, api_version: &api_version, subresource, now: &now_rfc3339() });
            if unchanged(&old, &next) {
                return Ok(Mutation::Keep(old));
            }
            // A dry run answers with the result and writes nothing.
            if dry_run {
                return Ok(Mutation::Keep(next));
            }
            if completes_deletion(res, &next) {
                return Ok(Mutation::Delete);
            }
            Ok(Mutation::Put(next))
        })?;
        if raced.get() {
            return Ok(None);
        }
        Ok(Some(self.present(res, out.into_object())))
    }

    /// Stores the result of a write that admission webhooks reviewed and left as it was:
    /// `obj` is what the write would have stored (from a dry run against the object at
    /// `old_rv`, or a create when `old_rv` is None). Returns None when the object changed since
    /// the dry run, so the caller runs it again.
    pub fn commit_admitted(
        &self,
        res: &Resource,
        ns: &str,
        old_rv: Option<&str>,
        obj: Value,
    ) -> ApiResult<Option<Value>> {
        let obj = self.to_storage(res, obj)?;
        if old_rv.is_none() {
            // The namespace may have started terminating while the webhooks ran.
            self.check_namespace(res, ns)?;
        }
        let name = name_of(&obj).to_string();
        let raced = std::cell::Cell::new(false);
        let out = self.store.mutate(&res.key(), ns, &name, |current, _| {
            match (old_rv, current) {
                (None, Some(_)) => Err(ApiError::already_exists(&res.group, &res.plural, &name)),
                (None, None) => Ok(Mutation::Put(obj)),
                (Some(_), None) => Err(ApiError::not_found(&res.group, &res.plural, &name)),
                (Some(rv), Some(current)) => {
                    if current["metadata"]["resourceVersion"].as_str() != Some(rv) {
                        raced.set(true);
                        return Ok(Mutation::Keep(current));
                    }
                    if unchanged(&current, &obj) {
                        return Ok(Mutation::Keep(current));
                    }
                    if completes_deletion(res, &obj) {
                        return Ok(Mutation::Delete);
                    }
                    Ok(Mutation::Put(obj))
                }
            }
        })?;
        if raced.get() {
            return Ok(None);
        }
        Ok(Some(self.present(res, out.into_object())))
    }

    /// Patches an object. `content_type` picks the patch format; server-side apply creates the
    /// object when it does not exist.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        res: &Resource,
        ns: &str,
        name: &str,
        subresource: &str,
        content_type: &str,
        body: &[u8],
        force: bool,
        ctx: &mut WriteCtx<'_>,
    ) -> ApiResult<(u16, Value)> {
        let parse_json = |b: &[u8]| {
            serde_json::from_slice::<Value>(b)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
        };
        if content_type == "application/apply-patch+yaml" {
            let config: Value = serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            return self.server_side_apply(res, ns, name, subresource, config, force, ctx);
        }
        let patch_doc = parse_json(body)?;
        // A patch carries a resourceVersion precondition only if it sets one (whatever its
        // format: the object it gives names a version other than the one it was applied to).
        // Without one, it is applied to the object as it stands when stored: should the object
        // change between the read and the write, the patch is applied again to the new one, as
        // kube-apiserver's guaranteed update does, so that no racing writer's change is undone.
        let mut attempts = Attempts::new();
        while attempts.next() {
            let current = self
                .store
                .get(&res.key(), ns, name)?
                .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
            let current = self.present(res, current);
            let patched = match content_type {
                "application/json-patch+json" => patch::json_patch(&current, &patch_doc),
                "application/merge-patch+json" => patch::merge_patch(&current, &patch_doc),
                "application/strategic-merge-patch+json" => match res.builtin {
                    Some(b) => patch::strategic_merge_patch(b, &current, &patch_doc),
                    None => {
                        return Err(ApiError::unsupported_media_type(
                            content_type,
                            PATCH_TYPES_CUSTOM,
                        ));
                    }
                },
                other => return Err(ApiError::unsupported_media_type(other, PATCH_TYPES)),
            }
            .map_err(|e| {
                ApiError::invalid(&res.group, &res.kind, name, vec![Cause::invalid("", e)])
            })?;
            // A patch that names the resourceVersion it was made for is applied to that
            // version only; it is not applied again to another.
            let named = resource_version(&patched);
            let read = resource_version(&current);
            let precondition = !named.is_empty() && patch_names_version(&patch_doc);
            if precondition && named != read {
                break;
            }
            self.check_type(res, &patched)?;
            let (obj, warnings) =
                admission::decode(res, patched, ctx.field_validation, Some(&current))?;
            if let Some(out) =
                self.replace(res, ns, name, subresource, obj, Expect::Read(read), ctx)?
            {
                ctx.warnings.extend(warnings);
                return Ok((200, out));
            }
            if precondition {
                break;
            }
        }
        Err(ApiError::conflict(&res.group, &res.plural, name, MODIFIED))
    }

    #[allow(clippy::too_many_arguments)]
    fn server_side_apply(
        &self,
        res: &Resource,
        ns: &str,
        name: &str,
        subresource: &str,
        config: Value,
        force: bool,
        ctx: &mut WriteCtx<'_>,
    ) -> ApiResult<(u16, Value)> {
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "an apply configuration must be an object",
            ));
        }
        if ctx.manager.is_empty() || ctx.manager.starts_with("unknown") {
            return Err(ApiError::bad_request(
                "PATCH with an apply configuration requires fieldManager to be set",
            ));
        }
        self.check_type(res, &config)?;
        let cfg_name = name_of(&config);
        if cfg_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({cfg_name}) does not match the name on the URL ({name})"
            )));
        }
        let api_version = res.api_version();
        let now = now_rfc3339();
        let manager = ctx.manager.clone();
        let w = Writer {
            manager: &manager,
            api_version: &api_version,
            subresource,
            now: &now,
        };
        let conflict_err = |conflicts: Vec<apply::Conflict>| {
            let causes: Vec<Cause> = conflicts
                .iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with \"{}\"", c.manager),
                    field: c.field.clone(),
                })
                .collect();
            let listed: Vec<String> = conflicts
                .iter()
                .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
                .collect();
            let mut e = ApiError::conflict(
                &res.group,
                &res.plural,
                name,
                format!(
                    "Apply failed with {} conflict(s): {}",
                    conflicts.len(),
                    listed.join("; ")
                ),
            );
            e.message = format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                listed.join("; ")
            );
            e.causes = causes;
            e
        };
        // As a patch: applied again to the object as it stands should it change meanwhile.
        let caller_rv = config
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
            .map(String::from);
        let mut attempts = Attempts::new();
        while attempts.next() {
            let Some(live) = self.store.get(&res.key(), ns, name)? else {
                let merged = apply::apply(None, &config, &w, force).map_err(conflict_err)?;
                let managed = merged.pointer("/metadata/managedFields").cloned();
                let warned = ctx.warnings.len();
                let mut created = match self.create(res, ns, merged, ctx) {
                    Ok(created) => created,
                    // Created meanwhile by another writer: applied to that object instead.
                    Err(e) if e.code == 409 && e.reason == "AlreadyExists" => {
                        ctx.warnings.truncate(warned);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                // Creation recorded an Update entry; an apply-created object is owned by Apply.
                if let Some(m) = managed {
                    if ctx.dry_run {
                        created["metadata"]["managedFields"] = m;
                    } else {
                        let key = res.key();
                        let made = resource_version(&created);
                        let out = self.store.mutate(&key, ns, name, |cur, _| {
                            let mut cur = cur.ok_or_else(|| {
                                ApiError::not_found(&res.group, &res.plural, name)
                            })?;
                            // A write since the creation keeps what it recorded.
                            if resource_version(&cur) != made {
                                return Ok(Mutation::Keep(cur));
                            }
                            cur["metadata"]["managedFields"] = m;
                            Ok(Mutation::Put(cur))
                        });
                        if let Ok(o) = out {
                            created = self.present(res, o.into_object());
                        }
                    }
                }
                return Ok((201, created));
            };
            let live = self.present(res, live);
            if caller_rv
                .as_ref()
                .is_some_and(|rv| *rv != resource_version(&live))
            {
                break;
            }
            let merged = apply::apply(Some(&live), &config, &w, force).map_err(conflict_err)?;
            let managed = merged.pointer("/metadata/managedFields").cloned();
            let (mut obj, warnings) =
                admission::decode(res, merged, ctx.field_validation, Some(&live))?;
            if let Some(m) = managed {
                obj["metadata"]["managedFields"] = m;
            }
            let expect = Expect::Read(resource_version(&live));
            match self.replace(res, ns, name, subresource, obj, expect, ctx) {
                Ok(Some(out)) => {
                    ctx.warnings.extend(warnings);
                    return Ok((200, out));
                }
                // Changed meanwhile, or deleted: applied again to what stands now.
                Ok(None) if caller_rv.is_none() => {}
                Err(e) if e.code == 404 && caller_rv.is_none() && subresource.is_empty() => {}
                Ok(None) => break,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::conflict(&res.group, &res.plural, name, MODIFIED))
    }

    /// Deletes an object, or marks it for deletion when finalizers or propagation must run first.
    pub fn delete(
        &self,
        res: &Resource,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let key = res.key();
        let propagation = opts.propagation.clone();
        if let Some(p) = &propagation
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::invalid(
                &res.group,
                &res.kind,
                name,
                vec![Cause::not_supported(
                    "propagationPolicy",
                    format!(
                        "Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                )],
            ));
        }
        // A dry run answers with what the delete would leave (the object, or the object marked
        // for deletion) through Mutation::Keep, which writes nothing.
        let out = self.store.mutate(&key, ns, name, |current, _| {
            let mut obj = current.ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
            let meta = &obj["metadata"];
            if let Some(uid) = &opts.uid
                && meta["uid"].as_str() != Some(uid.as_str())
            {
                return Err(ApiError::conflict(&res.group, &res.plural, name, format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta["uid"].as_str().unwrap_or_default())));
            }
            if let Some(rv) = &opts.resource_version
                && meta["resourceVersion"].as_str() != Some(rv.as_str())
            {
                return Err(ApiError::conflict(&res.group, &res.plural, name, format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", meta["resourceVersion"].as_str().unwrap_or_default())));
            }
            let mut finalizers: Vec<Value> = meta["finalizers"].as_array().cloned().unwrap_or_default();
            let already = meta.get("deletionTimestamp").is_some();
            match propagation.as_deref() {
                Some("Orphan") if !finalizers.contains(&json!(ORPHAN_FINALIZER)) => finalizers.push(json!(ORPHAN_FINALIZER)),
                Some("Foreground") if !finalizers.contains(&json!(FOREGROUND_FINALIZER)) => finalizers.push(json!(FOREGROUND_FINALIZER)),
                _ => {}
            }
            let is_namespace = res.builtin == Some(Builtin::Namespace);
            if finalizers.is_empty() && !is_namespace {
                return Ok(if opts.dry_run { Mutation::Keep(obj) } else { Mutation::Delete });
            }
            if already && obj["metadata"]["finalizers"].as_array().map(Vec::len) == Some(finalizers.len()) {
                return Ok(Mutation::Keep(obj));
            }
            let m = obj["metadata"].as_object_mut().expect("metadata");
            if !already {
                m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                if tracks_generation(res) {
                    let g = m.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
                    m.insert("generation".into(), json!(g));
                }
            }
            if finalizers.is_empty() {
                m.remove("finalizers");
            } else {
                m.insert("finalizers".into(), Value::Array(finalizers));
            }
            if is_namespace {
                obj["status"]["phase"] = json!("Terminating");
            }
            Ok(if opts.dry_run { Mutation::Keep(obj) } else { Mutation::Put(obj) })
        });
        Ok(self.present(res, out?.into_object()))
    }

    /// Deletes every object a list would return.
    pub fn delete_collection(
        &self,
        res: &Resource,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Value>> {
        let (items, _, _) = self.list(
            res,
            ns,
            &ListOptions {
                labels: list.labels.clone(),
                fields: list.fields.clone(),
                limit: 0,
                continue_token: None,
            },
        )?;
        let mut out = Vec::new();
        for item in items {
            let item_ns = item
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            match self.delete(res, &item_ns, name_of(&item), opts) {
                Ok(v) => out.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// CSR approval rules: Approved and Denied are exclusive, and neither can be removed once set.
fn check_approval(old: &Value, conditions: &Value) -> ApiResult<()> {
    let types = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["type"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let new_types = types(conditions);
    let name = name_of(old);
    let invalid = |msg: &str| {
        ApiError::invalid(
            "certificates.k8s.io",
            "CertificateSigningRequest",
            name,
            vec![Cause::invalid("status.conditions", msg)],
        )
    };
    if new_types.iter().any(|t| t == "Approved") && new_types.iter().any(|t| t == "Denied") {
        return Err(invalid(
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    for t in types(old.pointer("/status/conditions").unwrap_or(&Value::Null)) {
        if (t == "Approved" || t == "Denied") && !new_types.contains(&t) {
            return Err(invalid(&format!(
                "updates may not remove a condition of type {t:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_that_changes_only_bookkeeping_is_unchanged() {
        let old = json!({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "1",
            "managedFields": [{"manager": "x"}], "labels": {"l": "1"}}, "data": {"k": "v"}});
        let same = json!({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "2",
            "labels": {"l": "1"}}, "data": {"k": "v"}});
        assert!(unchanged(&old, &same));
        let relabelled = json!({"kind": "ConfigMap", "metadata": {"name": "a",
            "labels": {"l": "2"}}, "data": {"k": "v"}});
        assert!(!unchanged(&old, &relabelled));
        let more = json!({"kind": "ConfigMap", "metadata": {"name": "a", "labels": {"l": "1"}},
            "data": {"k": "v"}, "binaryData": {}});
        assert!(!unchanged(&old, &more));
        assert!(!unchanged(&more, &old));
        let no_meta = json!({"kind": "ConfigMap", "data": {"k": "v"}});
        assert!(unchanged(&no_meta, &no_meta.clone()));
        assert!(!unchanged(
            &no_meta,
            &json!({"kind": "ConfigMap", "metadata": {},
            "data": {"k": "v"}})
        ));
    }

    #[test]
    fn equal_but_ignores_only_the_keys_it_is_told() {
        let a = json!({"a": 1, "b": 2, "skip": 3});
        let b = json!({"a": 1, "b": 2, "skip": 4});
        let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
        assert!(equal_but(a, b, &["skip"]));
        assert!(!equal_but(a, b, &[]));
        assert!(!equal_but(a, b, &["a"]));
    }
}
