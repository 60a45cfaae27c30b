//! The seed app's worker, the process the Functions host starts: the seed workflows and trigger
//! functions served by `durable_worker::serve`, tuned by the workflow settings.

use std::process::ExitCode;

use anyhow::Context;

use durable_worker::serve::{self, App};
use seed_app::WorkflowSettings;

fn main() -> ExitCode {
    serve::run(|setup| {
        let settings = WorkflowSettings::from_settings(setup.settings().iter().cloned())
            .context("the workflow settings are not valid")?;
        let registry = seed_app::registry(&settings, setup.artifacts())
            .context("the workflow registry is not valid")?;
        let functions = seed_app::functions().context("the trigger functions are not valid")?;
        Ok(App::new(registry, functions))
    })
}
