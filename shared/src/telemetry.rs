//! Logging: JSON lines in Lambda (CloudWatch parses them), readable text elsewhere.

use tracing_subscriber::EnvFilter;

/// Our logs at info; delta-rs and its kernel log every snapshot load at info, so only their warnings.
const DEFAULT_FILTER: &str = "info,deltalake_core=warn,deltalake_aws=warn,delta_kernel=warn";

/// Installs the global `tracing` subscriber; `RUST_LOG` overrides [`DEFAULT_FILTER`].
pub fn init() {
    let json = match std::env::var("INLET_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).with_span_list(false).try_init()
    } else {
        builder.with_writer(std::io::stderr).try_init()
    };
}
