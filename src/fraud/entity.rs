//! `CardActivity`: the entity one card's transactions go to. It counts each transaction once,
//! judges it by the rules, and starts the card's `FraudReview` for the hour of a match, once.

use serde::{Deserialize, Serialize};

use super::review::{review_instance_id, ReviewRequest, ORCHESTRATOR};
use super::rules::{CardActivity, Judged, Transaction};
use durable_engine::{EntityContext, EntityError, RegistryBuilder};

pub const ENTITY: &str = "CardActivity";
/// Counts a transaction (input: the [`Transaction`]).
pub const RECORD: &str = "record";
/// Returns the [`CardState`].
pub const GET: &str = "get";
/// Deletes the card's state.
pub const DELETE: &str = "delete";
/// How many of the card's review ids are remembered (the newest): a card matches at most once
/// an hour, so this is two days of reviews.
const REMEMBERED_REVIEWS: usize = 48;

/// The entity's state, as `GET /api/entities/CardActivity/{CardId}` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CardState {
    #[serde(flatten)]
    pub activity: CardActivity,
    /// The reviews this card's matches started, oldest first.
    #[serde(default)]
    pub reviews: Vec<String>,
}

pub(crate) fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder.entity(ENTITY, card_activity)
}

fn card_activity(ctx: &mut EntityContext) -> Result<(), EntityError> {
    match ctx.operation() {
        RECORD => {
            let transaction: Transaction = ctx.input()?;
            let mut card: CardState = ctx.state_or_default()?;
            record(ctx, &mut card, &transaction)?;
            ctx.set_state(&card)
        }
        GET => {
            let card: CardState = ctx.state_or_default()?;
            ctx.set_result(&card)
        }
        DELETE => {
            ctx.delete_state();
            Ok(())
        }
        other => Err(EntityError::with_type(
            "UnknownOperation",
            format!("CardActivity has no operation '{other}' (record, get, delete)"),
        )),
    }
}

fn record(
    ctx: &mut EntityContext,
    card: &mut CardState,
    transaction: &Transaction,
) -> Result<(), EntityError> {
    let key = ctx.entity_id().key();
    if transaction.card_id != key {
        return Err(EntityError::with_type(
            "WrongCard",
            format!(
                "transaction '{}' is for card '{}', not '{key}'",
                transaction.transaction_id, transaction.card_id
            ),
        ));
    }
    let Judged::Counted { matched, completed } = card.activity.record(transaction) else {
        return Ok(());
    };
    if !matched.is_empty() {
        let request = ReviewRequest {
            card_id: transaction.card_id.clone(),
            transaction_id: transaction.transaction_id.clone(),
            timestamp: transaction.timestamp,
            rules: matched,
        };
        start_review(ctx, card, request)?;
    }
    // A spike judged by what came before it: the late transaction made it one.
    for late in completed {
        let request = ReviewRequest {
            card_id: transaction.card_id.clone(),
            transaction_id: late.transaction_id,
            timestamp: late.timestamp,
            rules: vec![late.rule],
        };
        start_review(ctx, card, request)?;
    }
    Ok(())
}

/// Starts the review of the request's hour unless the card started it already. Started once
/// even past what the card remembers: a start of an id that ever existed is dropped.
fn start_review(
    ctx: &mut EntityContext,
    card: &mut CardState,
    request: ReviewRequest,
) -> Result<(), EntityError> {
    let review = review_instance_id(&request.card_id, request.timestamp);
    if card.reviews.contains(&review) {
        return Ok(());
    }
    ctx.start_orchestration(ORCHESTRATOR, &review, &request)?;
    card.reviews.push(review);
    if card.reviews.len() > REMEMBERED_REVIEWS {
        card.reviews.remove(0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, TimeZone, Utc};
    use durable_engine::{EntityId, OrchestrationStatus};

    use super::*;
    use crate::testing::{custom_status, runtime};

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn tx(id: &str, card: &str, amount: f64, minutes: i64) -> Transaction {
        Transaction {
            transaction_id: id.to_string(),
            card_id: card.to_string(),
            amount,
            currency: "EUR".to_string(),
            country: "NL".to_string(),
            merchant: "Shop".to_string(),
            timestamp: at(minutes),
        }
    }

    #[test]
    fn a_burst_starts_the_hours_review_once_and_duplicates_count_once() {
        let (mut rt, _) = runtime();
        let card = EntityId::new(ENTITY, "card-1").unwrap();
        let burst = [
            tx("a", "card-1", 900.0, 1),
            tx("b", "card-1", 900.0, 2),
            tx("a", "card-1", 900.0, 1),
            tx("c", "card-1", 900.0, 3),
            tx("d", "card-1", 900.0, 4),
        ];
        for transaction in &burst {
            rt.signal_entity(&card, RECORD, transaction).unwrap();
        }
        rt.run_until_idle().unwrap();
        let state: CardState = rt.entity_state(&card).expect("the card has state");
        assert_eq!(state.activity.transactions, 4, "'a' counted once");
        let review = "FraudReview-card-1-2026120210";
        assert_eq!(state.reviews, [review]);
        let reviews: Vec<String> = rt
            .instance_ids()
            .into_iter()
            .filter(|id| id.starts_with("FraudReview-"))
            .collect();
        assert_eq!(reviews, [review], "'c' and 'd' both match; one review");
        assert_eq!(
            rt.state(review).unwrap().status,
            OrchestrationStatus::Running
        );
        assert_eq!(
            custom_status(&rt, review),
            serde_json::json!({"Stage": "AwaitingReview", "Rules": ["HighValueBurst"]})
        );
    }

    #[test]
    fn a_review_ever_started_is_not_started_again_even_once_forgotten() {
        let (mut rt, _) = runtime();
        let card = EntityId::new(ENTITY, "card-2").unwrap();
        for (i, minute) in [1, 2, 3].into_iter().enumerate() {
            rt.signal_entity(
                &card,
                RECORD,
                &tx(&format!("t{i}"), "card-2", 900.0, minute),
            )
            .unwrap();
        }
        rt.run_until_idle().unwrap();
        let review = "FraudReview-card-2-2026120210";
        rt.raise_event(
            review,
            "ReviewDecision",
            &serde_json::json!({"Action": "Block"}),
        )
        .unwrap();
        rt.run_until_idle().unwrap();
        assert_eq!(
            rt.state(review).unwrap().status,
            OrchestrationStatus::Completed
        );
        // The card's state is deleted (it forgets its reviews); the same hour matches again.
        rt.signal_entity(&card, DELETE, &()).unwrap();
        for (i, minute) in [5, 6, 7].into_iter().enumerate() {
            rt.signal_entity(
                &card,
                RECORD,
                &tx(&format!("u{i}"), "card-2", 900.0, minute),
            )
            .unwrap();
        }
        rt.run_until_idle().unwrap();
        let state: CardState = rt.entity_state(&card).unwrap();
        assert_eq!(state.reviews, [review]);
        assert_eq!(
            rt.state(review).unwrap().status,
            OrchestrationStatus::Completed,
            "the ended review is not run over"
        );
    }

    #[test]
    fn a_transaction_for_another_card_or_an_unknown_operation_changes_nothing() {
        let (mut rt, _) = runtime();
        let card = EntityId::new(ENTITY, "card-3").unwrap();
        rt.signal_entity(&card, RECORD, &tx("a", "card-3", 10.0, 1))
            .unwrap();
        rt.signal_entity(&card, RECORD, &tx("b", "card-4", 10.0, 2))
            .unwrap();
        rt.signal_entity(&card, "bogus", &()).unwrap();
        rt.run_until_idle().unwrap();
        let state: CardState = rt.entity_state(&card).unwrap();
        assert_eq!(state.activity.transactions, 1);
    }
}
