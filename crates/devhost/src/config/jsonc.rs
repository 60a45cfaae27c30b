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
pub(super) fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
