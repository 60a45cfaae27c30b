//! Sessions against recorded histories: opened at any turn and driven to the end, a session returns
//! what `execute` returns over the history so far, and its deltas rebuild the recorded history.

use durable_engine::verify::{recorded_turns, RecordedTurn};
use durable_engine::{execute, HistoryEvent, Registry, Session, TurnOutcome};

use crate::fixtures;

/// Opens a session at every turn of `history` and drives it through the rest: each turn must
/// equal `execute` over the history so far, the session must stay open exactly while the
/// execution runs, and the deltas must rebuild `history`.
pub(crate) fn check_session(
    registry: &Registry,
    instance_id: &str,
    history: &[HistoryEvent],
) -> Result<(), String> {
    let turns = recorded_turns(history);
    for opened in 0..turns.len() {
        let mut rebuilt = history[..turns[opened].start].to_vec();
        let mut session: Option<Session> = None;
        for (
            index,
            RecordedTurn {
                messages: consumed, ..
            },
        ) in turns.iter().enumerate().skip(opened)
        {
            let at = format!("{instance_id}, opened at turn {opened}, turn {index}");
            let expected = execute(registry, instance_id, &rebuilt, consumed);
            let actual = match session.as_mut() {
                Some(session) => session.next_turn(consumed),
                None => match Session::open(registry, instance_id, &rebuilt, consumed) {
                    Ok((live, turn)) => {
                        session = Some(live);
                        Ok(turn)
                    }
                    Err(error) => Err(error),
                },
            };
            if actual != expected {
                return Err(format!(
                    "{at}: the session returned {actual:?}, execute {expected:?}"
                ));
            }
            let turn = actual.map_err(|error| format!("{at}: {error}"))?;
            let open = session.as_ref().is_some_and(Session::is_open);
            let runs = matches!(turn.outcome, TurnOutcome::Running | TurnOutcome::Suspended);
            if open != runs {
                return Err(format!(
                    "{at}: the session is open: {open}, after the outcome {:?}",
                    turn.outcome
                ));
            }
            rebuilt.extend(turn.history_delta);
        }
        if rebuilt != history {
            return Err(format!(
                "{instance_id}, opened at turn {opened}: the deltas do not rebuild the history"
            ));
        }
    }
    Ok(())
}

#[test]
fn a_session_equals_execute_turn_by_turn_on_every_recorded_fixture() {
    let registry = fixtures::registry();
    let mut names: Vec<String> = std::fs::read_dir(fixtures::fixtures_dir())
        .expect("the fixtures directory is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_string()))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no recorded fixtures found");
    for name in names {
        let (_, history) = fixtures::load_fixture(&name);
        let instance_id = fixtures::instance_id_of(&history);
        check_session(&registry, &instance_id, &history)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
    }
}
