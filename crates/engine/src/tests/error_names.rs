//! The error type persisted in `FailureDetails.error_type` for a converted error is a fixed name
//! (error.rs), never a Rust type name, which may differ between compiler versions.

use super::{failure, started, turn};
use crate::{ActivityError, OrchestrationContext, OrchestrationError, Registry, TaskError};

fn registry() -> Registry {
    Registry::builder()
        .orchestrator("ParseInput", |_: OrchestrationContext, (): ()| async move {
            let number: u32 = "not a number".parse()?;
            Ok::<_, OrchestrationError>(number)
        })
        .orchestrator(
            "NamedFailure",
            |_: OrchestrationContext, (): ()| async move {
                Err::<(), _>(OrchestrationError::with_type("OutOfStock", "none left"))
            },
        )
        .build()
        .expect("valid registry")
}

#[test]
fn an_error_converted_with_question_mark_is_recorded_as_orchestration_error() {
    let turn = turn(&registry(), &[], &started("ParseInput").build());
    let details = failure(&turn);
    assert_eq!(details.error_type, "OrchestrationError");
    assert_eq!(details.error_message, "invalid digit found in string");
}

#[test]
fn an_error_converted_into_an_activity_error_is_recorded_as_activity_error() {
    let error = ActivityError::from("x".parse::<u32>().expect_err("not a number"));
    assert_eq!(error.details().error_type, "ActivityError");
}

#[test]
fn a_converted_task_error_keeps_its_own_stable_name() {
    let error = OrchestrationError::from(TaskError::Timeout {
        name: "Approval".to_string(),
    });
    assert_eq!(error.details().error_type, "Timeout");
}

#[test]
fn a_name_given_with_with_type_is_recorded_as_given() {
    let turn = turn(&registry(), &[], &started("NamedFailure").build());
    assert_eq!(failure(&turn).error_type, "OutOfStock");
}
