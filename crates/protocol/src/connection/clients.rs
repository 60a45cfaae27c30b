//! The storage clients: one pooled HTTP client with client-side timeouts, the credential for the
//! connection, and the Table, Queue and Blob service clients built over both, each counting its
//! requests (`storage_requests`).

use std::sync::Arc;
use std::time::Duration;

use azure_core::auth::Secret;
use azure_core::{ClientOptions, HttpClient, Policy, TransportOptions, Url};
use azure_data_tables::clients::{TableServiceClient, TableServiceClientBuilder};
use azure_identity::{
    AppServiceManagedIdentityCredential, DefaultAzureCredentialBuilder, TokenCredentialOptions,
};
use azure_storage::{CloudLocation, StorageCredentials};
use azure_storage_blobs::prelude::{BlobServiceClient, ClientBuilder};
use azure_storage_queues::{QueueServiceClient, QueueServiceClientBuilder};

use super::managed_identity::UserAssignedManagedIdentity;
use super::{ConnectionError, Service, StorageConnection, StorageCredential};
use crate::storage_requests::CountRequests;

/// Client-side timeouts of the shared HTTP client. azure_core 0.21 sets none (its `timeout` is
/// the server-side `timeout=` query parameter), and a dequeue against a busy account can stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The three service clients, all on the same HTTP client and credential.
#[derive(Debug, Clone)]
pub struct StorageClients {
    pub tables: TableServiceClient,
    pub queues: QueueServiceClient,
    pub blobs: BlobServiceClient,
}

/// Builds the pooled HTTP client every storage client (and token request) goes through.
/// azure_core 0.21's own client disables keep-alive (`pool_max_idle_per_host(0)`), a new TCP/TLS
/// handshake per call. Its retry policy retries I/O errors, so a stale pooled connection is
/// retried transparently.
pub fn http_client(settings: HttpSettings) -> Result<Arc<dyn HttpClient>, ConnectionError> {
    let client = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .build()
        .map_err(|e| ConnectionError::Client(format!("HTTP client: {e}")))?;
    Ok(Arc::new(client))
}

impl StorageConnection {
    /// The azure_storage credential for this connection. Token credentials fetch their tokens
    /// through `http` too, so one pool serves everything.
    pub fn storage_credentials(
        &self,
        http: Arc<dyn HttpClient>,
    ) -> Result<StorageCredentials, ConnectionError> {
        match &self.credential {
            StorageCredential::SharedKey { account, key } => Ok(StorageCredentials::access_key(
                account.clone(),
                Secret::new(key.clone()),
            )),
            StorageCredential::Sas { token } => StorageCredentials::sas_token(token.as_str())
                .map_err(|e| ConnectionError::Client(format!("SAS token: {e}"))),
            StorageCredential::ManagedIdentity { client_id: None } => {
                let credential =
                    AppServiceManagedIdentityCredential::create(TokenCredentialOptions::from(http))
                        .map_err(|e| {
                            ConnectionError::Client(format!(
                                "system-assigned managed identity: {e}"
                            ))
                        })?;
                Ok(StorageCredentials::token_credential(Arc::new(credential)))
            }
            StorageCredential::ManagedIdentity {
                client_id: Some(client_id),
            } => {
                let credential = UserAssignedManagedIdentity::from_env(http, client_id)
                    .map_err(|e| ConnectionError::Client(e.to_string()))?;
                Ok(StorageCredentials::token_credential(Arc::new(credential)))
            }
            StorageCredential::DefaultChain => {
                let credential = DefaultAzureCredentialBuilder::new()
                    .with_options(TokenCredentialOptions::from(http))
                    .build()
                    .map_err(|e| ConnectionError::Client(format!("default credential: {e}")))?;
                Ok(StorageCredentials::token_credential(Arc::new(credential)))
            }
        }
    }

    /// Builds the Table, Queue and Blob service clients over `http`, sharing one credential
    /// (and so one token cache). Each attempt they send counts against the running work's
    /// [`crate::storage_requests::StorageMeter`]; token requests (through `http` directly) do not.
    pub fn build_clients(
        &self,
        http: Arc<dyn HttpClient>,
    ) -> Result<StorageClients, ConnectionError> {
        let credentials = self.storage_credentials(http.clone())?;
        let location = |service: Service| CloudLocation::Custom {
            account: self.account.clone(),
            uri: base_uri(self.endpoint(service)),
        };
        // After the retry policy, so each attempt counts.
        let options = || {
            ClientOptions::new(TransportOptions::new(http.clone()))
                .per_retry_policies(vec![Arc::new(CountRequests) as Arc<dyn Policy>])
        };
        Ok(StorageClients {
            tables: TableServiceClientBuilder::with_location(
                location(Service::Table),
                credentials.clone(),
            )
            .client_options(options())
            .build(),
            queues: QueueServiceClientBuilder::with_location(
                location(Service::Queue),
                credentials.clone(),
            )
            .client_options(options())
            .build(),
            blobs: ClientBuilder::with_location(location(Service::Blob), credentials)
                .client_options(options())
                .blob_service_client(),
        })
    }
}

/// The endpoint as the clients want it: no trailing `/`, or their path joins produce `//`.
pub(super) fn base_uri(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{cs, FULL_AZURITE};
    use super::*;

    #[test]
    fn clients_build_for_every_credential_kind_that_needs_no_environment() {
        let http = http_client(HttpSettings::default()).unwrap();
        for text in [
            "UseDevelopmentStorage=true",
            FULL_AZURITE,
            "BlobEndpoint=https://a.blob.core.windows.net;QueueEndpoint=https://a.queue.core.windows.net;TableEndpoint=https://a.table.core.windows.net;SharedAccessSignature=sv=2022-11-02&sig=abc",
        ] {
            let c = cs(text).unwrap();
            let clients = c.build_clients(http.clone()).unwrap();
            // The tables client hides its URL; queues and blobs show the joins are clean.
            let queue_url = clients.queues.queue_client("x").url().unwrap();
            assert_eq!(
                queue_url.as_str(),
                format!("{}/x", base_uri(&c.queue_endpoint))
            );
            let container_url = clients.blobs.container_client("x").url().unwrap();
            assert_eq!(
                container_url.as_str(),
                format!("{}/x", base_uri(&c.blob_endpoint))
            );
        }
    }

    /// Answers 503 to the first request and 204 to the rest, counting what it was sent.
    #[derive(Debug, Default)]
    struct FlakyService {
        requests: std::sync::atomic::AtomicU64,
    }

    #[async_trait::async_trait]
    impl HttpClient for FlakyService {
        async fn execute_request(
            &self,
            _request: &azure_core::Request,
        ) -> azure_core::Result<azure_core::Response> {
            use std::sync::atomic::Ordering;
            let status = match self.requests.fetch_add(1, Ordering::SeqCst) {
                0 => azure_core::StatusCode::ServiceUnavailable,
                _ => azure_core::StatusCode::NoContent,
            };
            Ok(azure_core::Response::new(
                status,
                azure_core::headers::Headers::new(),
                Box::pin(futures::stream::empty()),
            ))
        }
    }

    #[tokio::test]
    async fn every_attempt_of_a_storage_request_counts_against_the_running_work() {
        use crate::storage_requests::StorageMeter;
        use std::sync::atomic::Ordering;
        let service = Arc::new(FlakyService::default());
        let clients = cs("UseDevelopmentStorage=true")
            .unwrap()
            .build_clients(service.clone())
            .unwrap();
        let meter = StorageMeter::default();
        // Whether the answer parses does not matter here: the attempts were made.
        let _ = meter
            .measure(clients.queues.queue_client("x").delete().into_future())
            .await;
        let sent = service.requests.load(Ordering::SeqCst);
        assert_eq!(sent, 2, "the 503 was retried");
        assert_eq!(meter.made(), sent);
        let _ = clients.queues.queue_client("x").delete().await;
        assert_eq!(meter.made(), sent, "a request made outside the work");
    }
}
