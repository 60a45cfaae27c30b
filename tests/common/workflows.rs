//! The orchestrations and activities the runtime tests drive, on any backend.

use std::time::Duration;

use durable_engine::{
    join_all, ActivityContext, ActivityError, EntityContext, EntityError, EntityId,
    OrchestrationContext, OrchestrationError, Registry,
};

async fn say_hello(_ctx: ActivityContext, name: String) -> Result<String, ActivityError> {
    Ok(format!("Hello {name}!"))
}

/// Calls SayHello five times in sequence.
async fn hello_sequence(
    ctx: OrchestrationContext,
    (): (),
) -> Result<Vec<String>, OrchestrationError> {
    let mut out = Vec::new();
    for city in ["Tokyo", "Seattle", "London", "Cairo", "Lima"] {
        out.push(ctx.call_activity("SayHello", city).await?);
    }
    Ok(out)
}

/// Fans out to `n` activities, waits a minute, waits for "Go", then calls a child.
async fn mixed(ctx: OrchestrationContext, n: u32) -> Result<String, OrchestrationError> {
    let count = greet_all(&ctx, n).await?;
    ctx.create_timer_after(Duration::from_secs(60)).await;
    go_then_child(&ctx, count).await
}

/// Waits for "Go", runs a HelloSequence child, and reports what happened.
async fn go_then_child(
    ctx: &OrchestrationContext,
    count: u32,
) -> Result<String, OrchestrationError> {
    let go: String = ctx.wait_for_external_event("Go").await?;
    let child: Vec<String> = ctx
        .call_sub_orchestrator("HelloSequence", None, &())
        .await?;
    Ok(format!(
        "{count} greetings, {go}, child said {}",
        child.len()
    ))
}

/// Greets `n` people in parallel; returns how many were greeted.
async fn greet_all(ctx: &OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    let greetings =
        join_all((0..n).map(|i| ctx.call_activity::<String>("SayHello", &i.to_string()))).await;
    for greeting in greetings {
        greeting?;
    }
    Ok(n)
}

/// Greets `n` people at once; with queued activities their results arrive together.
async fn greet_many(ctx: OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    greet_all(&ctx, n).await
}

/// Adds up `n` "Part" events, greeting after each, then greets `n` people at once: events that
/// arrive together, and a fan-out's results, are what a turn takes in one batch.
async fn gather(ctx: OrchestrationContext, n: u32) -> Result<String, OrchestrationError> {
    let mut sum = 0;
    for _ in 0..n {
        let part: u32 = ctx.wait_for_external_event("Part").await?;
        ctx.call_activity::<String>("SayHello", &part.to_string())
            .await?;
        sum += part;
    }
    let count = greet_all(&ctx, n).await?;
    Ok(format!("{sum} from {n} parts, {count} greetings"))
}

/// Counts to `n` with one execution per step.
async fn counter(ctx: OrchestrationContext, n: u32) -> Result<u32, OrchestrationError> {
    let doubled: String = ctx.call_activity("SayHello", &n.to_string()).await?;
    if n >= 3 {
        return Ok(doubled.len() as u32);
    }
    ctx.continue_as_new(&(n + 1)).await
}

/// Sleeps twenty days, longer than a queue can delay one message, then reports when it woke.
async fn long_nap(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    ctx.create_timer_after(Duration::from_secs(20 * 86_400))
        .await;
    Ok(ctx.current_utc_datetime().to_rfc3339())
}

/// Fans out to `n` activities, naps a second on a durable timer, waits for "Go", then runs a
/// child orchestration: every kind of message in one instance.
async fn fan_in(ctx: OrchestrationContext, n: u32) -> Result<String, OrchestrationError> {
    let count = greet_all(&ctx, n).await?;
    ctx.create_timer_after(Duration::from_secs(1)).await;
    go_then_child(&ctx, count).await
}

/// Waits one second on a durable timer, then greets.
async fn nap(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    ctx.create_timer_after(Duration::from_secs(1)).await;
    Ok(ctx.call_activity("SayHello", "after the nap").await?)
}

/// A text of `chars` characters, each two bytes in UTF-16 and three in UTF-8.
async fn big(_ctx: ActivityContext, chars: usize) -> Result<String, ActivityError> {
    Ok("€".repeat(chars))
}

/// Returns a payload far beyond the queue, table-property and entity limits.
async fn big_output(ctx: OrchestrationContext, chars: usize) -> Result<String, OrchestrationError> {
    Ok(ctx.call_activity("Big", &chars).await?)
}

/// Waits for "Add" and adds it to the total, one execution per event, until 100 is reached.
async fn accumulate(ctx: OrchestrationContext, total: u32) -> Result<u32, OrchestrationError> {
    let add: u32 = ctx.wait_for_external_event("Add").await?;
    let total = total + add;
    if total >= 100 {
        return Ok(total);
    }
    ctx.continue_as_new(&total).await
}

/// Runs `Counter` as the child "the-child".
async fn counter_parent(ctx: OrchestrationContext, (): ()) -> Result<u32, OrchestrationError> {
    Ok(ctx
        .call_sub_orchestrator("Counter", Some("the-child"), &0u32)
        .await?)
}

/// Waits for "Wake" and returns its payload.
async fn sleeper(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    Ok(ctx.wait_for_external_event::<String>("Wake").await?)
}

/// Starts a child, wakes it with an event sent in the same turn, and returns what it heard.
async fn wake_child(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    let child = ctx.call_sub_orchestrator::<String>("Sleeper", Some("kid"), &());
    ctx.send_event("kid", "Wake", "hello, kid")?;
    Ok(child.await?)
}

/// Calls a child under an id no store can hold; reports the error.
async fn bad_child(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    let id = "x".repeat(300);
    match ctx
        .call_sub_orchestrator::<()>("Sleeper", Some(&id), &())
        .await
    {
        Ok(()) => Ok("started".to_string()),
        Err(error) => Ok(error.to_string()),
    }
}

pub fn registry() -> Registry {
    Registry::builder()
        .orchestrator("Accumulate", accumulate)
        .orchestrator("CounterParent", counter_parent)
        .orchestrator("Sleeper", sleeper)
        .orchestrator("WakeChild", wake_child)
        .orchestrator("BadChild", bad_child)
        .orchestrator("BigOutput", big_output)
        .activity("Big", big)
        .orchestrator("FanIn", fan_in)
        .orchestrator("Nap", nap)
        .orchestrator("LongNap", long_nap)
        .orchestrator("HelloSequence", hello_sequence)
        .orchestrator("Mixed", mixed)
        .orchestrator("GreetMany", greet_many)
        .orchestrator("Gather", gather)
        .orchestrator("Counter", counter)
        .activity("SayHello", say_hello)
        .entity("Tally", tally)
        .orchestrator("TallyWork", tally_work)
        .orchestrator("TallyLockedEnd", tally_locked_end)
        .build()
        .unwrap()
}

/// A tally entity: `add` (returns the new total), `get`, `set`, `delete`, and `fail`, which
/// changes the state and then fails. The state keeps every amount added, in order, so a test
/// sees an operation applied twice or out of order.
fn tally(ctx: &mut EntityContext) -> Result<(), EntityError> {
    let mut added: Vec<i64> = ctx.state_or_default()?;
    match ctx.operation() {
        "add" => {
            added.push(ctx.input()?);
            ctx.set_result(&added.iter().sum::<i64>())?;
        }
        "get" => ctx.set_result(&added.iter().sum::<i64>())?,
        "set" => added = ctx.input()?,
        "delete" => {
            ctx.delete_state();
            return Ok(());
        }
        "fail" => {
            ctx.set_state(&[-1])?;
            return Err(EntityError::new("asked to fail"));
        }
        other => return Err(EntityError::new(format!("no operation '{other}'"))),
    }
    ctx.set_state(&added)
}

/// Signals tally `c` twice, reads it, then adds 10 to tally `d` while holding both.
async fn tally_work(ctx: OrchestrationContext, (): ()) -> Result<String, OrchestrationError> {
    let c = EntityId::new("Tally", "c")?;
    let d = EntityId::new("Tally", "d")?;
    ctx.signal_entity(&c, "add", &1)?;
    ctx.signal_entity(&c, "add", &2)?;
    let read: i64 = ctx.call_entity(&c, "get", &()).await?;
    let guard = ctx.lock_entities(&[c.clone(), d.clone()]).await?;
    let total: i64 = ctx.call_entity(&d, "add", &10).await?;
    guard.release();
    Ok(format!("{read} {total}"))
}

/// Locks the tallies named in its input, adds 5 to the first, then ends inside the critical
/// section: failing, or waiting for an event until it is terminated.
async fn tally_locked_end(
    ctx: OrchestrationContext,
    (keys, end): (Vec<String>, String),
) -> Result<(), OrchestrationError> {
    let tallies = keys
        .iter()
        .map(|key| EntityId::new("Tally", key))
        .collect::<Result<Vec<_>, _>>()?;
    let _guard = ctx.lock_entities(&tallies).await?;
    let _: i64 = ctx.call_entity(&tallies[0], "add", &5).await?;
    if end == "fail" {
        return Err(OrchestrationError::new(
            "failed inside the critical section",
        ));
    }
    ctx.wait_for_external_event::<()>("never").await?;
    Ok(())
}
