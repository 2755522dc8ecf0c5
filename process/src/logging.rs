//! Log set-up: `tracing` lines to stderr, as text for people (coloured on a terminal) or one JSON
//! object per line for log collectors, filtered by a level or `tracing` directives.

use std::io::IsTerminal;

use modelserver_contract::cli::LogFormat;
use tracing_subscriber::EnvFilter;

/// A log filter that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("invalid log level {input:?}: {reason}")]
pub struct LogLevelError {
    /// The rejected filter.
    pub input: String,
    /// Why.
    pub reason: String,
}

/// Level names a bare directive may be.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Installs the global subscriber. `filter` is a level (`info`) or `tracing` directives
/// (`info,hyper=debug`). A second call keeps the first subscriber (tests call it more than once).
pub fn init(filter: &str, format: LogFormat) -> Result<(), LogLevelError> {
    check_levels(filter)?;
    let env_filter = EnvFilter::try_new(filter).map_err(|e| LogLevelError {
        input: filter.to_owned(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    let _already_installed = result;
    Ok(())
}

/// A directive without `=` must be a level: `EnvFilter` would read `verbose` as a target name and
/// silently log nothing.
fn check_levels(filter: &str) -> Result<(), LogLevelError> {
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(LogLevelError {
                input: filter.to_owned(),
                reason: format!(
                    "{directive:?} is not a level (trace, debug, info, warn, error, off)"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_levels;

    #[test]
    fn levels_are_checked() {
        assert!(check_levels("info").is_ok());
        assert!(check_levels("WARN,hyper=debug").is_ok());
        assert!(check_levels("modelserver_operator=debug,kube=info").is_ok());
        let error = check_levels("verbose").unwrap_err();
        assert!(
            error.to_string().contains("\"verbose\" is not a level"),
            "{error}"
        );
    }
}
