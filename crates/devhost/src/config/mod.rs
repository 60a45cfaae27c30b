//! The app's configuration as the Functions host reads it: [`AppConfig`] finds the function
//! folders and loads `host.json` and each `function.json`; the submodules read each file (and the
//! app settings) and are re-exported here.

mod function_json;
mod host_json;
mod jsonc;
mod settings;
#[cfg(test)]
mod test_support;
mod timespan;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use function_json::{Binding, FunctionConfig};
pub use host_json::{
    HostConfig, QueueOptions, DEFAULT_MAX_POLLING_INTERVAL, MAX_BATCH_SIZE, MIN_POLLING_INTERVAL,
};
pub use settings::{disabled_by_setting, local_http_port, resolve, settings};

use function_json::{load_function, FUNCTION_JSON};
use host_json::{load_host, HOST_JSON};

const FUNCTIONS_DIR: &str = "functions";

/// Everything the dev host needs from the app folder.
#[derive(Clone, Debug, PartialEq)]
pub struct AppConfig {
    pub root: PathBuf,
    pub host: HostConfig,
    /// Enabled functions, sorted by name.
    pub functions: Vec<FunctionConfig>,
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

#[cfg(test)]
mod tests {
    use super::function_json::valid_function_name;
    use super::test_support::{error_text, TempDir, MINIMAL_HOST};
    use super::*;

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
}
