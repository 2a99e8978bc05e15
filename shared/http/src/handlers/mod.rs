pub mod misc;
pub mod oauth;
pub mod sandbox;
pub mod sessions;
