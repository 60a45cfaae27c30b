//! A function folder's `function.json`: its bindings (queue, timer and HTTP triggers, http and
//! queue outputs, any other kept as written), the one-trigger rule and valid function names.

use std::fs;
use std::io;
use std::path::Path;

use serde_json::Value;

use super::jsonc::{boolean, get, invalid, object, parse_bool, parse_json};
use super::ConfigError;

pub(super) const FUNCTION_JSON: &str = "function.json";

/// One function: its folder name (the name the host POSTs invocations to, case preserved) and
/// its bindings in file order. [`AppConfig::load`](super::AppConfig::load) guarantees exactly one trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionConfig {
    pub name: String,
    pub bindings: Vec<Binding>,
}

impl FunctionConfig {
    /// The function's trigger binding.
    pub fn trigger(&self) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.is_trigger())
    }
}

/// A `function.json` binding. Values that may hold `%Setting%` (queue names, schedules) are kept
/// raw; resolve them with [`resolve`](super::resolve) once the settings are known.
#[derive(Clone, Debug, PartialEq)]
pub enum Binding {
    QueueTrigger {
        name: String,
        queue_name: String,
        /// `None` (or `""` in the file) means the host storage, `AzureWebJobsStorage`.
        connection: Option<String>,
    },
    TimerTrigger {
        name: String,
        schedule: String,
        run_on_startup: bool,
        /// `None`: the host decides (monitored when the recurrence is at least a minute).
        use_monitor: Option<bool>,
    },
    HttpTrigger {
        name: String,
        /// Lowercased; empty means every method.
        methods: Vec<String>,
        /// Route template relative to the route prefix; `None` means the function name.
        route: Option<String>,
        /// Lowercased (`anonymous`, `function`, `admin`); the host parses it case-insensitively.
        auth_level: Option<String>,
    },
    HttpOut {
        name: String,
    },
    QueueOut {
        name: String,
        queue_name: String,
        connection: Option<String>,
        /// `dataType`, lowercased; `"binary"` stops the host from base64-decoding string outputs.
        data_type: Option<String>,
    },
    /// Any other binding; `kind` is the `type` as written, `direction` lowercased.
    Other {
        kind: String,
        name: String,
        direction: String,
    },
}

impl Binding {
    /// The binding's `name` (the key of its value in `Data` / `Outputs`).
    pub fn name(&self) -> &str {
        match self {
            Binding::QueueTrigger { name, .. }
            | Binding::TimerTrigger { name, .. }
            | Binding::HttpTrigger { name, .. }
            | Binding::HttpOut { name }
            | Binding::QueueOut { name, .. }
            | Binding::Other { name, .. } => name,
        }
    }

    /// Whether this binding triggers the function; like the host, any `type` ending in `Trigger`.
    pub fn is_trigger(&self) -> bool {
        match self {
            Binding::QueueTrigger { .. }
            | Binding::TimerTrigger { .. }
            | Binding::HttpTrigger { .. } => true,
            Binding::HttpOut { .. } | Binding::QueueOut { .. } => false,
            Binding::Other { kind, .. } => kind.to_ascii_lowercase().ends_with("trigger"),
        }
    }
}

/// Reads `{folder}/function.json`; `None` when there is none or the function is disabled.
pub(super) fn load_function(folder: &Path) -> Result<Option<FunctionConfig>, ConfigError> {
    let path = folder.join(FUNCTION_JSON);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let Some(name) = folder.file_name().and_then(|n| n.to_str()) else {
        return Err(ConfigError::Function {
            path,
            message: "the folder name is not valid UTF-8".to_string(),
        });
    };
    if !valid_function_name(name) {
        return Err(ConfigError::Function {
            path,
            message: format!(
                "'{name}' is not a valid function name (a letter, then up to 127 letters, digits, '_' or '-')"
            ),
        });
    }
    let json = parse_json(&path, &text)?;
    let root = object(&path, "", &json)?;
    if let Some(v) = get(root, "disabled") {
        if boolean(&path, "disabled", v)? {
            return Ok(None);
        }
    }
    let Some(Value::Array(items)) = get(root, "bindings") else {
        return Err(invalid(&path, "bindings", "must be an array of bindings"));
    };
    let mut bindings = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        bindings.push(parse_binding(&path, index, item)?);
    }
    for (index, b) in bindings.iter().enumerate() {
        if let Some(first) = bindings[..index]
            .iter()
            .position(|o| o.name().eq_ignore_ascii_case(b.name()))
        {
            return Err(ConfigError::Binding {
                path,
                index,
                name: b.name().to_string(),
                message: format!("binding {first} has the same name (names are case-insensitive)"),
            });
        }
    }
    match bindings.iter().filter(|b| b.is_trigger()).count() {
        1 => {}
        0 => {
            return Err(ConfigError::Function {
                path,
                message: "no trigger binding; a function must have exactly one".to_string(),
            })
        }
        n => {
            return Err(ConfigError::Function {
                path,
                message: format!("{n} trigger bindings; a function must have exactly one"),
            })
        }
    }
    Ok(Some(FunctionConfig {
        name: name.to_string(),
        bindings,
    }))
}

/// The host's rule: `^[a-z][a-z0-9_\-]{0,127}$`, ignoring case.
pub(super) fn valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_binding(path: &Path, index: usize, value: &Value) -> Result<Binding, ConfigError> {
    let err = |name: &str, message: String| ConfigError::Binding {
        path: path.to_path_buf(),
        index,
        name: name.to_string(),
        message,
    };
    let Value::Object(b) = value else {
        return Err(err("", "must be an object".to_string()));
    };
    let text = |key: &str| -> Result<Option<String>, ConfigError> {
        match get(b, key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(err(
                b.get("name").and_then(Value::as_str).unwrap_or(""),
                format!("'{key}' must be a string"),
            )),
        }
    };
    let name = text("name")?.unwrap_or_default();
    if name.is_empty() {
        return Err(err("", "'name' is required".to_string()));
    }
    let required = |key: &str| -> Result<String, ConfigError> {
        match text(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(err(&name, format!("'{key}' is required"))),
        }
    };
    let flag = |key: &str| -> Result<Option<bool>, ConfigError> {
        match get(b, key) {
            None => Ok(None),
            Some(v) => parse_bool(v)
                .map(Some)
                .ok_or_else(|| err(&name, format!("'{key}' must be true or false"))),
        }
    };
    let kind = required("type")?;
    let direction = required("direction")?.to_ascii_lowercase();
    if !matches!(direction.as_str(), "in" | "out" | "inout") {
        return Err(err(
            &name,
            format!("'direction' is '{direction}'; it must be \"in\", \"out\" or \"inout\""),
        ));
    }
    let expect = |wanted: &str| -> Result<(), ConfigError> {
        if direction == wanted {
            Ok(())
        } else {
            Err(err(
                &name,
                format!("a '{kind}' binding must have direction \"{wanted}\", not \"{direction}\""),
            ))
        }
    };
    let connection = || -> Result<Option<String>, ConfigError> {
        Ok(text("connection")?.filter(|c| !c.is_empty()))
    };
    let binding = match kind.to_ascii_lowercase().as_str() {
        "queuetrigger" => {
            expect("in")?;
            Binding::QueueTrigger {
                queue_name: required("queueName")?,
                connection: connection()?,
                name,
            }
        }
        "timertrigger" => {
            expect("in")?;
            Binding::TimerTrigger {
                schedule: required("schedule")?,
                run_on_startup: flag("runOnStartup")?.unwrap_or(false),
                use_monitor: flag("useMonitor")?,
                name,
            }
        }
        "httptrigger" => {
            expect("in")?;
            let methods = match get(b, "methods") {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|m| m.as_str().map(str::to_ascii_lowercase))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| err(&name, "'methods' must be an array of strings".into()))?,
                Some(_) => {
                    return Err(err(&name, "'methods' must be an array of strings".into()));
                }
            };
            Binding::HttpTrigger {
                methods,
                route: text("route")?.filter(|r| !r.is_empty()),
                auth_level: text("authLevel")?.map(|a| a.to_ascii_lowercase()),
                name,
            }
        }
        "http" => {
            expect("out")?;
            Binding::HttpOut { name }
        }
        "queue" => {
            // Storage queues have no input binding; only the trigger reads them.
            expect("out")?;
            Binding::QueueOut {
                queue_name: required("queueName")?,
                connection: connection()?,
                data_type: text("dataType")?.map(|d| d.to_ascii_lowercase()),
                name,
            }
        }
        _ => Binding::Other {
            kind,
            name,
            direction,
        },
    };
    Ok(binding)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{error_text, TempDir};
    use super::*;

    fn function(json: &str) -> Result<Option<FunctionConfig>, ConfigError> {
        let dir = TempDir::new("fn");
        dir.write("MyFunction/function.json", json);
        load_function(&dir.path().join("MyFunction"))
    }

    fn bindings(json: &str) -> Vec<Binding> {
        function(json).unwrap().unwrap().bindings
    }

    #[test]
    fn an_http_trigger_with_http_output() {
        assert_eq!(
            bindings(
                r#"{
                  "bindings": [
                    { "type": "httpTrigger", "direction": "in", "name": "req",
                      "authLevel": "function", "methods": ["get", "post"], "route": "orchestrators/{functionName}" },
                    { "type": "http", "direction": "out", "name": "res" }
                  ]
                }"#
            ),
            vec![
                Binding::HttpTrigger {
                    name: "req".into(),
                    methods: vec!["get".into(), "post".into()],
                    route: Some("orchestrators/{functionName}".into()),
                    auth_level: Some("function".into()),
                },
                Binding::HttpOut { name: "res".into() },
            ]
        );
        // Case-insensitive type, direction and keys; methods lowercased; optional parts absent.
        assert_eq!(
            bindings(
                r#"{ "bindings": [
                    { "Type": "HTTPTRIGGER", "Direction": "In", "Name": "req", "Methods": ["GET", "Post"], "authLevel": "Anonymous" },
                    { "type": "HTTP", "direction": "OUT", "name": "$return" } ] }"#
            ),
            vec![
                Binding::HttpTrigger {
                    name: "req".into(),
                    methods: vec!["get".into(), "post".into()],
                    route: None,
                    auth_level: Some("anonymous".into()),
                },
                Binding::HttpOut {
                    name: "$return".into()
                },
            ]
        );
        assert_eq!(
            bindings(
                r#"{ "bindings": [ { "type": "httpTrigger", "direction": "in", "name": "req", "route": "" } ] }"#
            ),
            vec![Binding::HttpTrigger {
                name: "req".into(),
                methods: vec![],
                route: None,
                auth_level: None,
            }]
        );
    }

    #[test]
    fn a_queue_trigger_with_queue_output() {
        assert_eq!(
            bindings(
                r#"{ "bindings": [
                  { "type": "queueTrigger", "direction": "in", "name": "myQueueItem",
                    "queueName": "jobs", "connection": "AzureWebJobsStorage" },
                  { "type": "queue", "direction": "out", "name": "outq",
                    "queueName": "%ResultsQueue%", "connection": "" }
                ] }"#
            ),
            vec![
                Binding::QueueTrigger {
                    name: "myQueueItem".into(),
                    queue_name: "jobs".into(),
                    connection: Some("AzureWebJobsStorage".into()),
                },
                Binding::QueueOut {
                    name: "outq".into(),
                    queue_name: "%ResultsQueue%".into(),
                    connection: None,
                    data_type: None,
                },
            ]
        );
    }

    #[test]
    fn a_binary_queue_output() {
        assert_eq!(
            bindings(
                r#"{ "bindings": [
                  { "type": "timerTrigger", "direction": "in", "name": "t", "schedule": "0 * * * * *" },
                  { "type": "queue", "direction": "out", "name": "$return", "queueName": "q",
                    "dataType": "Binary" }
                ] }"#
            )[1],
            Binding::QueueOut {
                name: "$return".into(),
                queue_name: "q".into(),
                connection: None,
                data_type: Some("binary".into()),
            }
        );
    }

    #[test]
    fn a_timer_trigger() {
        assert_eq!(
            bindings(
                r#"{ "bindings": [ { "type": "timerTrigger", "direction": "in", "name": "myTimer",
                    "schedule": "*/15 * * * * *", "runOnStartup": false, "useMonitor": true } ] }"#
            ),
            vec![Binding::TimerTrigger {
                name: "myTimer".into(),
                schedule: "*/15 * * * * *".into(),
                run_on_startup: false,
                use_monitor: Some(true),
            }]
        );
        assert_eq!(
            bindings(
                r#"{ "bindings": [ { "type": "timerTrigger", "direction": "in", "name": "t",
                    "schedule": "%SyncSchedule%", "runOnStartup": "True" } ] }"#
            ),
            vec![Binding::TimerTrigger {
                name: "t".into(),
                schedule: "%SyncSchedule%".into(),
                run_on_startup: true,
                use_monitor: None,
            }]
        );
    }

    #[test]
    fn other_bindings_are_kept_and_a_trigger_type_counts_as_the_trigger() {
        let f = function(
            r#"{ "scriptFile": "ignored", "bindings": [
              { "type": "blobTrigger", "direction": "in", "name": "blob", "path": "samples/{name}", "connection": "AzureWebJobsStorage" },
              { "type": "blob", "direction": "OUT", "name": "output", "path": "c/{rand-guid}.json" } ] }"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            f.bindings,
            vec![
                Binding::Other {
                    kind: "blobTrigger".into(),
                    name: "blob".into(),
                    direction: "in".into(),
                },
                Binding::Other {
                    kind: "blob".into(),
                    name: "output".into(),
                    direction: "out".into(),
                },
            ]
        );
        assert_eq!(f.trigger(), Some(&f.bindings[0]));
        assert_eq!(f.name, "MyFunction");
    }

    #[test]
    fn invalid_bindings_are_errors_naming_the_file_and_binding() {
        let cases = [
            (
                r#"{ "bindings": [ { "type": "queueTrigger", "direction": "in", "name": "m" } ] }"#,
                "'queueName' is required",
            ),
            (
                r#"{ "bindings": [ { "type": "timerTrigger", "direction": "in", "name": "t" } ] }"#,
                "'schedule' is required",
            ),
            (
                r#"{ "bindings": [ { "type": "queueTrigger", "direction": "out", "name": "m", "queueName": "q" } ] }"#,
                "direction \"in\"",
            ),
            (
                r#"{ "bindings": [ { "type": "queue", "direction": "in", "name": "m", "queueName": "q" } ] }"#,
                "direction \"out\"",
            ),
            (
                r#"{ "bindings": [ { "type": "httpTrigger", "direction": "sideways", "name": "r" } ] }"#,
                "'direction' is 'sideways'",
            ),
            (
                r#"{ "bindings": [ { "type": "httpTrigger", "name": "r" } ] }"#,
                "'direction' is required",
            ),
            (
                r#"{ "bindings": [ { "direction": "in", "name": "r" } ] }"#,
                "'type' is required",
            ),
            (
                r#"{ "bindings": [ { "type": "httpTrigger", "direction": "in" } ] }"#,
                "'name' is required",
            ),
            (
                r#"{ "bindings": [ { "type": "httpTrigger", "direction": "in", "name": "r", "methods": "get" } ] }"#,
                "'methods'",
            ),
            (
                r#"{ "bindings": [ { "type": "timerTrigger", "direction": "in", "name": "t", "schedule": "* * * * * *", "runOnStartup": "yes" } ] }"#,
                "'runOnStartup'",
            ),
            (
                r#"{ "bindings": [ { "type": "queueTrigger", "direction": "in", "name": "m", "queueName": 7 } ] }"#,
                "'queueName' must be a string",
            ),
            (r#"{ "bindings": [ "queueTrigger" ] }"#, "must be an object"),
        ];
        for (json, expected) in cases {
            let e = error_text(function(json).unwrap_err());
            assert!(
                e.contains("MyFunction") && e.contains("function.json"),
                "{e}"
            );
            assert!(e.contains("binding 0"), "{json}: {e}");
            assert!(e.contains(expected), "{json}: {e}");
        }
    }

    #[test]
    fn a_function_needs_exactly_one_trigger_and_distinct_binding_names() {
        let e = error_text(
            function(
                r#"{ "bindings": [ { "type": "http", "direction": "out", "name": "res" } ] }"#,
            )
            .unwrap_err(),
        );
        assert!(
            e.contains("function.json") && e.contains("no trigger"),
            "{e}"
        );
        let e = error_text(function(r#"{ "bindings": [] }"#).unwrap_err());
        assert!(e.contains("no trigger"), "{e}");
        let e = error_text(
            function(
                r#"{ "bindings": [
                  { "type": "httpTrigger", "direction": "in", "name": "req" },
                  { "type": "timerTrigger", "direction": "in", "name": "t", "schedule": "0 * * * * *" } ] }"#,
            )
            .unwrap_err(),
        );
        assert!(e.contains("2 trigger bindings"), "{e}");
        let e = error_text(
            function(
                r#"{ "bindings": [
                  { "type": "httpTrigger", "direction": "in", "name": "req" },
                  { "type": "http", "direction": "out", "name": "REQ" } ] }"#,
            )
            .unwrap_err(),
        );
        assert!(
            e.contains("binding 1 ('REQ')") && e.contains("same name"),
            "{e}"
        );
        let e = error_text(function(r#"{ "disabled": false }"#).unwrap_err());
        assert!(e.contains("'bindings'"), "{e}");
    }
}
