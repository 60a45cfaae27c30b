//! The Functions storage connection (`AzureWebJobsStorage` as a connection string, or its
//! identity-based `__accountName` / `__*ServiceUri` form) read into [`StorageConnection`]: typed
//! endpoints and a credential. The submodules read each form and build the clients.

mod clients;
mod connection_string;
mod endpoints;
mod identity_settings;
mod managed_identity;
#[cfg(test)]
mod test_support;

use std::fmt;

use azure_core::Url;
use thiserror::Error;

pub use clients::{http_client, HttpSettings, StorageClients};
pub use managed_identity::UserAssignedManagedIdentity;

use identity_settings::Lookup;

/// The connection name the Functions host uses for its own storage.
pub const DEFAULT_CONNECTION: &str = "AzureWebJobsStorage";
/// Azurite's well-known account and key (public, documented by Microsoft).
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
pub const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

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

impl StorageConnection {
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

    pub fn endpoint(&self, service: Service) -> &Url {
        match service {
            Service::Blob => &self.blob_endpoint,
            Service::Queue => &self.queue_endpoint,
            Service::Table => &self.table_endpoint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{cs, parse, FULL_AZURITE};
    use super::*;

    #[test]
    fn debug_never_prints_the_key() {
        let c = cs(FULL_AZURITE).unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("Eby8"), "{text}");
        assert!(text.contains("<redacted>"));
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
    fn connection_string_wins_over_identity_settings() {
        let c = parse(&[
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
            ("AzureWebJobsStorage__accountName", "myacct"),
        ])
        .unwrap();
        assert_eq!(c.form, ConnectionForm::DevelopmentStorage);
    }
}
