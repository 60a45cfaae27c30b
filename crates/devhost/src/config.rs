//! The app's configuration as the Functions host reads it: `host.json` (custom handler, timeouts,
//! http and queue extension settings), each function's `function.json`, `local.settings.json`
//! values overlaid by the environment, and `%Setting%` resolution.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

const HOST_JSON: &str = "host.json";
const FUNCTION_JSON: &str = "function.json";
const LOCAL_SETTINGS_JSON: &str = "local.settings.json";
const FUNCTIONS_DIR: &str = "functions";

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

/// Everything the dev host needs from the app folder.
#[derive(Clone, Debug, PartialEq)]
pub struct AppConfig {
    pub root: PathBuf,
    pub host: HostConfig,
    /// Enabled functions, sorted by name.
    pub functions: Vec<FunctionConfig>,
}

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

/// One function: its folder name (the name the host POSTs invocations to, case preserved) and
/// its bindings in file order. [`AppConfig::load`] guarantees exactly one trigger.
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
/// raw; resolve them with [`resolve`] once the settings are known.
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

/// Why the app's configuration could not be read. Every message names the file and the key or
/// binding at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read '{}': {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("'{}' is not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("'{}': '{key}' {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("'{}': binding {index} ('{name}'): {message}", path.display())]
    Binding {
        path: PathBuf,
        /// Position in the `bindings` array, from 0.
        index: usize,
        name: String,
        message: String,
    },
    #[error("'{}': {message}", path.display())]
    Function { path: PathBuf, message: String },
    #[error("setting '{name}' (referenced as '%{name}%' in '{value}') is not defined")]
    UnknownSetting { name: String, value: String },
    #[error("setting '{name}' (referenced in '{value}') matches several settings that differ only in case: {candidates:?}")]
    AmbiguousSetting {
        name: String,
        value: String,
        candidates: Vec<String>,
    },
    #[error("'{value}': the '%' at byte {position} has no closing '%'")]
    UnclosedPercent { value: String, position: usize },
}

impl AppConfig {
    /// Reads `{root}/host.json` and every function's `function.json`.
    ///
    /// Function folders are looked up in `{root}/functions/*/` when `{root}/functions` is a
    /// directory (this repository's layout), else in `{root}/*/` (the layout the real host wants,
    /// which is what gets deployed). A folder without `function.json` is skipped, as the host does;
    /// so is a function with `"disabled": true` (the host neither listens for its trigger nor
    /// routes to it). Folder names must be valid function names (a letter, then up to 127
    /// letters, digits, `_` or `-`) and distinct ignoring case, because the host looks functions
    /// up case-insensitively.
    ///
    /// Like the host (Json.NET), the files may contain `//` and `/* */` comments and trailing
    /// commas, and keys are matched case-insensitively.
    pub fn load(root: &Path) -> Result<AppConfig, ConfigError> {
        let host = load_host(&root.join(HOST_JSON))?;
        let functions_dir = root.join(FUNCTIONS_DIR);
        // A folder called `functions` holding its own function.json is a function, not our layout.
        let dir = if functions_dir.is_dir() && !functions_dir.join(FUNCTION_JSON).exists() {
            functions_dir
        } else {
            root.to_path_buf()
        };
        let entries = fs::read_dir(&dir).map_err(|source| ConfigError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut functions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ConfigError::Read {
                path: dir.clone(),
                source,
            })?;
            let folder = entry.path();
            if !folder.is_dir() {
                continue;
            }
            if let Some(function) = load_function(&folder)? {
                functions.push(function);
            }
        }
        functions.sort_by(|a, b| a.name.cmp(&b.name));
        let mut seen = BTreeMap::new();
        for f in &functions {
            if let Some(other) = seen.insert(f.name.to_ascii_lowercase(), &f.name) {
                return Err(ConfigError::Function {
                    path: dir.join(&f.name),
                    message: format!(
                        "function names are case-insensitive, and '{other}' and '{}' differ only in case",
                        f.name
                    ),
                });
            }
        }
        Ok(AppConfig {
            root: root.to_path_buf(),
            host,
            functions,
        })
    }

    /// The function called `name`, ignoring case as the host does.
    pub fn function(&self, name: &str) -> Option<&FunctionConfig> {
        self.functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// `local.settings.json` `Values` (if the file exists) overlaid by `env`.
///
/// An environment variable wins over the file entry of the same name, as with `func start`
/// (which skips a file value whose variable is already set). Names are compared case-sensitively:
/// on Linux `TaskHub` and `TASKHUB` are two variables and the worker inherits both, which is what
/// `func` does there. ([`resolve`] then looks names up case-insensitively, as the host's
/// configuration does.) File values must be strings; `null` entries are skipped. An encrypted
/// file (`"IsEncrypted": true`) is refused, as the dev host cannot decrypt it.
pub fn settings(
    root: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let path = root.join(LOCAL_SETTINGS_JSON);
    let mut out = BTreeMap::new();
    match fs::read_to_string(&path) {
        Ok(text) => {
            let json = parse_json(&path, &text)?;
            let file = object(&path, "", &json)?;
            if let Some(encrypted) = get(file, "IsEncrypted") {
                if boolean(&path, "IsEncrypted", encrypted)? {
                    return Err(invalid(
                        &path,
                        "IsEncrypted",
                        "is true: the values are encrypted; decrypt them (`func settings decrypt`) for the dev host",
                    ));
                }
            }
            if let Some(values) = get(file, "Values") {
                for (name, value) in object(&path, "Values", values)? {
                    match value {
                        Value::String(s) => {
                            out.insert(name.clone(), s.clone());
                        }
                        Value::Null => {}
                        _ => {
                            return Err(invalid(
                                &path,
                                &format!("Values.{name}"),
                                "must be a string (app settings are strings)",
                            ))
                        }
                    }
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(ConfigError::Read { path, source }),
    }
    out.extend(env);
    Ok(out)
}

/// `Host.LocalHttpPort` of `local.settings.json`: the port `func start` serves HTTP functions on
/// unless `--port` says otherwise. `None` when the file or the key is absent.
pub fn local_http_port(root: &Path) -> Result<Option<u16>, ConfigError> {
    let path = root.join(LOCAL_SETTINGS_JSON);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let json = parse_json(&path, &text)?;
    let file = object(&path, "", &json)?;
    let Some(host) = get(file, "Host") else {
        return Ok(None);
    };
    let Some(port) = get(object(&path, "Host", host)?, "LocalHttpPort") else {
        return Ok(None);
    };
    let key = "Host.LocalHttpPort";
    u16::try_from(unsigned(&path, key, port)?)
        .ok()
        .filter(|port| *port != 0)
        .map(Some)
        .ok_or_else(|| invalid(&path, key, "must be a port number from 1 to 65535"))
}

/// Replaces every `%Name%` in `value` by the setting's value, as the host does for `queueName`,
/// `schedule` and the like (WebJobs `ResolveWholeString`).
///
/// Names are looked up exactly, then ignoring ASCII case (the host's configuration is
/// case-insensitive); two settings matching only ignoring case with different values are an
/// error. Substituted values are not scanned again. There is no escape: `%%` names the empty
/// setting and is an error, and so is a `%` without a closing one.
pub fn resolve(value: &str, settings: &BTreeMap<String, String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut offset = 0;
    while let Some(start) = value[offset..].find('%').map(|i| offset + i) {
        let Some(end) = value[start + 1..].find('%').map(|i| start + 1 + i) else {
            return Err(ConfigError::UnclosedPercent {
                value: value.to_string(),
                position: start,
            });
        };
        let name = &value[start + 1..end];
        out.push_str(&value[offset..start]);
        out.push_str(lookup(name, value, settings)?);
        offset = end + 1;
    }
    out.push_str(&value[offset..]);
    Ok(out)
}

/// Whether the app setting `AzureWebJobs.<function>.Disabled` disables `function`, as the host
/// checks it: `true` (any case) or `1`.
pub fn disabled_by_setting(function: &str, settings: &BTreeMap<String, String>) -> bool {
    let key = format!("AzureWebJobs.{function}.Disabled");
    lookup(&key, &key, settings)
        .map(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("true") || v == "1"
        })
        .unwrap_or(false)
}

fn lookup<'a>(
    name: &str,
    value: &str,
    settings: &'a BTreeMap<String, String>,
) -> Result<&'a str, ConfigError> {
    if let Some(v) = settings.get(name) {
        return Ok(v.as_str());
    }
    let matches: Vec<(&String, &String)> = settings
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .collect();
    match matches.as_slice() {
        [] => Err(ConfigError::UnknownSetting {
            name: name.to_string(),
            value: value.to_string(),
        }),
        [(_, v), rest @ ..] if rest.iter().all(|(_, other)| other == v) => Ok(v.as_str()),
        _ => Err(ConfigError::AmbiguousSetting {
            name: name.to_string(),
            value: value.to_string(),
            candidates: matches.iter().map(|(k, _)| (*k).clone()).collect(),
        }),
    }
}

fn load_host(path: &Path) -> Result<HostConfig, ConfigError> {
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

/// Reads `{folder}/function.json`; `None` when there is none or the function is disabled.
fn load_function(folder: &Path) -> Result<Option<FunctionConfig>, ConfigError> {
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
fn valid_function_name(name: &str) -> bool {
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

fn read(path: &Path) -> Result<String, ConfigError> {
    fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses JSON the way the host's Json.NET reader accepts it: a leading BOM, `//` and `/* */`
/// comments and trailing commas are allowed.
fn parse_json(path: &Path, text: &str) -> Result<Value, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let cleaned = strip_trailing_commas(&strip_comments(text));
    serde_json::from_str(&cleaned).map_err(|source| ConfigError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Blanks out comments (keeping newlines, so serde's line numbers still match the file).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        out.push(escaped);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                out.push(' ');
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                    out.push(' ');
                }
            }
            ('/', Some('*')) => {
                chars.next();
                out.push_str("  ");
                let mut previous = ' ';
                for c in chars.by_ref() {
                    out.push(if c == '\n' { '\n' } else { ' ' });
                    if previous == '*' && c == '/' {
                        break;
                    }
                    previous = c;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Replaces a comma followed (after whitespace) by `}` or `]` with a space; input has no comments.
fn strip_trailing_commas(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(&escaped) = chars.get(i + 1) {
                    out.push(escaped);
                    i += 1;
                }
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            out.push(if matches!(next, Some('}') | Some(']')) {
                ' '
            } else {
                ','
            });
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// `obj[key]`, matched exactly first, then ignoring ASCII case as .NET configuration does; `null`
/// counts as absent.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

fn invalid(path: &Path, key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        key: if key.is_empty() {
            "(top level)".to_string()
        } else {
            key.to_string()
        },
        message: message.to_string(),
    }
}

fn object<'a>(path: &Path, key: &str, v: &'a Value) -> Result<&'a Map<String, Value>, ConfigError> {
    v.as_object()
        .ok_or_else(|| invalid(path, key, "must be a JSON object"))
}

fn string(path: &Path, key: &str, v: &Value) -> Result<String, ConfigError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(path, key, "must be a string"))
}

/// A JSON boolean, or the strings `"true"`/`"false"` (.NET configuration values are strings).
fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn boolean(path: &Path, key: &str, v: &Value) -> Result<bool, ConfigError> {
    parse_bool(v).ok_or_else(|| invalid(path, key, "must be true or false"))
}

/// A non-negative integer, as a JSON number or a numeric string.
fn unsigned(path: &Path, key: &str, v: &Value) -> Result<u32, ConfigError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
        invalid(
            path,
            key,
            &format!("is {v}; it must be a non-negative integer"),
        )
    })
}

fn duration(path: &Path, key: &str, v: &Value) -> Result<Duration, ConfigError> {
    let text = v
        .as_str()
        .ok_or_else(|| invalid(path, key, "must be a duration string such as \"00:00:30\""))?;
    parse_duration(text).ok_or_else(|| {
        invalid(
            path,
            key,
            &format!(
                "is '{text}', not a duration; expected hh:mm:ss, d.hh:mm:ss or hh:mm:ss.fffffff"
            ),
        )
    })
}

/// A non-negative .NET `TimeSpan` in the forms config files use: `[d.]hh:mm[:ss[.fffffff]]`.
/// A bare number is refused: .NET would read `"30"` as 30 days, which is never what was meant.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let first_colon = text.find(':')?;
    let (days, clock) = match text[..first_colon].find('.') {
        Some(dot) => (digits(&text[..dot])?, &text[dot + 1..]),
        None => (0, text),
    };
    let mut parts = clock.split(':');
    let hours = digits(parts.next()?)?;
    let minutes = digits(parts.next()?)?;
    let (seconds, nanos) = match parts.next() {
        None => (0, 0),
        Some(s) => match s.split_once('.') {
            None => (digits(s)?, 0),
            Some((whole, fraction)) => {
                if fraction.is_empty() || fraction.len() > 7 {
                    return None;
                }
                let scaled = digits(fraction)? * 10u64.pow(9 - fraction.len() as u32);
                (digits(whole)?, u32::try_from(scaled).ok()?)
            }
        },
    };
    if parts.next().is_some() || hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    let secs = days
        .checked_mul(86_400)?
        .checked_add(hours * 3_600 + minutes * 60 + seconds)?;
    Some(Duration::new(secs, nanos))
}

/// One or more ASCII digits (no sign, no spaces).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let dir = std::env::temp_dir().join(format!(
                "durable-orchestrator-config-{tag}-{}-{}-{nanos}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, relative: &str, text: &str) -> PathBuf {
            let path = self.0.join(relative);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            path
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const MINIMAL_HOST: &str = r#"{ "version": "2.0", "customHandler": { "description": { "defaultExecutablePath": "handler" } } }"#;

    fn host(text: &str) -> Result<HostConfig, ConfigError> {
        let dir = TempDir::new("host");
        let path = dir.write(HOST_JSON, text);
        load_host(&path)
    }

    fn function(json: &str) -> Result<Option<FunctionConfig>, ConfigError> {
        let dir = TempDir::new("fn");
        dir.write("MyFunction/function.json", json);
        load_function(&dir.path().join("MyFunction"))
    }

    fn bindings(json: &str) -> Vec<Binding> {
        function(json).unwrap().unwrap().bindings
    }

    fn error_text(e: ConfigError) -> String {
        e.to_string()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
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
                    batch_size: 16,
                    new_batch_threshold: 8,
                    max_dequeue_count: 5,
                    base64: true,
                },
            }
        );
    }

    #[test]
    fn the_repository_app_loads() {
        // The seed app at the workspace root.
        let root = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let app = AppConfig::load(root).unwrap();
        assert_eq!(&app.root, root);
        assert_eq!(app.host.executable, "handler");
        let names: Vec<&str> = app.functions.iter().map(|f| f.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for f in &app.functions {
            assert!(f.trigger().is_some(), "{}", f.name);
        }
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
    fn durations_in_the_dotnet_timespan_forms() {
        assert_eq!(parse_duration("00:00:02"), Some(secs(2)));
        assert_eq!(parse_duration(" 00:30:00 "), Some(secs(1_800)));
        assert_eq!(parse_duration("1:2:3"), Some(secs(3_723)));
        assert_eq!(parse_duration("00:05"), Some(secs(300)));
        assert_eq!(parse_duration("2.00:00:00"), Some(secs(2 * 86_400)));
        assert_eq!(
            parse_duration("00:00:00.1"),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            parse_duration("00:00:01.0000001"),
            Some(Duration::new(1, 100))
        );
        assert_eq!(parse_duration("23:59:59"), Some(secs(86_399)));
        assert_eq!(parse_duration("00:00:00"), Some(Duration::ZERO));
        for bad in [
            "",
            "5",
            "1.5",
            ":",
            "00:",
            "a:b:c",
            "+00:00:01",
            "1.:00:00",
            ".00:00:01",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
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
    fn the_local_http_port_comes_from_local_settings() {
        let dir = TempDir::new("port");
        assert_eq!(local_http_port(dir.path()).unwrap(), None);
        dir.write(LOCAL_SETTINGS_JSON, r#"{ "Values": {} }"#);
        assert_eq!(local_http_port(dir.path()).unwrap(), None);
        dir.write(
            LOCAL_SETTINGS_JSON,
            r#"{ "Host": { "LocalHttpPort": 7072, "CORS": "*" } }"#,
        );
        assert_eq!(local_http_port(dir.path()).unwrap(), Some(7072));
        dir.write(
            LOCAL_SETTINGS_JSON,
            r#"{ "host": { "localHttpPort": "8080" } }"#,
        );
        assert_eq!(local_http_port(dir.path()).unwrap(), Some(8080));
        for bad in ["0", "70000", "\"x\""] {
            dir.write(
                LOCAL_SETTINGS_JSON,
                &format!(r#"{{ "Host": {{ "LocalHttpPort": {bad} }} }}"#),
            );
            let error = local_http_port(dir.path()).unwrap_err().to_string();
            assert!(error.contains("Host.LocalHttpPort"), "{error}");
        }
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

    #[test]
    fn a_malformed_function_json_is_an_error_naming_the_file() {
        let dir = TempDir::new("malformed");
        dir.write(HOST_JSON, MINIMAL_HOST);
        dir.write(
            "functions/Good/function.json",
            r#"{ "bindings": [ { "type": "httpTrigger", "direction": "in", "name": "req" } ] }"#,
        );
        dir.write("functions/Broken/function.json", r#"{ "bindings": [ "#);
        let e = error_text(AppConfig::load(dir.path()).unwrap_err());
        assert!(e.contains("Broken") && e.contains("function.json"), "{e}");
        assert!(e.contains("not valid JSON"), "{e}");
    }

    const HTTP_FUNCTION: &str =
        r#"{ "bindings": [ { "type": "httpTrigger", "direction": "in", "name": "req" } ] }"#;

    #[test]
    fn functions_come_from_the_functions_folder_sorted_by_name() {
        let dir = TempDir::new("layout");
        dir.write(HOST_JSON, MINIMAL_HOST);
        dir.write("functions/README.md", "not a function");
        dir.write("functions/StartOrchestration/function.json", HTTP_FUNCTION);
        dir.write("functions/Activities/function.json", HTTP_FUNCTION);
        dir.write("functions/zeta/function.json", HTTP_FUNCTION);
        dir.write("functions/NoConfig/other.json", "{}");
        dir.write(
            "functions/Off/function.json",
            r#"{ "disabled": true, "bindings": [] }"#,
        );
        // Folders at the root are not looked at while `functions/` exists.
        dir.write("RootFunction/function.json", HTTP_FUNCTION);
        let app = AppConfig::load(dir.path()).unwrap();
        let names: Vec<&str> = app.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["Activities", "StartOrchestration", "zeta"]);
        assert_eq!(app.root, dir.path());
        assert_eq!(
            app.function("startorchestration").map(|f| f.name.as_str()),
            Some("StartOrchestration")
        );
        assert!(app.function("Off").is_none());
    }

    #[test]
    fn without_a_functions_folder_functions_are_read_from_the_root() {
        let dir = TempDir::new("rootlayout");
        dir.write(HOST_JSON, MINIMAL_HOST);
        dir.write("local.settings.json", "{}");
        dir.write("MyQueueFunction/function.json",
            r#"{ "bindings": [ { "type": "queueTrigger", "direction": "in", "name": "m", "queueName": "jobs" } ] }"#);
        dir.write("node_modules/x/package.json", "{}");
        let app = AppConfig::load(dir.path()).unwrap();
        assert_eq!(app.functions.len(), 1);
        assert_eq!(app.functions[0].name, "MyQueueFunction");
    }

    #[test]
    fn function_names_must_be_valid_and_distinct_ignoring_case() {
        let dir = TempDir::new("dupes");
        dir.write(HOST_JSON, MINIMAL_HOST);
        dir.write("functions/Work/function.json", HTTP_FUNCTION);
        dir.write("functions/Other/function.json", HTTP_FUNCTION);
        dir.write("functions/work/function.json", HTTP_FUNCTION);
        let e = error_text(AppConfig::load(dir.path()).unwrap_err());
        assert!(e.contains("differ only in case"), "{e}");

        let dir = TempDir::new("badname");
        dir.write(HOST_JSON, MINIMAL_HOST);
        dir.write("functions/1st/function.json", HTTP_FUNCTION);
        let e = error_text(AppConfig::load(dir.path()).unwrap_err());
        assert!(e.contains("'1st' is not a valid function name"), "{e}");

        assert!(valid_function_name("a"));
        assert!(valid_function_name("Sync_Timer-2"));
        assert!(!valid_function_name(""));
        assert!(!valid_function_name("_x"));
        assert!(!valid_function_name("a.b"));
        assert!(!valid_function_name("ünïcode"));
        assert!(valid_function_name(&"a".repeat(128)));
        assert!(!valid_function_name(&"a".repeat(129)));
    }

    #[test]
    fn comments_and_trailing_commas_are_stripped_outside_strings_only() {
        assert_eq!(
            strip_comments("{\"a\": \"x//y /*z*/\", // c\n\"b\": 1 /* d\ne */}"),
            "{\"a\": \"x//y /*z*/\",     \n\"b\": 1     \n    }"
        );
        assert_eq!(
            strip_trailing_commas(r#"{"a": [1, 2, ], "b": ",}", }"#),
            r#"{"a": [1, 2  ], "b": ",}"  }"#
        );
        assert_eq!(strip_comments(r#"{"a": "q\"//"}"#), r#"{"a": "q\"//"}"#);
    }

    #[test]
    fn settings_overlay_the_file_with_the_environment() {
        let dir = TempDir::new("settings");
        dir.write(
            LOCAL_SETTINGS_JSON,
            r#"{
              "IsEncrypted": false,
              "Values": {
                "FUNCTIONS_WORKER_RUNTIME": "custom",
                "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                "TaskHub": "FromFile",
                "Unset": null
              },
              "Host": { "LocalHttpPort": 7071 },
              "ConnectionStrings": {}
            }"#,
        );
        let s = settings(
            dir.path(),
            [
                ("TaskHub".to_string(), "FromEnv".to_string()),
                ("TASKHUB".to_string(), "Shouty".to_string()),
                ("PATH".to_string(), "/bin".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(
            s,
            map(&[
                ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
                ("FUNCTIONS_WORKER_RUNTIME", "custom"),
                ("PATH", "/bin"),
                ("TASKHUB", "Shouty"),
                ("TaskHub", "FromEnv"),
            ])
        );
    }

    #[test]
    fn settings_without_a_file_are_the_environment() {
        let dir = TempDir::new("nosettings");
        let s = settings(dir.path(), [("A".to_string(), "1".to_string())]).unwrap();
        assert_eq!(s, map(&[("A", "1")]));
        assert_eq!(settings(dir.path(), []).unwrap(), BTreeMap::new());
    }

    #[test]
    fn the_repository_local_settings_parse() {
        // The seed app at the workspace root.
        let root = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let s = settings(root, []).unwrap();
        assert_eq!(
            s.get("FUNCTIONS_WORKER_RUNTIME").map(String::as_str),
            Some("custom")
        );
        assert_eq!(
            s.get("AzureWebJobsStorage").map(String::as_str),
            Some("UseDevelopmentStorage=true")
        );
    }

    #[test]
    fn bad_local_settings_are_errors_naming_the_file_and_key() {
        let dir = TempDir::new("badsettings");
        dir.write(LOCAL_SETTINGS_JSON, r#"{ "Values": { "Port": 7071 } }"#);
        let e = error_text(settings(dir.path(), []).unwrap_err());
        assert!(
            e.contains("local.settings.json") && e.contains("'Values.Port'"),
            "{e}"
        );
        dir.write(
            LOCAL_SETTINGS_JSON,
            r#"{ "IsEncrypted": true, "Values": {} }"#,
        );
        let e = error_text(settings(dir.path(), []).unwrap_err());
        assert!(
            e.contains("local.settings.json") && e.contains("'IsEncrypted'"),
            "{e}"
        );
        dir.write(LOCAL_SETTINGS_JSON, r#"{ "Values": [] }"#);
        let e = error_text(settings(dir.path(), []).unwrap_err());
        assert!(e.contains("'Values'"), "{e}");
        dir.write(LOCAL_SETTINGS_JSON, r#"{ "Values": "#);
        let e = error_text(settings(dir.path(), []).unwrap_err());
        assert!(
            e.contains("local.settings.json") && e.contains("not valid JSON"),
            "{e}"
        );
    }

    #[test]
    fn resolve_replaces_settings() {
        let s = map(&[
            ("TaskHub", "hub"),
            ("Suffix", "items"),
            ("Percent", "100%"),
            ("Empty", ""),
        ]);
        // None.
        assert_eq!(resolve("", &s).unwrap(), "");
        assert_eq!(resolve("plain-queue", &s).unwrap(), "plain-queue");
        assert_eq!(resolve("*/15 * * * * *", &s).unwrap(), "*/15 * * * * *");
        // One, whole or embedded.
        assert_eq!(resolve("%TaskHub%", &s).unwrap(), "hub");
        assert_eq!(resolve("%TaskHub%-control", &s).unwrap(), "hub-control");
        // Several, adjacent, repeated.
        assert_eq!(
            resolve("%TaskHub%-%Suffix%-%TaskHub%", &s).unwrap(),
            "hub-items-hub"
        );
        assert_eq!(resolve("%TaskHub%%Suffix%", &s).unwrap(), "hubitems");
        // An empty value, and a value holding '%' that is not scanned again.
        assert_eq!(resolve("a%Empty%b", &s).unwrap(), "ab");
        assert_eq!(resolve("%Percent%%Suffix%", &s).unwrap(), "100%items");
        // Names fall back to a case-insensitive match, as the host's configuration does.
        assert_eq!(resolve("%taskhub%", &s).unwrap(), "hub");
    }

    #[test]
    fn resolve_errors_name_the_setting() {
        let s = map(&[
            ("TaskHub", "hub"),
            ("TASKHUB", "other"),
            ("Same", "v"),
            ("SAME", "v"),
        ]);
        let e = resolve("%Missing%-queue", &s).unwrap_err();
        assert!(
            matches!(&e, ConfigError::UnknownSetting { name, value } if name == "Missing" && value == "%Missing%-queue"),
            "{e:?}"
        );
        assert!(e.to_string().contains("'Missing'"), "{e}");
        // `%%` is no escape: it names the empty setting.
        let e = resolve("100%%", &s).unwrap_err();
        assert!(
            matches!(&e, ConfigError::UnknownSetting { name, .. } if name.is_empty()),
            "{e:?}"
        );
        let e = resolve("50% off", &s).unwrap_err();
        assert!(
            matches!(e, ConfigError::UnclosedPercent { position: 2, .. }),
            "{e:?}"
        );
        let e = resolve("%TaskHub%-%Suffix", &s).unwrap_err();
        assert!(
            matches!(e, ConfigError::UnclosedPercent { position: 10, .. }),
            "{e:?}"
        );
        // Exact match wins; two case variants with different values are ambiguous.
        assert_eq!(resolve("%TASKHUB%", &s).unwrap(), "other");
        let e = resolve("%taskHub%", &s).unwrap_err();
        assert!(
            matches!(&e, ConfigError::AmbiguousSetting { candidates, .. } if candidates.len() == 2),
            "{e:?}"
        );
        assert_eq!(resolve("%same%", &s).unwrap(), "v");
    }

    #[test]
    fn a_function_can_be_disabled_by_an_app_setting() {
        let s = map(&[
            ("AzureWebJobs.SyncTimer.Disabled", "True"),
            ("AzureWebJobs.Other.Disabled", "1"),
            ("AzureWebJobs.On.Disabled", "false"),
        ]);
        assert!(disabled_by_setting("SyncTimer", &s));
        assert!(disabled_by_setting("synctimer", &s));
        assert!(disabled_by_setting("Other", &s));
        assert!(!disabled_by_setting("On", &s));
        assert!(!disabled_by_setting("Missing", &s));
    }
}
