//! .NET `TimeSpan` values as config files write them (`[d.]hh:mm[:ss[.fffffff]]`), read into a
//! [`Duration`].

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::jsonc::invalid;
use super::ConfigError;

pub(super) fn duration(path: &Path, key: &str, v: &Value) -> Result<Duration, ConfigError> {
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
    use super::super::test_support::secs;
    use super::*;

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
}
