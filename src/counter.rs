//! `Counter`: the smallest entity, a whole-number total, for trying entities out over the HTTP
//! API (`POST /api/entities/Counter/{key}?op=add` with `5`) and for the tests that drive it.

use durable_engine::{EntityContext, EntityError, RegistryBuilder};

pub(super) fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder.entity("Counter", counter)
}

/// `add` (a whole number; returns the new total), `get` (the total), `set` (a whole number),
/// `reset` (to 0) and `delete` (the entity has no state until an operation sets one again).
fn counter(ctx: &mut EntityContext) -> Result<(), EntityError> {
    let total: i64 = ctx.state_or_default()?;
    let total = match ctx.operation() {
        "add" => {
            let amount: i64 = ctx.input()?;
            total
                .checked_add(amount)
                .ok_or_else(|| EntityError::new(format!("{total} + {amount} overflows")))?
        }
        "get" => total,
        "set" => ctx.input()?,
        "reset" => 0,
        "delete" => {
            ctx.delete_state();
            return Ok(());
        }
        other => {
            return Err(EntityError::new(format!(
                "Counter has no operation '{}' (add, get, set, reset, delete)",
                other.escape_debug()
            )))
        }
    };
    ctx.set_state(&total)?;
    ctx.set_result(&total)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use durable_engine::entity::{
        EntityRequest, EntityScheduler, Incoming, OperationOutcome, RequestKind,
    };
    use durable_engine::{EntityId, Registry};

    use super::register;

    /// Runs `operations` (name, JSON input) as client signals, in one batch; the state after.
    fn run(operations: &[(&str, Option<&str>)]) -> (Option<i64>, Vec<OperationOutcome>) {
        let registry = register(Registry::builder()).build().unwrap();
        let entity = EntityId::new("Counter", "k").unwrap();
        let incoming = operations
            .iter()
            .enumerate()
            .map(|(i, (op, input))| Incoming {
                message_id: format!("m{i}"),
                request: EntityRequest {
                    id: format!("r{i}"),
                    kind: RequestKind::Operation {
                        op: op.to_string(),
                        input: input.map(str::to_string),
                        signal: true,
                    },
                    sender: None,
                },
            })
            .collect();
        let mut scheduler = EntityScheduler::default();
        let batch = scheduler.run_batch(&registry, &entity, incoming, Utc::now());
        let state = scheduler
            .state
            .map(|text| serde_json::from_str(&text).unwrap());
        (state, batch.outcomes)
    }

    #[test]
    fn adds_sets_resets_and_deletes() {
        assert_eq!(
            run(&[("add", Some("5")), ("add", Some("\"7\""))]).0,
            Some(12)
        );
        assert_eq!(run(&[("add", Some("5")), ("set", Some("-3"))]).0, Some(-3));
        assert_eq!(run(&[("add", Some("5")), ("reset", None)]).0, Some(0));
        assert_eq!(run(&[("add", Some("5")), ("delete", None)]).0, None);
        assert_eq!(run(&[("get", None)]).0, Some(0));
    }

    #[test]
    fn a_failed_operation_leaves_the_total_as_it_was() {
        let (state, outcomes) = run(&[
            ("add", Some("5")),
            ("add", Some("\"five\"")),
            ("add", Some(&i64::MAX.to_string())),
            ("multiply", Some("2")),
        ]);
        assert_eq!(state, Some(5));
        assert_eq!(outcomes, [OperationOutcome::Applied; 4], "run, and failed");
    }
}
