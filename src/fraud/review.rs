//! `FraudReview`: what follows a card's rule match. It holds the card, notifies an analyst, waits
//! for the `ReviewDecision` event, then releases the hold or blocks the card (no decision in time
//! blocks it too). Its activities record what they did in the artifact store, once each.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::rules::Rule;
use crate::decisions::first_well_formed;
use crate::{json_blobs, WorkflowSettings};
use durable_engine::{
    ActivityContext, ActivityError, OrchestrationContext, OrchestrationError, RegistryBuilder,
};
use durable_store::artifacts::ArtifactStore;

pub const ORCHESTRATOR: &str = "FraudReview";
pub const DECISION_EVENT: &str = "ReviewDecision";
const PLACE_HOLD: &str = "PlaceHold";
const NOTIFY: &str = "NotifyAnalyst";
const RELEASE: &str = "ReleaseHold";
const BLOCK: &str = "BlockCard";

/// Where the activities record their work, one blob per review named by its instance id:
/// `PlaceHold` a [`CardAction`], `NotifyAnalyst` a [`Notification`], `ReleaseHold` a
/// [`CardAction`], `BlockCard` a [`Block`].
pub const HOLDS: &str = "fraud/holds/";
pub const NOTIFICATIONS: &str = "fraud/notifications/";
pub const RELEASES: &str = "fraud/releases/";
pub const BLOCKS: &str = "fraud/blocks/";

/// The review's input: the card, the transaction that matched, and the rules it matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReviewRequest {
    pub card_id: String,
    pub transaction_id: String,
    pub timestamp: DateTime<Utc>,
    pub rules: Vec<Rule>,
}

/// The body of `ReviewDecision`: `{"Action":"Release"|"Block"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReviewDecision {
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Release,
    Block,
}

/// Where a review stands, as its custom status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    AwaitingReview,
    Released,
    Blocked,
}

/// The custom status: `{"Stage":…,"Rules":[…]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReviewStatus {
    pub stage: Stage,
    pub rules: Vec<Rule>,
}

/// How the review ended: `{"Decision":"Released"|"Blocked","TimedOut":…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReviewOutcome {
    /// [`Stage::Released`] or [`Stage::Blocked`].
    pub decision: Stage,
    /// No decision came in time, so the card was blocked.
    pub timed_out: bool,
}

/// What `PlaceHold` and `ReleaseHold` act on: the card, for the review that asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CardAction {
    pub card_id: String,
    pub review_id: String,
}

/// What the analyst is told: which card, why, and the review to send `ReviewDecision` to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Notification {
    pub card_id: String,
    pub review_id: String,
    pub transaction_id: String,
    pub rules: Vec<Rule>,
}

/// `BlockCard`'s input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Block {
    pub card_id: String,
    pub review_id: String,
    pub timed_out: bool,
}

/// `FraudReview-{CardId}-{yyyyMMddHH}`, the UTC hour of the matching transaction: one review per
/// card per hour, however many of its transactions match in that hour.
pub fn review_instance_id(card_id: &str, timestamp: DateTime<Utc>) -> String {
    format!("{ORCHESTRATOR}-{card_id}-{}", timestamp.format("%Y%m%d%H"))
}

pub(crate) fn register(
    builder: RegistryBuilder,
    settings: &WorkflowSettings,
    artifacts: &Arc<dyn ArtifactStore>,
) -> RegistryBuilder {
    let timeout = settings.fraud_review_timeout;
    let [holds, notifications, releases, blocks] = [(); 4].map(|()| artifacts.clone());
    builder
        .orchestrator(ORCHESTRATOR, move |ctx, request| {
            fraud_review(ctx, request, timeout)
        })
        .activity(PLACE_HOLD, move |_: ActivityContext, card: CardAction| {
            record(holds.clone(), HOLDS, card.review_id.clone(), card)
        })
        .activity(NOTIFY, move |_: ActivityContext, note: Notification| {
            tracing::info!(
                card_id = note.card_id,
                review_id = note.review_id,
                rules = ?note.rules,
                "analyst asked to review a card"
            );
            record(
                notifications.clone(),
                NOTIFICATIONS,
                note.review_id.clone(),
                note,
            )
        })
        .activity(RELEASE, move |_: ActivityContext, card: CardAction| {
            record(releases.clone(), RELEASES, card.review_id.clone(), card)
        })
        .activity(BLOCK, move |_: ActivityContext, block: Block| {
            record(blocks.clone(), BLOCKS, block.review_id.clone(), block)
        })
}

async fn fraud_review(
    ctx: OrchestrationContext,
    request: ReviewRequest,
    timeout: Duration,
) -> Result<ReviewOutcome, OrchestrationError> {
    let card = CardAction {
        card_id: request.card_id.clone(),
        review_id: ctx.instance_id().to_string(),
    };
    ctx.call_activity::<()>(PLACE_HOLD, &card).await?;
    let notification = Notification {
        card_id: card.card_id.clone(),
        review_id: card.review_id.clone(),
        transaction_id: request.transaction_id.clone(),
        rules: request.rules.clone(),
    };
    ctx.call_activity::<()>(NOTIFY, &notification).await?;
    let status = |stage| ReviewStatus {
        stage,
        rules: request.rules.clone(),
    };
    ctx.set_custom_status(&status(Stage::AwaitingReview))?;
    // An unknown Action is a malformed decision: skipped, and the wait keeps its deadline, so a
    // bad message from a tool cannot end a review nor keep a card on hold for longer.
    let decision = first_well_formed::<ReviewDecision>(&ctx, DECISION_EVENT, timeout).await;
    let outcome = match decision {
        Some(ReviewDecision {
            action: Action::Release,
        }) => {
            ctx.call_activity::<()>(RELEASE, &card).await?;
            ReviewOutcome {
                decision: Stage::Released,
                timed_out: false,
            }
        }
        Some(ReviewDecision {
            action: Action::Block,
        })
        | None => {
            let timed_out = decision.is_none();
            let block = Block {
                card_id: card.card_id,
                review_id: card.review_id,
                timed_out,
            };
            ctx.call_activity::<()>(BLOCK, &block).await?;
            ReviewOutcome {
                decision: Stage::Blocked,
                timed_out,
            }
        }
    };
    ctx.set_custom_status(&status(outcome.decision))?;
    Ok(outcome)
}

/// Records `value` as `{prefix}{review_id}` unless a run of the same step did already, so a
/// redelivered activity changes nothing.
async fn record<T: Serialize + DeserializeOwned>(
    artifacts: Arc<dyn ArtifactStore>,
    prefix: &str,
    review_id: String,
    value: T,
) -> Result<(), ActivityError> {
    json_blobs::put_if_absent(artifacts.as_ref(), &format!("{prefix}{review_id}"), value).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use futures_executor::block_on;
    use serde_json::{json, Value};

    use super::*;
    use crate::testing::{
        completed_output, custom_status, registry_and_store, runtime, scheduled, settings,
    };
    use durable_engine::OrchestrationStatus;
    use durable_runtime::testkit::InMemoryRuntime;
    use durable_store::artifacts::MemoryArtifactStore;

    const ID: &str = "FraudReview-card-7-2026120210";

    fn request() -> Value {
        json!({
            "CardId": "card-7",
            "TransactionId": "t-42",
            "Timestamp": "2026-12-02T10:17:00Z",
            "Rules": ["HighValueBurst", "AmountSpike"],
        })
    }

    fn started() -> (InMemoryRuntime, Arc<MemoryArtifactStore>) {
        let (mut rt, store) = runtime();
        rt.start(ORCHESTRATOR, ID, &request()).unwrap();
        rt.run_until_idle().unwrap();
        (rt, store)
    }

    fn status(rt: &InMemoryRuntime) -> Value {
        custom_status(rt, ID)
    }

    fn output(rt: &InMemoryRuntime) -> Value {
        completed_output(rt, ID)
    }

    fn decide(rt: &mut InMemoryRuntime, action: &str) {
        rt.raise_event(ID, DECISION_EVENT, &json!({ "Action": action }))
            .unwrap();
        rt.run_until_idle().unwrap();
    }

    /// The records under `prefix`, by name.
    fn records(store: &MemoryArtifactStore, prefix: &str) -> Vec<(String, Value)> {
        block_on(store.list(prefix))
            .unwrap()
            .into_iter()
            .map(|name| {
                let bytes = block_on(store.get(&name)).unwrap().unwrap();
                (name, serde_json::from_slice(&bytes).unwrap())
            })
            .collect()
    }

    fn card_record() -> Value {
        json!({"CardId": "card-7", "ReviewId": ID})
    }

    #[test]
    fn the_instance_id_is_the_cards_utc_hour() {
        let at = Utc.with_ymd_and_hms(2026, 3, 9, 7, 59, 59).unwrap();
        assert_eq!(
            review_instance_id("card-1", at),
            "FraudReview-card-1-2026030907"
        );
        let offset: DateTime<Utc> = "2026-12-31T23:30:00-02:00".parse().unwrap();
        assert_eq!(
            review_instance_id("c", offset),
            "FraudReview-c-2027010101",
            "the hour is UTC's"
        );
    }

    #[test]
    fn it_holds_notifies_and_waits_with_the_rules_in_its_status() {
        let (mut rt, store) = started();

        assert_eq!(
            status(&rt),
            json!({"Stage": "AwaitingReview", "Rules": ["HighValueBurst", "AmountSpike"]})
        );
        assert_eq!(rt.state(ID).unwrap().status, OrchestrationStatus::Running);
        assert_eq!(scheduled(&rt, ID), [PLACE_HOLD, NOTIFY].map(String::from));
        assert_eq!(
            records(&store, HOLDS),
            [(format!("{HOLDS}{ID}"), card_record())]
        );
        assert_eq!(
            records(&store, NOTIFICATIONS),
            [(
                format!("{NOTIFICATIONS}{ID}"),
                json!({
                    "CardId": "card-7",
                    "ReviewId": ID,
                    "TransactionId": "t-42",
                    "Rules": ["HighValueBurst", "AmountSpike"],
                })
            )]
        );
        rt.advance(settings().fraud_review_timeout - Duration::from_millis(1))
            .unwrap();
        assert_eq!(rt.state(ID).unwrap().status, OrchestrationStatus::Running);
        assert!(records(&store, BLOCKS).is_empty());
    }

    #[test]
    fn release_lifts_the_hold_and_block_blocks_the_card() {
        let blocked = json!({"CardId": "card-7", "ReviewId": ID, "TimedOut": false});
        let cases = [
            (
                "Release",
                "Released",
                RELEASE,
                RELEASES,
                card_record(),
                BLOCKS,
            ),
            ("Block", "Blocked", BLOCK, BLOCKS, blocked, RELEASES),
        ];
        for (action, decision, activity, recorded, record, untouched) in cases {
            let (mut rt, store) = started();
            decide(&mut rt, action);

            assert_eq!(
                output(&rt),
                json!({"Decision": decision, "TimedOut": false})
            );
            assert_eq!(
                status(&rt),
                json!({"Stage": decision, "Rules": ["HighValueBurst", "AmountSpike"]})
            );
            assert_eq!(
                scheduled(&rt, ID),
                [PLACE_HOLD, NOTIFY, activity].map(String::from)
            );
            assert_eq!(
                records(&store, recorded),
                [(format!("{recorded}{ID}"), record)]
            );
            assert!(records(&store, untouched).is_empty());
        }
    }

    #[test]
    fn no_decision_in_time_blocks_the_card() {
        let (mut rt, store) = started();
        rt.advance(settings().fraud_review_timeout).unwrap();

        assert_eq!(
            output(&rt),
            json!({"Decision": "Blocked", "TimedOut": true})
        );
        assert_eq!(status(&rt)["Stage"], "Blocked");
        assert_eq!(
            records(&store, BLOCKS),
            [(
                format!("{BLOCKS}{ID}"),
                json!({"CardId": "card-7", "ReviewId": ID, "TimedOut": true})
            )]
        );
        // A decision after the block changes nothing.
        assert!(rt
            .raise_event(ID, DECISION_EVENT, &json!({"Action": "Release"}))
            .is_err());
        assert!(records(&store, RELEASES).is_empty());
    }

    #[test]
    fn an_unknown_action_is_ignored_and_the_deadline_stays() {
        let (mut rt, store) = started();
        let half = settings().fraud_review_timeout / 2;
        rt.advance(half).unwrap();
        for body in [
            json!({"Action": "Refund"}),
            json!({"action": "release"}),
            json!("Release"),
        ] {
            rt.raise_event(ID, DECISION_EVENT, &body).unwrap();
            rt.run_until_idle().unwrap();
            assert_eq!(rt.state(ID).unwrap().status, OrchestrationStatus::Running);
            assert_eq!(status(&rt)["Stage"], "AwaitingReview", "{body}");
        }
        rt.advance(half - Duration::from_millis(1)).unwrap();
        assert_eq!(rt.state(ID).unwrap().status, OrchestrationStatus::Running);
        rt.advance(Duration::from_millis(1)).unwrap();
        assert_eq!(
            output(&rt),
            json!({"Decision": "Blocked", "TimedOut": true})
        );
        assert!(records(&store, RELEASES).is_empty());
    }

    #[test]
    fn a_good_decision_after_a_bad_one_is_taken() {
        let (mut rt, _) = started();
        decide(&mut rt, "Hold");
        decide(&mut rt, "Release");
        assert_eq!(
            output(&rt),
            json!({"Decision": "Released", "TimedOut": false})
        );
    }

    #[test]
    fn a_redelivered_step_records_once() {
        let (registry, store) = registry_and_store();
        let run = |name: &str, task_id: i32, input: &Value| {
            let ctx = ActivityContext {
                instance_id: ID.to_string(),
                execution_id: "e".to_string(),
                task_id,
                name: name.to_string(),
            };
            let running = registry
                .start_activity(ctx, Some(input.to_string()))
                .unwrap();
            block_on(running).unwrap();
        };
        let block = |timed_out| json!({"CardId": "card-7", "ReviewId": ID, "TimedOut": timed_out});
        run(PLACE_HOLD, 1, &card_record());
        run(PLACE_HOLD, 1, &card_record());
        run(BLOCK, 4, &block(true));
        // A second run that (wrongly) differs still leaves the first record in place.
        run(BLOCK, 4, &block(false));
        assert_eq!(
            records(&store, HOLDS),
            [(format!("{HOLDS}{ID}"), card_record())]
        );
        assert_eq!(
            records(&store, BLOCKS),
            [(format!("{BLOCKS}{ID}"), block(true))]
        );
    }
}
