//! Service endpoint URLs and account names, as both connection forms use them: the public endpoint
//! derived from an account name, a checked explicit endpoint, and the account an endpoint implies.

use azure_core::Url;

use super::{ConnectionError, Service};

pub(super) fn validate_account_name(setting: &str, value: &str) -> Result<String, ConnectionError> {
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

pub(super) fn public_endpoint(
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

pub(super) fn parse_endpoint(setting: &str, value: &str) -> Result<Url, ConnectionError> {
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
pub(super) fn account_from_endpoint(url: &Url) -> String {
    url.path_segments()
        .and_then(|mut s| s.next())
        .filter(|s| !s.is_empty())
        .or_else(|| url.host_str().and_then(|h| h.split('.').next()))
        .unwrap_or_default()
        .to_owned()
}
