//! A review judged while the heap is above the ceiling is not a pass. In a process of its
//! own: while the heap is above the ceiling every evaluation in the process fails, so this
//! cannot share one with other tests.

use garrison_governance::gatekeeper::{Constraint, Inventory, Review, Template, judge};
use serde_json::json;

#[test]
fn a_review_judged_past_the_heap_ceiling_is_a_violation_not_a_pass() {
    let t = Template::from_object(&json!({
        "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
        "metadata": {"name": "k8snoprivileged"},
        "spec": {"crd": {"spec": {"names": {"kind": "K8sNoPrivileged"}}},
          "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego":
            "package k8snoprivileged\nviolation[{\"msg\": \"privileged\"}] {\n  c := input.review.object.spec.containers[_]\n  c.securityContext.privileged\n}"}]}
    }))
    .unwrap();
    let on = |kind: &str| {
        Constraint::from_object(
            &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sNoPrivileged",
                "metadata": {"name": format!("no-privileged-{}", kind.to_lowercase())},
                "spec": {"match": {"kinds": [{"apiGroups": [""], "kinds": [kind]}]}}}),
            &t,
        )
        .unwrap()
    };
    let (pods, services) = (on("Pod"), on("Service"));
    let pod = |privileged: bool| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
            "spec": {"containers": [{"name": "c", "image": "x",
                "securityContext": {"privileged": privileged}}]}})
    };
    let inv = Inventory::new();
    let data = inv.prepared();
    let violating = judge(&t, &pods, &Review::of(&pod(true)).unwrap(), &inv, &data);
    assert_eq!(violating.len(), 1);
    assert_eq!(violating[0].msg, "privileged");

    // A compliant Pod, whose review is put in the engine's values when it is first judged:
    // judged while the process's heap is above the ceiling (1 GiB), it cannot be read, and
    // that is a violation of the constraint that matches it, not of the one that does not.
    let compliant = pod(false);
    let review = Review::of(&compliant).unwrap();
    let hog = vec![7u8; 1100 << 20];
    assert_eq!(std::hint::black_box(&hog)[hog.len() - 1], 7);
    let v = judge(&t, &pods, &review, &inv, &data);
    let unmatched = judge(&t, &services, &review, &inv, &data);
    drop(hog);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].msg.starts_with("the engine cannot read the object"),
        "{v:?}"
    );
    assert!(unmatched.is_empty(), "{unmatched:?}");
    // With the heap back below the ceiling, the same review is read and passes.
    assert!(judge(&t, &pods, &review, &inv, &data).is_empty());
    assert_eq!(
        judge(&t, &pods, &Review::of(&pod(true)).unwrap(), &inv, &data)[0].msg,
        "privileged"
    );
}
