//! Medallion records: the stable partition hash, the silver rules that clean one record, and
//! the deterministic generator of sample data (with invalid and duplicate records on purpose).

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::splitmix::SplitMix64;

/// A record that passed the silver rules, normalised.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SilverRecord {
    pub id: String,
    /// Trimmed and lower-cased.
    pub category: String,
    pub amount: f64,
    pub timestamp: DateTime<Utc>,
}

/// Why a record did not make it to silver.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Rejection {
    MissingId,
    MissingCategory,
    BadAmount,
    BadTimestamp,
    DuplicateId,
}

/// FNV-1a, 64 bits: stable across processes and versions, unlike std's hasher.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The bronze partition of a raw record, by its Id, so that duplicates meet in one partition.
/// A missing or non-string Id hashes as "" (such records are rejected in silver anyway).
pub(super) fn partition_of(record: &Value, partitions: u32) -> usize {
    let id = record.get("Id").and_then(Value::as_str).unwrap_or("");
    let index = fnv1a64(id.as_bytes()) % u64::from(partitions.max(1));
    usize::try_from(index).unwrap_or(0)
}

/// Applies the per-record silver rules; duplicates are the caller's to find, across records.
pub(super) fn cleanse(record: &Value) -> Result<SilverRecord, Rejection> {
    let text = |field| record.get(field).and_then(Value::as_str);
    let id = text("Id")
        .filter(|id| !id.trim().is_empty())
        .ok_or(Rejection::MissingId)?;
    let category = text("Category")
        .map(|category| category.trim().to_lowercase())
        .filter(|category| !category.is_empty())
        .ok_or(Rejection::MissingCategory)?;
    let amount = record
        .get("Amount")
        .and_then(Value::as_f64)
        .filter(|amount| amount.is_finite() && *amount >= 0.0)
        .ok_or(Rejection::BadAmount)?;
    let timestamp = text("Timestamp")
        .and_then(|timestamp| DateTime::parse_from_rfc3339(timestamp).ok())
        .ok_or(Rejection::BadTimestamp)?;
    Ok(SilverRecord {
        id: id.to_string(),
        category,
        amount,
        timestamp: timestamp.with_timezone(&Utc),
    })
}

/// Categories as messy sources send them: silver folds these into five.
const CATEGORIES: [&str; 8] = [
    "books",
    "Books ",
    "ELECTRONICS",
    "electronics",
    " Garden",
    "toys",
    "Toys",
    "food",
];

/// `count` raw records from `seed`. About 2 % repeat an earlier Id and about 5 % break one
/// silver rule, so every rule has work to do.
pub(super) fn generate(count: u64, seed: u64) -> Vec<Value> {
    let mut rng = SplitMix64::new(seed);
    let start = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    (0..count)
        .map(|index| {
            let roll = rng.below(100);
            let id = if roll < 2 && index > 0 {
                format!("R-{:07}", rng.below(index))
            } else {
                format!("R-{index:07}")
            };
            let category = CATEGORIES[rng.below(CATEGORIES.len() as u64) as usize];
            let amount = rng.below(100_000) as f64 / 100.0;
            let seconds = i64::try_from(rng.below(365 * 86_400)).unwrap_or(0);
            let timestamp = (start + chrono::Duration::seconds(seconds)).to_rfc3339();
            let mut record =
                json!({"Id": id, "Category": category, "Amount": amount, "Timestamp": timestamp});
            match roll {
                2 => record["Id"] = Value::Null,
                3 => record["Category"] = json!("  "),
                4 => record["Amount"] = json!(-amount - 1.0),
                5 => record["Amount"] = json!(amount.to_string()),
                6 => record["Timestamp"] = json!("31/12/2026"),
                _ => {}
            }
            record
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;

    #[test]
    fn fnv1a64_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn partitions_follow_the_id_only() {
        let a = json!({"Id": "abc", "Category": "x"});
        let b = json!({"Id": "abc", "Amount": 3});
        for partitions in 1..10 {
            assert_eq!(partition_of(&a, partitions), partition_of(&b, partitions));
            assert!(partition_of(&a, partitions) < partitions as usize);
        }
        assert_eq!(
            partition_of(&json!({"Id": 7}), 5),
            partition_of(&json!({}), 5)
        );
        assert_eq!(
            partition_of(&json!({}), 5),
            (0xcbf2_9ce4_8422_2325u64 % 5) as usize
        );
    }

    #[test]
    fn cleanse_applies_each_rule() {
        let good = json!({
            "Id": "x",
            "Category": "  Home Office ",
            "Amount": 3,
            "Timestamp": "2026-02-03T04:05:06+01:00",
        });
        assert_eq!(
            cleanse(&good),
            Ok(SilverRecord {
                id: "x".into(),
                category: "home office".into(),
                amount: 3.0,
                timestamp: Utc.with_ymd_and_hms(2026, 2, 3, 3, 5, 6).unwrap(),
            })
        );
        let with = |field: &str, value: Value| {
            let mut record = good.clone();
            record[field] = value;
            cleanse(&record)
        };
        assert_eq!(with("Id", json!("")), Err(Rejection::MissingId));
        assert_eq!(with("Id", json!(12)), Err(Rejection::MissingId));
        assert_eq!(
            with("Category", json!(" ")),
            Err(Rejection::MissingCategory)
        );
        assert_eq!(with("Amount", json!(-0.01)), Err(Rejection::BadAmount));
        assert_eq!(with("Amount", json!("3")), Err(Rejection::BadAmount));
        assert_eq!(with("Amount", Value::Null), Err(Rejection::BadAmount));
        assert_eq!(with("Amount", json!(0)).map(|r| r.amount), Ok(0.0));
        assert_eq!(
            with("Timestamp", json!("2026-02-03")),
            Err(Rejection::BadTimestamp)
        );
        assert_eq!(cleanse(&json!("not an object")), Err(Rejection::MissingId));
    }

    #[test]
    fn generated_data_is_reproducible_and_exercises_every_rule() {
        let records = generate(4000, 42);
        assert_eq!(records, generate(4000, 42));
        assert_ne!(records, generate(4000, 43));

        let mut outcomes: BTreeMap<Result<(), Rejection>, usize> = BTreeMap::new();
        let mut seen = HashSet::new();
        for record in &records {
            let outcome = match cleanse(record) {
                Ok(silver) if !seen.insert(silver.id.clone()) => Err(Rejection::DuplicateId),
                Ok(_) => Ok(()),
                Err(rejection) => Err(rejection),
            };
            *outcomes.entry(outcome).or_default() += 1;
        }
        for rejection in [
            Rejection::MissingId,
            Rejection::MissingCategory,
            Rejection::BadAmount,
            Rejection::BadTimestamp,
            Rejection::DuplicateId,
        ] {
            assert!(
                outcomes.get(&Err(rejection)).is_some_and(|n| *n > 0),
                "{rejection:?}: {outcomes:?}"
            );
        }
        assert!(outcomes[&Ok(())] > 3500, "{outcomes:?}");
    }
}
