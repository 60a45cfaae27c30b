//! Asserting on a failure's details: its type exactly, its message by the fragments it must
//! contain (messages carry context a test should not spell out in full).

use durable_engine::FailureDetails;

/// Asserts `details` are of `error_type` and their message contains each of `fragments`.
pub fn assert_failure(details: &FailureDetails, error_type: &str, fragments: &[&str]) {
    assert_eq!(details.error_type, error_type, "{}", details.error_message);
    for fragment in fragments {
        assert!(
            details.error_message.contains(fragment),
            "{fragment:?} missing from: {}",
            details.error_message
        );
    }
}
