//! The Functions storage connection (`AzureWebJobsStorage` as a connection string, or its
//! identity-based `__accountName` / `__*ServiceUri` form) parsed into typed endpoints and a
//! credential, and the Table, Queue and Blob clients built from it over one pooled HTTP client.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::auth::{AccessToken, Secret, TokenCredential};
use azure_core::error::ErrorKind;
use azure_core::{HttpClient, Method, Request, TransportOptions, Url};
use azure_data_tables::clients::{TableServiceClient, TableServiceClientBuilder};
use azure_identity::{
    AppServiceManagedIdentityCredential, DefaultAzureCredentialBuilder, TokenCredentialOptions,
};
use azure_storage::{CloudLocation, StorageCredentials};
use azure_storage_blobs::prelude::{BlobServiceClient, ClientBuilder};
use azure_storage_queues::{QueueServiceClient, QueueServiceClientBuilder};
use thiserror::Error;
use time::OffsetDateTime;

/// The connection name the Functions host uses for its own storage.
pub const DEFAULT_CONNECTION: &str = "AzureWebJobsStorage";
/// Azurite's well-known account and key (public, documented by Microsoft).
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
pub const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The resource managed-identity tokens are requested for; azure_storage always asks for it.
const STORAGE_RESOURCE: &str = "https://storage.azure.com";

/// One of the three storage services the backend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Blob,
    Queue,
    Table,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Blob, Service::Queue, Service::Table];

    fn subdomain(self) -> &'static str {
        match self {
            Service::Blob => "blob",
            Service::Queue => "queue",
            Service::Table => "table",
        }
    }

    /// Azurite's default port for the service.
    pub fn emulator_port(self) -> u16 {
        match self {
            Service::Blob => 10000,
            Service::Queue => 10001,
            Service::Table => 10002,
        }
    }

    fn endpoint_key(self) -> &'static str {
        match self {
            Service::Blob => "BlobEndpoint",
            Service::Queue => "QueueEndpoint",
            Service::Table => "TableEndpoint",
        }
    }

    fn service_uri_setting(self) -> &'static str {
        match self {
            Service::Blob => "blobServiceUri",
            Service::Queue => "queueServiceUri",
            Service::Table => "tableServiceUri",
        }
    }
}

/// Why the storage connection settings could not be used. Every variant names the setting;
/// none carries an account key or SAS token, so errors can be logged as they are.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectionError {
    #[error(
        "no storage connection configured: set {prefix} to a connection string, or \
         {prefix}__accountName (or {prefix}__blobServiceUri, {prefix}__queueServiceUri and \
         {prefix}__tableServiceUri) for an identity-based connection"
    )]
    NotConfigured { prefix: String },
    #[error("{setting}: connection string segment {segment} is not Key=Value")]
    NotKeyValue { setting: String, segment: usize },
    #[error("{setting}: connection string key '{key}' has an empty value")]
    EmptyValue { setting: String, key: String },
    #[error("{setting}: connection string key '{key}' appears more than once")]
    DuplicateKey { setting: String, key: String },
    #[error("{setting}: unknown connection string key '{key}'")]
    UnknownKey { setting: String, key: String },
    #[error("{setting}: {key}={value} is not valid; expected {expected}")]
    InvalidValue {
        setting: String,
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("{setting}: {key} cannot be combined with {other}")]
    Conflict {
        setting: String,
        key: &'static str,
        other: String,
    },
    #[error("{setting}: {missing} is required ({why})")]
    Missing {
        setting: String,
        missing: String,
        why: &'static str,
    },
    #[error("{setting}: AccountKey is not valid base64")]
    InvalidAccountKey { setting: String },
    #[error("{setting}: '{value}' is not a valid storage account name (3 to 24 lowercase letters and digits)")]
    InvalidAccountName { setting: String, value: String },
    #[error("{setting}: '{value}' is not a usable service endpoint: {reason}")]
    InvalidEndpoint {
        setting: String,
        value: String,
        reason: String,
    },
    #[error("{setting}: credential '{value}' is not supported; the only value is 'managedidentity' (omit it to use the default credential chain)")]
    UnsupportedCredential { setting: String, value: String },
    #[error("building the storage clients failed: {0}")]
    Client(String),
}

/// How requests are authorised. `Debug` never prints keys or tokens.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageCredential {
    /// Shared key (connection strings and Azurite).
    SharedKey { account: String, key: String },
    /// A SAS token, without the leading `?`.
    Sas { token: String },
    /// `__credential=managedidentity`: the app's system-assigned identity, or the user-assigned
    /// identity with this client id.
    ManagedIdentity { client_id: Option<String> },
    /// Identity-based without `__credential`: azure_identity's default chain (environment,
    /// managed identity, Azure CLI), the usual choice on a developer machine.
    DefaultChain,
}

impl fmt::Debug for StorageCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SharedKey { account, .. } => f
                .debug_struct("SharedKey")
                .field("account", account)
                .field("key", &"<redacted>")
                .finish(),
            Self::Sas { .. } => f.debug_struct("Sas").field("token", &"<redacted>").finish(),
            Self::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
            Self::DefaultChain => f.write_str("DefaultChain"),
        }
    }
}

/// Which form the settings took; for start-up logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionForm {
    DevelopmentStorage,
    ConnectionString,
    IdentityBased,
}

/// A parsed storage connection: where each service is and how to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConnection {
    pub form: ConnectionForm,
    pub account: String,
    pub blob_endpoint: Url,
    pub queue_endpoint: Url,
    pub table_endpoint: Url,
    pub credential: StorageCredential,
}

/// Client-side timeouts of the shared HTTP client. azure_core 0.21 sets none (its `timeout` is
/// a server-side query parameter), and a dequeue against a busy account can stall (G2).
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
/// azure_core 0.21's own client disables keep-alive, a new TCP/TLS handshake per call (G1).
pub fn http_client(settings: HttpSettings) -> Result<Arc<dyn HttpClient>, ConnectionError> {
    let client = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .build()
        .map_err(|e| ConnectionError::Client(format!("HTTP client: {e}")))?;
    Ok(Arc::new(client))
}

impl StorageConnection {
    /// Azurite on this machine at its default ports (`UseDevelopmentStorage=true`).
    pub fn development_storage() -> Self {
        let endpoint = |service: Service| {
            let text = format!(
                "http://127.0.0.1:{}/{EMULATOR_ACCOUNT}",
                service.emulator_port()
            );
            // Built from constants only, so it always parses.
            Url::parse(&text).expect("static emulator URL is valid")
        };
        Self::emulator_at(
            endpoint(Service::Blob),
            endpoint(Service::Queue),
            endpoint(Service::Table),
        )
    }

    /// Azurite behind `DevelopmentStorageProxyUri`: its scheme and host, the default ports.
    fn emulator_behind(setting: &str, proxy: &Url) -> Result<Self, ConnectionError> {
        let endpoint = |service: Service| {
            let mut url = proxy.clone();
            url.set_port(Some(service.emulator_port())).map_err(|()| {
                ConnectionError::InvalidEndpoint {
                    setting: setting.to_owned(),
                    value: proxy.to_string(),
                    reason: "cannot carry a port".into(),
                }
            })?;
            url.set_path(EMULATOR_ACCOUNT);
            Ok::<_, ConnectionError>(url)
        };
        Ok(Self::emulator_at(
            endpoint(Service::Blob)?,
            endpoint(Service::Queue)?,
            endpoint(Service::Table)?,
        ))
    }

    fn emulator_at(blob_endpoint: Url, queue_endpoint: Url, table_endpoint: Url) -> Self {
        Self {
            form: ConnectionForm::DevelopmentStorage,
            account: EMULATOR_ACCOUNT.to_owned(),
            blob_endpoint,
            queue_endpoint,
            table_endpoint,
            credential: StorageCredential::SharedKey {
                account: EMULATOR_ACCOUNT.to_owned(),
                key: EMULATOR_KEY.to_owned(),
            },
        }
    }

    /// Reads the connection named `prefix` (usually [`DEFAULT_CONNECTION`]) from a settings map,
    /// as the Functions host does: the plain setting as a connection string if it is set,
    /// otherwise the identity-based `{prefix}__…` settings. Names match case-insensitively,
    /// and `:` is accepted in place of `__`.
    pub fn from_settings<I, K, V>(settings: I, prefix: &str) -> Result<Self, ConnectionError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let settings: Vec<(String, String)> = settings
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let lookup = Lookup {
            settings: &settings,
            prefix,
        };
        if let Some((name, value)) = lookup.exact(prefix) {
            return Self::parse_connection_string(name, value);
        }
        Self::identity_based(&lookup)
    }

    /// [`from_settings`](Self::from_settings) over the process environment, where the Functions
    /// host puts app settings.
    pub fn from_env(prefix: &str) -> Result<Self, ConnectionError> {
        Self::from_settings(std::env::vars(), prefix)
    }

    /// Parses a storage connection string; `setting` names it in errors.
    pub fn parse_connection_string(setting: &str, value: &str) -> Result<Self, ConnectionError> {
        let cs = ConnectionString::parse(setting, value)?;
        cs.into_connection(setting)
    }

    fn identity_based(lookup: &Lookup<'_>) -> Result<Self, ConnectionError> {
        let account_setting = lookup.sub("accountName");
        let credential_setting = lookup.sub("credential");
        let client_id = lookup.sub("clientId").map(|(_, v)| v.to_owned());
        let uris: Vec<(Service, Option<(&str, &str)>)> = Service::ALL
            .iter()
            .map(|&s| (s, lookup.sub(s.service_uri_setting())))
            .collect();
        let any_uri = uris.iter().any(|(_, u)| u.is_some());
        if account_setting.is_none() && !any_uri {
            return Err(ConnectionError::NotConfigured {
                prefix: lookup.prefix.to_owned(),
            });
        }

        let account = match account_setting {
            Some((name, value)) => Some(validate_account_name(name, value)?),
            None => None,
        };
        let mut endpoints = Vec::with_capacity(3);
        for (service, uri) in uris {
            let url = match (uri, &account) {
                (Some((name, value)), _) => parse_endpoint(name, value)?,
                (None, Some(account)) => {
                    public_endpoint(account, service, "https", "core.windows.net")?
                }
                (None, None) => {
                    let present = Service::ALL
                        .iter()
                        .find_map(|s| lookup.sub(s.service_uri_setting()))
                        .map(|(n, _)| n.to_owned())
                        .unwrap_or_default();
                    return Err(ConnectionError::Missing {
                        setting: present,
                        missing: format!("{}__{}", lookup.prefix, service.service_uri_setting()),
                        why: "the backend uses blobs, queues and tables; set all three service URIs or __accountName",
                    });
                }
            };
            endpoints.push(url);
        }
        let [blob_endpoint, queue_endpoint, table_endpoint]: [Url; 3] = endpoints
            .try_into()
            .map_err(|_| ConnectionError::Client("internal: expected three endpoints".into()))?;
        let account = account.unwrap_or_else(|| account_from_endpoint(&table_endpoint));

        let credential = match credential_setting {
            None if client_id.is_some() => StorageCredential::ManagedIdentity { client_id },
            None => StorageCredential::DefaultChain,
            Some((_, value)) if value.eq_ignore_ascii_case("managedidentity") => {
                StorageCredential::ManagedIdentity { client_id }
            }
            Some((name, value)) => {
                return Err(ConnectionError::UnsupportedCredential {
                    setting: name.to_owned(),
                    value: value.to_owned(),
                })
            }
        };
        Ok(Self {
            form: ConnectionForm::IdentityBased,
            account,
            blob_endpoint,
            queue_endpoint,
            table_endpoint,
            credential,
        })
    }

    pub fn endpoint(&self, service: Service) -> &Url {
        match service {
            Service::Blob => &self.blob_endpoint,
            Service::Queue => &self.queue_endpoint,
            Service::Table => &self.table_endpoint,
        }
    }

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
    /// (and so one token cache).
    pub fn build_clients(
        &self,
        http: Arc<dyn HttpClient>,
    ) -> Result<StorageClients, ConnectionError> {
        let credentials = self.storage_credentials(http.clone())?;
        let location = |service: Service| CloudLocation::Custom {
            account: self.account.clone(),
            uri: base_uri(self.endpoint(service)),
        };
        let transport = || TransportOptions::new(http.clone());
        Ok(StorageClients {
            tables: TableServiceClientBuilder::with_location(
                location(Service::Table),
                credentials.clone(),
            )
            .transport(transport())
            .build(),
            queues: QueueServiceClientBuilder::with_location(
                location(Service::Queue),
                credentials.clone(),
            )
            .transport(transport())
            .build(),
            blobs: ClientBuilder::with_location(location(Service::Blob), credentials)
                .transport(transport())
                .blob_service_client(),
        })
    }
}

/// The endpoint as the clients want it: no trailing `/`, or their path joins produce `//`.
fn base_uri(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// Case-insensitive setting lookup, as the Functions host's configuration is.
struct Lookup<'a> {
    settings: &'a [(String, String)],
    prefix: &'a str,
}

impl<'a> Lookup<'a> {
    fn exact(&self, name: &str) -> Option<(&'a str, &'a str)> {
        self.settings
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn sub(&self, key: &str) -> Option<(&'a str, &'a str)> {
        self.exact(&format!("{}__{key}", self.prefix))
            .or_else(|| self.exact(&format!("{}:{key}", self.prefix)))
    }
}

#[derive(Default)]
struct ConnectionString<'a> {
    protocol: Option<&'a str>,
    account_name: Option<&'a str>,
    account_key: Option<&'a str>,
    sas: Option<&'a str>,
    endpoint_suffix: Option<&'a str>,
    use_development_storage: Option<&'a str>,
    development_storage_proxy_uri: Option<&'a str>,
    blob: Option<&'a str>,
    queue: Option<&'a str>,
    table: Option<&'a str>,
    /// Every key seen, canonical spelling, in order: for duplicate and conflict checks.
    seen: Vec<&'static str>,
}

/// Keys a storage connection string may carry. File and secondary endpoints are valid in
/// portal-issued strings but unused here, so they are accepted and ignored.
const KNOWN_KEYS: [&str; 15] = [
    "DefaultEndpointsProtocol",
    "AccountName",
    "AccountKey",
    "SharedAccessSignature",
    "EndpointSuffix",
    "UseDevelopmentStorage",
    "DevelopmentStorageProxyUri",
    "BlobEndpoint",
    "QueueEndpoint",
    "TableEndpoint",
    "FileEndpoint",
    "BlobSecondaryEndpoint",
    "QueueSecondaryEndpoint",
    "TableSecondaryEndpoint",
    "FileSecondaryEndpoint",
];

impl<'a> ConnectionString<'a> {
    fn parse(setting: &str, text: &'a str) -> Result<Self, ConnectionError> {
        let mut cs = ConnectionString::default();
        for (i, segment) in text.split(';').enumerate() {
            if segment.trim().is_empty() {
                continue;
            }
            // Split at the first '=' only: keys and SAS tokens contain '=' themselves.
            let Some((key, value)) = segment.split_once('=') else {
                return Err(ConnectionError::NotKeyValue {
                    setting: setting.to_owned(),
                    segment: i + 1,
                });
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(ConnectionError::NotKeyValue {
                    setting: setting.to_owned(),
                    segment: i + 1,
                });
            }
            let Some(canonical) = KNOWN_KEYS
                .iter()
                .copied()
                .find(|k| k.eq_ignore_ascii_case(key))
            else {
                return Err(ConnectionError::UnknownKey {
                    setting: setting.to_owned(),
                    key: key.to_owned(),
                });
            };
            if value.is_empty() {
                return Err(ConnectionError::EmptyValue {
                    setting: setting.to_owned(),
                    key: canonical.to_owned(),
                });
            }
            if cs.seen.contains(&canonical) {
                return Err(ConnectionError::DuplicateKey {
                    setting: setting.to_owned(),
                    key: canonical.to_owned(),
                });
            }
            cs.seen.push(canonical);
            let slot = match canonical {
                "DefaultEndpointsProtocol" => &mut cs.protocol,
                "AccountName" => &mut cs.account_name,
                "AccountKey" => &mut cs.account_key,
                "SharedAccessSignature" => &mut cs.sas,
                "EndpointSuffix" => &mut cs.endpoint_suffix,
                "UseDevelopmentStorage" => &mut cs.use_development_storage,
                "DevelopmentStorageProxyUri" => &mut cs.development_storage_proxy_uri,
                "BlobEndpoint" => &mut cs.blob,
                "QueueEndpoint" => &mut cs.queue,
                "TableEndpoint" => &mut cs.table,
                _ => continue,
            };
            *slot = Some(value);
        }
        Ok(cs)
    }

    fn into_connection(self, setting: &str) -> Result<StorageConnection, ConnectionError> {
        let err_setting = || setting.to_owned();
        let use_dev = match self.use_development_storage {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(ConnectionError::InvalidValue {
                    setting: err_setting(),
                    key: "UseDevelopmentStorage".into(),
                    value: v.to_owned(),
                    expected: "true or false",
                })
            }
        };
        if use_dev {
            // As in the .NET parser: the emulator shortcut takes nothing but a proxy URI.
            if let Some(other) = self
                .seen
                .iter()
                .find(|k| !matches!(**k, "UseDevelopmentStorage" | "DevelopmentStorageProxyUri"))
            {
                return Err(ConnectionError::Conflict {
                    setting: err_setting(),
                    key: "UseDevelopmentStorage=true",
                    other: (*other).to_owned(),
                });
            }
            return match self.development_storage_proxy_uri {
                None => Ok(StorageConnection::development_storage()),
                Some(proxy) => {
                    let url = parse_endpoint(setting, proxy)?;
                    StorageConnection::emulator_behind(setting, &url)
                }
            };
        }
        if self.development_storage_proxy_uri.is_some() {
            return Err(ConnectionError::Missing {
                setting: err_setting(),
                missing: "UseDevelopmentStorage=true".into(),
                why: "DevelopmentStorageProxyUri only applies to the emulator",
            });
        }

        let protocol = match self.protocol {
            None => "https",
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            Some(p) if p.eq_ignore_ascii_case("http") => "http",
            Some(p) => {
                return Err(ConnectionError::InvalidValue {
                    setting: err_setting(),
                    key: "DefaultEndpointsProtocol".into(),
                    value: p.to_owned(),
                    expected: "http or https",
                })
            }
        };
        let suffix = self.endpoint_suffix.unwrap_or("core.windows.net");
        if suffix.contains(['/', ':', '?', '#', '@', ' ']) || suffix.starts_with('.') {
            return Err(ConnectionError::InvalidValue {
                setting: err_setting(),
                key: "EndpointSuffix".into(),
                value: suffix.to_owned(),
                expected: "a DNS suffix such as core.windows.net",
            });
        }

        let mut endpoints = Vec::with_capacity(3);
        for (service, explicit) in [
            (Service::Blob, self.blob),
            (Service::Queue, self.queue),
            (Service::Table, self.table),
        ] {
            let url = match (explicit, self.account_name) {
                (Some(value), _) => parse_endpoint(setting, value)?,
                (None, Some(account)) => {
                    let account = validate_account_name(setting, account)?;
                    public_endpoint(&account, service, protocol, suffix)?
                }
                (None, None) => {
                    return Err(ConnectionError::Missing {
                        setting: err_setting(),
                        missing: service.endpoint_key().into(),
                        why: "or AccountName to derive it from; the backend uses blobs, queues and tables",
                    })
                }
            };
            endpoints.push(url);
        }
        let [blob_endpoint, queue_endpoint, table_endpoint]: [Url; 3] = endpoints
            .try_into()
            .map_err(|_| ConnectionError::Client("internal: expected three endpoints".into()))?;

        let credential = match (self.account_key, self.sas) {
            (Some(_), Some(_)) => {
                return Err(ConnectionError::Conflict {
                    setting: err_setting(),
                    key: "AccountKey",
                    other: "SharedAccessSignature".into(),
                })
            }
            (Some(key), None) => {
                let Some(account) = self.account_name else {
                    return Err(ConnectionError::Missing {
                        setting: err_setting(),
                        missing: "AccountName".into(),
                        why: "an AccountKey signs requests for a named account",
                    });
                };
                if azure_core::base64::decode(key).is_err() {
                    return Err(ConnectionError::InvalidAccountKey {
                        setting: err_setting(),
                    });
                }
                StorageCredential::SharedKey {
                    account: account.to_owned(),
                    key: key.to_owned(),
                }
            }
            (None, Some(sas)) => StorageCredential::Sas {
                token: sas.trim_start_matches('?').to_owned(),
            },
            (None, None) => {
                return Err(ConnectionError::Missing {
                    setting: err_setting(),
                    missing: "AccountKey or SharedAccessSignature".into(),
                    why: "anonymous access cannot write tables or queues; for identity-based access use the __accountName settings instead",
                })
            }
        };
        let account = match self.account_name {
            Some(a) => a.to_owned(),
            None => account_from_endpoint(&table_endpoint),
        };
        Ok(StorageConnection {
            form: ConnectionForm::ConnectionString,
            account,
            blob_endpoint,
            queue_endpoint,
            table_endpoint,
            credential,
        })
    }
}

fn validate_account_name(setting: &str, value: &str) -> Result<String, ConnectionError> {
    let ok = (3..=24).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ConnectionError::InvalidAccountName {
            setting: setting.to_owned(),
            value: value.to_owned(),
        })
    }
}

fn public_endpoint(
    account: &str,
    service: Service,
    protocol: &str,
    suffix: &str,
) -> Result<Url, ConnectionError> {
    let text = format!("{protocol}://{account}.{}.{suffix}", service.subdomain());
    Url::parse(&text).map_err(|e| ConnectionError::InvalidEndpoint {
        setting: service.endpoint_key().to_owned(),
        value: text,
        reason: e.to_string(),
    })
}

fn parse_endpoint(setting: &str, value: &str) -> Result<Url, ConnectionError> {
    let invalid = |reason: String| ConnectionError::InvalidEndpoint {
        setting: setting.to_owned(),
        // Anything after '?' could be a SAS; keep it out of errors and logs.
        value: value.split('?').next().unwrap_or_default().to_owned(),
        reason,
    };
    let url = Url::parse(value).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme '{}' is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "it has a query or fragment; put a SAS in SharedAccessSignature".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it carries user credentials".into()));
    }
    Ok(url)
}

/// Account name for a connection that does not state it: the first path segment for
/// emulator-style URLs (`http://host:port/account`), else the first DNS label.
fn account_from_endpoint(url: &Url) -> String {
    url.path_segments()
        .and_then(|mut s| s.next())
        .filter(|s| !s.is_empty())
        .or_else(|| url.host_str().and_then(|h| h.split('.').next()))
        .unwrap_or_default()
        .to_owned()
}

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
    use super::*;
    use std::collections::HashMap;

    const FULL_AZURITE: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:20000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:20001/devstoreaccount1;TableEndpoint=http://127.0.0.1:20002/devstoreaccount1/;";

    fn settings(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<StorageConnection, ConnectionError> {
        StorageConnection::from_settings(&settings(pairs), DEFAULT_CONNECTION)
    }

    fn cs(text: &str) -> Result<StorageConnection, ConnectionError> {
        parse(&[("AzureWebJobsStorage", text)])
    }

    #[test]
    fn development_storage_maps_to_local_azurite() {
        let c = cs("UseDevelopmentStorage=true").unwrap();
        assert_eq!(c.form, ConnectionForm::DevelopmentStorage);
        assert_eq!(c.account, "devstoreaccount1");
        assert_eq!(
            c.blob_endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(
            c.queue_endpoint.as_str(),
            "http://127.0.0.1:10001/devstoreaccount1"
        );
        assert_eq!(
            c.table_endpoint.as_str(),
            "http://127.0.0.1:10002/devstoreaccount1"
        );
        assert_eq!(
            c.credential,
            StorageCredential::SharedKey {
                account: EMULATOR_ACCOUNT.into(),
                key: EMULATOR_KEY.into()
            }
        );
        // Keys and values are case-insensitive and surrounding space is ignored.
        assert_eq!(cs(" usedevelopmentstorage = TRUE ; ").unwrap(), c);
    }

    #[test]
    fn development_storage_proxy_changes_the_host() {
        let c = cs("UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://azurite").unwrap();
        assert_eq!(
            c.queue_endpoint.as_str(),
            "http://azurite:10001/devstoreaccount1"
        );
    }

    #[test]
    fn development_storage_takes_no_other_keys() {
        assert_eq!(
            cs("UseDevelopmentStorage=true;AccountName=x").unwrap_err(),
            ConnectionError::Conflict {
                setting: "AzureWebJobsStorage".into(),
                key: "UseDevelopmentStorage=true",
                other: "AccountName".into()
            }
        );
        assert!(matches!(
            cs("UseDevelopmentStorage=yes"),
            Err(ConnectionError::InvalidValue { ref key, .. }) if key == "UseDevelopmentStorage"
        ));
    }

    #[test]
    fn full_azurite_string_uses_explicit_endpoints() {
        let c = cs(FULL_AZURITE).unwrap();
        assert_eq!(c.form, ConnectionForm::ConnectionString);
        assert_eq!(c.account, "devstoreaccount1");
        assert_eq!(
            c.blob_endpoint.as_str(),
            "http://127.0.0.1:20000/devstoreaccount1"
        );
        assert_eq!(
            base_uri(&c.table_endpoint),
            "http://127.0.0.1:20002/devstoreaccount1"
        );
        assert!(matches!(
            c.credential,
            StorageCredential::SharedKey { ref account, .. } if account == "devstoreaccount1"
        ));
    }

    #[test]
    fn production_string_derives_endpoints() {
        let c = cs("DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn").unwrap();
        assert_eq!(c.account, "myacct");
        assert_eq!(
            c.blob_endpoint.as_str(),
            "https://myacct.blob.core.chinacloudapi.cn/"
        );
        assert_eq!(
            base_uri(&c.queue_endpoint),
            "https://myacct.queue.core.chinacloudapi.cn"
        );
        assert_eq!(
            base_uri(&c.table_endpoint),
            "https://myacct.table.core.chinacloudapi.cn"
        );
        // Defaults: https and the public cloud.
        let c = cs("AccountName=myacct;AccountKey=a2V5").unwrap();
        assert_eq!(
            base_uri(&c.table_endpoint),
            "https://myacct.table.core.windows.net"
        );
    }

    #[test]
    fn sas_connection_string() {
        let c = cs("BlobEndpoint=https://a.blob.core.windows.net;QueueEndpoint=https://a.queue.core.windows.net;TableEndpoint=https://a.table.core.windows.net;SharedAccessSignature=?sv=2022-11-02&sig=abc%3D").unwrap();
        assert_eq!(c.account, "a");
        assert_eq!(
            c.credential,
            StorageCredential::Sas {
                token: "sv=2022-11-02&sig=abc%3D".into()
            }
        );
        assert!(!format!("{c:?}").contains("sig=abc"));
    }

    #[test]
    fn debug_never_prints_the_key() {
        let c = cs(FULL_AZURITE).unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("Eby8"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn malformed_connection_strings_name_the_problem() {
        let setting = || "AzureWebJobsStorage".to_owned();
        assert_eq!(
            cs("AccountName=a;garbage").unwrap_err(),
            ConnectionError::NotKeyValue {
                setting: setting(),
                segment: 2
            }
        );
        assert_eq!(
            cs("=x").unwrap_err(),
            ConnectionError::NotKeyValue {
                setting: setting(),
                segment: 1
            }
        );
        assert_eq!(
            cs("AccountName=").unwrap_err(),
            ConnectionError::EmptyValue {
                setting: setting(),
                key: "AccountName".into()
            }
        );
        assert_eq!(
            cs("AccountName=abc;accountname=abd;AccountKey=a2V5").unwrap_err(),
            ConnectionError::DuplicateKey {
                setting: setting(),
                key: "AccountName".into()
            }
        );
        assert_eq!(
            cs("AccountName=abc;Foo=1").unwrap_err(),
            ConnectionError::UnknownKey {
                setting: setting(),
                key: "Foo".into()
            }
        );
        assert!(matches!(
            cs("DefaultEndpointsProtocol=ftp;AccountName=abc;AccountKey=a2V5").unwrap_err(),
            ConnectionError::InvalidValue { ref key, ref value, .. } if key == "DefaultEndpointsProtocol" && value == "ftp"
        ));
        assert_eq!(
            cs("AccountName=abc;AccountKey=not base64!").unwrap_err(),
            ConnectionError::InvalidAccountKey { setting: setting() }
        );
        assert!(matches!(
            cs("AccountName=abc").unwrap_err(),
            ConnectionError::Missing { ref missing, .. } if missing == "AccountKey or SharedAccessSignature"
        ));
        assert!(matches!(
            cs("AccountName=abc;AccountKey=a2V5;SharedAccessSignature=sv=1").unwrap_err(),
            ConnectionError::Conflict {
                key: "AccountKey",
                ..
            }
        ));
        assert!(matches!(
            cs("AccountName=Bad_Name;AccountKey=a2V5").unwrap_err(),
            ConnectionError::InvalidAccountName { ref value, .. } if value == "Bad_Name"
        ));
        assert!(matches!(
            cs("AccountKey=a2V5;BlobEndpoint=http://h/a;QueueEndpoint=http://h/a;TableEndpoint=http://h/a").unwrap_err(),
            ConnectionError::Missing { ref missing, .. } if missing == "AccountName"
        ));
        assert!(matches!(
            cs("QueueEndpoint=http://h/a;SharedAccessSignature=sv=1").unwrap_err(),
            ConnectionError::Missing { ref missing, .. } if missing == "BlobEndpoint"
        ));
        assert!(matches!(
            cs("AccountName=abc;AccountKey=a2V5;TableEndpoint=ftp://x").unwrap_err(),
            ConnectionError::InvalidEndpoint { ref reason, .. } if reason.contains("scheme")
        ));
        assert!(matches!(
            cs("AccountName=abc;AccountKey=a2V5;TableEndpoint=not a url").unwrap_err(),
            ConnectionError::InvalidEndpoint { .. }
        ));
        let err =
            cs("AccountName=abc;AccountKey=a2V5;TableEndpoint=https://x/?sig=secret").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(matches!(
            cs("AccountName=abc;AccountKey=a2V5;EndpointSuffix=https://x").unwrap_err(),
            ConnectionError::InvalidValue { ref key, .. } if key == "EndpointSuffix"
        ));
        // Error text names the setting.
        let msg = cs("AccountName=abc;Foo=1").unwrap_err().to_string();
        assert!(msg.starts_with("AzureWebJobsStorage:"), "{msg}");
    }

    #[test]
    fn nothing_configured_is_an_error() {
        assert_eq!(
            parse(&[("Other", "x")]).unwrap_err(),
            ConnectionError::NotConfigured {
                prefix: "AzureWebJobsStorage".into()
            }
        );
        // Blank values count as unset, as in the Functions host.
        assert!(matches!(
            parse(&[("AzureWebJobsStorage", "  ")]),
            Err(ConnectionError::NotConfigured { .. })
        ));
    }

    #[test]
    fn identity_by_account_name() {
        let c = parse(&[("AzureWebJobsStorage__accountName", "myacct")]).unwrap();
        assert_eq!(c.form, ConnectionForm::IdentityBased);
        assert_eq!(c.account, "myacct");
        assert_eq!(
            base_uri(&c.blob_endpoint),
            "https://myacct.blob.core.windows.net"
        );
        assert_eq!(
            base_uri(&c.table_endpoint),
            "https://myacct.table.core.windows.net"
        );
        assert_eq!(c.credential, StorageCredential::DefaultChain);
    }

    #[test]
    fn identity_by_service_uris() {
        let c = parse(&[
            (
                "AzureWebJobsStorage__blobServiceUri",
                "https://acct.blob.core.usgovcloudapi.net",
            ),
            (
                "AzureWebJobsStorage__queueServiceUri",
                "https://acct.queue.core.usgovcloudapi.net",
            ),
            (
                "AzureWebJobsStorage__tableServiceUri",
                "https://acct.table.core.usgovcloudapi.net/",
            ),
            ("AzureWebJobsStorage__credential", "managedidentity"),
        ])
        .unwrap();
        assert_eq!(c.account, "acct");
        assert_eq!(
            base_uri(&c.queue_endpoint),
            "https://acct.queue.core.usgovcloudapi.net"
        );
        assert_eq!(
            c.credential,
            StorageCredential::ManagedIdentity { client_id: None }
        );
    }

    #[test]
    fn identity_with_user_assigned_client_id() {
        let c = parse(&[
            ("AzureWebJobsStorage__accountName", "myacct"),
            ("AzureWebJobsStorage__credential", "ManagedIdentity"),
            ("AzureWebJobsStorage__clientId", "1111-2222"),
        ])
        .unwrap();
        assert_eq!(
            c.credential,
            StorageCredential::ManagedIdentity {
                client_id: Some("1111-2222".into())
            }
        );
        // Colon form and case-insensitive names, as in the host's configuration.
        let c2 = parse(&[
            ("azurewebjobsstorage:ACCOUNTNAME", "myacct"),
            ("AzureWebJobsStorage:credential", "managedidentity"),
            ("AzureWebJobsStorage__clientid", "1111-2222"),
        ])
        .unwrap();
        assert_eq!(c, c2);
    }

    #[test]
    fn service_uri_overrides_account_name_for_that_service() {
        let c = parse(&[
            ("AzureWebJobsStorage__accountName", "myacct"),
            (
                "AzureWebJobsStorage__tableServiceUri",
                "https://custom.example.com",
            ),
        ])
        .unwrap();
        assert_eq!(c.account, "myacct");
        assert_eq!(base_uri(&c.table_endpoint), "https://custom.example.com");
        assert_eq!(
            base_uri(&c.queue_endpoint),
            "https://myacct.queue.core.windows.net"
        );
    }

    #[test]
    fn malformed_identity_settings_name_the_setting() {
        assert_eq!(
            parse(&[("AzureWebJobsStorage__queueServiceUri", "https://a.queue.core.windows.net")])
                .unwrap_err(),
            ConnectionError::Missing {
                setting: "AzureWebJobsStorage__queueServiceUri".into(),
                missing: "AzureWebJobsStorage__blobServiceUri".into(),
                why: "the backend uses blobs, queues and tables; set all three service URIs or __accountName",
            }
        );
        assert_eq!(
            parse(&[("AzureWebJobsStorage__accountName", "My-Acct")]).unwrap_err(),
            ConnectionError::InvalidAccountName {
                setting: "AzureWebJobsStorage__accountName".into(),
                value: "My-Acct".into()
            }
        );
        assert_eq!(
            parse(&[
                ("AzureWebJobsStorage__accountName", "myacct"),
                ("AzureWebJobsStorage__credential", "clientsecret"),
            ])
            .unwrap_err(),
            ConnectionError::UnsupportedCredential {
                setting: "AzureWebJobsStorage__credential".into(),
                value: "clientsecret".into()
            }
        );
        assert!(matches!(
            parse(&[("AzureWebJobsStorage__blobServiceUri", "blob.example.com")]).unwrap_err(),
            ConnectionError::InvalidEndpoint { ref setting, .. } if setting == "AzureWebJobsStorage__blobServiceUri"
        ));
    }

    #[test]
    fn connection_string_wins_over_identity_settings() {
        let c = parse(&[
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
            ("AzureWebJobsStorage__accountName", "myacct"),
        ])
        .unwrap();
        assert_eq!(c.form, ConnectionForm::DevelopmentStorage);
    }

    #[test]
    fn custom_prefix() {
        let c = StorageConnection::from_settings(
            &settings(&[("MyStorage__accountName", "other1")]),
            "MyStorage",
        )
        .unwrap();
        assert_eq!(c.account, "other1");
    }

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
