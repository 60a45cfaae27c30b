//! The workflows' app settings: names, defaults, parsing and validation. They are read once at
//! start-up and never change while the worker runs, as replays need the values the code first saw.

use std::collections::HashMap;
use std::time::Duration;

const SYNC_WORK_DELAY_MS: &str = "SYNC_WORK_DELAY_MS";
const SYNC_RETRY_FIRST_INTERVAL_MS: &str = "SYNC_RETRY_FIRST_INTERVAL_MS";
const CLAIM_APPROVAL_TIMEOUT_SECONDS: &str = "CLAIM_APPROVAL_TIMEOUT_SECONDS";
const PAYMENT_RETRY_FIRST_INTERVAL_MS: &str = "ORDER_PAYMENT_RETRY_FIRST_INTERVAL_MS";
const PAYMENT_RETRY_BACKOFF_COEFFICIENT: &str = "ORDER_PAYMENT_RETRY_BACKOFF_COEFFICIENT";
const PAYMENT_RETRY_MAX_ATTEMPTS: &str = "ORDER_PAYMENT_RETRY_MAX_ATTEMPTS";
const ACTIVITY_WORK_DELAY_MS: &str = "ACTIVITY_WORK_DELAY_MS";
const FRAUD_REVIEW_TIMEOUT_SECONDS: &str = "FRAUD_REVIEW_TIMEOUT_SECONDS";

/// An app setting that is present but not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("app setting {name}='{value}' is not valid: {reason}")]
pub struct SettingsError {
    pub name: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Tunables of the seed workflows. A setting that is absent or blank takes its default; names
/// are matched case-insensitively, as Windows app settings are.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowSettings {
    /// `SYNC_WORK_DELAY_MS` (default 1000): work `WorkflowItem1` and `WorkflowItem2` simulate.
    pub sync_work_delay: Duration,
    /// `SYNC_RETRY_FIRST_INTERVAL_MS` (default 1000, > 0): wait before `WorkflowItem1`'s second
    /// attempt; the wait doubles after each further failure, over 3 attempts.
    pub sync_retry_first_interval: Duration,
    /// `CLAIM_APPROVAL_TIMEOUT_SECONDS` (default 86400, > 0): how long a claim waits for a
    /// decision before it is escalated, and again before it expires.
    pub claim_approval_timeout: Duration,
    /// `ORDER_PAYMENT_RETRY_FIRST_INTERVAL_MS` (default 1000, > 0): wait before
    /// `ProcessPayment`'s second attempt.
    pub payment_retry_first_interval: Duration,
    /// `ORDER_PAYMENT_RETRY_BACKOFF_COEFFICIENT` (default 2, finite, >= 1): factor each further
    /// wait between payment attempts grows by.
    pub payment_retry_backoff_coefficient: f64,
    /// `ORDER_PAYMENT_RETRY_MAX_ATTEMPTS` (default 5, >= 1): payment attempts, the first included.
    pub payment_retry_max_attempts: u32,
    /// `ACTIVITY_WORK_DELAY_MS` (default 0): work the claim, order and medallion activities
    /// simulate, for demos that should be watchable.
    pub activity_work_delay: Duration,
    /// `FRAUD_REVIEW_TIMEOUT_SECONDS` (default 86400, > 0): how long a fraud review waits for an
    /// analyst's decision before the card is blocked.
    pub fraud_review_timeout: Duration,
}

impl Default for WorkflowSettings {
    fn default() -> Self {
        Self {
            sync_work_delay: Duration::from_millis(1000),
            sync_retry_first_interval: Duration::from_millis(1000),
            claim_approval_timeout: Duration::from_secs(86_400),
            payment_retry_first_interval: Duration::from_millis(1000),
            payment_retry_backoff_coefficient: 2.0,
            payment_retry_max_attempts: 5,
            activity_work_delay: Duration::ZERO,
            fraud_review_timeout: Duration::from_secs(86_400),
        }
    }
}

impl WorkflowSettings {
    /// Reads the settings from app settings (the process environment, for the worker); unknown
    /// settings are ignored.
    pub fn from_settings(
        settings: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let raw = Raw(settings
            .into_iter()
            .map(|(key, value)| (key.to_ascii_uppercase(), value))
            .collect());
        let default = Self::default();
        Ok(Self {
            sync_work_delay: raw.read(SYNC_WORK_DELAY_MS, default.sync_work_delay, millis)?,
            sync_retry_first_interval: raw.read(
                SYNC_RETRY_FIRST_INTERVAL_MS,
                default.sync_retry_first_interval,
                |value| positive(value).map(Duration::from_millis),
            )?,
            claim_approval_timeout: raw.read(
                CLAIM_APPROVAL_TIMEOUT_SECONDS,
                default.claim_approval_timeout,
                |value| positive(value).map(Duration::from_secs),
            )?,
            payment_retry_first_interval: raw.read(
                PAYMENT_RETRY_FIRST_INTERVAL_MS,
                default.payment_retry_first_interval,
                |value| positive(value).map(Duration::from_millis),
            )?,
            payment_retry_backoff_coefficient: raw.read(
                PAYMENT_RETRY_BACKOFF_COEFFICIENT,
                default.payment_retry_backoff_coefficient,
                |value| {
                    value
                        .parse::<f64>()
                        .ok()
                        .filter(|factor| factor.is_finite() && *factor >= 1.0)
                        .ok_or("it must be a number of at least 1")
                },
            )?,
            payment_retry_max_attempts: raw.read(
                PAYMENT_RETRY_MAX_ATTEMPTS,
                default.payment_retry_max_attempts,
                |value| {
                    u32::try_from(positive(value)?).map_err(|_| "it must be at most 4294967295")
                },
            )?,
            activity_work_delay: raw.read(
                ACTIVITY_WORK_DELAY_MS,
                default.activity_work_delay,
                millis,
            )?,
            fraud_review_timeout: raw.read(
                FRAUD_REVIEW_TIMEOUT_SECONDS,
                default.fraud_review_timeout,
                |value| positive(value).map(Duration::from_secs),
            )?,
        })
    }
}

/// App settings by upper-cased name.
struct Raw(HashMap<String, String>);

impl Raw {
    /// The setting parsed, or `default` when it is absent or blank.
    fn read<T>(
        &self,
        name: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Result<T, SettingsError> {
        let Some(value) = self.0.get(name).map(|value| value.trim()) else {
            return Ok(default);
        };
        if value.is_empty() {
            return Ok(default);
        }
        parse(value).map_err(|reason| SettingsError {
            name,
            value: value.to_string(),
            reason,
        })
    }
}

fn whole(value: &str) -> Result<u64, &'static str> {
    value
        .parse()
        .map_err(|_| "it must be a whole number of at least 0")
}

fn positive(value: &str) -> Result<u64, &'static str> {
    match whole(value)? {
        0 => Err("it must be greater than zero"),
        number => Ok(number),
    }
}

fn millis(value: &str) -> Result<Duration, &'static str> {
    whole(value).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<WorkflowSettings, SettingsError> {
        WorkflowSettings::from_settings(
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string())),
        )
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let parsed = settings(&[("PATH", "/bin"), ("SYNC_WORK_DELAY_MS", "  ")]).unwrap();
        assert_eq!(parsed, WorkflowSettings::default());
        assert_eq!(parsed.sync_work_delay, Duration::from_secs(1));
        assert_eq!(parsed.claim_approval_timeout, Duration::from_secs(86_400));
        assert_eq!(parsed.payment_retry_max_attempts, 5);
        assert_eq!(parsed.payment_retry_backoff_coefficient, 2.0);
        assert_eq!(parsed.activity_work_delay, Duration::ZERO);
        assert_eq!(parsed.fraud_review_timeout, Duration::from_secs(86_400));
    }

    #[test]
    fn every_setting_is_read() {
        let parsed = settings(&[
            ("SYNC_WORK_DELAY_MS", "0"),
            ("sync_retry_first_interval_ms", "5"),
            ("CLAIM_APPROVAL_TIMEOUT_SECONDS", "2"),
            ("ORDER_PAYMENT_RETRY_FIRST_INTERVAL_MS", "7"),
            ("ORDER_PAYMENT_RETRY_BACKOFF_COEFFICIENT", "1.5"),
            ("ORDER_PAYMENT_RETRY_MAX_ATTEMPTS", " 3 "),
            ("ACTIVITY_WORK_DELAY_MS", "25"),
            ("Fraud_Review_Timeout_Seconds", "90"),
        ])
        .unwrap();
        assert_eq!(
            parsed,
            WorkflowSettings {
                sync_work_delay: Duration::ZERO,
                sync_retry_first_interval: Duration::from_millis(5),
                claim_approval_timeout: Duration::from_secs(2),
                payment_retry_first_interval: Duration::from_millis(7),
                payment_retry_backoff_coefficient: 1.5,
                payment_retry_max_attempts: 3,
                activity_work_delay: Duration::from_millis(25),
                fraud_review_timeout: Duration::from_secs(90),
            }
        );
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases = [
            ("SYNC_WORK_DELAY_MS", "-1"),
            ("SYNC_RETRY_FIRST_INTERVAL_MS", "0"),
            ("CLAIM_APPROVAL_TIMEOUT_SECONDS", "1 day"),
            ("ORDER_PAYMENT_RETRY_FIRST_INTERVAL_MS", "0"),
            ("ORDER_PAYMENT_RETRY_BACKOFF_COEFFICIENT", "0.5"),
            ("ORDER_PAYMENT_RETRY_BACKOFF_COEFFICIENT", "NaN"),
            ("ORDER_PAYMENT_RETRY_MAX_ATTEMPTS", "0"),
            ("ORDER_PAYMENT_RETRY_MAX_ATTEMPTS", "4294967296"),
            ("ACTIVITY_WORK_DELAY_MS", "1.5"),
            ("FRAUD_REVIEW_TIMEOUT_SECONDS", "0"),
            ("FRAUD_REVIEW_TIMEOUT_SECONDS", "-5"),
        ];
        for (name, value) in cases {
            let error = settings(&[(name, value)]).unwrap_err();
            assert_eq!(error.name, name);
            assert_eq!(error.value, value);
            let text = error.to_string();
            assert!(
                text.starts_with(&format!("app setting {name}='{value}' is not valid: ")),
                "{text}"
            );
        }
    }
}
