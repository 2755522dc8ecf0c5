//! Log setup: `tracing` lines to stderr, as text or JSON (`MODELSERVER_LOG_FORMAT`), filtered by
//! `MODELSERVER_LOG_LEVEL`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogArgs, LogFormat};
use crate::errors::ConfigError;

/// Installs the global subscriber.
pub fn init(args: &LogArgs) -> Result<(), ConfigError> {
    check_levels(&args.log_level)?;
    let filter = EnvFilter::try_new(&args.log_level).map_err(|e| ConfigError::LogLevel {
        input: args.log_level.clone(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already installed (only in tests that call this twice): keep the first one.
    let _ = result;
    Ok(())
}

/// Level names a bare directive may be.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// A directive without `=` must be a level: `EnvFilter` would read `verbose` as a target name and
/// silently log nothing.
fn check_levels(filter: &str) -> Result<(), ConfigError> {
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::LogLevel {
                input: filter.to_string(),
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
        assert!(check_levels("verbose").is_err());
    }
}
