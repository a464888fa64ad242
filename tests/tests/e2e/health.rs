//! `/readyz` means something: it runs the store's write probe and the controllers' check, and
//! fails (500, naming the check) while the store cannot commit a write.

use garrison_e2e::{Hub, ok};

#[tokio::test]
async fn readyz_fails_while_the_store_cannot_write() {
    let hub = Hub::start().await.unwrap();
    let verbose = ok(hub.kubectl(&["get", "--raw", "/readyz?verbose"]));
    assert!(verbose.contains("[+]store ok"), "{verbose}");
    assert!(verbose.contains("[+]controllers ok"), "{verbose}");
    assert_eq!(ok(hub.kubectl(&["get", "--raw", "/readyz/store"])), "ok");
    let missing = hub.kubectl(&["get", "--raw", "/readyz/nothing"]);
    assert!(!missing.status.success());

    // Another process holds the store's write lock (as a stuck backup or a stray sqlite3 would).
    let db = rusqlite::Connection::open(hub.data_dir().join("store.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let failing = hub.kubectl(&["get", "--raw", "/readyz"]);
    let stderr = String::from_utf8_lossy(&failing.stderr);
    assert!(!failing.status.success(), "ready while the store is locked");
    assert!(stderr.contains("[-]store failed: cannot write"), "{stderr}");
    // Liveness is about the process, which still answers.
    assert_eq!(ok(hub.kubectl(&["get", "--raw", "/livez"])), "ok");

    db.execute_batch("ROLLBACK").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(ok(hub.kubectl(&["get", "--raw", "/readyz"])), "ok");
}
