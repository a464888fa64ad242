//! Governance end to end: upstream-shaped Policies with a ConfigurationPolicy and a Gatekeeper
//! constraint, bound to a Placement, reach three simulated clusters through the policy
//! propagator; the built-in policy add-on evaluates them on each cluster and reports back; the
//! root policy aggregates; enforce creates what is missing.

use garrison_api::policy::v1::Policy;
use garrison_e2e::{Hub, eventually, join_and_accept, ok};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn compliant(p: &Policy) -> Option<String> {
    p.status.as_ref()?.compliant.clone()
}

#[tokio::test]
async fn policies_reach_the_clusters_and_report_compliance_back_to_the_root() {
    let hub = Hub::start().await.unwrap();
    let agents = join_and_accept(&hub, &["c1", "c2", "c3"], &[]).await;
    let dir = hub.data_dir().to_str().unwrap().to_string();
    ok(garrison_e2e::garrison(&[
        "addon",
        "enable",
        "governance-policy-framework",
        "--clusters",
        "c1,c2,c3",
        "--data-dir",
        &dir,
    ]));
    // `prod` exists, labelled, on c1 and c2; not on c3.
    for a in &agents[..2] {
        let ns: Namespace = serde_json::from_value(
            json!({"metadata": {"name": "prod", "labels": {"owner": "platform"}}}),
        )
        .unwrap();
        Api::<Namespace>::all(a.spoke().await)
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let example = garrison_e2e::workspace().join("examples/policies.yaml");
    ok(hub.kubectl(&["apply", "-f", example.to_str().unwrap()]));

    let admin = hub.client().await.unwrap();
    let roots: Api<Policy> = Api::namespaced(admin.clone(), "policies");
    // Replicas in each cluster namespace, labelled as upstream's.
    let replica = eventually(60, "the replica on c3", || async {
        Api::<Policy>::namespaced(admin.clone(), "c3")
            .get_opt("policies.policy-namespace")
            .await
            .ok()?
    })
    .await;
    let labels = replica.metadata.labels.unwrap();
    assert_eq!(
        labels["policy.open-cluster-management.io/root-policy"],
        "policies.policy-namespace"
    );
    assert_eq!(
        labels["policy.open-cluster-management.io/cluster-name"],
        "c3"
    );

    // c3 lacks the namespace: the root is NonCompliant, with upstream's message on c3.
    let root = eventually(90, "policy-namespace NonCompliant", || async {
        let p = roots.get("policy-namespace").await.ok()?;
        (compliant(&p).as_deref() == Some("NonCompliant") && p.status.as_ref()?.status.len() == 3)
            .then_some(p)
    })
    .await;
    let per_cluster = root.status.unwrap().status;
    let state = |c: &str| {
        per_cluster
            .iter()
            .find(|s| s.clustername == c)
            .and_then(|s| s.compliant.clone())
    };
    assert_eq!(state("c1").as_deref(), Some("Compliant"));
    assert_eq!(state("c3").as_deref(), Some("NonCompliant"));
    let c3: Api<Policy> = Api::namespaced(admin.clone(), "c3");
    let detail = c3
        .get("policies.policy-namespace")
        .await
        .unwrap()
        .status
        .unwrap()
        .details;
    assert_eq!(
        detail[0].history[0].message,
        "NonCompliant; violation - namespaces [prod] not found"
    );

    // Fixing c3 without the label: the namespace policy turns Compliant, the Gatekeeper one
    // reports the violation (inform makes the constraint warn).
    let spoke3 = agents[2].spoke().await;
    let nss = Api::<Namespace>::all(spoke3.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "prod"}})).unwrap(),
    )
    .await
    .unwrap();
    eventually(60, "policy-namespace Compliant", || async {
        let p = roots.get("policy-namespace").await.ok()?;
        (compliant(&p).as_deref() == Some("Compliant")).then_some(())
    })
    .await;
    let history = c3
        .get("policies.policy-namespace")
        .await
        .unwrap()
        .status
        .unwrap()
        .details[0]
        .history
        .clone();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0].message,
        "Compliant; notification - namespaces [prod] found as specified"
    );
    let labels_msg = eventually(60, "the required-labels violation on c3", || async {
        let p = c3.get("policies.policy-required-labels").await.ok()?;
        let st = p.status?;
        (st.compliant.as_deref() == Some("NonCompliant")).then(|| {
            st.details
                .iter()
                .map(|d| d.history[0].message.clone())
                .collect::<Vec<_>>()
        })
    })
    .await;
    assert!(
        labels_msg.iter().any(
            |m| m.starts_with("NonCompliant; warn - you must provide labels")
                && m.ends_with("(on Namespace /prod)")
        ),
        "{labels_msg:?}"
    );
    nss.patch(
        "prod",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"owner": "payments"}}})),
    )
    .await
    .unwrap();
    eventually(60, "policy-required-labels Compliant", || async {
        let p = roots.get("policy-required-labels").await.ok()?;
        (compliant(&p).as_deref() == Some("Compliant")).then_some(())
    })
    .await;

    // Enforce created the ConfigMap everywhere and reports Compliant.
    eventually(60, "policy-cluster-settings Compliant", || async {
        let p = roots.get("policy-cluster-settings").await.ok()?;
        (compliant(&p).as_deref() == Some("Compliant")).then_some(())
    })
    .await;
    let cm = Api::<ConfigMap>::namespaced(spoke3, "default")
        .get("cluster-settings")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["audit"], "enabled");
    let msg = Api::<Policy>::namespaced(admin.clone(), "c1")
        .get("policies.policy-cluster-settings")
        .await
        .unwrap()
        .status
        .unwrap()
        .details[0]
        .history
        .iter()
        .map(|h| h.message.clone())
        .collect::<Vec<_>>();
    assert!(
        msg.iter().any(|m| m == "Compliant; notification - configmaps [cluster-settings] was created successfully in namespace default"),
        "{msg:?}"
    );

    // Unbinding removes the replicas.
    ok(hub.kubectl(&[
        "delete",
        "placementbinding",
        "binding-policies",
        "-n",
        "policies",
    ]));
    eventually(60, "the replicas removed", || async {
        c3.get_opt("policies.policy-namespace")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}
