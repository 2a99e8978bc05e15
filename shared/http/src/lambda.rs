//! Logging for functions running on AWS Lambda.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// JSON logs for CloudWatch, level from `RUST_LOG` (default warn).
///
/// Warn, not info, by default: API Gateway's access log (template.yaml) has a line per
/// request and the event store a record of every state change, so the functions' own info
/// lines (the request line and "session created") repeated both, at 6–11 % of a warm
/// create's CPU (docs/performance-history.md). `RUST_LOG=info` brings them back.
///
/// `RUST_LOG` is read as per-target levels (`info`, `warn,paysession_aws=debug`), not the
/// full `EnvFilter` syntax: its span and field filters need the regex engine, which would
/// add ~250 KB to every bootstrap and its parsing to every cold start.
pub fn init_logging() {
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().json().without_time().with_target(false))
        .with(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .try_init();
}

/// The filter `RUST_LOG` describes; warn when it is unset or unreadable.
fn log_filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::WARN))
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn rust_log_sets_levels_per_target() {
        let f = log_filter(None);
        assert!(f.would_enable("paysession_aws", &Level::WARN) && !f.would_enable("paysession_aws", &Level::INFO));
        let f = log_filter(Some("info"));
        assert!(f.would_enable("paysession_aws", &Level::INFO) && !f.would_enable("paysession_aws", &Level::DEBUG));
        let f = log_filter(Some("warn,paysession_aws=debug"));
        assert!(f.would_enable("paysession_aws::store", &Level::DEBUG));
        assert!(!f.would_enable("aws_config", &Level::INFO) && f.would_enable("aws_config", &Level::WARN));
        let f = log_filter(Some("paysession=[{x}]"));
        assert!(f.would_enable("any", &Level::WARN) && !f.would_enable("any", &Level::INFO), "unreadable RUST_LOG falls back to warn");
    }
}
