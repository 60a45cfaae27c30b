//! JSON as the host's Json.NET reads it (a BOM, `//` and `/* */` comments, trailing commas, keys
//! matched ignoring case), and the typed reads of its values whose errors name the file and key.

use std::fs;
use std::path::Path;

use serde_json::{Map, Value};

use super::ConfigError;

pub(super) fn read(path: &Path) -> Result<String, ConfigError> {
    fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses JSON the way the host's Json.NET reader accepts it: a leading BOM, `//` and `/* */`
/// comments and trailing commas are allowed.
pub(super) fn parse_json(path: &Path, text: &str) -> Result<Value, ConfigError> {
    durable_protocol::jsonc::parse(text).map_err(|source| ConfigError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// `obj[key]`, matched exactly first, then ignoring ASCII case as .NET configuration does; `null`
/// counts as absent.
pub(super) use durable_protocol::jsonc::get;

pub(super) fn invalid(path: &Path, key: &str, message: &str) -> ConfigError {
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

pub(super) fn object<'a>(
    path: &Path,
    key: &str,
    v: &'a Value,
) -> Result<&'a Map<String, Value>, ConfigError> {
    v.as_object()
        .ok_or_else(|| invalid(path, key, "must be a JSON object"))
}

pub(super) fn string(path: &Path, key: &str, v: &Value) -> Result<String, ConfigError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(path, key, "must be a string"))
}

/// A JSON boolean, or the strings `"true"`/`"false"` (.NET configuration values are strings).
pub(super) fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

pub(super) fn boolean(path: &Path, key: &str, v: &Value) -> Result<bool, ConfigError> {
    parse_bool(v).ok_or_else(|| invalid(path, key, "must be true or false"))
}

/// A non-negative integer, as a JSON number or a numeric string.
pub(super) fn unsigned(path: &Path, key: &str, v: &Value) -> Result<u32, ConfigError> {
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
