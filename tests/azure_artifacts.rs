//! The workflows' artifact store on Azure Blobs (`store::azure::artifacts`) against a real
//! Azurite that this test binary starts in memory on free ports; each test uses its own task hub.
//! Every test fails, never skips, when Azurite cannot start.

#[path = "common/azurite.rs"]
mod azurite;

use std::sync::OnceLock;

use azure_storage_blobs::prelude::BlobServiceClient;
use durable_protocol::connection::{http_client, HttpSettings, StorageConnection};
use durable_store::artifacts::{ArtifactError, ArtifactStore};
use durable_store::azure::artifacts::AzureArtifactStore;
use durable_store::backend::StoreError;
use durable_store::names::TaskHub;

use azurite::Azurite;

/// One Azurite for the whole binary (a start costs seconds); it is never dropped, so the
/// script's owner watch stops it when the test process exits.
fn azurite() -> &'static Azurite {
    static AZURITE: OnceLock<Azurite> = OnceLock::new();
    AZURITE.get_or_init(Azurite::start)
}

/// The blob service. Clients are per test: each test has its own tokio runtime, and pooled
/// connections must not outlive theirs.
fn service() -> BlobServiceClient {
    let settings = [("AzureWebJobsStorage", azurite().connection_string())];
    let connection = StorageConnection::from_settings(settings, "AzureWebJobsStorage")
        .expect("parse the Azurite connection string");
    connection
        .build_clients(http_client(HttpSettings::default()).expect("HTTP client"))
        .expect("storage clients")
        .blobs
}

/// A store over its own hub's container, created.
async fn store(hub: &str) -> AzureArtifactStore {
    let store = AzureArtifactStore::new(service(), &TaskHub::new(hub).unwrap());
    store.create().await.expect("create the container");
    store
}

#[tokio::test]
async fn the_container_is_named_after_the_hub_and_creating_twice_is_fine() {
    let store = AzureArtifactStore::new(service(), &TaskHub::new("ArtifactsHub").unwrap());
    assert_eq!(store.container_name(), "artifactshub-artifacts");
    store.create().await.unwrap();
    store.create().await.unwrap();
    store.put("x", b"1".to_vec()).await.unwrap();
    assert_eq!(store.get("x").await.unwrap(), Some(b"1".to_vec()));
}

#[tokio::test]
async fn put_get_overwrite_and_missing() {
    let store = store("artputget").await;
    assert_eq!(store.get("medallion/i/gold.json").await.unwrap(), None);
    store
        .put("medallion/i/gold.json", b"{\"a\":1}".to_vec())
        .await
        .unwrap();
    store
        .put("medallion/i/gold.json", b"{\"a\":2}".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.get("medallion/i/gold.json").await.unwrap(),
        Some(b"{\"a\":2}".to_vec())
    );
}

#[tokio::test]
async fn put_if_absent_creates_once_and_keeps_the_first_bytes() {
    let store = store("artonce").await;
    // The names the payment activity uses: colons and spaces from instance ids included.
    let name = "payments/charges/order 1:0f3c:4";
    assert!(store.put_if_absent(name, b"first".to_vec()).await.unwrap());
    assert!(!store.put_if_absent(name, b"second".to_vec()).await.unwrap());
    assert_eq!(store.get(name).await.unwrap(), Some(b"first".to_vec()));
}

#[tokio::test]
async fn concurrent_put_if_absent_has_exactly_one_winner() {
    let store = store("artrace").await;
    let attempts: Vec<_> = (0..8u8)
        .map(|i| store.put_if_absent("payments/refunds/PAY-1", vec![i]))
        .collect();
    let created = futures::future::join_all(attempts).await;
    let winners: Vec<usize> = created
        .iter()
        .enumerate()
        .filter(|(_, created)| *created.as_ref().unwrap())
        .map(|(index, _)| index)
        .collect();
    assert_eq!(winners.len(), 1, "{created:?}");
    assert_eq!(
        store.get("payments/refunds/PAY-1").await.unwrap(),
        Some(vec![winners[0] as u8])
    );
}

#[tokio::test]
async fn list_returns_names_under_the_prefix_in_order() {
    let store = store("artlist").await;
    for name in ["p/b", "p/a", "q/a", "p", "pp/a"] {
        store.put(name, Vec::new()).await.unwrap();
    }
    assert_eq!(store.list("p/").await.unwrap(), ["p/a", "p/b"]);
    assert_eq!(store.list("p").await.unwrap(), ["p", "p/a", "p/b", "pp/a"]);
    assert_eq!(store.list("").await.unwrap().len(), 5);
    assert!(store.list("z").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_container_is_an_error_not_an_absent_blob() {
    let store = AzureArtifactStore::new(service(), &TaskHub::new("artnocontainer").unwrap());
    let error = store.get("x").await.unwrap_err();
    assert!(
        matches!(error, ArtifactError::Storage(StoreError::Permanent { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains("ContainerNotFound"), "{error}");
}

#[tokio::test]
async fn names_azure_would_rewrite_are_refused_before_any_request() {
    // No container: a request would fail differently.
    let store = AzureArtifactStore::new(service(), &TaskHub::new("artnames").unwrap());
    for name in ["", "a/", "a.", "/a", "a/../b"] {
        let error = store.put(name, Vec::new()).await.unwrap_err();
        assert!(
            matches!(error, ArtifactError::InvalidName { .. }),
            "{name}: {error:?}"
        );
    }
}
