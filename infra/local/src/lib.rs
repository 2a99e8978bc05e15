//! `paysession-local`: every function's handler mounted on the routes of template.yaml,
//! served by one hyper server over the embedded store, always in sandbox mode.

pub mod connections;
mod demo;
#[cfg(feature = "dynamodb")]
mod dynamo_pipeline;
mod local;
mod pages;
mod pipeline;
mod readme;
mod server;

pub use demo::{DEMO_CLIENT_ID, DemoCredentials};
pub use local::Local;
pub use server::{LocalOptions, NO_DYNAMODB, Running, start};
