//! Logging for functions running on AWS Lambda.

/// JSON logs for CloudWatch, level from `RUST_LOG` (default info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).without_time().with_target(false).try_init();
}
