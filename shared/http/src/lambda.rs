//! Logging for functions running on AWS Lambda, in the shape Lambda's JSON log format
//! documents: one object per line with top-level `timestamp`, `level` and `message`, the
//! function's name, and the fields of the invocation's span (`request_id`, `trace_id`,
//! `span_id`, `cold_start`, `merchant_id` once known; `pipeline.rs`, `function.rs`).
//! template.yaml's `LoggingConfig` drives it through the variables Lambda sets from it.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// How lines are written: `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`, as `LoggingConfig`'s
/// `LogFormat` sets it); JSON when unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The format and levels the environment asks for.
#[derive(Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: Targets,
}

impl LogConfig {
    /// From the environment `get` reads. `AWS_LAMBDA_LOG_LEVEL` (`LoggingConfig`'s
    /// `ApplicationLogLevel`) wins over `RUST_LOG`; with neither, warn.
    ///
    /// Warn, not info, by default: API Gateway's access log (template.yaml) has a line per
    /// request and the event store a record of every state change, so the functions' own info
    /// lines (the request line and "session created") repeated both, at 6–11 % of a warm
    /// create's CPU (docs/performance-history.md).
    ///
    /// `RUST_LOG` is read as per-target levels (`info`, `warn,paysession_aws=debug`), not the
    /// full `EnvFilter` syntax: its span and field filters need the regex engine, which would
    /// add ~250 KB to every bootstrap and its parsing to every cold start.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> LogConfig {
        let format = match get("AWS_LAMBDA_LOG_FORMAT").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            Some("text") => LogFormat::Text,
            _ => LogFormat::Json,
        };
        let filter = match get("AWS_LAMBDA_LOG_LEVEL").and_then(|v| lambda_level(&v)) {
            Some(level) => Targets::new().with_default(level),
            None => log_filter(get("RUST_LOG").as_deref()),
        };
        LogConfig { format, filter }
    }
}

/// `ApplicationLogLevel`'s values; FATAL is tracing's ERROR.
fn lambda_level(v: &str) -> Option<LevelFilter> {
    Some(match v.trim().to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "INFO" => LevelFilter::INFO,
        "WARN" => LevelFilter::WARN,
        "ERROR" | "FATAL" => LevelFilter::ERROR,
        _ => return None,
    })
}

/// The filter `RUST_LOG` describes; warn when it is unset or unreadable.
fn log_filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::WARN))
}

/// The JSON line layer, also the local server's `--log-format json`: `function` names the
/// process (`AWS_LAMBDA_FUNCTION_NAME` on Lambda). Span fields are flattened onto the line,
/// so a field an event repeats from its span would appear twice: events do not repeat them.
pub fn json_layer<S>(function: &str) -> json_subscriber::JsonLayer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let mut layer = json_subscriber::JsonLayer::stdout();
    layer
        .with_timer("timestamp", tracing_subscriber::fmt::time::SystemTime)
        .with_level("level")
        .with_flattened_event()
        .with_top_level_flattened_span_list();
    layer.add_static_field("function", serde_json::Value::String(function.to_string()));
    layer
}

/// Whether this is the process's first request or invocation: the `cold_start` field of its
/// span (`pipeline.rs`, and the event functions' in `paysession_runtime`).
pub fn cold_start() -> bool {
    static SERVED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    !SERVED.swap(true, std::sync::atomic::Ordering::Relaxed)
}

/// Logging of a Lambda function, as its environment (template.yaml's `LoggingConfig`) asks.
pub fn init_logging() {
    let config = LogConfig::from_lookup(|k| std::env::var(k).ok());
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "paysession".into());
    let registry = tracing_subscriber::registry().with(config.filter);
    let _ = match config.format {
        LogFormat::Json => registry.with(json_layer(&function)).try_init(),
        // CloudWatch stamps each line with its time; Text lines carry the span's fields.
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer().without_time().with_ansi(false).with_target(false)).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn config(vars: &[(&str, &str)]) -> LogConfig {
        LogConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

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

    #[test]
    fn lambdas_log_level_wins_over_rust_log() {
        let c = config(&[("AWS_LAMBDA_LOG_LEVEL", "ERROR"), ("RUST_LOG", "debug")]);
        assert!(c.filter.would_enable("paysession_http", &Level::ERROR) && !c.filter.would_enable("paysession_http", &Level::WARN));
        let c = config(&[("AWS_LAMBDA_LOG_LEVEL", "fatal")]);
        assert!(!c.filter.would_enable("x", &Level::WARN));
        let c = config(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]);
        assert!(c.filter.would_enable("x", &Level::DEBUG) && !c.filter.would_enable("x", &Level::TRACE));
        // A value Lambda never sets leaves RUST_LOG in charge.
        let c = config(&[("AWS_LAMBDA_LOG_LEVEL", "LOUD"), ("RUST_LOG", "info")]);
        assert!(c.filter.would_enable("x", &Level::INFO));
    }

    #[test]
    fn the_format_follows_lambdas_log_format() {
        assert_eq!(config(&[]).format, LogFormat::Json);
        assert_eq!(config(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")]).format, LogFormat::Json);
        assert_eq!(config(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]).format, LogFormat::Text);
    }
}
