//! How history is laid out in the History table: one row per commit, keyed by the index of its
//! first event, holding that commit's events as a JSON array; and how a load picks the rows that
//! make up the current history out of whatever else the partition holds.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::StoredEvent;
use durable_engine::HistoryEvent;

/// `EventTypes` is for people browsing the table; past this many characters it is cut, as a
/// string property must stay under 64 KiB.
const MAX_EVENT_TYPES_CHARS: usize = 1024;

/// The events one commit appended. One row per commit rather than per event keeps a turn's
/// transaction at two entities (this row and the state row) and a load at one row per turn.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TurnRow {
    pub partition_key: String,
    pub row_key: String,
    pub execution_id: String,
    pub event_count: u32,
    /// The revision of the instance state the commit wrote: it grows along the chain.
    #[serde(default)]
    pub revision: u64,
    /// The events' types, comma-separated (cut short on a large commit), for people browsing
    /// the table.
    #[serde(default)]
    pub event_types: String,
    #[serde(rename = "_Timestamp", default)]
    pub timestamp: String,
    /// The events as a JSON array of [`RowEvent`], unless they are in `events_blob`.
    #[serde(default)]
    pub events: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_blob: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RowEventRef<'a> {
    event: &'a HistoryEvent,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
}

/// One event of a row as read back, with the id of the message that delivered it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RowEvent {
    pub event: HistoryEvent,
    #[serde(default)]
    pub message_id: Option<String>,
}

pub(super) fn row_key(index: u32) -> String {
    format!("{index:016X}")
}

/// The JSON text of `events` and their comma-separated types.
pub(super) fn encode(events: &[StoredEvent]) -> serde_json::Result<(String, String)> {
    let refs: Vec<RowEventRef<'_>> = events
        .iter()
        .map(|stored| RowEventRef {
            event: &stored.event,
            message_id: stored.message_id.as_deref(),
        })
        .collect();
    let mut types = String::new();
    for stored in events {
        let name = format!("{:?}", stored.event.event_type());
        if types.len() + name.len() + 1 > MAX_EVENT_TYPES_CHARS {
            types.push('…');
            break;
        }
        if !types.is_empty() {
            types.push(',');
        }
        types.push_str(&name);
    }
    Ok((serde_json::to_string(&refs)?, types))
}

pub(super) fn decode(text: &str) -> serde_json::Result<Vec<RowEvent>> {
    serde_json::from_str(text)
}

/// The partition holds no complete history of `length` events: a commit landed between the
/// pages of the read, so read again.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BrokenChain;

/// The rows that make up the current history, in order: starting at index 0, each row is the
/// one keyed where the previous one ended, until `length`. Every commit writes its row exactly
/// where the history then ended, so rows off that chain (of another execution, past the end,
/// or of a history that a rewind rewrote shorter) are never reachable from index 0 in a
/// consistent read. A read whose pages straddle a commit can see a row left from before a
/// rewind where the new commit's row now is; such a row is older than the rewind's, so the
/// revisions, which grow with every commit, give it away.
pub(super) fn chain(
    rows: Vec<TurnRow>,
    execution_id: &str,
    length: u32,
) -> Result<Vec<TurnRow>, BrokenChain> {
    let mut by_index: HashMap<u32, TurnRow> = rows
        .into_iter()
        .filter(|row| row.execution_id == execution_id && row.event_count > 0)
        .filter_map(|row| {
            let index = u32::from_str_radix(&row.row_key, 16).ok()?;
            (index < length).then_some((index, row))
        })
        .collect();
    let mut ordered: Vec<TurnRow> = Vec::new();
    let mut at = 0u32;
    while at < length {
        let row = by_index.remove(&at).ok_or(BrokenChain)?;
        if ordered
            .last()
            .is_some_and(|last| last.revision >= row.revision)
        {
            return Err(BrokenChain);
        }
        at = at.checked_add(row.event_count).ok_or(BrokenChain)?;
        ordered.push(row);
    }
    if at == length {
        Ok(ordered)
    } else {
        Err(BrokenChain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use durable_engine::EventKind;

    /// A row written by the commit of revision `index + 1` (each test history grows by commit).
    fn row(index: u32, count: u32, execution: &str) -> TurnRow {
        TurnRow {
            partition_key: "p".to_string(),
            row_key: row_key(index),
            execution_id: execution.to_string(),
            event_count: count,
            revision: u64::from(index) + 1,
            event_types: String::new(),
            timestamp: String::new(),
            events: format!("{index}+{count}"),
            events_blob: None,
        }
    }

    fn picked(rows: Vec<TurnRow>, length: u32) -> Result<Vec<String>, BrokenChain> {
        chain(rows, "e", length).map(|rows| rows.into_iter().map(|r| r.events).collect())
    }

    #[test]
    fn follows_rows_from_zero_to_the_length() {
        let rows = vec![row(5, 2, "e"), row(0, 3, "e"), row(3, 2, "e")];
        assert_eq!(picked(rows, 7).unwrap(), ["0+3", "3+2", "5+2"]);
        assert_eq!(picked(Vec::new(), 0).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn skips_rows_of_other_executions_past_the_end_or_off_the_chain() {
        // A rewind rewrote the history as one row of 4; the old rows at 2 and 4 are stale.
        let rows = vec![
            row(0, 4, "e"),
            row(2, 2, "e"),
            row(4, 3, "e"),
            row(4, 1, "old"),
            row(0, 9, "old"),
        ];
        assert_eq!(picked(rows, 4).unwrap(), ["0+4"]);
    }

    #[test]
    fn a_row_older_than_the_one_before_it_is_a_broken_chain() {
        // Rewound at revision 10 to four events; a read straddling the next commit sees the
        // pre-rewind row at 4 (revision 5) instead of the new one.
        let mut rewound = row(0, 4, "e");
        rewound.revision = 10;
        let stale = row(4, 2, "e");
        assert_eq!(
            picked(vec![rewound, stale], 6),
            Err(BrokenChain),
            "revision 5 cannot follow revision 10"
        );
    }

    #[test]
    fn event_types_are_cut_short_on_a_large_commit() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let events: Vec<StoredEvent> = (0..3000)
            .map(|_| StoredEvent {
                event: HistoryEvent::message(at, EventKind::OrchestratorStarted),
                message_id: None,
            })
            .collect();
        let (text, types) = encode(&events).unwrap();
        assert!(
            types.chars().count() <= MAX_EVENT_TYPES_CHARS + 1,
            "{}",
            types.len()
        );
        assert!(types.ends_with('…'));
        assert_eq!(
            decode(&text).unwrap().len(),
            3000,
            "the events themselves are whole"
        );
    }

    #[test]
    fn a_gap_or_an_overshoot_is_a_broken_chain() {
        assert_eq!(
            picked(vec![row(0, 2, "e"), row(3, 1, "e")], 4),
            Err(BrokenChain)
        );
        assert_eq!(picked(vec![row(0, 5, "e")], 4), Err(BrokenChain));
        assert_eq!(picked(vec![row(0, 0, "e")], 1), Err(BrokenChain));
    }

    #[test]
    fn events_round_trip_with_their_message_ids() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let events = vec![
            StoredEvent {
                event: HistoryEvent::message(at, EventKind::OrchestratorStarted),
                message_id: None,
            },
            StoredEvent {
                event: HistoryEvent::message(
                    at,
                    EventKind::EventRaised {
                        name: "Go".to_string(),
                        input: Some("1".to_string()),
                    },
                ),
                message_id: Some("m1".to_string()),
            },
        ];
        let (text, types) = encode(&events).unwrap();
        assert_eq!(types, "OrchestratorStarted,EventRaised");
        let back = decode(&text).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].event, events[0].event);
        assert_eq!(back[0].message_id, None);
        assert_eq!(back[1].event, events[1].event);
        assert_eq!(back[1].message_id.as_deref(), Some("m1"));
    }
}
