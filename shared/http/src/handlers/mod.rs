pub mod events;
pub mod list;
pub mod mandates;
pub mod misc;
pub mod oauth;
pub mod sandbox;
pub mod sessions;
pub mod webhooks;
