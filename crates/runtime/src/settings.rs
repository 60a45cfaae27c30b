//! App settings that tune the runtime without code: the instance cache, checkpoints in long
//! turns, the history cap, how long a message waits for its instance and when that wait is
//! shown. Workers read them from their environment, as the Functions host passes app settings;
//! the test driver reads the same ones, so a suite runs in either mode.

use std::time::Duration;

use super::RuntimeOptions;

/// Most instances the cache keeps; `0` turns it off.
pub const INSTANCE_CACHE_INSTANCES: &str = "DURABLE_INSTANCE_CACHE_INSTANCES";
/// Most history events the cached instances may hold together.
pub const INSTANCE_CACHE_EVENTS: &str = "DURABLE_INSTANCE_CACHE_EVENTS";
/// Milliseconds of in-process activities after which a turn commits.
pub const CHECKPOINT_INTERVAL_MS: &str = "DURABLE_CHECKPOINT_INTERVAL_MS";
/// Most history events of one execution.
pub const MAX_HISTORY_EVENTS: &str = "DURABLE_MAX_HISTORY_EVENTS";
/// Seconds a message for an instance that does not exist waits for its start before it is
/// parked as a poison message.
pub const MAX_DEFERRAL_SECONDS: &str = "DURABLE_MAX_DEFERRAL_SECONDS";
/// Seconds a message waits for its instance's start before the stuck view shows it.
pub const RECORD_DEFERRAL_SECONDS: &str = "DURABLE_RECORD_DEFERRAL_SECONDS";

#[derive(Debug, thiserror::Error)]
#[error("app setting {name} is '{value}'; it must be a whole number (0 or more; at least 1 for {MAX_HISTORY_EVENTS} and {MAX_DEFERRAL_SECONDS})")]
pub struct SettingsError {
    pub name: &'static str,
    pub value: String,
}

impl RuntimeOptions {
    /// These options with every setting that `get` finds applied over them.
    pub fn with_settings(
        mut self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let number = |name: &'static str| -> Result<Option<usize>, SettingsError> {
            get(name)
                .map(|value| {
                    value.trim().parse::<usize>().map_err(|_| SettingsError {
                        name,
                        value: value.clone(),
                    })
                })
                .transpose()
        };
        if let Some(instances) = number(INSTANCE_CACHE_INSTANCES)? {
            self.instance_cache.max_instances = instances;
        }
        if let Some(events) = number(INSTANCE_CACHE_EVENTS)? {
            self.instance_cache.max_events = events;
        }
        match number(MAX_DEFERRAL_SECONDS)? {
            // Nothing could overtake its start: every early message would be parked.
            Some(0) => {
                return Err(SettingsError {
                    name: MAX_DEFERRAL_SECONDS,
                    value: "0".to_string(),
                })
            }
            Some(seconds) => self.max_deferral = Duration::from_secs(seconds as u64),
            None => {}
        }
        if let Some(seconds) = number(RECORD_DEFERRAL_SECONDS)? {
            self.record_deferral_after = Duration::from_secs(seconds as u64);
        }
        if let Some(ms) = number(CHECKPOINT_INTERVAL_MS)? {
            self.checkpoint_interval = Duration::from_millis(ms as u64);
        }
        match number(MAX_HISTORY_EVENTS)? {
            // No execution can hold zero events: the setting is a mistake, not "no history".
            Some(0) => {
                return Err(SettingsError {
                    name: MAX_HISTORY_EVENTS,
                    value: "0".to_string(),
                })
            }
            Some(events) => self.max_history_events = events,
            None => {}
        }
        Ok(self)
    }

    /// [`RuntimeOptions::with_settings`] from the process environment.
    pub fn with_env(self) -> Result<Self, SettingsError> {
        self.with_settings(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn settings_override_the_defaults_and_bad_numbers_are_named() {
        let settings = HashMap::from([
            (INSTANCE_CACHE_INSTANCES, "0"),
            (CHECKPOINT_INTERVAL_MS, " 1500 "),
            (MAX_HISTORY_EVENTS, "500"),
            (MAX_DEFERRAL_SECONDS, "3"),
            (RECORD_DEFERRAL_SECONDS, "0"),
        ]);
        let options = RuntimeOptions::default()
            .with_settings(|name| settings.get(name).map(|v| v.to_string()))
            .unwrap();
        assert_eq!(options.instance_cache.max_instances, 0);
        assert_eq!(
            options.instance_cache.max_events,
            RuntimeOptions::default().instance_cache.max_events
        );
        assert_eq!(options.checkpoint_interval, Duration::from_millis(1500));
        assert_eq!(options.max_history_events, 500);
        assert_eq!(options.max_deferral, Duration::from_secs(3));
        assert_eq!(options.record_deferral_after, Duration::ZERO);

        let error = RuntimeOptions::default()
            .with_settings(|name| (name == INSTANCE_CACHE_EVENTS).then(|| "lots".to_string()))
            .unwrap_err();
        assert_eq!(error.name, INSTANCE_CACHE_EVENTS);
        assert!(error.to_string().contains("'lots'"), "{error}");

        for name in [MAX_HISTORY_EVENTS, MAX_DEFERRAL_SECONDS] {
            let error = RuntimeOptions::default()
                .with_settings(|asked| (asked == name).then(|| "0".to_string()))
                .unwrap_err();
            assert_eq!(error.name, name);
        }
    }
}
