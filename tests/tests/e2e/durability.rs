//! Durability: a stream of writes, the hub SIGKILLed in the middle, a restart, and every
//! acknowledged write is there, whole. Nothing half-written is visible.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use garrison_e2e::Hub;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

fn payload(name: &str) -> String {
    // Large enough that a torn write would show.
    format!("{name}:").repeat(500)
}

#[tokio::test]
async fn every_acknowledged_write_survives_sigkill() {
    let mut hub = Hub::start().await.unwrap();
    let client = hub.client().await.unwrap();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "dur"}})).unwrap(),
        )
        .await
        .unwrap();
    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "dur");
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": name}, "data": {"payload": payload(&name)}}),
                )
                .unwrap();
                match api.create(&PostParams::default(), &cm).await {
                    Ok(_) => acked.lock().unwrap().push(name),
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill while writes are in flight.
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if acked.lock().unwrap().len() >= 200 {
            break;
        }
    }
    hub.kill();
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(20), w).await;
    }
    let acked = acked.lock().unwrap().clone();
    hub.restart().await.unwrap();
    let client = hub.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "dur");
    let stored = api.list(&ListParams::default()).await.unwrap().items;
    for item in &stored {
        let name = item.metadata.name.clone().unwrap();
        assert_eq!(
            item.data.as_ref().unwrap()["payload"],
            payload(&name),
            "{name} is whole"
        );
    }
    let names: std::collections::HashSet<String> = stored
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !names.contains(*n)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(stored.len() >= acked.len());
    eprintln!(
        "{} acknowledged, {} stored (the difference was in flight)",
        acked.len(),
        stored.len()
    );
}
