//! A review judged while the heap is above the ceiling is not a pass. In a process of its own: while the heap is above the ceiling every evaluation in the
//! process fails, so this cannot share one with other tests.

use garrison_governance::gatekeeper::{Constraint, Inventory, Review, Template, judge};
use serde_json::json;

#[test]
fn a_review_made_past_the_heap_ceiling_is_a_violation_not_a_pass() {
    let t = Template::from_object(&json!({
        "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
        "metadata": {"name": "k8snoprivileged"},
        "spec": {"crd": {"spec": {"names": {"kind": "K8sNoPrivileged"}}},
          "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego":
            "package k8snoprivileged\nviolation[{\"msg\": \"privileged\"}] {\n  c := input.review.object.spec.containers[_]\n  c.securityContext.privileged\n}"}]}
    }))
    .unwrap();
    let c = Constraint::from_object(
        &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sNoPrivileged",
            "metadata": {"name": "no-privileged"},
            "spec": {"match": {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}]}}}),
        &t,
    )
    .unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
        "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": true}}]}});
    let inv = Inventory::new();
    let data = inv.prepared();
    let normal = judge(&t, &c, &Review::of(&pod).unwrap(), &inv, &data);
    assert_eq!(normal.len(), 1);
    assert_eq!(normal[0].msg, "privileged");

    // The review is put in the engine's values when it is first judged: judged while the
    // process's heap is above the ceiling (1 GiB), it cannot be read, and that is a violation.
    let review = Review::of(&pod).unwrap();
    let hog = vec![7u8; 1100 << 20];
    assert_eq!(std::hint::black_box(&hog)[hog.len() - 1], 7);
    let v = judge(&t, &c, &review, &inv, &data);
    drop(hog);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].msg.starts_with("the engine cannot read the object"),
        "{v:?}"
    );
    // With the heap back below the ceiling, a new review is judged as before.
    assert_eq!(
        judge(&t, &c, &Review::of(&pod).unwrap(), &inv, &data)[0].msg,
        "privileged"
    );
}
