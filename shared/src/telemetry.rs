//! Logging: JSON lines in Lambda (CloudWatch parses them), readable text elsewhere.

use tracing_subscriber::EnvFilter;

/// delta-rs and its kernel log every snapshot load (the whole schema included) at info: only
/// their warnings, unless `RUST_LOG` names them.
const QUIET_DEPENDENCIES: &str = "deltalake_core=warn,deltalake_aws=warn,delta_kernel=warn,buoyant_kernel=warn";

/// The filter for `RUST_LOG` (default `info`): a bare level applies to Inlet, not to the
/// chatty dependencies; a full directive list is taken as written.
fn filter_directives(rust_log: Option<&str>) -> String {
    match rust_log.map(str::trim).filter(|value| !value.is_empty()) {
        Some(directives) if directives.contains('=') => directives.to_string(),
        Some(level) => format!("{level},{QUIET_DEPENDENCIES}"),
        None => format!("info,{QUIET_DEPENDENCIES}"),
    }
}

/// Installs the global `tracing` subscriber, filtered by `RUST_LOG` (a bare level applies to Inlet only).
pub fn init() {
    let json = match std::env::var("INLET_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
    };
    let directives = filter_directives(std::env::var("RUST_LOG").ok().as_deref());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(filter_directives(None)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).with_span_list(false).try_init()
    } else {
        // Colour only on a terminal: redirected logs carry no escape codes.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        builder.with_writer(std::io::stderr).with_ansi(ansi).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_keeps_dependencies_quiet_and_full_directives_are_kept() {
        assert_eq!(filter_directives(None), format!("info,{QUIET_DEPENDENCIES}"));
        assert_eq!(filter_directives(Some("debug")), format!("debug,{QUIET_DEPENDENCIES}"));
        assert_eq!(filter_directives(Some("info,buoyant_kernel=debug")), "info,buoyant_kernel=debug");
    }
}
