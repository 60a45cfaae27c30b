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
