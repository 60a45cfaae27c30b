//! The hello app's worker, the process the Functions host (or the dev host) starts.

use std::process::ExitCode;

use durable_worker::serve::{self, App};

fn main() -> ExitCode {
    serve::run(|_setup| Ok(App::new(hello_app::registry()?, hello_app::functions()?)))
}
