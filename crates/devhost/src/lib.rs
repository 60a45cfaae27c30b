//! The pieces of the development stand-in for the Azure Functions host (the "dev host"), which runs
//! the worker locally where `func` core tools are not available.

pub mod config;
pub mod http_front;
pub mod invoker;
pub mod ncrontab;
pub mod output_bindings;
pub mod queue_trigger;
pub mod timer_trigger;
