//! Generated streams of card transactions, as the `transactions` queue would carry them: normal
//! traffic that matches no rule, patterns planted on chosen cards, and the noise of a real queue
//! (duplicates, out-of-order arrival, malformed lines); and [`parse_transaction`], the check a
//! queue message passes before it counts.

use std::collections::BTreeSet;

use chrono::{DateTime, DurationRound, TimeDelta, TimeZone, Utc};
use serde_json::{json, Value};

use super::review::review_instance_id;
use super::rules::{Rule, Transaction, BURST_COUNT, SPIKE_AFTER};
use crate::splitmix::SplitMix64;
use durable_store::names::{InstanceId, InstanceIdError};

/// A card with a spike needs [`SPIKE_AFTER`] transactions before it, and the spike itself.
pub const MIN_TRANSACTIONS_PER_CARD: usize = SPIKE_AFTER as usize + 1;
/// Normal traffic: one transaction every 20 to 40 minutes...
const GAP_MINUTES: (u64, u64) = (20, 40);
/// ...of an amount within 20 % of the card's average, itself 20 to 150: far from every rule.
const AVERAGE: (u64, u64) = (20, 150);
const SPREAD: f64 = 0.2;
/// A spike is this many times the card's average, over any running average normal traffic
/// can reach (the spike factor times `1 + SPREAD`).
const SPIKE_TIMES_AVERAGE: f64 = 30.0;
/// A transaction sent late arrives this many to this many plus 3 of its card's later
/// transactions after its place; a duplicate up to 3 after the original.
const LATE_BY: f64 = 1.5;
const PLANTED_RULES: [Rule; 3] = [Rule::HighValueBurst, Rule::TwoCountries, Rule::AmountSpike];
/// (country, currency): a card's home country is one of these, a foreign one another.
const COUNTRIES: [(&str, &str); 8] = [
    ("NL", "EUR"),
    ("BE", "EUR"),
    ("DE", "EUR"),
    ("FR", "EUR"),
    ("GB", "GBP"),
    ("SE", "SEK"),
    ("PL", "PLN"),
    ("ES", "EUR"),
];
const MERCHANTS: [&str; 6] = ["Bakery", "Grocer", "Bookshop", "Pharmacy", "Cafe", "Fuel"];

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamOptions {
    pub cards: usize,
    /// Distinct transactions of every card, planted ones included: what its activity counts.
    pub transactions_per_card: usize,
    /// Cards with a planted pattern, chosen by the seed; the patterns go round the three rules,
    /// so each rule is planted once there are three planted cards.
    pub planted: usize,
    /// Share (0 to 1) of transactions sent twice.
    pub duplicate_share: f64,
    /// Share (0 to 1) of transactions that arrive after some of their card's later ones.
    pub out_of_order_share: f64,
    /// Malformed lines mixed in, each refused by [`parse_transaction`].
    pub malformed: usize,
    pub seed: u64,
    /// Cards start within the hour from here.
    pub start: DateTime<Utc>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            cards: 100,
            transactions_per_card: 20,
            planted: 6,
            duplicate_share: 0.05,
            out_of_order_share: 0.2,
            malformed: 10,
            seed: 19,
            start: Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap(),
        }
    }
}

/// Options no stream can be made from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamOptionsError {
    #[error("a card needs at least {MIN_TRANSACTIONS_PER_CARD} transactions, not {0}")]
    TooFewTransactions(usize),
    #[error("{planted} planted cards are more than the {cards} cards")]
    TooManyPlanted { planted: usize, cards: usize },
    #[error("{name} must be a share from 0 to 1, not {value}")]
    Share { name: &'static str, value: f64 },
    #[error("the stream starting at {0} would run past the last representable time")]
    Start(DateTime<Utc>),
}

/// A generated stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Queue message texts in arrival order. Within a card, a planted spike arrives last, after
    /// the transactions it needs before it; a duplicate arrives after its original.
    pub messages: Vec<String>,
    /// The cards with a planted pattern; no other card matches any rule in any arrival order.
    pub planted: BTreeSet<String>,
    /// The `FraudReview` instance each planted card starts: all of a card's matches fall in one
    /// UTC hour, whatever the order its transactions are judged in.
    pub reviews: BTreeSet<String>,
}

/// Why a queue message is not a transaction that can count.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MalformedTransaction {
    /// Not JSON, or a field missing or of the wrong type.
    #[error("not a transaction: {0}")]
    NotATransaction(String),
    #[error("{0} is empty")]
    Blank(&'static str),
    #[error("Amount must be a finite number greater than 0, not {0}")]
    Amount(f64),
    #[error("CardId '{card_id}' cannot name a review: {reason}")]
    CardId {
        card_id: String,
        reason: InstanceIdError,
    },
}

/// The transaction a queue message holds, checked: ids, card, currency and country not blank,
/// a finite positive amount, a timestamp, and a card id that can name its review instance.
pub fn parse_transaction(text: &str) -> Result<Transaction, MalformedTransaction> {
    let transaction: Transaction = serde_json::from_str(text)
        .map_err(|error| MalformedTransaction::NotATransaction(error.to_string()))?;
    let fields = [
        ("TransactionId", &transaction.transaction_id),
        ("CardId", &transaction.card_id),
        ("Currency", &transaction.currency),
        ("Country", &transaction.country),
    ];
    if let Some((name, _)) = fields.iter().find(|(_, value)| value.trim().is_empty()) {
        return Err(MalformedTransaction::Blank(name));
    }
    if !(transaction.amount.is_finite() && transaction.amount > 0.0) {
        return Err(MalformedTransaction::Amount(transaction.amount));
    }
    let review = review_instance_id(&transaction.card_id, transaction.timestamp);
    if let Err(reason) = InstanceId::parse(&review) {
        return Err(MalformedTransaction::CardId {
            card_id: transaction.card_id,
            reason,
        });
    }
    Ok(transaction)
}

/// The stream `options` describe; the same options give the same stream.
pub fn generate(options: &StreamOptions) -> Result<Stream, StreamOptionsError> {
    let first_hour = check(options)?;
    let mut rng = SplitMix64::new(options.seed);
    let mut planted_indices: Vec<usize> = (0..options.cards).collect();
    // A partial Fisher-Yates shuffle: the first `planted` are a uniform choice.
    for i in 0..options.planted {
        let j = i + rng.below((options.cards - i) as u64) as usize;
        planted_indices.swap(i, j);
    }
    planted_indices.truncate(options.planted);
    planted_indices.sort_unstable();

    let mut planted = BTreeSet::new();
    let mut reviews = BTreeSet::new();
    let mut per_card = Vec::with_capacity(options.cards);
    for index in 0..options.cards {
        let pattern = planted_indices
            .binary_search(&index)
            .ok()
            .map(|nth| PLANTED_RULES[nth % PLANTED_RULES.len()]);
        let card = Card::new(index, &mut rng);
        let (timeline, review_hour) = card.timeline(options, first_hour, pattern, &mut rng);
        if let Some(hour) = review_hour {
            reviews.insert(review_instance_id(&card.id, hour));
            planted.insert(card.id.clone());
        }
        per_card.push(arrival_order(timeline, options, &mut rng));
    }
    let merged = interleave(per_card, &mut rng);
    let messages = with_malformed(merged, options, &mut rng);
    Ok(Stream {
        messages,
        planted,
        reviews,
    })
}

/// The options checked, and the hour the stream starts in.
fn check(options: &StreamOptions) -> Result<DateTime<Utc>, StreamOptionsError> {
    if options.transactions_per_card < MIN_TRANSACTIONS_PER_CARD {
        return Err(StreamOptionsError::TooFewTransactions(
            options.transactions_per_card,
        ));
    }
    if options.planted > options.cards {
        return Err(StreamOptionsError::TooManyPlanted {
            planted: options.planted,
            cards: options.cards,
        });
    }
    for (name, value) in [
        ("duplicate_share", options.duplicate_share),
        ("out_of_order_share", options.out_of_order_share),
    ] {
        if !(0.0..=1.0).contains(&value) {
            return Err(StreamOptionsError::Share { name, value });
        }
    }
    // Every time the stream uses is before this bound, so adding offsets below it cannot overflow.
    let longest = (options.transactions_per_card as u64 * GAP_MINUTES.1 + 5 * 60) as i64;
    options
        .start
        .duration_trunc(TimeDelta::hours(1))
        .ok()
        .filter(|hour| {
            hour.checked_add_signed(TimeDelta::minutes(longest))
                .is_some()
        })
        .ok_or(StreamOptionsError::Start(options.start))
}

struct Card {
    id: String,
    index: usize,
    home: (&'static str, &'static str),
    average: f64,
}

impl Card {
    fn new(index: usize, rng: &mut SplitMix64) -> Self {
        let home = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
        let average = (AVERAGE.0 + rng.below(AVERAGE.1 - AVERAGE.0 + 1)) as f64;
        Self {
            id: format!("card-{index:05}"),
            index,
            home,
            average,
        }
    }

    /// The card's transaction messages in timestamp order, and the hour of its planted pattern. Normal
    /// traffic comes first; the pattern sits in a whole hour starting at least an hour after it,
    /// so a foreign country matches only the planted home transaction and every match of the
    /// card falls in that hour.
    fn timeline(
        &self,
        options: &StreamOptions,
        first_hour: DateTime<Utc>,
        pattern: Option<Rule>,
        rng: &mut SplitMix64,
    ) -> (Vec<String>, Option<DateTime<Utc>>) {
        let pattern_len = match pattern {
            None => 0,
            Some(Rule::HighValueBurst) => BURST_COUNT,
            Some(Rule::TwoCountries) => 2,
            Some(Rule::AmountSpike) => 1,
        };
        let mut minute = rng.below(60) as i64;
        let mut timeline = Vec::with_capacity(options.transactions_per_card);
        for _ in 0..options.transactions_per_card - pattern_len {
            let at = first_hour + TimeDelta::minutes(minute);
            let amount = self.average * (1.0 - SPREAD + 2.0 * SPREAD * rng.unit());
            timeline.push(self.transaction(timeline.len(), at, amount, self.home, rng));
            minute += (GAP_MINUTES.0 + rng.below(GAP_MINUTES.1 - GAP_MINUTES.0 + 1)) as i64;
        }
        let Some(rule) = pattern else {
            return (timeline, None);
        };
        // A whole hour starting over an hour after the last normal transaction.
        let hour_minute = (minute + 60).div_euclid(60) * 60 + 60;
        let hour = first_hour + TimeDelta::minutes(hour_minute);
        let in_hour = |offset: i64| hour + TimeDelta::minutes(offset);
        let planted: Vec<(DateTime<Utc>, f64, (&str, &str))> = match rule {
            Rule::HighValueBurst => [10, 13, 17]
                .into_iter()
                .map(|offset| {
                    let amount = 600.0 + rng.below(300) as f64;
                    (in_hour(offset + rng.below(3) as i64), amount, self.home)
                })
                .collect(),
            Rule::TwoCountries => {
                let foreign = loop {
                    let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
                    if country.0 != self.home.0 {
                        break country;
                    }
                };
                vec![
                    (in_hour(10), self.average, self.home),
                    (in_hour(40), self.average, foreign),
                ]
            }
            Rule::AmountSpike => vec![(in_hour(30), self.average * SPIKE_TIMES_AVERAGE, self.home)],
        };
        for (at, amount, country) in planted {
            timeline.push(self.transaction(timeline.len(), at, amount, country, rng));
        }
        (timeline, Some(hour))
    }

    fn transaction(
        &self,
        number: usize,
        at: DateTime<Utc>,
        amount: f64,
        (country, currency): (&str, &str),
        rng: &mut SplitMix64,
    ) -> String {
        let transaction = Transaction {
            transaction_id: format!("tx-{:05}-{number:04}", self.index),
            card_id: self.id.clone(),
            amount: (amount * 100.0).round() / 100.0,
            currency: currency.to_string(),
            country: country.to_string(),
            merchant: MERCHANTS[rng.below(MERCHANTS.len() as u64) as usize].to_string(),
            timestamp: at,
        };
        serde_json::to_string(&transaction).expect("a transaction serializes")
    }
}

/// A card's messages in arrival order: some late, some twice. The last transaction of the
/// timeline (a planted spike, if any) stays last, so it always has the transactions before it
/// that it needs to count as a spike.
fn arrival_order(
    timeline: Vec<String>,
    options: &StreamOptions,
    rng: &mut SplitMix64,
) -> Vec<String> {
    let last = timeline.len() - 1;
    let mut keyed: Vec<(f64, String)> = Vec::with_capacity(timeline.len());
    for (position, text) in timeline.into_iter().enumerate() {
        let mut key = position as f64;
        if position == last {
            key = f64::MAX;
        } else if rng.unit() < options.out_of_order_share {
            key += LATE_BY + rng.below(4) as f64;
        }
        let duplicate = rng.unit() < options.duplicate_share;
        keyed.push((key, text.clone()));
        if duplicate {
            keyed.push((key + 0.25 + rng.below(3) as f64, text));
        }
    }
    // Stable: at equal keys (the last transaction and its duplicate) the original comes first.
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    keyed.into_iter().map(|(_, text)| text).collect()
}

/// The cards' messages merged at random, each card's in its own order.
fn interleave(per_card: Vec<Vec<String>>, rng: &mut SplitMix64) -> Vec<String> {
    let total = per_card.iter().map(Vec::len).sum();
    let mut active: Vec<std::vec::IntoIter<String>> =
        per_card.into_iter().map(Vec::into_iter).collect();
    let mut merged = Vec::with_capacity(total);
    while !active.is_empty() {
        let pick = rng.below(active.len() as u64) as usize;
        match active[pick].next() {
            Some(text) => merged.push(text),
            None => {
                active.swap_remove(pick);
            }
        }
    }
    merged
}

/// `messages` with `options.malformed` malformed lines at random places, going round the kinds
/// a queue gets: not JSON, a field missing, a negative amount, an empty card id.
fn with_malformed(
    messages: Vec<String>,
    options: &StreamOptions,
    rng: &mut SplitMix64,
) -> Vec<String> {
    let mut places: Vec<usize> = (0..options.malformed)
        .map(|_| rng.below(messages.len() as u64 + 1) as usize)
        .collect();
    places.sort_unstable();
    let mut out = Vec::with_capacity(messages.len() + places.len());
    let mut places = places.into_iter().enumerate().peekable();
    for (position, message) in messages.into_iter().enumerate() {
        while let Some((number, _)) = places.next_if(|(_, place)| *place == position) {
            out.push(malformed(number, options, rng));
        }
        out.push(message);
    }
    out.extend(places.map(|(number, _)| malformed(number, options, rng)));
    out
}

/// The `number`th malformed line: about a real card, so counting it would show.
fn malformed(number: usize, options: &StreamOptions, rng: &mut SplitMix64) -> String {
    let card = rng.below(options.cards.max(1) as u64);
    let mut body: Value = json!({
        "TransactionId": format!("bad-{number:05}"),
        "CardId": format!("card-{card:05}"),
        "Amount": 25.0,
        "Currency": "EUR",
        "Country": "NL",
        "Merchant": "Bakery",
        "Timestamp": options.start,
    });
    match number % 4 {
        0 => {
            let text = body.to_string();
            text[..text.len() / 2].to_string()
        }
        1 => {
            body.as_object_mut().expect("an object").remove("Timestamp");
            body.to_string()
        }
        2 => {
            body["Amount"] = json!(-25.0);
            body.to_string()
        }
        _ => {
            body["CardId"] = json!("");
            body.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::fraud::rules::{CardActivity, Judged, HIGH_VALUE};

    fn good() -> Value {
        json!({"TransactionId":"t-1","CardId":"c-9","Amount":12.5,"Currency":"EUR",
            "Country":"NL","Merchant":"Bakery","Timestamp":"2026-12-02T10:00:00Z"})
    }

    fn with(field: &str, value: Value) -> String {
        let mut body = good();
        body[field] = value;
        body.to_string()
    }

    #[test]
    fn a_good_transaction_parses() {
        let transaction = parse_transaction(&good().to_string()).unwrap();
        assert_eq!(transaction.card_id, "c-9");
        assert_eq!(transaction.amount, 12.5);
    }

    #[test]
    fn each_malformed_kind_says_why() {
        let mut missing = good();
        missing.as_object_mut().unwrap().remove("Timestamp");
        let not_json = parse_transaction("{\"TransactionId\":").unwrap_err();
        assert!(
            matches!(not_json, MalformedTransaction::NotATransaction(_)),
            "{not_json}"
        );
        let reason = parse_transaction(&missing.to_string())
            .unwrap_err()
            .to_string();
        assert!(reason.contains("missing field `Timestamp`"), "{reason}");
        let reason = parse_transaction(&with("Amount", json!("12")))
            .unwrap_err()
            .to_string();
        assert!(
            reason.starts_with("not a transaction: invalid type"),
            "{reason}"
        );
        for field in ["TransactionId", "CardId", "Currency", "Country"] {
            assert_eq!(
                parse_transaction(&with(field, json!(" "))),
                Err(MalformedTransaction::Blank(field)),
            );
        }
        for amount in [-25.0, 0.0] {
            let error = parse_transaction(&with("Amount", json!(amount))).unwrap_err();
            assert_eq!(error, MalformedTransaction::Amount(amount));
            assert!(error
                .to_string()
                .starts_with("Amount must be a finite number"));
        }
        let error = parse_transaction(&with("CardId", json!("c/9"))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "CardId 'c/9' cannot name a review: instance id contains the forbidden \
             character '/' at index 13"
        );
        let long = "c".repeat(250);
        assert!(matches!(
            parse_transaction(&with("CardId", json!(long))),
            Err(MalformedTransaction::CardId { .. })
        ));
        // An empty merchant is allowed: some terminals send none.
        assert!(parse_transaction(&with("Merchant", json!(""))).is_ok());
    }

    /// What judging the stream in arrival order finds: each card's activity, the review ids of
    /// its matches, the rules matched, and the lines refused.
    struct Judgement {
        cards: BTreeMap<String, CardActivity>,
        reviews: BTreeMap<String, BTreeSet<String>>,
        rules: BTreeSet<Rule>,
        refused: Vec<MalformedTransaction>,
    }

    fn judge<'a>(messages: impl IntoIterator<Item = &'a String>) -> Judgement {
        let mut judgement = Judgement {
            cards: BTreeMap::new(),
            reviews: BTreeMap::new(),
            rules: BTreeSet::new(),
            refused: Vec::new(),
        };
        for text in messages {
            let transaction = match parse_transaction(text) {
                Ok(transaction) => transaction,
                Err(reason) => {
                    judgement.refused.push(reason);
                    continue;
                }
            };
            let card = judgement
                .cards
                .entry(transaction.card_id.clone())
                .or_default();
            if let Judged::Counted { matched, completed } = card.record(&transaction) {
                let reviews = judgement
                    .reviews
                    .entry(transaction.card_id.clone())
                    .or_default();
                if !matched.is_empty() {
                    reviews.insert(review_instance_id(
                        &transaction.card_id,
                        transaction.timestamp,
                    ));
                    judgement.rules.extend(matched);
                }
                for late in completed {
                    reviews.insert(review_instance_id(&transaction.card_id, late.timestamp));
                    judgement.rules.insert(late.rule);
                }
                if reviews.is_empty() {
                    judgement.reviews.remove(&transaction.card_id);
                }
            }
        }
        judgement
    }

    #[test]
    fn exactly_the_planted_cards_match_and_each_once_an_hour() {
        let noisy = StreamOptions {
            cards: 40,
            transactions_per_card: MIN_TRANSACTIONS_PER_CARD,
            planted: 12,
            duplicate_share: 0.5,
            out_of_order_share: 0.8,
            ..StreamOptions::default()
        };
        let seeds = (0..20).map(|seed| StreamOptions {
            seed,
            ..noisy.clone()
        });
        for options in std::iter::once(StreamOptions::default()).chain(seeds) {
            let stream = generate(&options).unwrap();
            let judgement = judge(&stream.messages);

            assert_eq!(stream.planted.len(), options.planted);
            let matched: BTreeSet<String> = judgement.reviews.keys().cloned().collect();
            assert_eq!(matched, stream.planted, "seed {}", options.seed);
            for reviews in judgement.reviews.values() {
                assert_eq!(reviews.len(), 1, "{reviews:?}");
            }
            let reviews: BTreeSet<String> = judgement.reviews.values().flatten().cloned().collect();
            assert_eq!(reviews, stream.reviews);
            assert_eq!(judgement.rules, BTreeSet::from(PLANTED_RULES));
            assert_eq!(judgement.cards.len(), options.cards);
            for (card, activity) in &judgement.cards {
                assert_eq!(
                    activity.transactions, options.transactions_per_card as u64,
                    "{card}"
                );
            }
            assert_eq!(judgement.refused.len(), options.malformed);
        }
    }

    #[test]
    fn normal_traffic_is_small_local_and_steady() {
        let stream = generate(&StreamOptions::default()).unwrap();
        let mut cards: BTreeMap<String, Vec<Transaction>> = BTreeMap::new();
        for transaction in stream
            .messages
            .iter()
            .filter_map(|text| parse_transaction(text).ok())
        {
            cards
                .entry(transaction.card_id.clone())
                .or_default()
                .push(transaction);
        }
        for (card, transactions) in cards.iter().filter(|(id, _)| !stream.planted.contains(*id)) {
            let countries: BTreeSet<&str> =
                transactions.iter().map(|t| t.country.as_str()).collect();
            assert_eq!(countries.len(), 1, "{card}");
            let amounts = transactions.iter().map(|t| t.amount);
            let (low, high) = amounts.fold((f64::MAX, 0.0_f64), |(low, high), amount| {
                (low.min(amount), high.max(amount))
            });
            assert!(high < HIGH_VALUE, "{card}: {high}");
            assert!(high <= low * 1.5 + 0.01, "{card}: {low} to {high}");
        }
    }

    #[test]
    fn planted_matches_do_not_depend_on_arrival_order() {
        let stream = generate(&StreamOptions {
            cards: 30,
            planted: 30,
            ..StreamOptions::default()
        })
        .unwrap();
        let mut by_time: Vec<(DateTime<Utc>, &String)> = stream
            .messages
            .iter()
            .filter_map(|text| parse_transaction(text).ok().map(|t| (t.timestamp, text)))
            .collect();
        by_time.sort_by_key(|(at, _)| *at);
        let in_time_order = judge(by_time.iter().map(|(_, text)| *text));
        // Newest first, but each card's newest (a spike) still last: a spike needs five before it.
        let newest: BTreeMap<String, &String> = by_time
            .iter()
            .map(|(_, text)| (parse_transaction(text).unwrap().card_id, *text))
            .collect();
        let newest_texts: BTreeSet<&String> = newest.values().copied().collect();
        let reversed = by_time
            .iter()
            .rev()
            .map(|(_, text)| *text)
            .filter(|text| !newest_texts.contains(text))
            .chain(newest.values().copied());
        let in_reverse_order = judge(reversed);
        for judgement in [in_time_order, in_reverse_order] {
            let reviews: BTreeSet<String> = judgement.reviews.values().flatten().cloned().collect();
            assert_eq!(reviews, stream.reviews);
        }
    }

    #[test]
    fn duplicates_and_late_arrivals_are_there() {
        let options = StreamOptions {
            duplicate_share: 0.3,
            out_of_order_share: 0.5,
            malformed: 0,
            ..StreamOptions::default()
        };
        let stream = generate(&options).unwrap();
        let distinct = options.cards * options.transactions_per_card;
        let duplicates = stream.messages.len() - distinct;
        assert!(
            (distinct / 5..distinct * 2 / 5).contains(&duplicates),
            "{duplicates}"
        );
        let unique: BTreeSet<&String> = stream.messages.iter().collect();
        assert_eq!(unique.len(), distinct);
        assert!(cards_out_of_order(&stream) > options.cards / 2);

        let in_order = generate(&StreamOptions {
            duplicate_share: 0.0,
            out_of_order_share: 0.0,
            ..options
        })
        .unwrap();
        assert_eq!(in_order.messages.len(), distinct);
        assert_eq!(cards_out_of_order(&in_order), 0);
    }

    /// Cards whose messages arrive out of timestamp order.
    fn cards_out_of_order(stream: &Stream) -> usize {
        let mut last: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        let mut late = BTreeSet::new();
        for transaction in stream
            .messages
            .iter()
            .filter_map(|text| parse_transaction(text).ok())
        {
            let previous = last
                .insert(transaction.card_id.clone(), transaction.timestamp)
                .unwrap_or(transaction.timestamp);
            if transaction.timestamp < previous {
                late.insert(transaction.card_id);
            }
        }
        late.len()
    }

    #[test]
    fn every_malformed_kind_is_mixed_in_and_refused() {
        let stream = generate(&StreamOptions {
            malformed: 8,
            ..StreamOptions::default()
        })
        .unwrap();
        let refused = judge(&stream.messages).refused;
        assert_eq!(refused.len(), 8);
        let kinds: BTreeSet<&str> = refused.iter().map(kind).collect();
        assert_eq!(
            kinds,
            BTreeSet::from(["amount", "blank", "missing field", "not JSON"]),
            "{refused:?}"
        );
    }

    fn kind(reason: &MalformedTransaction) -> &'static str {
        match reason {
            MalformedTransaction::NotATransaction(text) if text.contains("missing field") => {
                "missing field"
            }
            MalformedTransaction::NotATransaction(_) => "not JSON",
            MalformedTransaction::Blank(_) => "blank",
            MalformedTransaction::Amount(_) => "amount",
            MalformedTransaction::CardId { .. } => "card id",
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let options = StreamOptions::default();
        assert_eq!(generate(&options).unwrap(), generate(&options).unwrap());
        let other = generate(&StreamOptions {
            seed: 20,
            ..options
        })
        .unwrap();
        assert_ne!(
            other.messages,
            generate(&StreamOptions::default()).unwrap().messages
        );
    }

    #[test]
    fn unusable_options_are_refused() {
        let base = StreamOptions::default();
        let cases = [
            (
                StreamOptions {
                    transactions_per_card: 5,
                    ..base.clone()
                },
                "a card needs at least 6 transactions, not 5",
            ),
            (
                StreamOptions {
                    cards: 2,
                    planted: 3,
                    ..base.clone()
                },
                "3 planted cards are more than the 2 cards",
            ),
            (
                StreamOptions {
                    duplicate_share: 1.5,
                    ..base.clone()
                },
                "duplicate_share must be a share from 0 to 1, not 1.5",
            ),
            (
                StreamOptions {
                    out_of_order_share: f64::NAN,
                    ..base.clone()
                },
                "out_of_order_share must be a share from 0 to 1, not NaN",
            ),
            (
                StreamOptions {
                    start: DateTime::<Utc>::MAX_UTC,
                    ..base
                },
                "the stream starting at +262142-12-31 23:59:59.999999999 UTC would run past \
                 the last representable time",
            ),
        ];
        for (options, message) in cases {
            assert_eq!(generate(&options).unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn an_empty_stream_is_fine() {
        let stream = generate(&StreamOptions {
            cards: 0,
            planted: 0,
            malformed: 3,
            ..StreamOptions::default()
        })
        .unwrap();
        assert_eq!(stream.messages.len(), 3);
        assert!(stream.planted.is_empty() && stream.reviews.is_empty());
    }
}
