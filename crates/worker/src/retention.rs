//! `DurableRetention`, the engine's timer function: each run purges the instances that ended
//! longer ago than the retention settings keep them (`durable_runtime::retention`).

use durable_protocol::invocation::InvocationResponse;
use durable_runtime::management::ManageError;
use durable_runtime::Runtime;
use durable_store::backend::Backend;

/// The timer function's name (its `function.json` folder).
pub const RETENTION_FUNCTION: &str = "DurableRetention";

/// One run, answered with a log line per status it looked at. A failure is the caller's to
/// answer 500: the host does not retry a timer run, and the next one starts over.
pub async fn run<B: Backend>(runtime: &Runtime<B>) -> Result<InvocationResponse, ManageError> {
    let answer = InvocationResponse::default();
    if runtime.options().retention.is_off() {
        return Ok(answer.log("retention is off: no DURABLE_RETENTION_* status setting is set"));
    }
    let expired = runtime.purge_expired().await?;
    Ok(expired.into_iter().fold(answer, |answer, expired| {
        let more = if expired.purged.more {
            "; more are due, for the next run"
        } else {
            ""
        };
        answer.log(format!(
            "purged {} {:?} instances that ended by {}{more}",
            expired.purged.count, expired.status, expired.ended_by
        ))
    }))
}
