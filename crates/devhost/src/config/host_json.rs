//! `host.json`: the custom handler's command line, forwarding, the route prefix, the function
//! timeout and the queue extension's options, with the host's defaults and bounds.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use super::jsonc::{boolean, get, invalid, object, parse_json, read, string, unsigned};
use super::timespan::duration;
use super::ConfigError;

pub(super) const HOST_JSON: &str = "host.json";

/// The only `host.json` schema version the 4.x host accepts (it refuses to start otherwise).
const HOST_JSON_VERSION: &str = "2.0";
/// `QueuesOptions.BatchSize` upper bound (the Storage service returns at most 32 per read).
pub const MAX_BATCH_SIZE: u32 = 32;
/// `QueuesOptions.MaxPollingInterval` lower bound.
pub const MIN_POLLING_INTERVAL: Duration = Duration::from_millis(100);
/// The `maxPollingInterval` used when `host.json` does not set one. The queue extension defaults to
/// 1 minute but uses 2 seconds when the host runs in development (`func start`), which is what
/// this dev host stands in for; a minute-long idle back-off would also make local runs look hung.
pub const DEFAULT_MAX_POLLING_INTERVAL: Duration = Duration::from_secs(2);

/// The parts of `host.json` the dev host acts on. Unknown keys are ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct HostConfig {
    /// `customHandler.description.defaultExecutablePath`, raw: the host expands `%VAR%` in it and
    /// makes it absolute when the file exists under the working directory, else looks it up on
    /// `PATH`; that is the launcher's job.
    pub executable: String,
    /// `customHandler.description.arguments`, then `defaultWorkerPath` if set (the host appends it
    /// to the command line after the arguments). Raw, `%VAR%` not expanded.
    pub arguments: Vec<String>,
    /// `customHandler.description.workingDirectory`, relative to the app root; `""` means the root.
    pub working_directory: Option<String>,
    /// `customHandler.enableForwardingHttpRequest`.
    pub forwarding: bool,
    /// `extensions.http.routePrefix`; `""` means routes hang off `/`.
    pub route_prefix: String,
    /// `functionTimeout`; `None` when absent or `-1` (unbounded).
    pub function_timeout: Option<Duration>,
    pub queues: QueueOptions,
}

/// `extensions.queues`, with the queue extension's defaults and bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueOptions {
    /// Upper bound of the empty-poll back-off; default [`DEFAULT_MAX_POLLING_INTERVAL`], at least
    /// [`MIN_POLLING_INTERVAL`].
    pub max_polling_interval: Duration,
    /// How long a message whose invocation failed stays invisible before its next attempt.
    pub visibility_timeout: Duration,
    /// Messages fetched per read and run in parallel; 1 to [`MAX_BATCH_SIZE`], default 16.
    pub batch_size: u32,
    /// Fetch again when the in-flight count drops to this. The host's default is
    /// `vCPUs * batchSize / 2` on App Service/Premium and `batchSize / 2` on Consumption; the dev
    /// host uses the single-core figure `batch_size / 2` so local concurrency does not depend on
    /// the machine.
    pub new_batch_threshold: u32,
    /// Attempts before the message moves to `<queue>-poison`; default 5, at least 1.
    pub max_dequeue_count: u32,
    /// `messageEncoding`: `"base64"` (default) -> true, `"none"` -> false.
    pub base64: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        let batch_size = 16;
        QueueOptions {
            max_polling_interval: DEFAULT_MAX_POLLING_INTERVAL,
            visibility_timeout: Duration::ZERO,
            batch_size,
            new_batch_threshold: batch_size / 2,
            max_dequeue_count: 5,
            base64: true,
        }
    }
}

pub(super) fn load_host(path: &Path) -> Result<HostConfig, ConfigError> {
    let text = read(path)?;
    let json = parse_json(path, &text)?;
    let root = object(path, "", &json)?;

    // The host refuses to start without it, so a file the dev host accepts also works in Azure.
    match get(root, "version") {
        Some(Value::String(v)) if v == HOST_JSON_VERSION => {}
        Some(_) => return Err(invalid(path, "version", "must be \"2.0\"")),
        None => {
            return Err(invalid(
                path,
                "version",
                "is missing; the host requires \"version\": \"2.0\"",
            ))
        }
    }

    // `httpWorker` is the legacy name of the section; `customHandler` wins when both are present.
    let (section_key, section) = match (get(root, "customHandler"), get(root, "httpWorker")) {
        (None, Some(legacy)) => ("httpWorker", Some(legacy)),
        (current, _) => ("customHandler", current),
    };
    let handler = match section {
        Some(v) => Some(object(path, section_key, v)?),
        None => None,
    };
    let description_key = format!("{section_key}.description");
    let description = match handler.and_then(|h| get(h, "description")) {
        Some(v) => Some(object(path, &description_key, v)?),
        None => None,
    };
    let exe_key = format!("{description_key}.defaultExecutablePath");
    let executable = match description.and_then(|d| get(d, "defaultExecutablePath")) {
        Some(v) => string(path, &exe_key, v)?,
        None => String::new(),
    };
    if executable.trim().is_empty() {
        return Err(invalid(
            path,
            &exe_key,
            "is required (the program the host starts)",
        ));
    }
    let mut arguments = Vec::new();
    if let Some(v) = description.and_then(|d| get(d, "arguments")) {
        let key = format!("{description_key}.arguments");
        let Value::Array(items) = v else {
            return Err(invalid(path, &key, "must be an array of strings"));
        };
        for (i, item) in items.iter().enumerate() {
            arguments.push(string(path, &format!("{key}[{i}]"), item)?);
        }
    }
    if let Some(v) = description.and_then(|d| get(d, "defaultWorkerPath")) {
        let worker_path = string(path, &format!("{description_key}.defaultWorkerPath"), v)?;
        if !worker_path.is_empty() {
            arguments.push(worker_path);
        }
    }
    let working_directory = match description.and_then(|d| get(d, "workingDirectory")) {
        Some(v) => Some(string(
            path,
            &format!("{description_key}.workingDirectory"),
            v,
        )?)
        .filter(|s| !s.is_empty()),
        None => None,
    };
    let forwarding = match handler.and_then(|h| get(h, "enableForwardingHttpRequest")) {
        Some(v) => boolean(
            path,
            &format!("{section_key}.enableForwardingHttpRequest"),
            v,
        )?,
        None => false,
    };

    let function_timeout = match get(root, "functionTimeout") {
        None => None,
        Some(Value::Number(n)) if n.as_i64() == Some(-1) => None,
        Some(Value::String(s)) if s.trim() == "-1" => None,
        Some(v) => {
            let d = duration(path, "functionTimeout", v)?;
            if d.is_zero() {
                return Err(invalid(
                    path,
                    "functionTimeout",
                    "must be positive, or -1 for no limit",
                ));
            }
            Some(d)
        }
    };

    let extensions = match get(root, "extensions") {
        Some(v) => Some(object(path, "extensions", v)?),
        None => None,
    };
    let http = match extensions.and_then(|e| get(e, "http")) {
        Some(v) => Some(object(path, "extensions.http", v)?),
        None => None,
    };
    let route_prefix = match http.and_then(|h| get(h, "routePrefix")) {
        Some(v) => string(path, "extensions.http.routePrefix", v)?,
        None => "api".to_string(),
    };
    let queues = match extensions.and_then(|e| get(e, "queues")) {
        Some(v) => queue_options(path, object(path, "extensions.queues", v)?)?,
        None => QueueOptions::default(),
    };

    Ok(HostConfig {
        executable,
        arguments,
        working_directory,
        forwarding,
        route_prefix,
        function_timeout,
        queues,
    })
}

fn queue_options(path: &Path, q: &Map<String, Value>) -> Result<QueueOptions, ConfigError> {
    let defaults = QueueOptions::default();
    let key = |k: &str| format!("extensions.queues.{k}");

    let max_polling_interval = match get(q, "maxPollingInterval") {
        Some(v) => duration(path, &key("maxPollingInterval"), v)?,
        None => defaults.max_polling_interval,
    };
    if max_polling_interval < MIN_POLLING_INTERVAL {
        return Err(invalid(
            path,
            &key("maxPollingInterval"),
            "must be at least 00:00:00.1 (100 ms)",
        ));
    }
    let visibility_timeout = match get(q, "visibilityTimeout") {
        Some(v) => duration(path, &key("visibilityTimeout"), v)?,
        None => defaults.visibility_timeout,
    };
    let batch_size = match get(q, "batchSize") {
        Some(v) => unsigned(path, &key("batchSize"), v)?,
        None => defaults.batch_size,
    };
    if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
        return Err(invalid(
            path,
            &key("batchSize"),
            &format!("is {batch_size}; it must be between 1 and {MAX_BATCH_SIZE}"),
        ));
    }
    let new_batch_threshold = match get(q, "newBatchThreshold") {
        Some(v) => unsigned(path, &key("newBatchThreshold"), v)?,
        // Derived from the configured batch size, as the extension does when it is unset.
        None => batch_size / 2,
    };
    let max_dequeue_count = match get(q, "maxDequeueCount") {
        Some(v) => unsigned(path, &key("maxDequeueCount"), v)?,
        None => defaults.max_dequeue_count,
    };
    if max_dequeue_count == 0 {
        return Err(invalid(path, &key("maxDequeueCount"), "must be at least 1"));
    }
    let base64 = match get(q, "messageEncoding") {
        Some(v) => {
            let encoding = string(path, &key("messageEncoding"), v)?;
            if encoding.eq_ignore_ascii_case("base64") {
                true
            } else if encoding.eq_ignore_ascii_case("none") {
                false
            } else {
                return Err(invalid(
                    path,
                    &key("messageEncoding"),
                    &format!("is '{encoding}'; it must be \"base64\" or \"none\""),
                ));
            }
        }
        None => defaults.base64,
    };
    Ok(QueueOptions {
        max_polling_interval,
        visibility_timeout,
        batch_size,
        new_batch_threshold,
        max_dequeue_count,
        base64,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{error_text, secs, TempDir, MINIMAL_HOST};
    use super::super::AppConfig;
    use super::*;

    fn host(text: &str) -> Result<HostConfig, ConfigError> {
        let dir = TempDir::new("host");
        let path = dir.write(HOST_JSON, text);
        load_host(&path)
    }

    #[test]
    fn the_repository_host_json_parses_with_the_expected_values() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(HOST_JSON);
        let host = load_host(&path).unwrap();
        assert_eq!(
            host,
            HostConfig {
                executable: "handler".into(),
                arguments: vec![],
                working_directory: None,
                forwarding: true,
                route_prefix: "api".into(),
                function_timeout: Some(secs(30 * 60)),
                queues: QueueOptions {
                    max_polling_interval: secs(2),
                    visibility_timeout: secs(30),
                    batch_size: 32,
                    new_batch_threshold: 32,
                    max_dequeue_count: 5,
                    base64: true,
                },
            }
        );
    }

    #[test]
    fn a_full_host_json_with_every_key() {
        let host = host(
            r#"
            // Json.NET, which the host uses, accepts comments and trailing commas.
            {
              "Version": "2.0",
              "customHandler": {
                "description": {
                  "defaultExecutablePath": "%HOME%/bin/handler", /* kept raw */
                  "workingDirectory": "bin",
                  "arguments": ["--port-from-env", "--log=//not-a-comment"],
                  "defaultWorkerPath": "server.js",
                },
                "enableForwardingHttpRequest": true,
                "initializationTimeout": "00:00:45"
              },
              "extensionBundle": { "id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)" },
              "functionTimeout": "1.02:03:04.5",
              "extensions": {
                "http": { "routePrefix": "" },
                "queues": {
                  "MaxPollingInterval": "00:00:00.25",
                  "visibilityTimeout": "00:01:00",
                  "batchSize": "32",
                  "newBatchThreshold": 0,
                  "maxDequeueCount": 10,
                  "messageEncoding": "None",
                },
              },
              "logging": { "logLevel": { "default": "Information" } },
              "somethingNew": [1, 2, 3],
            }
            "#,
        )
        .unwrap();
        assert_eq!(
            host,
            HostConfig {
                executable: "%HOME%/bin/handler".into(),
                arguments: vec![
                    "--port-from-env".into(),
                    "--log=//not-a-comment".into(),
                    "server.js".into()
                ],
                working_directory: Some("bin".into()),
                forwarding: true,
                route_prefix: "".into(),
                function_timeout: Some(Duration::new(86_400 + 2 * 3_600 + 3 * 60 + 4, 500_000_000)),
                queues: QueueOptions {
                    max_polling_interval: Duration::from_millis(250),
                    visibility_timeout: secs(60),
                    batch_size: 32,
                    new_batch_threshold: 0,
                    max_dequeue_count: 10,
                    base64: false,
                },
            }
        );
    }

    #[test]
    fn defaults_when_keys_are_absent() {
        let host = host(MINIMAL_HOST).unwrap();
        assert_eq!(host.executable, "handler");
        assert_eq!(host.arguments, Vec::<String>::new());
        assert_eq!(host.working_directory, None);
        assert!(!host.forwarding);
        assert_eq!(host.route_prefix, "api");
        assert_eq!(host.function_timeout, None);
        assert_eq!(
            host.queues,
            QueueOptions {
                max_polling_interval: secs(2),
                visibility_timeout: Duration::ZERO,
                batch_size: 16,
                new_batch_threshold: 8,
                max_dequeue_count: 5,
                base64: true,
            }
        );
        assert_eq!(host.queues, QueueOptions::default());

        // An empty queues section and an empty working directory change nothing either.
        let host = self::host(
            r#"{ "version": "2.0", "functionTimeout": "-1",
                 "customHandler": { "description": { "defaultExecutablePath": "h", "workingDirectory": "" } },
                 "extensions": { "queues": {}, "http": {} } }"#,
        )
        .unwrap();
        assert_eq!(host.working_directory, None);
        assert_eq!(host.function_timeout, None);
        assert_eq!(host.route_prefix, "api");
        assert_eq!(host.queues, QueueOptions::default());
    }

    #[test]
    fn new_batch_threshold_defaults_to_half_the_configured_batch_size() {
        let with_batch = |n: u32| {
            host(&format!(
                r#"{{ "version": "2.0", "customHandler": {{ "description": {{ "defaultExecutablePath": "h" }} }},
                     "extensions": {{ "queues": {{ "batchSize": {n} }} }} }}"#
            ))
            .unwrap()
            .queues
        };
        assert_eq!(with_batch(32).new_batch_threshold, 16);
        assert_eq!(with_batch(5).new_batch_threshold, 2);
        assert_eq!(with_batch(1).new_batch_threshold, 0);
    }

    #[test]
    fn the_legacy_http_worker_section_is_read_when_custom_handler_is_absent() {
        let host = host(
            r#"{ "version": "2.0", "httpWorker": { "description": { "defaultExecutablePath": "old" } } }"#,
        )
        .unwrap();
        assert_eq!(host.executable, "old");
        let host = self::host(
            r#"{ "version": "2.0",
                 "httpWorker": { "description": { "defaultExecutablePath": "old" } },
                 "customHandler": { "description": { "defaultExecutablePath": "new" } } }"#,
        )
        .unwrap();
        assert_eq!(host.executable, "new");
    }

    fn queue_error(queues: &str) -> String {
        error_text(
            host(&format!(
                r#"{{ "version": "2.0", "customHandler": {{ "description": {{ "defaultExecutablePath": "h" }} }},
                     "extensions": {{ "queues": {queues} }} }}"#
            ))
            .unwrap_err(),
        )
    }

    #[test]
    fn a_batch_size_outside_1_to_32_is_an_error() {
        let e = queue_error(r#"{ "batchSize": 33 }"#);
        assert!(e.contains("host.json"), "{e}");
        assert!(e.contains("extensions.queues.batchSize"), "{e}");
        assert!(e.contains("33"), "{e}");
        assert!(queue_error(r#"{ "batchSize": 0 }"#).contains("batchSize"));
        assert!(queue_error(r#"{ "batchSize": -1 }"#).contains("batchSize"));
        assert!(queue_error(r#"{ "batchSize": 1.5 }"#).contains("batchSize"));
        assert!(queue_error(r#"{ "batchSize": "lots" }"#).contains("batchSize"));
    }

    #[test]
    fn other_out_of_range_queue_settings_are_errors() {
        let e = queue_error(r#"{ "maxPollingInterval": "00:00:00.05" }"#);
        assert!(e.contains("extensions.queues.maxPollingInterval"), "{e}");
        let e = queue_error(r#"{ "maxDequeueCount": 0 }"#);
        assert!(e.contains("extensions.queues.maxDequeueCount"), "{e}");
        let e = queue_error(r#"{ "messageEncoding": "utf8" }"#);
        assert!(e.contains("extensions.queues.messageEncoding"), "{e}");
        assert!(e.contains("utf8"), "{e}");
        let e = queue_error(r#"{ "newBatchThreshold": -2 }"#);
        assert!(e.contains("extensions.queues.newBatchThreshold"), "{e}");
    }

    #[test]
    fn a_bad_duration_is_an_error_naming_the_key() {
        for bad in [
            r#""30""#,
            r#"30"#,
            r#""00:60:00""#,
            r#""24:00:00""#,
            r#""00:00:60""#,
            r#""half an hour""#,
            r#""-00:00:01""#,
            r#""00:00:01.""#,
            r#""00:00:01.12345678""#,
            r#""1:2:3:4""#,
        ] {
            let e = queue_error(&format!(r#"{{ "visibilityTimeout": {bad} }}"#));
            assert!(e.contains("host.json"), "{bad}: {e}");
            assert!(
                e.contains("extensions.queues.visibilityTimeout"),
                "{bad}: {e}"
            );
        }
        let e = error_text(
            host(
                r#"{ "version": "2.0", "functionTimeout": "forever",
                      "customHandler": { "description": { "defaultExecutablePath": "h" } } }"#,
            )
            .unwrap_err(),
        );
        assert!(e.contains("'functionTimeout'"), "{e}");
        let e = error_text(
            host(
                r#"{ "version": "2.0", "functionTimeout": "00:00:00",
                      "customHandler": { "description": { "defaultExecutablePath": "h" } } }"#,
            )
            .unwrap_err(),
        );
        assert!(e.contains("'functionTimeout'"), "{e}");
    }

    #[test]
    fn a_missing_or_empty_default_executable_path_is_an_error() {
        for text in [
            r#"{ "version": "2.0" }"#,
            r#"{ "version": "2.0", "customHandler": {} }"#,
            r#"{ "version": "2.0", "customHandler": { "description": {} } }"#,
            r#"{ "version": "2.0", "customHandler": { "description": { "defaultExecutablePath": "" } } }"#,
            r#"{ "version": "2.0", "customHandler": { "description": { "defaultExecutablePath": "  " } } }"#,
        ] {
            let e = error_text(host(text).unwrap_err());
            assert!(e.contains("host.json"), "{e}");
            assert!(
                e.contains("description.defaultExecutablePath"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn the_version_must_be_2_0() {
        let e = error_text(
            host(r#"{ "customHandler": { "description": { "defaultExecutablePath": "h" } } }"#)
                .unwrap_err(),
        );
        assert!(e.contains("'version'"), "{e}");
        let e = error_text(
            host(r#"{ "version": "3.0", "customHandler": { "description": { "defaultExecutablePath": "h" } } }"#)
                .unwrap_err(),
        );
        assert!(e.contains("'version'"), "{e}");
    }

    #[test]
    fn malformed_or_missing_host_json_is_an_error_naming_the_file() {
        let e = error_text(host(r#"{ "version": "2.0", "#).unwrap_err());
        assert!(
            e.contains("host.json") && e.contains("not valid JSON"),
            "{e}"
        );
        let e = error_text(host(r#"[1]"#).unwrap_err());
        assert!(e.contains("host.json"), "{e}");
        let dir = TempDir::new("nohost");
        let e = error_text(AppConfig::load(dir.path()).unwrap_err());
        assert!(e.contains("host.json"), "{e}");
    }
}
