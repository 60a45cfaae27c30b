//! What the worker reads of the app's `host.json` (in the app root: `FUNCTIONS_APP_ROOT_PATH`,
//! else its working directory): the queue extension's `maxDequeueCount`, so its last delivery of a
//! message is known to be the last, and the Durable Task extension's versioning settings.

use std::path::Path;
use std::str::FromStr;

use durable_engine::{UnknownStrategy, Versioning};
use durable_protocol::jsonc;
use serde_json::Value;

pub const HOST_JSON: &str = "host.json";
/// The queue extension's default.
const DEFAULT_MAX_DEQUEUE_COUNT: u32 = 5;
/// An app setting named this, then the path joined with `__`, overrides a `host.json` value, as
/// the Functions host lets app settings do.
const OVERRIDE_PREFIX: &str = "AzureFunctionsJobHost";

#[derive(Debug, thiserror::Error)]
pub enum HostJsonError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: extensions.queues.maxDequeueCount must be a whole number of at least 1, not {value}")]
    MaxDequeueCount { path: String, value: Value },
    #[error("{path}: extensions.durableTask.{key} must be text, not {value}")]
    NotText {
        path: String,
        key: &'static str,
        value: Value,
    },
    #[error("extensions.durableTask.{key} (from {source_name})")]
    Strategy {
        key: &'static str,
        source_name: String,
        #[source]
        source: UnknownStrategy,
    },
}

/// The app's `host.json` as read once at start; empty when there is none (a worker run outside
/// an app directory, as tests do).
pub struct HostJson {
    path: String,
    json: Value,
}

impl HostJson {
    pub fn read(path: &Path) -> Result<Self, HostJsonError> {
        let shown = path.display().to_string();
        let json = match std::fs::read_to_string(path) {
            Ok(text) => jsonc::parse(&text).map_err(|source| HostJsonError::Json {
                path: shown.clone(),
                source,
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Value::Null,
            Err(source) => {
                return Err(HostJsonError::Read {
                    path: shown,
                    source,
                })
            }
        };
        Ok(Self { path: shown, json })
    }

    /// The value at `keys`, matched as the host matches them (case-insensitively).
    fn get(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter()
            .try_fold(&self.json, |value, key| jsonc::get(value.as_object()?, key))
    }

    /// `extensions.queues.maxDequeueCount`, or the queue extension's default.
    pub fn max_dequeue_count(&self) -> Result<u32, HostJsonError> {
        match self.get(&["extensions", "queues", "maxDequeueCount"]) {
            None => Ok(DEFAULT_MAX_DEQUEUE_COUNT),
            Some(value) => value
                .as_u64()
                .or_else(|| value.as_str()?.trim().parse().ok())
                .and_then(|count| u32::try_from(count).ok())
                .filter(|count| *count >= 1)
                .ok_or_else(|| HostJsonError::MaxDequeueCount {
                    path: self.path.clone(),
                    value: value.clone(),
                }),
        }
    }

    /// `extensions.durableTask`'s `defaultVersion`, `versionMatchStrategy` and
    /// `versionFailureStrategy`, each overridden by the app setting
    /// `AzureFunctionsJobHost__extensions__durableTask__<name>` when `setting` has it.
    pub fn versioning(
        &self,
        setting: impl Fn(&str) -> Option<String>,
    ) -> Result<Versioning, HostJsonError> {
        let text = |key: &'static str| -> Result<Option<(String, String)>, HostJsonError> {
            let name = format!("{OVERRIDE_PREFIX}__extensions__durableTask__{key}");
            if let Some(value) = setting(&name) {
                return Ok(Some((value, name)));
            }
            match self.get(&["extensions", "durableTask", key]) {
                None => Ok(None),
                Some(Value::String(value)) => Ok(Some((value.clone(), self.path.clone()))),
                Some(value) => Err(HostJsonError::NotText {
                    path: self.path.clone(),
                    key,
                    value: value.clone(),
                }),
            }
        };
        let defaults = Versioning::default();
        Ok(Versioning {
            default_version: text("defaultVersion")?
                .map(|(value, _)| value)
                .filter(|value| !value.is_empty()),
            match_strategy: strategy("versionMatchStrategy", text("versionMatchStrategy")?)?
                .unwrap_or(defaults.match_strategy),
            failure_strategy: strategy("versionFailureStrategy", text("versionFailureStrategy")?)?
                .unwrap_or(defaults.failure_strategy),
        })
    }
}

/// A strategy's name as `found` (with where it was found), parsed.
fn strategy<T: FromStr<Err = UnknownStrategy>>(
    key: &'static str,
    found: Option<(String, String)>,
) -> Result<Option<T>, HostJsonError> {
    found
        .filter(|(value, _)| !value.trim().is_empty())
        .map(|(value, source_name)| {
            value
                .trim()
                .parse()
                .map_err(|source| HostJsonError::Strategy {
                    key,
                    source_name,
                    source,
                })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_engine::{VersionFailure, VersionMatch};

    fn host_json(text: &str) -> Result<HostJson, HostJsonError> {
        let dir = std::env::temp_dir().join(format!("host-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "{:x}.json",
            text.len() * 31 + text.bytes().map(usize::from).sum::<usize>()
        ));
        std::fs::write(&path, text).unwrap();
        HostJson::read(&path)
    }

    fn count_of(text: &str) -> Result<u32, HostJsonError> {
        host_json(text)?.max_dequeue_count()
    }

    #[test]
    fn reads_the_count_with_the_hosts_json_rules_and_defaults_to_five() {
        let text = "{ // app\n \"version\": \"2.0\", \"Extensions\": { \"queues\": { \"maxdequeuecount\": 3, }, }, }";
        assert_eq!(count_of(text).unwrap(), 3);
        assert_eq!(count_of("{\"version\": \"2.0\"}").unwrap(), 5);
        let absent = HostJson::read(Path::new("/nonexistent/host.json")).unwrap();
        assert_eq!(absent.max_dequeue_count().unwrap(), 5);
        let error =
            count_of("{\"extensions\": {\"queues\": {\"maxDequeueCount\": 0}}}").unwrap_err();
        assert!(error.to_string().contains("at least 1"), "{error}");
        assert!(count_of("{ nope").is_err());
    }

    #[test]
    fn versioning_comes_from_the_durable_task_section_and_app_settings_override_it() {
        let json = host_json(
            r#"{"extensions": {"durableTask": {"defaultVersion": "1.0",
                "versionMatchStrategy": "Strict", "versionFailureStrategy": "fail"}}}"#,
        )
        .unwrap();
        let none = |_: &str| None;
        assert_eq!(
            json.versioning(none).unwrap(),
            Versioning {
                default_version: Some("1.0".to_string()),
                match_strategy: VersionMatch::Strict,
                failure_strategy: VersionFailure::Fail,
            }
        );
        let overridden = json
            .versioning(|name: &str| {
                (name == "AzureFunctionsJobHost__extensions__durableTask__defaultVersion")
                    .then(|| "2.0".to_string())
            })
            .unwrap();
        assert_eq!(overridden.default_version.as_deref(), Some("2.0"));
        assert_eq!(overridden.match_strategy, VersionMatch::Strict);

        let absent = HostJson::read(Path::new("/nonexistent/host.json")).unwrap();
        assert_eq!(absent.versioning(none).unwrap(), Versioning::default());
    }

    #[test]
    fn a_strategy_that_does_not_exist_stops_the_worker_with_its_source() {
        let json =
            host_json(r#"{"extensions": {"durableTask": {"versionMatchStrategy": "Newest"}}}"#)
                .unwrap();
        let error = json.versioning(|_| None).unwrap_err();
        let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(chain.contains("versionMatchStrategy"), "{chain}");
        assert!(
            chain.contains("'Newest' is not one of None, Strict, CurrentOrOlder"),
            "{chain}"
        );
        let number =
            host_json(r#"{"extensions": {"durableTask": {"defaultVersion": 2}}}"#).unwrap();
        assert!(number
            .versioning(|_| None)
            .unwrap_err()
            .to_string()
            .contains("must be text"));
    }
}
