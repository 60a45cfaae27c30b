//! Storage connection strings: `Key=Value;…` parsed and checked, `UseDevelopmentStorage=true`
//! (Azurite, optionally behind a proxy), endpoints stated or derived, and the key or SAS
//! credential.

use azure_core::Url;

use super::endpoints::{
    account_from_endpoint, parse_endpoint, public_endpoint, validate_account_name,
};
use super::{
    ConnectionError, ConnectionForm, Service, StorageConnection, StorageCredential,
    EMULATOR_ACCOUNT, EMULATOR_KEY,
};

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

    /// Parses a storage connection string; `setting` names it in errors.
    pub fn parse_connection_string(setting: &str, value: &str) -> Result<Self, ConnectionError> {
        let cs = ConnectionString::parse(setting, value)?;
        cs.into_connection(setting)
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

#[cfg(test)]
mod tests {
    use super::super::clients::base_uri;
    use super::super::test_support::{cs, FULL_AZURITE};
    use super::*;

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
}
