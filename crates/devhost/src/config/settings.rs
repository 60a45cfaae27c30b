//! App settings: `local.settings.json` values overlaid by the environment, its
//! `Host.LocalHttpPort`, `%Setting%` resolution and `AzureWebJobs.<function>.Disabled`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use serde_json::Value;

use super::jsonc::{boolean, get, invalid, object, parse_json, unsigned};
use super::ConfigError;

const LOCAL_SETTINGS_JSON: &str = "local.settings.json";

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

#[cfg(test)]
mod tests {
    use super::super::test_support::{error_text, TempDir};
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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
