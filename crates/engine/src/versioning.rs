//! Orchestration versions as Durable Functions defines them: how two versions compare, and
//! whether a worker of one version may run an execution of another.

use std::cmp::Ordering;
use std::str::FromStr;

/// Compares two versions. No version (none, or blank) is below any version; two versions made
/// of 2 to 4 dot-separated numbers compare as numbers (`1.10` above `1.9`, and `1.0` below
/// `1.0.0`, as .NET's `System.Version` orders them); any others compare as text, ignoring
/// case as .NET's ordinal comparison does (upper-cased).
pub fn compare_versions(a: Option<&str>, b: Option<&str>) -> Ordering {
    let a = a.filter(|a| !a.trim().is_empty());
    let b = b.filter(|b| !b.trim().is_empty());
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => match (numeric(a), numeric(b)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => a.to_uppercase().cmp(&b.to_uppercase()),
        },
    }
}

/// `1.2.3` as its components, if it is such a version.
fn numeric(version: &str) -> Option<Vec<i32>> {
    let parts: Option<Vec<i32>> = version
        .split('.')
        .map(|p| p.parse().ok().filter(|n: &i32| *n >= 0))
        .collect();
    parts.filter(|parts| (2..=4).contains(&parts.len()))
}

/// Which executions a worker runs, by their version against the worker's
/// ([`Versioning::default_version`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VersionMatch {
    /// Every version.
    None,
    /// Only its own.
    Strict,
    /// Its own and older ones.
    #[default]
    CurrentOrOlder,
}

/// What happens to an execution a worker may not run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VersionFailure {
    /// Its messages wait for a worker that may run it.
    #[default]
    Reject,
    /// The execution fails.
    Fail,
}

/// A worker's versioning settings (Durable Functions' `defaultVersion`,
/// `versionMatchStrategy`, `versionFailureStrategy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versioning {
    /// The version a start gets unless it names one, and the worker's own.
    pub default_version: Option<String>,
    pub match_strategy: VersionMatch,
    pub failure_strategy: VersionFailure,
}

impl Versioning {
    /// Why this worker may not run an execution of `version`, or `None` if it may. A worker
    /// with no version of its own runs every version, as Durable Functions checks versions only
    /// once `defaultVersion` is set.
    pub fn mismatch(&self, version: Option<&str>) -> Option<String> {
        let worker = Some(self.default_version.as_deref()?);
        let order = compare_versions(version, worker);
        let shown = |v: Option<&str>| v.unwrap_or("").to_string();
        match self.match_strategy {
            VersionMatch::None => None,
            VersionMatch::Strict if order != Ordering::Equal => Some(format!(
                "The orchestration version '{}' does not match the worker version '{}'.",
                shown(version),
                shown(worker)
            )),
            VersionMatch::CurrentOrOlder if order == Ordering::Greater => Some(format!(
                "The orchestration version '{}' is greater than the worker version '{}'.",
                shown(version),
                shown(worker)
            )),
            VersionMatch::Strict | VersionMatch::CurrentOrOlder => None,
        }
    }
}

/// A setting's value that names no strategy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not one of {expected}")]
pub struct UnknownStrategy {
    value: String,
    expected: &'static str,
}

impl FromStr for VersionMatch {
    type Err = UnknownStrategy;

    /// The names Durable Functions' host.json takes, in any case.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "strict" => Ok(Self::Strict),
            "currentorolder" => Ok(Self::CurrentOrOlder),
            _ => Err(UnknownStrategy {
                value: value.to_string(),
                expected: "None, Strict, CurrentOrOlder",
            }),
        }
    }
}

impl FromStr for VersionFailure {
    type Err = UnknownStrategy;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "reject" => Ok(Self::Reject),
            "fail" => Ok(Self::Fail),
            _ => Err(UnknownStrategy {
                value: value.to_string(),
                expected: "Reject, Fail",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_version_is_below_any() {
        assert_eq!(compare_versions(None, Some("0.1")), Ordering::Less);
        assert_eq!(compare_versions(Some(""), Some("a")), Ordering::Less);
        assert_eq!(compare_versions(Some("1.0"), None), Ordering::Greater);
        assert_eq!(compare_versions(None, Some(" ")), Ordering::Equal);
    }

    #[test]
    fn numeric_versions_compare_as_numbers() {
        assert_eq!(
            compare_versions(Some("1.10"), Some("1.9")),
            Ordering::Greater
        );
        assert_eq!(compare_versions(Some("2.0"), Some("10.0")), Ordering::Less);
        assert_eq!(compare_versions(Some("1.0"), Some("1.0.0")), Ordering::Less);
        assert_eq!(
            compare_versions(Some("1.2.3.4"), Some("1.2.3.4")),
            Ordering::Equal
        );
    }

    #[test]
    fn other_versions_compare_as_text_ignoring_case() {
        assert_eq!(
            compare_versions(Some("Beta"), Some("alpha")),
            Ordering::Greater
        );
        assert_eq!(compare_versions(Some("V2"), Some("v2")), Ordering::Equal);
        // One side not numeric: both are text, so "10" sorts before "9".
        assert_eq!(compare_versions(Some("10"), Some("9")), Ordering::Less);
        assert_eq!(
            compare_versions(Some("1.0"), Some("1.0-beta")),
            Ordering::Less
        );
        // Upper-cased, as .NET's OrdinalIgnoreCase: '_' sorts above the letters.
        assert_eq!(
            compare_versions(Some("rel_x"), Some("relA")),
            Ordering::Greater
        );
        // A negative component is no number: "1.-1" is text, below "1.0".
        assert_eq!(compare_versions(Some("1.-1"), Some("1.0")), Ordering::Less);
    }

    #[test]
    fn strategies_admit_what_durable_functions_admits() {
        let worker = |match_strategy| Versioning {
            default_version: Some("2.0".to_string()),
            match_strategy,
            failure_strategy: VersionFailure::Reject,
        };
        let current_or_older = worker(VersionMatch::CurrentOrOlder);
        assert_eq!(current_or_older.mismatch(Some("2.0")), None);
        assert_eq!(current_or_older.mismatch(Some("1.5")), None);
        assert_eq!(current_or_older.mismatch(None), None);
        assert!(current_or_older
            .mismatch(Some("2.1"))
            .unwrap()
            .contains("is greater than the worker version '2.0'"));
        let strict = worker(VersionMatch::Strict);
        assert_eq!(strict.mismatch(Some("2.0")), None);
        assert!(strict.mismatch(Some("1.5")).is_some());
        assert!(strict.mismatch(None).is_some());
        assert_eq!(worker(VersionMatch::None).mismatch(Some("9.0")), None);
        let unversioned = Versioning {
            match_strategy: VersionMatch::Strict,
            ..Versioning::default()
        };
        assert_eq!(unversioned.mismatch(Some("9.0")), None);
    }

    #[test]
    fn strategy_names_parse_in_any_case() {
        assert_eq!("currentOrOlder".parse(), Ok(VersionMatch::CurrentOrOlder));
        assert_eq!("STRICT".parse(), Ok(VersionMatch::Strict));
        assert_eq!("fail".parse(), Ok(VersionFailure::Fail));
        let error = "sometimes".parse::<VersionFailure>().unwrap_err();
        assert_eq!(error.to_string(), "'sometimes' is not one of Reject, Fail");
    }
}
