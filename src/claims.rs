//! Claim approval: `ClaimApprovalWorkflow` validates a claim, asks an approver, waits for the
//! `ApprovalDecision` event (escalating once when none comes in time), then settles the claim.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::decisions::first_well_formed;
use super::{simulate_work, WorkflowSettings};
use durable_engine::{
    ActivityContext, ActivityError, OrchestrationContext, OrchestrationError, RegistryBuilder,
};

const WORKFLOW: &str = "ClaimApprovalWorkflow";
const VALIDATE: &str = "ValidateClaim";
const NOTIFY: &str = "NotifyApprover";
const ESCALATE: &str = "EscalateClaim";
const PROCESS: &str = "ProcessClaim";
const DECISION_EVENT: &str = "ApprovalDecision";

/// `{"ClaimId":"C-1","Claimant":"…","Amount":1234.5,"Description":"…"}`; fields may be missing,
/// which validation rejects.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Claim {
    claim_id: Option<String>,
    claimant: Option<String>,
    amount: Option<f64>,
    description: Option<String>,
}

/// The body of `ApprovalDecision`: `{"Approved":true|false,"Approver":"…","Comment":"…"}`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "PascalCase")]
struct Decision {
    approved: bool,
    #[serde(default)]
    approver: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

/// What `ValidateClaim` found: `None` for a valid claim, else why it is not.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct Validation {
    reason: Option<String>,
}

pub(super) fn register(builder: RegistryBuilder, settings: &WorkflowSettings) -> RegistryBuilder {
    let timeout = settings.claim_approval_timeout;
    let work = settings.activity_work_delay;
    builder
        .orchestrator(WORKFLOW, move |ctx, claim| {
            claim_approval(ctx, claim, timeout)
        })
        .activity(VALIDATE, move |_: ActivityContext, claim| {
            validate_claim(claim, work)
        })
        .activity(NOTIFY, move |_: ActivityContext, claim| {
            notify_approver(claim, work)
        })
        .activity(ESCALATE, move |_: ActivityContext, claim| {
            escalate_claim(claim, work)
        })
        .activity(PROCESS, move |_: ActivityContext, claim| {
            process_claim(claim, work)
        })
}

async fn claim_approval(
    ctx: OrchestrationContext,
    claim: Claim,
    timeout: Duration,
) -> Result<Value, OrchestrationError> {
    let validation: Validation = ctx.call_activity(VALIDATE, &claim).await?;
    if let Some(reason) = validation.reason {
        return Ok(json!({"ClaimId": claim.claim_id, "Status": "Rejected", "Reason": reason}));
    }
    ctx.call_activity::<()>(NOTIFY, &claim).await?;
    ctx.set_custom_status(&json!({"Stage": "AwaitingApproval"}))?;
    let mut decision = wait_for_decision(&ctx, timeout).await;
    if decision.is_none() {
        ctx.call_activity::<()>(ESCALATE, &claim).await?;
        ctx.set_custom_status(&json!({"Stage": "Escalated"}))?;
        decision = wait_for_decision(&ctx, timeout).await;
    }
    let Some(decision) = decision else {
        ctx.set_custom_status(&json!({"Stage": "Expired"}))?;
        return Ok(json!({"Status": "Expired"}));
    };
    if decision.approved {
        ctx.call_activity::<()>(PROCESS, &claim).await?;
        ctx.set_custom_status(&json!({"Stage": "Approved"}))?;
        Ok(json!({
            "ClaimId": claim.claim_id,
            "Status": "Approved",
            "Approver": decision.approver,
        }))
    } else {
        ctx.set_custom_status(&json!({"Stage": "Rejected"}))?;
        Ok(json!({
            "ClaimId": claim.claim_id,
            "Status": "Rejected",
            "Approver": decision.approver,
            "Reason": decision.comment,
        }))
    }
}

/// The first well-formed decision within `timeout`, or `None`.
async fn wait_for_decision(ctx: &OrchestrationContext, timeout: Duration) -> Option<Decision> {
    first_well_formed(ctx, DECISION_EVENT, timeout).await
}

async fn validate_claim(claim: Claim, work: Duration) -> Result<Validation, ActivityError> {
    simulate_work(work).await;
    let blank = |field: &Option<String>| field.as_deref().is_none_or(|text| text.trim().is_empty());
    let reason = if blank(&claim.claim_id) {
        Some("ClaimId is missing")
    } else if blank(&claim.claimant) {
        Some("Claimant is missing")
    } else if !claim.amount.is_some_and(|amount| amount > 0.0) {
        Some("Amount must be greater than 0")
    } else {
        None
    };
    Ok(Validation {
        reason: reason.map(str::to_string),
    })
}

/// Where a real app would mail or message the approver; here the log says who should look.
async fn notify_approver(claim: Claim, work: Duration) -> Result<(), ActivityError> {
    simulate_work(work).await;
    tracing::info!(
        claim_id = claim.claim_id,
        amount = claim.amount,
        "approval requested"
    );
    Ok(())
}

async fn escalate_claim(claim: Claim, work: Duration) -> Result<(), ActivityError> {
    simulate_work(work).await;
    tracing::warn!(claim_id = claim.claim_id, "no decision in time: escalated");
    Ok(())
}

async fn process_claim(claim: Claim, work: Duration) -> Result<(), ActivityError> {
    simulate_work(work).await;
    tracing::info!(
        claim_id = claim.claim_id,
        amount = claim.amount,
        "claim paid out"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{completed_output, custom_status, runtime, scheduled, settings};
    use durable_engine::OrchestrationStatus;
    use durable_runtime::testkit::InMemoryRuntime;

    const ID: &str = "claim";

    fn claim() -> Value {
        json!({"ClaimId":"C-1","Claimant":"Ada","Amount":1234.5,"Description":"Water damage"})
    }

    fn started(input: &Value) -> InMemoryRuntime {
        let (mut rt, _) = runtime();
        rt.start(WORKFLOW, ID, input).unwrap();
        rt.run_until_idle().unwrap();
        rt
    }

    fn stage(rt: &InMemoryRuntime) -> Value {
        custom_status(rt, ID)
    }

    fn output(rt: &InMemoryRuntime) -> Value {
        completed_output(rt, ID)
    }

    /// Half the approval timeout, so a wait started now has not expired yet.
    fn half_timeout() -> Duration {
        settings().claim_approval_timeout / 2
    }

    #[test]
    fn approved_claims_are_processed() {
        let mut rt = started(&claim());
        assert_eq!(stage(&rt), json!({"Stage":"AwaitingApproval"}));
        rt.raise_event(
            ID,
            DECISION_EVENT,
            &json!({"Approved":true,"Approver":"Grace","Comment":"ok"}),
        )
        .unwrap();
        rt.run_until_idle().unwrap();

        assert_eq!(
            output(&rt),
            json!({"ClaimId":"C-1","Status":"Approved","Approver":"Grace"})
        );
        assert_eq!(
            scheduled(&rt, ID),
            [VALIDATE, NOTIFY, PROCESS].map(String::from)
        );
    }

    #[test]
    fn rejected_claims_give_the_comment_as_reason() {
        let mut rt = started(&claim());
        rt.raise_event(
            ID,
            DECISION_EVENT,
            &json!({"Approved":false,"Approver":"Grace","Comment":"Not covered"}),
        )
        .unwrap();
        rt.run_until_idle().unwrap();

        assert_eq!(
            output(&rt),
            json!({"ClaimId":"C-1","Status":"Rejected","Approver":"Grace","Reason":"Not covered"})
        );
        assert_eq!(scheduled(&rt, ID), [VALIDATE, NOTIFY].map(String::from));
    }

    #[test]
    fn invalid_claims_are_rejected_at_once() {
        let cases = [
            (json!({"Claimant":"Ada","Amount":10}), "ClaimId is missing"),
            (
                json!({"ClaimId":"C-2","Claimant":" ","Amount":10}),
                "Claimant is missing",
            ),
            (
                json!({"ClaimId":"C-2","Claimant":"Ada","Amount":0}),
                "Amount must be greater than 0",
            ),
            (
                json!({"ClaimId":"C-2","Claimant":"Ada"}),
                "Amount must be greater than 0",
            ),
        ];
        for (input, reason) in cases {
            let rt = started(&input);
            let expected =
                json!({"ClaimId": input.get("ClaimId"), "Status":"Rejected","Reason":reason});
            assert_eq!(output(&rt), expected, "{input}");
            assert_eq!(scheduled(&rt, ID), [VALIDATE.to_string()]);
        }
    }

    #[test]
    fn a_late_decision_is_taken_after_escalation() {
        let mut rt = started(&claim());
        rt.advance(half_timeout()).unwrap();
        assert_eq!(stage(&rt), json!({"Stage":"AwaitingApproval"}));

        rt.advance(half_timeout()).unwrap();
        assert_eq!(stage(&rt), json!({"Stage":"Escalated"}));
        assert_eq!(
            scheduled(&rt, ID),
            [VALIDATE, NOTIFY, ESCALATE].map(String::from)
        );

        rt.advance(half_timeout()).unwrap();
        assert_eq!(rt.state(ID).unwrap().status, OrchestrationStatus::Running);
        rt.raise_event(
            ID,
            DECISION_EVENT,
            &json!({"Approved":true,"Approver":"Boss"}),
        )
        .unwrap();
        rt.run_until_idle().unwrap();

        assert_eq!(
            output(&rt),
            json!({"ClaimId":"C-1","Status":"Approved","Approver":"Boss"})
        );
    }

    #[test]
    fn claims_expire_when_nobody_decides_twice() {
        let mut rt = started(&claim());
        rt.advance(settings().claim_approval_timeout).unwrap();
        assert_eq!(stage(&rt), json!({"Stage":"Escalated"}));
        rt.advance(half_timeout()).unwrap();
        // A malformed decision neither ends the wait nor restarts its clock.
        rt.raise_event(ID, DECISION_EVENT, &json!({"Approver":"nobody"}))
            .unwrap();
        rt.advance(half_timeout() - Duration::from_millis(1))
            .unwrap();
        assert_eq!(rt.state(ID).unwrap().status, OrchestrationStatus::Running);

        rt.advance(Duration::from_millis(1)).unwrap();
        assert_eq!(output(&rt), json!({"Status":"Expired"}));
        // A decision after expiry changes nothing.
        assert!(rt
            .raise_event(ID, DECISION_EVENT, &json!({"Approved":true}))
            .is_err());
        assert_eq!(output(&rt), json!({"Status":"Expired"}));
    }
}
