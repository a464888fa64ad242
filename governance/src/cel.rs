//! Gatekeeper's `K8sNativeValidation` engine: CEL validations in the shape of a
//! ValidatingAdmissionPolicy, as a ConstraintTemplate's `code[]` gives them.
//!
//! A source has `validations[{expression, message, messageExpression}]`, `variables[{name,
//! expression}]`, `matchConditions[{name, expression}]` and `failurePolicy` (`Fail`, the
//! default, or `Ignore`). Expressions see `object`, `oldObject` and `request` (the
//! AdmissionRequest), `params` (the Constraint), and `variables`: Gatekeeper's own
//! `variables.params` (the Constraint's `spec.parameters`) and `variables.anyObject` (the object,
//! or the old object of a DELETE), then the template's variables in order, each seeing those
//! before it. Match conditions must all hold for the validations to run. A validation that does
//! not yield `true` is a violation, with its `messageExpression`, else its `message`, else
//! `failed expression: <expression>`. An evaluation error is a violation under `Fail` and is
//! skipped under `Ignore`.

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::types::{CelBool, CelDouble, CelInt, CelMap, CelMapKey, CelString, Type};
use cel::common::value::{StaticVal, Val};
use cel::objects::{Key, Map};
use cel::{Context, DeclarationError, Env, ExecutionError, Program, Value as CelValue};
use serde_json::Value;

use crate::quantity::{Quantity, QuantityError};

/// One validation.
#[derive(Debug)]
struct Validation {
    source: String,
    program: Program,
    message: Option<String>,
    message_expression: Option<Program>,
}

/// A compiled `K8sNativeValidation` source.
#[derive(Debug, Clone)]
pub struct Code {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    validations: Vec<Validation>,
    variables: Vec<(String, Program)>,
    match_conditions: Vec<(String, Program)>,
    ignore_errors: bool,
}

fn env() -> Arc<Env> {
    thread_local! {
        static ENV: Arc<Env> = {
            let mut env = Env::stdlib();
            // Kubernetes' CEL has the strings extension (`join`, `lowerAscii`, ...); so does
            // Gatekeeper's.
            env.add_extension(cel::extensions::strings)
                .expect("the strings extension declares nothing the standard library does");
            env.add_extension(cel::extensions::lists)
                .expect("the lists extension declares nothing the standard library does");
            // Kubernetes' `quantity` library, which Gatekeeper's CEL templates call.
            env.add_extension(quantity_library)
                .expect("the quantity library declares nothing the standard library does");
            Arc::new(env)
        };
    }
    ENV.with(Arc::clone)
}

/// A Kubernetes quantity as a CEL value, of type `kubernetes.Quantity`.
#[derive(Debug, Clone)]
struct QuantityVal(Quantity);

static QUANTITY_TYPE: Type = Type::new_unspecified_type("kubernetes.Quantity");

impl Val for QuantityVal {
    fn get_type(&self) -> &Type {
        &QUANTITY_TYPE
    }
    fn cel_type() -> &'static Type {
        &QUANTITY_TYPE
    }
    fn equals(&self, other: &dyn Val) -> bool {
        other
            .downcast_ref::<QuantityVal>()
            .is_some_and(|o| o.0 == self.0)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl StaticVal for QuantityVal {}

fn parse_quantity(s: &CelString<'_>) -> Result<QuantityVal, ExecutionError> {
    Quantity::parse(s.inner())
        .map(QuantityVal)
        .map_err(|e| ExecutionError::function_error("quantity", e))
}

/// Whether `s` is a quantity. One Kubernetes reads but Garrison will not expand is an error,
/// not a no: a policy that lets through what is not a quantity must not let it through.
fn is_quantity(s: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    match Quantity::parse(s.inner()) {
        Ok(_) => Ok(CelBool::from(true)),
        Err(QuantityError::Malformed(_)) => Ok(CelBool::from(false)),
        Err(e @ QuantityError::Refused(_)) => Err(ExecutionError::function_error("isQuantity", e)),
    }
}

fn sign(q: &QuantityVal) -> CelInt {
    CelInt::from(q.0.sign())
}

fn is_integer(q: &QuantityVal) -> CelBool {
    CelBool::from(q.0.as_integer().is_some())
}

fn as_integer(q: &QuantityVal) -> Result<CelInt, ExecutionError> {
    q.0.as_integer().map(CelInt::from).ok_or_else(|| {
        ExecutionError::function_error("asInteger", "cannot convert value to integer")
    })
}

fn as_approximate_float(q: &QuantityVal) -> CelDouble {
    CelDouble::from(q.0.as_approximate_float())
}

fn add_quantity(q: &QuantityVal, other: &QuantityVal) -> QuantityVal {
    QuantityVal(q.0.add(&other.0))
}

fn add_int(q: &QuantityVal, n: &CelInt) -> QuantityVal {
    QuantityVal(q.0.add(&Quantity::from_int(*n.inner())))
}

fn sub_quantity(q: &QuantityVal, other: &QuantityVal) -> QuantityVal {
    QuantityVal(q.0.sub(&other.0))
}

fn sub_int(q: &QuantityVal, n: &CelInt) -> QuantityVal {
    QuantityVal(q.0.sub(&Quantity::from_int(*n.inner())))
}

fn compare_to(q: &QuantityVal, other: &QuantityVal) -> CelInt {
    CelInt::from(q.0.cmp(&other.0) as i64)
}

fn is_greater_than(q: &QuantityVal, other: &QuantityVal) -> CelBool {
    CelBool::from(q.0 > other.0)
}

fn is_less_than(q: &QuantityVal, other: &QuantityVal) -> CelBool {
    CelBool::from(q.0 < other.0)
}

/// Kubernetes' CEL `quantity` library (`k8s.io/apiserver/pkg/cel/library`): `quantity(s)`,
/// `isQuantity(s)`, and on a quantity `sign()`, `isInteger()`, `asInteger()`,
/// `asApproximateFloat()`, `add(q | int)`, `sub(q | int)`, `compareTo(q)`, `isGreaterThan(q)`,
/// `isLessThan(q)`; `==` compares values (`quantity("1k") == quantity("1000")`). `sign(q)` is
/// also a global function, as Kubernetes declares it.
fn quantity_library(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(QUANTITY_TYPE.to_owned())?;
    cel::add_overload!(env, fn parse_quantity: (CelString) -> Result<QuantityVal>,
        name = "quantity", id = "string_to_quantity")?;
    cel::add_overload!(env, fn is_quantity: (CelString) -> Result<CelBool>, name = "isQuantity")?;
    cel::add_overload!(env, fn sign: (QuantityVal) -> CelInt, id = "quantity_sign")?;
    cel::add_member_overload!(env, fn sign: (QuantityVal) -> CelInt)?;
    cel::add_member_overload!(env, fn is_integer: (QuantityVal) -> CelBool)?;
    cel::add_member_overload!(env, fn as_integer: (QuantityVal) -> Result<CelInt>)?;
    cel::add_member_overload!(env, fn as_approximate_float: (QuantityVal) -> CelDouble)?;
    cel::add_member_overload!(env, fn add_quantity: (QuantityVal, QuantityVal) -> QuantityVal,
        name = "add")?;
    cel::add_member_overload!(env, fn add_int: (QuantityVal, CelInt) -> QuantityVal, name = "add")?;
    cel::add_member_overload!(env, fn sub_quantity: (QuantityVal, QuantityVal) -> QuantityVal,
        name = "sub")?;
    cel::add_member_overload!(env, fn sub_int: (QuantityVal, CelInt) -> QuantityVal, name = "sub")?;
    cel::add_member_overload!(env, fn compare_to: (QuantityVal, QuantityVal) -> CelInt)?;
    cel::add_member_overload!(env, fn is_greater_than: (QuantityVal, QuantityVal) -> CelBool)?;
    cel::add_member_overload!(env, fn is_less_than: (QuantityVal, QuantityVal) -> CelBool)?;
    Ok(())
}

fn compile(env: &Env, what: &str, source: &str) -> Result<Program, String> {
    env.compile(source)
        .map_err(|e| format!("{what}: {}", e.to_string().replace('\n', " ").trim()))
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl Code {
    /// Compiles the `source` of a `K8sNativeValidation` code entry.
    pub fn from_source(source: &Value) -> Result<Code, String> {
        let env = env();
        let list = |key: &str| {
            source
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let mut validations = vec![];
        for (i, v) in list("validations").iter().enumerate() {
            let expr = str_of(v, "expression")
                .ok_or_else(|| format!("validations[{i}].expression is required"))?;
            validations.push(Validation {
                source: expr.to_string(),
                program: compile(&env, &format!("validations[{i}].expression"), expr)?,
                message: str_of(v, "message").map(str::to_string),
                message_expression: str_of(v, "messageExpression")
                    .map(|m| compile(&env, &format!("validations[{i}].messageExpression"), m))
                    .transpose()?,
            });
        }
        if validations.is_empty() {
            return Err("K8sNativeValidation has no validations".into());
        }
        let named = |key: &str| -> Result<Vec<(String, Program)>, String> {
            list(key)
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let name =
                        str_of(v, "name").ok_or_else(|| format!("{key}[{i}].name is required"))?;
                    let expr = str_of(v, "expression")
                        .ok_or_else(|| format!("{key}[{i}].expression is required"))?;
                    Ok((
                        name.to_string(),
                        compile(&env, &format!("{key}[{i}] {name}"), expr)?,
                    ))
                })
                .collect()
        };
        let variables = named("variables")?;
        // Gatekeeper spells it `matchCondition`; ValidatingAdmissionPolicy `matchConditions`.
        let mut match_conditions = named("matchConditions")?;
        match_conditions.extend(named("matchCondition")?);
        let ignore_errors = match str_of(source, "failurePolicy") {
            None | Some("Fail") => false,
            Some("Ignore") => true,
            Some(other) => return Err(format!("failurePolicy {other:?} is not Fail or Ignore")),
        };
        Ok(Code {
            inner: Arc::new(Compiled {
                validations,
                variables,
                match_conditions,
                ignore_errors,
            }),
        })
    }

    /// The messages of the validations `request` (an AdmissionRequest) fails under
    /// `constraint` (the Constraint object).
    pub fn violations(&self, request: &Value, constraint: &Value) -> Vec<String> {
        let c = &self.inner;
        let env = env();
        let mut ctx = Context::with_env(env);
        let object = request.get("object").cloned().unwrap_or(Value::Null);
        let old = request.get("oldObject").cloned().unwrap_or(Value::Null);
        let any = if object.is_null() {
            old.clone()
        } else {
            object.clone()
        };
        ctx.add_variable_from_value("object", to_cel(&object));
        ctx.add_variable_from_value("oldObject", to_cel(&old));
        ctx.add_variable_from_value("request", to_cel(request));
        ctx.add_variable_from_value("params", to_cel(constraint));
        let failed = |what: &str, e: &dyn std::fmt::Display| -> Vec<String> {
            if c.ignore_errors {
                vec![]
            } else {
                vec![format!("{what}: evaluation failed: {e}")]
            }
        };
        // Variables are kept as CEL values, not as `Value`s: a variable may hold a value of
        // a library's own type (a quantity), which has no `Value`.
        let mut variables: HashMap<String, Box<dyn Val>> = HashMap::new();
        let params = constraint
            .pointer("/spec/parameters")
            .cloned()
            .unwrap_or(Value::Null);
        for (name, json) in [("params", &params), ("anyObject", &any)] {
            match Box::<dyn Val>::try_from(to_cel(json)) {
                Ok(v) => {
                    variables.insert(name.into(), v);
                }
                Err(e) => return failed(&format!("variables.{name}"), &e),
            }
        }
        // Match conditions first, with Gatekeeper's own variables: any that is false skips the
        // validations, even when another one failed; otherwise the first failure decides.
        set_variables(&mut ctx, &variables);
        let mut condition_error = None;
        for (name, program) in &c.match_conditions {
            match program.execute(&ctx) {
                Ok(CelValue::Bool(true)) => {}
                Ok(CelValue::Bool(false)) => return vec![],
                Ok(other) => {
                    condition_error.get_or_insert_with(|| {
                        (name.clone(), format!("yields {other:?}, not a bool"))
                    });
                }
                Err(e) => {
                    condition_error.get_or_insert_with(|| (name.clone(), e.to_string()));
                }
            }
        }
        if let Some((name, e)) = condition_error {
            return failed(&format!("match condition {name}"), &e);
        }
        // The template's variables, in order, each seeing the ones before. One that fails is
        // left out: an expression that uses it fails in turn, and only that expression, with
        // the variable's own error as the cause.
        let mut broken: Vec<(String, String)> = vec![];
        for (name, program) in &c.variables {
            set_variables(&mut ctx, &variables);
            match CelValue::resolve_val(program.expression(), &ctx) {
                Ok(v) => {
                    let owned = v.as_ref().clone_as_boxed();
                    variables.insert(name.clone(), owned);
                }
                Err(e) => broken.push((name.clone(), e.to_string())),
            }
        }
        let cause = |e: &dyn std::fmt::Display| -> String {
            let e = e.to_string();
            match broken
                .iter()
                .find(|(name, _)| e == format!("No such key: {name}"))
            {
                Some((name, why)) => format!("variable {name} failed: {why}"),
                None => e,
            }
        };
        set_variables(&mut ctx, &variables);
        let mut out = vec![];
        for v in &c.validations {
            match v.program.execute(&ctx) {
                Ok(CelValue::Bool(true)) => {}
                Ok(CelValue::Bool(false)) => {
                    let from_expression =
                        v.message_expression
                            .as_ref()
                            .and_then(|m| match m.execute(&ctx) {
                                // As Kubernetes: a blank or multi-line result falls back to the
                                // message.
                                Ok(CelValue::String(s))
                                    if !s.trim().is_empty() && !s.contains('\n') =>
                                {
                                    Some(s.to_string())
                                }
                                _ => None,
                            });
                    out.push(
                        from_expression
                            .or_else(|| v.message.clone())
                            .unwrap_or_else(|| format!("failed expression: {}", v.source)),
                    );
                }
                Ok(other) => out.extend(failed(
                    &format!("validation {}", v.source),
                    &format!("yields {other:?}, not a bool"),
                )),
                Err(e) => out.extend(failed(&format!("validation {}", v.source), &cause(&e))),
            }
        }
        out
    }
}

/// A JSON value as Kubernetes' CEL sees it: whole numbers are `int` (serde would make the
/// non-negative ones `uint`, with which `int` arithmetic fails), other numbers `double`.
fn to_cel(v: &Value) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => CelValue::Int(i),
            (None, Some(u), _) => CelValue::UInt(u),
            (_, _, Some(f)) => CelValue::Float(f),
            _ => CelValue::Null,
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(a) => CelValue::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => CelValue::Map(Map {
            map: Arc::new(m.iter().map(|(k, v)| (key(k), to_cel(v))).collect()),
        }),
    }
}

fn key(s: &str) -> Key {
    Key::String(Arc::new(s.to_string()))
}

fn set_variables(ctx: &mut Context, variables: &HashMap<String, Box<dyn Val>>) {
    let map: HashMap<CelMapKey<'static>, Box<dyn Val>> = variables
        .iter()
        .map(|(k, v)| (CelMapKey::from(k.clone()), v.clone_as_boxed()))
        .collect();
    ctx.add_variable_as_val("variables", Box::new(CelMap::from(map)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(object: Value) -> Value {
        json!({"kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
            "name": object["metadata"]["name"], "object": object})
    }

    #[test]
    fn validations_see_the_object_the_parameters_and_earlier_variables() {
        let code = Code::from_source(&json!({
            "variables": [
                {"name": "required", "expression": "has(variables.params.labels) ? variables.params.labels : []"},
                {"name": "missing", "expression": "variables.required.filter(l, !has(variables.anyObject.metadata.labels) || !(l in variables.anyObject.metadata.labels))"},
            ],
            "validations": [
                {"expression": "size(variables.missing) == 0",
                 "messageExpression": "'missing labels: ' + variables.missing.join(', ')"},
                {"expression": "!object.metadata.name.startsWith('tmp-')", "message": "no temporary names"},
                {"expression": "object.spec.replicas <= 3"},
            ]
        }))
        .unwrap();
        let constraint = json!({"spec": {"parameters": {"labels": ["owner", "team"]}}});
        let pod = json!({"metadata": {"name": "tmp-web", "labels": {"team": "a"}},
            "spec": {"replicas": 5}});
        assert_eq!(
            code.violations(&request(pod), &constraint),
            [
                "missing labels: owner",
                "no temporary names",
                "failed expression: object.spec.replicas <= 3"
            ]
        );
        let fine = json!({"metadata": {"name": "web", "labels": {"team": "a", "owner": "b"}},
            "spec": {"replicas": 1}});
        assert!(code.violations(&request(fine), &constraint).is_empty());
    }

    #[test]
    fn match_conditions_gate_and_errors_fail_closed_unless_ignored() {
        let source = |policy: &str| {
            json!({
                "matchConditions": [{"name": "not-system", "expression": "object.metadata.namespace != 'kube-system'"}],
                "validations": [{"expression": "object.spec.missing.field == 1"}],
                "failurePolicy": policy,
            })
        };
        let in_system = json!({"metadata": {"name": "a", "namespace": "kube-system"}, "spec": {}});
        let elsewhere = json!({"metadata": {"name": "a", "namespace": "apps"}, "spec": {}});
        let fail = Code::from_source(&source("Fail")).unwrap();
        assert!(fail.violations(&request(in_system), &json!({})).is_empty());
        let v = fail.violations(&request(elsewhere.clone()), &json!({}));
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("evaluation failed"), "{v:?}");
        let ignore = Code::from_source(&source("Ignore")).unwrap();
        assert!(
            ignore
                .violations(&request(elsewhere), &json!({}))
                .is_empty()
        );
    }

    #[test]
    fn numbers_are_ints_and_conditions_and_variables_fail_as_kubernetes_does() {
        let code = Code::from_source(&json!({
            "matchConditions": [
                {"name": "broken", "expression": "object.kind == 'Deployment' || object.nope.deeper == 1"},
                {"name": "deployments", "expression": "object.kind == 'Deployment'"},
            ],
            "variables": [
                {"name": "broken", "expression": "object.spec.nope.deeper"},
                {"name": "next", "expression": "object.spec.replicas + 1"},
            ],
            "validations": [
                {"expression": "variables.next <= 5", "messageExpression": "'  '", "message": "at most 4 replicas"},
                {"expression": "variables.broken == 1", "message": "uses the broken variable"},
            ],
        }))
        .unwrap();
        // A false condition skips the validations although another condition failed.
        let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"replicas": 1}});
        assert!(code.violations(&request(pod), &json!({})).is_empty());
        // Arithmetic on JSON numbers works (they are ints); a blank messageExpression falls
        // back to the message; only the validation that uses the failed variable fails.
        let deployment = json!({"kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 7}});
        let v = code.violations(&request(deployment), &json!({}));
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0], "at most 4 replicas");
        // The failure names the variable, and why it failed.
        assert!(
            v[1].starts_with(
                "validation variables.broken == 1: evaluation failed: variable broken failed: "
            ),
            "{v:?}"
        );
        assert!(v[1].contains("nope"), "{v:?}");
    }

    #[test]
    fn kubernetes_quantities_compare_add_and_convert() {
        let eval = |expression: &str| {
            let code = Code::from_source(&json!({"validations": [{"expression": expression}]}))
                .unwrap_or_else(|e| panic!("{expression}: {e}"));
            code.violations(&request(json!({"metadata": {"name": "p"}})), &json!({}))
        };
        for holds in [
            "quantity('200M').compareTo(quantity('0.2G')) == 0",
            "quantity('50M').compareTo(quantity('50Mi')) == -1",
            "quantity('50Mi').compareTo(quantity('50M')) == 1",
            "quantity('150Mi').isGreaterThan(quantity('100Mi'))",
            "!quantity('50Mi').isGreaterThan(quantity('100Mi'))",
            "quantity('50M').isLessThan(quantity('100M'))",
            "quantity('1k') == quantity('1000')",
            "quantity('1k') != quantity('1001')",
            "isQuantity('1.3Gi') && !isQuantity('200K') && !isQuantity('Mi') && !isQuantity('1,3G')",
            "quantity('50000000G').isInteger() && !quantity('9999999999999999999999999999999999999G').isInteger()",
            "quantity('50k').asInteger() == 50000",
            "quantity('50k').sub(20000).asApproximateFloat() == 30000.0",
            "quantity('50k').add(quantity('20k')) == quantity('70k')",
            "quantity('50k').add(20).sub(quantity('100k')).sub(-50000) == quantity('20')",
            "quantity('-2m').sign() == -1 && sign(quantity('0')) == 0",
            "type(quantity('1')) == kubernetes.Quantity",
        ] {
            assert!(eval(holds).is_empty(), "{holds}: {:?}", eval(holds));
        }
        // A malformed quantity, or an integer out of reach, is an error: a violation under
        // failurePolicy Fail. So is asking whether a quantity too large to expand is one.
        for fails in [
            "quantity('200K') == quantity('1')",
            "quantity('9999999999999999999999999999999999999G').asInteger() == 1",
            "!isQuantity('1e1001') || quantity('1e1001').isLessThan(quantity('1'))",
        ] {
            let v = eval(fails);
            assert!(
                v.len() == 1 && v[0].contains("evaluation failed"),
                "{fails}: {v:?}"
            );
        }
    }

    #[test]
    fn variables_hold_quantities_and_lists_of_them() {
        let code = Code::from_source(&json!({
            "variables": [
                {"name": "max", "expression": "quantity(variables.params.maxMemory)"},
                {"name": "limits", "expression": "object.spec.containers.map(c, quantity(c.limit))"},
                {"name": "over", "expression": "object.spec.containers.filter(c, quantity(c.limit).isGreaterThan(variables.max)).map(c, c.name)"},
            ],
            "validations": [
                {"expression": "variables.limits.all(l, !l.isGreaterThan(variables.max))",
                 "messageExpression": "'above ' + variables.params.maxMemory + ': ' + variables.over.join(', ')"},
                {"expression": "variables.limits.size() == 0 || variables.limits[0].sign() == 1",
                 "message": "the first limit is not positive"},
            ]
        }))
        .unwrap();
        let constraint = json!({"spec": {"parameters": {"maxMemory": "1Gi"}}});
        let pod = |limits: &[(&str, &str)]| {
            let containers: Vec<Value> = limits
                .iter()
                .map(|(name, limit)| json!({"name": name, "limit": limit}))
                .collect();
            request(json!({"metadata": {"name": "p"}, "spec": {"containers": containers}}))
        };
        assert!(
            code.violations(&pod(&[("a", "512Mi"), ("b", "1G")]), &constraint)
                .is_empty()
        );
        assert_eq!(
            code.violations(
                &pod(&[("a", "0"), ("b", "2Gi"), ("c", "1.5Gi")]),
                &constraint
            ),
            ["above 1Gi: b, c", "the first limit is not positive"]
        );
    }

    #[test]
    fn bad_sources_are_named() {
        for (src, want) in [
            (json!({}), "no validations"),
            (
                json!({"validations": [{"message": "x"}]}),
                "validations[0].expression is required",
            ),
            (
                json!({"validations": [{"expression": "1 +"}]}),
                "validations[0].expression",
            ),
            (
                json!({"validations": [{"expression": "true"}], "failurePolicy": "Sometimes"}),
                "failurePolicy",
            ),
            (
                json!({"validations": [{"expression": "true"}], "variables": [{"expression": "1"}]}),
                "variables[0].name is required",
            ),
        ] {
            let e = Code::from_source(&src).unwrap_err();
            assert!(e.contains(want), "{e} / {want}");
        }
    }
}
