pub mod misc;
pub mod oauth;
pub mod sessions;
