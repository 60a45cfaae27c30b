//! Sync processing: the `MySyncItem` the timer and queue Functions exchange, the instance id
//! each item runs under, and `MainWorkflow` with its activities `WorkflowItem1`/`WorkflowItem2`.

pub mod functions;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::{simulate_work, WorkflowSettings};
use durable_engine::{
    ActivityContext, ActivityError, OrchestrationContext, OrchestrationError, RegistryBuilder,
    RetryPolicy,
};

pub const MAIN_WORKFLOW: &str = "MainWorkflow";
const WORKFLOW_ITEM_1: &str = "WorkflowItem1";
const WORKFLOW_ITEM_2: &str = "WorkflowItem2";
/// The sync every timer run asks for.
const SYNC_NAME: &str = "MySync";
/// Attempts `WorkflowItem1` gets, the first included, and the growth of the wait between them.
const ITEM_1_ATTEMPTS: u32 = 3;
const ITEM_1_BACKOFF: f64 = 2.0;

/// One unit of sync work, as it travels on `output-queue`:
/// `{"Id":1,"SyncName":"…","TriggerDateUtc":"<RFC 3339 UTC>"}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct MySyncItem {
    pub id: i64,
    pub sync_name: String,
    pub trigger_date_utc: DateTime<Utc>,
}

/// The two items a timer run at `now` queues. The trigger time is cut to whole seconds: the
/// instance id only carries seconds, and the item should say exactly the time its id names.
pub fn timer_items(now: DateTime<Utc>) -> [MySyncItem; 2] {
    let trigger_date_utc = now.trunc_subsecs(0);
    [1, 2].map(|id| MySyncItem {
        id,
        sync_name: SYNC_NAME.to_string(),
        trigger_date_utc,
    })
}

/// `Workflow-{Id}-{SyncName}-{yyyyMMddHHmmss}`: the same item always maps to the same instance,
/// so a redelivered queue message cannot start the work twice.
pub fn instance_id(item: &MySyncItem) -> String {
    format!(
        "Workflow-{}-{}-{}",
        item.id,
        item.sync_name,
        item.trigger_date_utc.format("%Y%m%d%H%M%S")
    )
}

pub(super) fn register(builder: RegistryBuilder, settings: &WorkflowSettings) -> RegistryBuilder {
    let retry = RetryPolicy::new(ITEM_1_ATTEMPTS, settings.sync_retry_first_interval)
        .with_backoff_coefficient(ITEM_1_BACKOFF);
    let work = settings.sync_work_delay;
    builder
        .orchestrator(MAIN_WORKFLOW, move |ctx, item| {
            main_workflow(ctx, item, retry.clone())
        })
        .activity(WORKFLOW_ITEM_1, move |_: ActivityContext, item| {
            workflow_item_1(item, work)
        })
        .activity(WORKFLOW_ITEM_2, move |_: ActivityContext, item| {
            workflow_item_2(item, work)
        })
}

async fn main_workflow(
    ctx: OrchestrationContext,
    item: MySyncItem,
    retry: RetryPolicy,
) -> Result<String, OrchestrationError> {
    if !ctx.is_replaying() {
        tracing::info!(
            instance_id = ctx.instance_id(),
            item.id,
            item.sync_name,
            "MainWorkflow started"
        );
    }
    let first: String = ctx
        .call_activity_with_retry(WORKFLOW_ITEM_1, &item, &retry)
        .await?;
    let second: String = ctx.call_activity(WORKFLOW_ITEM_2, &item).await?;
    if !ctx.is_replaying() {
        tracing::info!(
            instance_id = ctx.instance_id(),
            item.id,
            item.sync_name,
            "MainWorkflow completed"
        );
    }
    Ok(format!("{first}; {second}"))
}

async fn workflow_item_1(item: MySyncItem, work: Duration) -> Result<String, ActivityError> {
    simulate_work(work).await;
    // Item 2 stands for a sync whose first step always breaks, to show retries running out.
    if item.id == 2 {
        return Err(ActivityError::new(format!(
            "{WORKFLOW_ITEM_1} cannot process item {} of {}",
            item.id, item.sync_name
        )));
    }
    Ok(format!(
        "{WORKFLOW_ITEM_1} processed item {} of {}",
        item.id, item.sync_name
    ))
}

async fn workflow_item_2(item: MySyncItem, work: Duration) -> Result<String, ActivityError> {
    simulate_work(work).await;
    Ok(format!(
        "{WORKFLOW_ITEM_2} processed item {} of {}",
        item.id, item.sync_name
    ))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::testing::runtime;
    use durable_engine::OrchestrationStatus;

    fn item(id: i64) -> MySyncItem {
        MySyncItem {
            id,
            sync_name: "Nightly".to_string(),
            trigger_date_utc: Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap(),
        }
    }

    #[test]
    fn item_json_has_the_contract_shape() {
        let json = serde_json::to_value(item(1)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"Id":1,"SyncName":"Nightly","TriggerDateUtc":"2026-03-04T05:06:07Z"})
        );
        let back: MySyncItem = serde_json::from_str(
            r#"{"Id":2,"SyncName":"Nightly","TriggerDateUtc":"2026-03-04T06:06:07+01:00"}"#,
        )
        .unwrap();
        assert_eq!(back, item(2));
    }

    #[test]
    fn instance_ids_name_item_sync_and_second() {
        assert_eq!(instance_id(&item(1)), "Workflow-1-Nightly-20260304050607");
        assert_eq!(instance_id(&item(2)), "Workflow-2-Nightly-20260304050607");
    }

    #[test]
    fn a_timer_run_queues_items_1_and_2_for_the_same_second() {
        let now = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap()
            + chrono::Duration::milliseconds(345);
        let [first, second] = timer_items(now);
        assert_eq!((first.id, second.id), (1, 2));
        assert_eq!(first.sync_name, second.sync_name);
        assert_eq!(first.trigger_date_utc, second.trigger_date_utc);
        assert_eq!(
            first.trigger_date_utc,
            Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap()
        );
        assert_eq!(
            instance_id(&first),
            format!("Workflow-1-{SYNC_NAME}-20260304050607")
        );
    }

    #[test]
    fn item_1_runs_both_steps() {
        let (mut rt, _) = runtime();
        let id = instance_id(&item(1));
        rt.start(MAIN_WORKFLOW, &id, &item(1)).unwrap();
        rt.run_to_completion(Duration::from_secs(3600)).unwrap();

        let state = rt.state(&id).unwrap();
        assert_eq!(state.status, OrchestrationStatus::Completed);
        let output: String = state.output_as().unwrap();
        assert_eq!(
            output,
            "WorkflowItem1 processed item 1 of Nightly; WorkflowItem2 processed item 1 of Nightly"
        );
    }

    #[test]
    fn item_2_fails_after_three_attempts_of_item_1() {
        let (mut rt, _) = runtime();
        let id = instance_id(&item(2));
        rt.start(MAIN_WORKFLOW, &id, &item(2)).unwrap();
        rt.run_to_completion(Duration::from_secs(3600)).unwrap();

        let state = rt.state(&id).unwrap();
        assert_eq!(state.status, OrchestrationStatus::Failed);
        let failure = state.failure.as_ref().unwrap();
        assert_eq!(
            failure.error_message,
            "activity 'WorkflowItem1' failed after 3 attempts: \
             WorkflowItem1 cannot process item 2 of Nightly"
        );
        let scheduled: Vec<String> = crate::testing::scheduled(&rt, &id);
        assert_eq!(scheduled, ["WorkflowItem1"; 3]);
    }
}
