//! Identity-based connection settings (`{prefix}__accountName`, `__blobServiceUri`,
//! `__queueServiceUri`, `__tableServiceUri`, `__credential`, `__clientId`), looked up as the
//! Functions host does: names ignoring case, `:` accepted in place of `__`.

use azure_core::Url;

use super::endpoints::{
    account_from_endpoint, parse_endpoint, public_endpoint, validate_account_name,
};
use super::{ConnectionError, ConnectionForm, Service, StorageConnection, StorageCredential};

impl StorageConnection {
    pub(super) fn identity_based(lookup: &Lookup<'_>) -> Result<Self, ConnectionError> {
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
}

/// Case-insensitive setting lookup, as the Functions host's configuration is.
pub(super) struct Lookup<'a> {
    pub(super) settings: &'a [(String, String)],
    pub(super) prefix: &'a str,
}

impl<'a> Lookup<'a> {
    pub(super) fn exact(&self, name: &str) -> Option<(&'a str, &'a str)> {
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

#[cfg(test)]
mod tests {
    use super::super::clients::base_uri;
    use super::super::test_support::{parse, settings};
    use super::*;

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
    fn custom_prefix() {
        let c = StorageConnection::from_settings(
            &settings(&[("MyStorage__accountName", "other1")]),
            "MyStorage",
        )
        .unwrap();
        assert_eq!(c.account, "other1");
    }
}
