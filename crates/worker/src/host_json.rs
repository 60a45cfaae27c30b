//! What the worker reads of the app's `host.json` (in the app root: `FUNCTIONS_APP_ROOT_PATH`,
//! else its working directory): the queue extension's `maxDequeueCount`, so its last delivery of a
//! message is known to be the last.

use std::path::Path;

use durable_protocol::jsonc;
use serde_json::Value;

pub const HOST_JSON: &str = "host.json";
/// The queue extension's default.
const DEFAULT_MAX_DEQUEUE_COUNT: u32 = 5;

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
}

/// `extensions.queues.maxDequeueCount` of the `host.json` at `path`; the default when the file or
/// the key is absent (a worker run outside an app directory, as tests do).
pub fn max_dequeue_count(path: &Path) -> Result<u32, HostJsonError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(DEFAULT_MAX_DEQUEUE_COUNT)
        }
        Err(source) => {
            return Err(HostJsonError::Read {
                path: shown,
                source,
            })
        }
    };
    let json = jsonc::parse(&text).map_err(|source| HostJsonError::Json {
        path: shown.clone(),
        source,
    })?;
    let value = ["extensions", "queues", "maxDequeueCount"]
        .iter()
        .try_fold(&json, |value, key| jsonc::get(value.as_object()?, key));
    match value {
        None => Ok(DEFAULT_MAX_DEQUEUE_COUNT),
        Some(value) => value
            .as_u64()
            .or_else(|| value.as_str()?.trim().parse().ok())
            .and_then(|count| u32::try_from(count).ok())
            .filter(|count| *count >= 1)
            .ok_or_else(|| HostJsonError::MaxDequeueCount {
                path: shown,
                value: value.clone(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_of(text: &str) -> Result<u32, HostJsonError> {
        let dir = std::env::temp_dir().join(format!("host-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.json", text.len()));
        std::fs::write(&path, text).unwrap();
        max_dequeue_count(&path)
    }

    #[test]
    fn reads_the_count_with_the_hosts_json_rules_and_defaults_to_five() {
        let text = "{ // app\n \"version\": \"2.0\", \"Extensions\": { \"queues\": { \"maxdequeuecount\": 3, }, }, }";
        assert_eq!(count_of(text).unwrap(), 3);
        assert_eq!(count_of("{\"version\": \"2.0\"}").unwrap(), 5);
        assert_eq!(
            max_dequeue_count(Path::new("/nonexistent/host.json")).unwrap(),
            5
        );
        let error =
            count_of("{\"extensions\": {\"queues\": {\"maxDequeueCount\": 0}}}").unwrap_err();
        assert!(error.to_string().contains("at least 1"), "{error}");
        assert!(count_of("{ nope").is_err());
    }
}
