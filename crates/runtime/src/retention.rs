//! Retention: instances that ended longer ago than the time kept for their status (app settings,
//! off by default) are purged, a bounded number per status and run; the worker's
//! `DurableRetention` timer function runs it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::management::{ManageError, Purged};
use super::Runtime;
use durable_engine::OrchestrationStatus;
use durable_store::backend::Backend;
use durable_store::model::InstanceQuery;

/// How long a Completed instance is kept after it ended (`30d`, `12h`, `90m`, `45s`).
pub const KEEP_COMPLETED: &str = "DURABLE_RETENTION_COMPLETED";
/// How long a Failed instance is kept after it ended.
pub const KEEP_FAILED: &str = "DURABLE_RETENTION_FAILED";
/// How long a Terminated instance is kept after it ended.
pub const KEEP_TERMINATED: &str = "DURABLE_RETENTION_TERMINATED";
/// The most instances one run looks at per status.
pub const MAX_PER_RUN: &str = "DURABLE_RETENTION_MAX_PER_RUN";

/// The statuses retention applies to, with the setting that keeps each. Canceled is never
/// written by this runtime, and ContinuedAsNew is never stored: the next execution starts in
/// the same commit.
const KEPT: [(OrchestrationStatus, &str); 3] = [
    (OrchestrationStatus::Completed, KEEP_COMPLETED),
    (OrchestrationStatus::Failed, KEEP_FAILED),
    (OrchestrationStatus::Terminated, KEEP_TERMINATED),
];

/// What is kept, and how long: a status without a time is kept for ever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub completed: Option<Duration>,
    pub failed: Option<Duration>,
    pub terminated: Option<Duration>,
    /// The most matching instances one run looks at per status (and so purges at most); the
    /// rest wait for the next run.
    pub max_per_run: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            completed: None,
            failed: None,
            terminated: None,
            max_per_run: 1_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("app setting {name} is '{value}'; {expected}")]
pub struct RetentionSettingError {
    pub name: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// What one run purged of one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub status: OrchestrationStatus,
    /// Instances that ended at or before this time were due.
    pub ended_by: DateTime<Utc>,
    pub purged: Purged,
}

impl Retention {
    /// The retention the app settings `get` finds describe; unset or empty settings keep
    /// instances of their status for ever.
    pub fn from_settings(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RetentionSettingError> {
        let setting = |name: &str| get(name).filter(|value| !value.trim().is_empty());
        let keep = |name: &'static str| {
            setting(name)
                .map(|value| {
                    parse_duration(&value).ok_or(RetentionSettingError {
                        name,
                        value,
                        expected: "it must be a whole number above 0 and a unit: s, m, h or d \
                                   (e.g. 30d)",
                    })
                })
                .transpose()
        };
        let [completed, failed, terminated] = KEPT.map(|(_, name)| keep(name));
        let mut retention = Self {
            completed: completed?,
            failed: failed?,
            terminated: terminated?,
            ..Self::default()
        };
        if let Some(value) = setting(MAX_PER_RUN) {
            retention.max_per_run =
                value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|max| *max > 0)
                    .ok_or(RetentionSettingError {
                        name: MAX_PER_RUN,
                        value,
                        expected: "it must be a whole number above 0",
                    })?;
        }
        Ok(retention)
    }

    /// Each status retention applies to, with the time its instances are kept.
    pub fn rules(&self) -> impl Iterator<Item = (OrchestrationStatus, Duration)> + '_ {
        KEPT.iter()
            .filter_map(|(status, _)| self.keep(*status).map(|keep| (*status, keep)))
    }

    /// How long instances that ended with `status` are kept; `None`: for ever.
    pub fn keep(&self, status: OrchestrationStatus) -> Option<Duration> {
        match status {
            OrchestrationStatus::Completed => self.completed,
            OrchestrationStatus::Failed => self.failed,
            OrchestrationStatus::Terminated => self.terminated,
            _ => None,
        }
    }

    /// Whether nothing is ever purged.
    pub fn is_off(&self) -> bool {
        self.rules().next().is_none()
    }
}

/// `30d`, `12h`, `90m`, `45s`: a whole number above 0 and a unit.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let seconds_per_unit = match unit.to_ascii_lowercase() {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return None,
    };
    let count: u64 = text[..text.len() - unit.len_utf8()].trim().parse().ok()?;
    // chrono's durations reach a little beyond 292 billion years; refuse what it cannot hold.
    let seconds = count
        .checked_mul(seconds_per_unit)
        .filter(|seconds| *seconds > 0)?;
    i64::try_from(seconds)
        .ok()
        .and_then(chrono::TimeDelta::try_seconds)
        .map(|_| Duration::from_secs(seconds))
}

impl<B: Backend> Runtime<B> {
    /// Purges the instances that ended longer ago than the options' retention keeps their
    /// status, at most `max_per_run` looked at per status, and logs what it purged. Several
    /// workers may run it at once: an instance another one purged first is skipped.
    pub async fn purge_expired(&self) -> Result<Vec<Expired>, ManageError> {
        let retention = &self.options.retention;
        let now = self.clock.now();
        let mut expired = Vec::new();
        for (status, keep) in retention.rules() {
            let Some(ended_by) = chrono::TimeDelta::from_std(keep)
                .ok()
                .and_then(|keep| now.checked_sub_signed(keep))
            else {
                continue;
            };
            let query = InstanceQuery {
                statuses: vec![status],
                updated_to: Some(ended_by),
                ..InstanceQuery::default()
            };
            let purged = self.purge_pages(query, Some(retention.max_per_run)).await?;
            if purged.count > 0 {
                let more = if purged.count > purged.sample.len() {
                    ", …"
                } else {
                    ""
                };
                tracing::info!(
                    "retention purged {} {status:?} instances that ended by {ended_by}: {}{more}",
                    purged.count,
                    purged.sample.join(", ")
                );
            }
            if purged.more {
                tracing::info!(
                    "retention: more {status:?} instances are due; the next run purges them"
                );
            }
            expired.push(Expired {
                status,
                ended_by,
                purged,
            });
        }
        Ok(expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(settings: &[(&str, &str)]) -> Result<Retention, RetentionSettingError> {
        let settings: HashMap<&str, &str> = settings.iter().copied().collect();
        Retention::from_settings(|name| settings.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn retention_is_off_unless_a_status_has_a_time() {
        let off = from(&[]).unwrap();
        assert!(off.is_off());
        assert_eq!(off, Retention::default());
        assert!(from(&[(KEEP_FAILED, " ")]).unwrap().is_off());
    }

    #[test]
    fn times_take_a_unit_and_each_status_its_own() {
        let retention = from(&[
            (KEEP_COMPLETED, "30d"),
            (KEEP_FAILED, " 12h "),
            (KEEP_TERMINATED, "90S"),
            (MAX_PER_RUN, "50"),
        ])
        .unwrap();
        assert_eq!(retention.completed, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(retention.failed, Some(Duration::from_secs(12 * 3_600)));
        assert_eq!(retention.terminated, Some(Duration::from_secs(90)));
        assert_eq!(retention.max_per_run, 50);
        assert_eq!(
            retention.rules().collect::<Vec<_>>(),
            vec![
                (
                    OrchestrationStatus::Completed,
                    Duration::from_secs(2_592_000)
                ),
                (OrchestrationStatus::Failed, Duration::from_secs(43_200)),
                (OrchestrationStatus::Terminated, Duration::from_secs(90)),
            ]
        );
        let minutes = from(&[(KEEP_FAILED, "15m")]).unwrap();
        assert_eq!(
            minutes.rules().collect::<Vec<_>>(),
            vec![(OrchestrationStatus::Failed, Duration::from_secs(900))]
        );
    }

    #[test]
    fn bad_settings_are_named() {
        for bad in [
            "30",
            "d",
            "0d",
            "-1h",
            "1.5h",
            "3w",
            "99999999999999999999s",
            "1 day",
        ] {
            let error = from(&[(KEEP_COMPLETED, bad)]).unwrap_err();
            assert_eq!(error.name, KEEP_COMPLETED, "{bad}");
            assert!(error.to_string().contains(&format!("'{bad}'")), "{error}");
        }
        for bad in ["0", "many", "-5"] {
            assert_eq!(from(&[(MAX_PER_RUN, bad)]).unwrap_err().name, MAX_PER_RUN);
        }
    }
}
