//! Waiting for a person's decision: the first well-formed external event of a name within a
//! timeout, as the claim approval and the fraud review wait for theirs.

use std::time::Duration;

use serde::de::DeserializeOwned;

use durable_engine::{select2, Either, OrchestrationContext};

/// The first well-formed `name` event within `timeout`, or `None`. A malformed event is skipped
/// rather than failing an instance that may have waited for days; the deadline stays where it
/// was.
pub(crate) async fn first_well_formed<T: DeserializeOwned>(
    ctx: &OrchestrationContext,
    name: &str,
    timeout: Duration,
) -> Option<T> {
    let mut deadline = ctx.create_timer_after(timeout);
    loop {
        let event = ctx.wait_for_external_event::<T>(name);
        match select2(event, deadline).await {
            Either::Left((Ok(decision), _)) => return Some(decision),
            Either::Left((Err(error), timer)) => {
                if !ctx.is_replaying() {
                    tracing::warn!(
                        instance_id = ctx.instance_id(),
                        %error,
                        "ignored a malformed {name}"
                    );
                }
                deadline = timer;
            }
            Either::Right(((), _)) => return None,
        }
    }
}
