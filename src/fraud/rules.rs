//! What one card's activity is judged by: its transactions by their own `Timestamp` (arrival
//! order does not matter), each counted once, and the three rules a new transaction may match.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Over this amount a transaction counts towards [`Rule::HighValueBurst`].
pub const HIGH_VALUE: f64 = 500.0;
/// This many high-value transactions within [`BURST_WINDOW`] match [`Rule::HighValueBurst`].
pub const BURST_COUNT: usize = 3;
pub const BURST_WINDOW: TimeDelta = TimeDelta::minutes(10);
/// Two countries within this match [`Rule::TwoCountries`].
pub const COUNTRY_WINDOW: TimeDelta = TimeDelta::hours(1);
/// An amount over this many times the running average matches [`Rule::AmountSpike`]...
pub const SPIKE_FACTOR: f64 = 10.0;
/// ...once the average is over at least this many transactions.
pub const SPIKE_AFTER: u64 = 5;
/// Transaction ids are remembered this long (by timestamp, behind the newest), so a duplicate
/// delivered within it counts once.
pub const DUPLICATE_HORIZON: TimeDelta = TimeDelta::hours(24);

/// A card transaction as it arrives on the `transactions` queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Transaction {
    pub transaction_id: String,
    pub card_id: String,
    pub amount: f64,
    pub currency: String,
    pub country: String,
    pub merchant: String,
    pub timestamp: DateTime<Utc>,
}

/// A rule a transaction matched, named as the review's custom status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Rule {
    /// [`BURST_COUNT`] or more transactions over [`HIGH_VALUE`] within [`BURST_WINDOW`].
    HighValueBurst,
    /// Two countries within [`COUNTRY_WINDOW`].
    TwoCountries,
    /// More than [`SPIKE_FACTOR`] times the running average, after [`SPIKE_AFTER`] transactions.
    AmountSpike,
}

/// What a transaction did to the card's activity.
#[derive(Debug, Clone, PartialEq)]
pub enum Judged {
    /// Its id was counted already: nothing changed.
    Duplicate,
    /// Counted; the rules it matched, if any (in [`Rule`] order), and the later transactions
    /// that match now that it arrived: a late transaction can complete the five a spike needs
    /// before it.
    Counted {
        matched: Vec<Rule>,
        completed: Vec<Completed>,
    },
}

/// A transaction counted earlier that matches a rule once a late one arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    pub rule: Rule,
    pub transaction_id: String,
    pub timestamp: DateTime<Utc>,
}

/// A transaction remembered within [`DUPLICATE_HORIZON`]: its id for duplicates, its amount
/// for the spikes judged by what came before it by timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Recent {
    timestamp: DateTime<Utc>,
    id: String,
    amount: f64,
    /// It matched [`Rule::AmountSpike`] already.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    spiked: bool,
}

/// The part of a transaction the rules look back at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Seen {
    amount: f64,
    country: String,
    timestamp: DateTime<Utc>,
}

/// One card's activity: the state of its `CardActivity` entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CardActivity {
    /// Transactions counted, duplicates not.
    pub transactions: u64,
    /// Their amounts summed, for the running average.
    pub total_amount: f64,
    /// Transactions within [`COUNTRY_WINDOW`] of the newest, the longest any rule looks back,
    /// by timestamp.
    window: Vec<Seen>,
    /// Transactions within [`DUPLICATE_HORIZON`] of the newest, by timestamp.
    recent: Vec<Recent>,
    /// How many transactions, and of what total, are older than `recent` holds.
    #[serde(default)]
    forgotten_count: u64,
    #[serde(default)]
    forgotten_amount: f64,
    /// The newest timestamp seen.
    newest: Option<DateTime<Utc>>,
}

impl CardActivity {
    /// Counts `transaction` once and judges it against the activity around it by timestamp.
    pub fn record(&mut self, transaction: &Transaction) -> Judged {
        if self
            .recent
            .iter()
            .any(|recent| recent.id == transaction.transaction_id)
        {
            return Judged::Duplicate;
        }
        let mut matched = Vec::new();
        if self.is_burst(transaction) {
            matched.push(Rule::HighValueBurst);
        }
        if self.window.iter().any(|seen| {
            seen.country != transaction.country
                && (seen.timestamp - transaction.timestamp).abs() <= COUNTRY_WINDOW
        }) {
            matched.push(Rule::TwoCountries);
        }
        self.transactions += 1;
        self.total_amount += transaction.amount;
        self.window.push(Seen {
            amount: transaction.amount,
            country: transaction.country.clone(),
            timestamp: transaction.timestamp,
        });
        let at = self
            .recent
            .partition_point(|recent| recent.timestamp <= transaction.timestamp);
        self.recent.insert(
            at,
            Recent {
                timestamp: transaction.timestamp,
                id: transaction.transaction_id.clone(),
                amount: transaction.amount,
                spiked: false,
            },
        );
        let mut completed = Vec::new();
        for spike in self.spikes_from(at) {
            if spike.transaction_id == transaction.transaction_id {
                matched.push(Rule::AmountSpike);
            } else {
                completed.push(spike);
            }
        }
        let newest = self
            .newest
            .map_or(transaction.timestamp, |n| n.max(transaction.timestamp));
        self.newest = Some(newest);
        self.window
            .retain(|seen| seen.timestamp >= newest - COUNTRY_WINDOW);
        let forget = self
            .recent
            .partition_point(|recent| recent.timestamp < newest - DUPLICATE_HORIZON);
        for forgotten in self.recent.drain(..forget) {
            self.forgotten_count += 1;
            self.forgotten_amount += forgotten.amount;
        }
        Judged::Counted { matched, completed }
    }

    /// Marks and returns the transactions from `recent[from]` on that now spike: over
    /// [`SPIKE_FACTOR`] times the average of at least [`SPIKE_AFTER`] transactions before them.
    fn spikes_from(&mut self, from: usize) -> Vec<Completed> {
        let mut amount = self.forgotten_amount;
        let mut spikes = Vec::new();
        for (count, (index, recent)) in
            (self.forgotten_count..).zip(self.recent.iter_mut().enumerate())
        {
            if index >= from
                && !recent.spiked
                && count >= SPIKE_AFTER
                && recent.amount > SPIKE_FACTOR * (amount / count as f64)
            {
                recent.spiked = true;
                spikes.push(Completed {
                    rule: Rule::AmountSpike,
                    transaction_id: recent.id.clone(),
                    timestamp: recent.timestamp,
                });
            }
            amount += recent.amount;
        }
        spikes
    }

    /// Whether some [`BURST_WINDOW`] holding `transaction` (over [`HIGH_VALUE`]) holds
    /// [`BURST_COUNT`] such transactions with it.
    fn is_burst(&self, transaction: &Transaction) -> bool {
        if transaction.amount <= HIGH_VALUE {
            return false;
        }
        let mut times: Vec<DateTime<Utc>> = self
            .window
            .iter()
            .filter(|seen| seen.amount > HIGH_VALUE)
            .map(|seen| seen.timestamp)
            .filter(|at| (*at - transaction.timestamp).abs() <= BURST_WINDOW)
            .chain(std::iter::once(transaction.timestamp))
            .collect();
        times.sort();
        times
            .windows(BURST_COUNT)
            .any(|run| run[BURST_COUNT - 1] - run[0] <= BURST_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn tx(id: &str, amount: f64, country: &str, minutes: i64) -> Transaction {
        Transaction {
            transaction_id: id.to_string(),
            card_id: "card-1".to_string(),
            amount,
            currency: "EUR".to_string(),
            country: country.to_string(),
            merchant: "Shop".to_string(),
            timestamp: at(minutes),
        }
    }

    fn matched(card: &mut CardActivity, transaction: Transaction) -> Vec<Rule> {
        match card.record(&transaction) {
            Judged::Counted { matched, .. } => matched,
            Judged::Duplicate => panic!("{transaction:?} counted as a duplicate"),
        }
    }

    #[test]
    fn three_high_values_within_ten_minutes_are_a_burst() {
        let mut card = CardActivity::default();
        assert!(matched(&mut card, tx("a", 600.0, "NL", 0)).is_empty());
        assert!(matched(&mut card, tx("b", 501.0, "NL", 4)).is_empty());
        assert!(
            matched(&mut card, tx("c", 500.0, "NL", 5)).is_empty(),
            "500 is not over"
        );
        assert_eq!(
            matched(&mut card, tx("d", 700.0, "NL", 10)),
            vec![Rule::HighValueBurst]
        );
        let mut spread = CardActivity::default();
        for (id, minute) in [("a", 0), ("b", 6), ("c", 12)] {
            assert!(matched(&mut spread, tx(id, 900.0, "NL", minute)).is_empty());
        }
    }

    #[test]
    fn transactions_are_judged_by_their_timestamps_not_their_arrival() {
        let mut card = CardActivity::default();
        assert!(matched(&mut card, tx("late", 800.0, "NL", 9)).is_empty());
        assert!(matched(&mut card, tx("first", 800.0, "NL", 0)).is_empty());
        // Arrives last, sits between the two: the three fit in ten minutes.
        assert_eq!(
            matched(&mut card, tx("middle", 800.0, "NL", 5)),
            vec![Rule::HighValueBurst]
        );
        // An hour of countries works backwards as well as forwards.
        assert_eq!(
            matched(&mut card, tx("earlier", 10.0, "BE", -40)),
            vec![Rule::TwoCountries]
        );
    }

    #[test]
    fn two_countries_within_an_hour_match() {
        let mut card = CardActivity::default();
        assert!(matched(&mut card, tx("a", 20.0, "NL", 0)).is_empty());
        assert!(matched(&mut card, tx("b", 20.0, "NL", 30)).is_empty());
        assert_eq!(
            matched(&mut card, tx("c", 20.0, "FR", 59)),
            vec![Rule::TwoCountries]
        );
        let mut apart = CardActivity::default();
        assert!(matched(&mut apart, tx("a", 20.0, "NL", 0)).is_empty());
        assert!(matched(&mut apart, tx("b", 20.0, "FR", 61)).is_empty());
    }

    #[test]
    fn a_spike_needs_five_transactions_before_it() {
        let mut card = CardActivity::default();
        for i in 0..4 {
            assert!(matched(&mut card, tx(&format!("t{i}"), 10.0, "NL", i * 20)).is_empty());
        }
        assert!(
            matched(&mut card, tx("early", 400.0, "NL", 100)).is_empty(),
            "only four before it"
        );
        // Average of five: (40 + 400) / 5 = 88; over 880 spikes.
        assert!(matched(&mut card, tx("under", 880.0, "NL", 200)).is_empty());
        // Now (40 + 400 + 880) / 6 = 220, then (…+ 2200) / 7 ≈ 503.
        assert!(matched(&mut card, tx("still", 2200.0, "NL", 300)).is_empty());
        assert_eq!(
            matched(&mut card, tx("spike", 5100.0, "NL", 400)),
            vec![Rule::AmountSpike]
        );
        assert_eq!(card.transactions, 8);
    }

    #[test]
    fn a_late_transaction_completes_the_five_a_spike_needs_before_it() {
        let mut card = CardActivity::default();
        for i in 0..4 {
            assert!(matched(&mut card, tx(&format!("t{i}"), 10.0, "NL", i * 20)).is_empty());
        }
        assert!(
            matched(&mut card, tx("spike", 500.0, "NL", 200)).is_empty(),
            "four before it"
        );
        let Judged::Counted { matched, completed } = card.record(&tx("late", 10.0, "NL", 100))
        else {
            panic!("counted as a duplicate");
        };
        assert!(matched.is_empty());
        assert_eq!(
            completed,
            [Completed {
                rule: Rule::AmountSpike,
                transaction_id: "spike".to_string(),
                timestamp: at(200),
            }]
        );
        let Judged::Counted { completed, .. } = card.record(&tx("later", 10.0, "NL", 150)) else {
            panic!("counted as a duplicate");
        };
        assert!(completed.is_empty(), "a spike matches once");
    }

    #[test]
    fn a_duplicate_counts_once_and_changes_nothing() {
        let mut card = CardActivity::default();
        assert!(matched(&mut card, tx("a", 600.0, "NL", 0)).is_empty());
        let before = card.clone();
        assert_eq!(card.record(&tx("a", 600.0, "NL", 0)), Judged::Duplicate);
        assert_eq!(card, before);
        assert_eq!(card.transactions, 1);
    }

    #[test]
    fn the_window_forgets_what_no_rule_looks_back_at() {
        let mut card = CardActivity::default();
        for i in 0..100 {
            card.record(&tx(&format!("t{i}"), 10.0, "NL", i * 30));
        }
        assert_eq!(card.transactions, 100);
        assert!(card.window.len() <= 3, "{}", card.window.len());
        assert!(card.recent.len() <= 49, "{}", card.recent.len());
        assert_eq!(card.forgotten_count + card.recent.len() as u64, 100);
        let json = serde_json::to_value(&card).unwrap();
        assert_eq!(json["Transactions"], 100);
        let back: CardActivity = serde_json::from_value(json).unwrap();
        assert_eq!(back, card);
    }

    #[test]
    fn a_transaction_reads_as_the_queue_carries_it() {
        let text = r#"{"TransactionId":"t-1","CardId":"c-9","Amount":12.5,"Currency":"EUR",
            "Country":"NL","Merchant":"Bakery","Timestamp":"2026-12-02T10:00:00Z"}"#;
        let transaction: Transaction = serde_json::from_str(text).unwrap();
        assert_eq!(transaction.timestamp, at(0));
        assert!(serde_json::from_str::<Transaction>(r#"{"TransactionId":"t-1"}"#).is_err());
    }
}
