//! Real-time fraud detection on card transactions (issue 19): the rules a card's activity is
//! judged by. The `CardActivity` entity and the `FraudReview` orchestration build on them.

pub mod rules;
