//! Log setup: `tracing` lines to stderr, as text or JSON (`MODELSERVER_LOG_FORMAT`), filtered by
//! `MODELSERVER_LOG_LEVEL`. Access log lines are buffered and written in large chunks (one
//! `write` per 64 KiB instead of one per request), at most [`ACCESS_FLUSH_INTERVAL`] late and
//! always before any other line, so the order on stderr is the order of the events.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogArgs, LogFormat};
use crate::errors::ConfigError;
use crate::http::observe::ACCESS_LOG_TARGET;

/// Installs the global subscriber.
pub fn init(args: &LogArgs) -> Result<(), ConfigError> {
    check_levels(&args.log_level)?;
    let filter = EnvFilter::try_new(&args.log_level).map_err(|e| ConfigError::LogLevel {
        input: args.log_level.clone(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter);
    let result = match args.log_format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already installed (only in tests that call this twice): keep the first one.
    if result.is_ok() {
        start_flusher();
    }
    Ok(())
}

/// Access log lines gather here and reach stderr in large writes, as nginx's `access_log ...
/// buffer=`: when [`ACCESS_BUFFER_BYTES`] have gathered, before any other log line (so lines stay
/// in order), every [`ACCESS_FLUSH_INTERVAL`], and at exit ([`flush`]).
static ACCESS_BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// Set once the flusher runs: without it, lines are written at once.
static BUFFERING: AtomicBool = AtomicBool::new(false);
/// Size at which buffered access log lines are written out.
pub const ACCESS_BUFFER_BYTES: usize = 64 * 1024;
/// Longest time an access log line waits in the buffer (bar a stderr that blocks).
pub const ACCESS_FLUSH_INTERVAL: Duration = Duration::from_millis(200);

fn access_buffer() -> MutexGuard<'static, Vec<u8>> {
    // Bytes in the buffer stay valid whatever a panicking holder did.
    ACCESS_BUFFER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes buffered access log lines to stderr now. Call before the process exits.
pub fn flush() {
    let mut buffer = access_buffer();
    write_out(&mut buffer);
}

/// Writes and empties `buffer` (keeping its allocation); called with the buffer locked, so
/// chunks reach stderr in order.
fn write_out(buffer: &mut Vec<u8>) {
    if buffer.is_empty() {
        return;
    }
    // As with unbuffered lines: a log that cannot be written is dropped, never an error.
    let _ = std::io::stderr().write_all(buffer);
    buffer.clear();
}

/// Where `tracing` lines go: access log lines (target [`ACCESS_LOG_TARGET`]) to the buffer,
/// every other line straight to stderr, after the buffered ones.
#[derive(Debug, Clone, Copy, Default)]
struct LogWriter;

/// One line's writer (the fmt layer writes each formatted event with one `write_all`).
enum LineWriter {
    Direct,
    Buffered,
}

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Direct => {
                flush();
                std::io::stderr().write(line)
            }
            Self::Buffered => {
                let mut buffer = access_buffer();
                buffer.extend_from_slice(line);
                if buffer.len() >= ACCESS_BUFFER_BYTES {
                    write_out(&mut buffer);
                }
                Ok(line.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Direct => std::io::stderr().flush(),
            Self::Buffered => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter::Direct
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        if meta.target() == ACCESS_LOG_TARGET && BUFFERING.load(Ordering::Relaxed) {
            LineWriter::Buffered
        } else {
            LineWriter::Direct
        }
    }
}

/// Starts the thread that writes out access log lines that have waited
/// [`ACCESS_FLUSH_INTERVAL`] (it sleeps between runs; nothing to write costs nothing).
fn start_flusher() {
    let spawned = std::thread::Builder::new()
        .name("access-log-flush".to_string())
        .spawn(|| {
            loop {
                std::thread::sleep(ACCESS_FLUSH_INTERVAL);
                flush();
            }
        });
    match spawned {
        Ok(_) => BUFFERING.store(true, Ordering::Relaxed),
        Err(e) => eprintln!("modelserver-sidecar: access log lines are written unbuffered: {e}"),
    }
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
