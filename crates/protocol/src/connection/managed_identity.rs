//! A token credential for a user-assigned managed identity (`__clientId`) through the App Service /
//! Functions identity endpoint, with its token cache.

use std::fmt;
use std::sync::{Arc, Mutex};

use azure_core::auth::{AccessToken, TokenCredential};
use azure_core::error::ErrorKind;
use azure_core::{HttpClient, Method, Request, Url};
use time::OffsetDateTime;

/// The resource managed-identity tokens are requested for; azure_storage always asks for it.
const STORAGE_RESOURCE: &str = "https://storage.azure.com";

/// A token credential for a user-assigned managed identity through the App Service / Functions
/// identity endpoint, which azure_identity 0.21 cannot do (its client-id support is private).
/// Tokens are cached until five minutes before they expire.
pub struct UserAssignedManagedIdentity {
    http: Arc<dyn HttpClient>,
    endpoint: Url,
    header: Option<String>,
    client_id: String,
    cache: Mutex<Option<AccessToken>>,
}

impl fmt::Debug for UserAssignedManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAssignedManagedIdentity")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Refresh this long before expiry so a request never leaves with a token about to lapse.
const TOKEN_REFRESH_MARGIN: time::Duration = time::Duration::minutes(5);
const IDENTITY_API_VERSION: &str = "2019-08-01";

impl UserAssignedManagedIdentity {
    pub fn new(
        http: Arc<dyn HttpClient>,
        endpoint: Url,
        header: Option<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            http,
            endpoint,
            header,
            client_id: client_id.into(),
            cache: Mutex::new(None),
        }
    }

    /// Uses `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, which the Functions host sets.
    pub fn from_env(http: Arc<dyn HttpClient>, client_id: &str) -> Result<Self, azure_core::Error> {
        let endpoint = std::env::var("IDENTITY_ENDPOINT").map_err(|_| {
            azure_core::Error::message(
                ErrorKind::Credential,
                "user-assigned managed identity needs the IDENTITY_ENDPOINT environment variable (set by the Functions host)",
            )
        })?;
        let endpoint = Url::parse(&endpoint).map_err(|e| {
            azure_core::Error::with_message(ErrorKind::Credential, || {
                format!("IDENTITY_ENDPOINT is not a URL: {e}")
            })
        })?;
        let header = std::env::var("IDENTITY_HEADER").ok();
        Ok(Self::new(http, endpoint, header, client_id))
    }

    fn cached(&self) -> Option<AccessToken> {
        let guard = self.cache.lock().ok()?;
        guard
            .as_ref()
            .filter(|t| t.expires_on - TOKEN_REFRESH_MARGIN > OffsetDateTime::now_utc())
            .cloned()
    }

    async fn fetch(&self, resource: &str) -> azure_core::Result<AccessToken> {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("api-version", IDENTITY_API_VERSION)
            .append_pair("resource", resource)
            .append_pair("client_id", &self.client_id);
        let mut request = Request::new(url, Method::Get);
        request.insert_header("metadata", "true");
        if let Some(header) = &self.header {
            request.insert_header("x-identity-header", header.clone());
        }
        let response = self.http.execute_request(&request).await?;
        let (status, _, body) = response.deconstruct();
        let body = body.collect().await?;
        if !status.is_success() {
            return Err(azure_core::Error::with_message(
                ErrorKind::Credential,
                || {
                    format!(
                        "managed identity endpoint answered {} for client id {}: {}",
                        u16::from(status),
                        self.client_id,
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    )
                },
            ));
        }
        let token: IdentityTokenResponse = serde_json::from_slice(&body).map_err(|e| {
            azure_core::Error::with_message(ErrorKind::Credential, || {
                format!("managed identity endpoint returned an unreadable token: {e}")
            })
        })?;
        let expires_on = token.expires_on()?;
        Ok(AccessToken::new(token.access_token, expires_on))
    }
}

#[derive(serde::Deserialize)]
struct IdentityTokenResponse {
    access_token: String,
    /// Unix seconds; the App Service endpoint sends it as a string, IMDS-style endpoints as a
    /// number.
    expires_on: serde_json::Value,
}

impl IdentityTokenResponse {
    fn expires_on(&self) -> azure_core::Result<OffsetDateTime> {
        let seconds = match &self.expires_on {
            serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
            serde_json::Value::Number(n) => n.as_i64(),
            _ => None,
        };
        seconds
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or_else(|| {
                azure_core::Error::message(
                    ErrorKind::Credential,
                    "managed identity token has no usable expires_on",
                )
            })
    }
}

#[async_trait::async_trait]
impl TokenCredential for UserAssignedManagedIdentity {
    async fn get_token(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let resource = match scopes {
            [scope] => scope.strip_suffix("/.default").unwrap_or(scope),
            [] => STORAGE_RESOURCE,
            _ => {
                return Err(azure_core::Error::message(
                    ErrorKind::Credential,
                    "managed identity tokens are issued for one scope at a time",
                ))
            }
        };
        // Two callers racing on an empty cache may both fetch; that costs one extra token
        // request and is cheaper than holding a lock across the await.
        let token = self.fetch(resource).await?;
        if let Ok(mut guard) = self.cache.lock() {
            *guard = Some(token.clone());
        }
        Ok(token)
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        if let Ok(mut guard) = self.cache.lock() {
            *guard = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{http_client, HttpSettings};
    use super::*;

    /// A one-shot-per-connection HTTP server on a std thread that answers every request with
    /// `body` and records the request heads.
    fn mock_identity_endpoint(body: &'static str) -> (Url, Arc<Mutex<Vec<String>>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut buf = vec![0u8; 8192];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/msi/token")).unwrap();
        (url, seen)
    }

    #[tokio::test]
    async fn user_assigned_identity_sends_client_id_and_caches() {
        let expires = OffsetDateTime::now_utc().unix_timestamp() + 3600;
        let body: &'static str = Box::leak(
            format!(r#"{{"access_token":"tok-1","expires_on":"{expires}","token_type":"Bearer","resource":"https://storage.azure.com"}}"#)
                .into_boxed_str(),
        );
        let (endpoint, seen) = mock_identity_endpoint(body);
        let http = http_client(HttpSettings::default()).unwrap();
        let cred =
            UserAssignedManagedIdentity::new(http, endpoint, Some("hdr-secret".into()), "cid-42");
        let scope = ["https://storage.azure.com/.default"];
        let t1 = cred.get_token(&scope).await.unwrap();
        let t2 = cred.get_token(&scope).await.unwrap();
        assert_eq!(t1.token.secret(), "tok-1");
        assert_eq!(t2.token.secret(), "tok-1");
        assert_eq!(t1.expires_on.unix_timestamp(), expires);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "second call must hit the cache");
        let head = seen[0].to_ascii_lowercase();
        assert!(head.contains("client_id=cid-42"), "{head}");
        assert!(head.contains("api-version=2019-08-01"), "{head}");
        assert!(
            head.contains("resource=https%3a%2f%2fstorage.azure.com"),
            "{head}"
        );
        assert!(head.contains("x-identity-header: hdr-secret"), "{head}");
        cred.clear_cache().await.unwrap();
        cred.get_token(&scope).await.unwrap();
    }

    #[tokio::test]
    async fn user_assigned_identity_refreshes_a_token_about_to_expire() {
        let expires = OffsetDateTime::now_utc().unix_timestamp() + 60;
        let body: &'static str = Box::leak(
            format!(r#"{{"access_token":"short","expires_on":{expires}}}"#).into_boxed_str(),
        );
        let (endpoint, seen) = mock_identity_endpoint(body);
        let http = http_client(HttpSettings::default()).unwrap();
        let cred = UserAssignedManagedIdentity::new(http, endpoint, None, "cid");
        cred.get_token(&[]).await.unwrap();
        cred.get_token(&[]).await.unwrap();
        // Inside the refresh margin, so both calls fetched.
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn user_assigned_identity_reports_a_bad_token_body() {
        let (endpoint, _) = mock_identity_endpoint(r#"{"access_token":"x","expires_on":"soon"}"#);
        let http = http_client(HttpSettings::default()).unwrap();
        let cred = UserAssignedManagedIdentity::new(http, endpoint, None, "cid");
        let err = cred.get_token(&[]).await.unwrap_err().to_string();
        assert!(err.contains("expires_on"), "{err}");
    }
}
