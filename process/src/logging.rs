//! Log set-up: `tracing` lines to stderr, as text for people (coloured on a terminal) or one JSON
//! object per line for log collectors, filtered by a level or `tracing` directives.
//!
//! Lines of one chosen target (the sidecar's access log) can be buffered and written in large
//! chunks (one `write` per 64 KiB instead of one per request, as nginx's `access_log ...
//! buffer=`), at most [`BUFFER_FLUSH_INTERVAL`] late and always before any other line, so the
//! order on stderr is the order of the events.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::Duration;

use modelserver_contract::cli::LogFormat;
use tracing::Metadata;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

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
/// (`info,hyper=debug`); lines whose target is `buffered_target` are buffered (see the module
/// docs; call [`flush`] before the process exits). A second call keeps the first subscriber (tests
/// call it more than once).
pub fn init(
    filter: &str,
    format: LogFormat,
    buffered_target: Option<&'static str>,
) -> Result<(), LogLevelError> {
    check_levels(filter)?;
    let env_filter = EnvFilter::try_new(filter).map_err(|e| LogLevelError {
        input: filter.to_owned(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(LogWriter);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if result.is_ok()
        && let Some(target) = buffered_target
    {
        start_flusher(target);
    }
    Ok(())
}

/// Buffered lines gather here and reach stderr in large writes: when [`BUFFER_BYTES`] have
/// gathered, before any other log line (so lines stay in order), every
/// [`BUFFER_FLUSH_INTERVAL`], and at exit ([`flush`]).
static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// The target whose lines are buffered, set once the flusher runs: without it, every line is
/// written at once.
static BUFFERED_TARGET: OnceLock<&'static str> = OnceLock::new();
/// The flusher thread, unparked when a line lands in the empty buffer.
static FLUSHER: OnceLock<Thread> = OnceLock::new();
/// Size at which buffered lines are written out.
pub const BUFFER_BYTES: usize = 64 * 1024;
/// Longest time a buffered line waits (bar a stderr that blocks).
pub const BUFFER_FLUSH_INTERVAL: Duration = Duration::from_millis(200);

fn buffer() -> MutexGuard<'static, Vec<u8>> {
    // Bytes in the buffer stay valid whatever a panicking holder did.
    BUFFER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes buffered lines to stderr now. Call before the process exits.
pub fn flush() {
    write_out(&mut buffer());
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

/// Where `tracing` lines go: buffered lines to the buffer, every other line straight to stderr,
/// after the buffered ones.
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
                let mut buffer = buffer();
                let first = buffer.is_empty();
                buffer.extend_from_slice(line);
                if buffer.len() >= BUFFER_BYTES {
                    write_out(&mut buffer);
                } else if first && let Some(flusher) = FLUSHER.get() {
                    flusher.unpark();
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
        if BUFFERED_TARGET.get() == Some(&meta.target()) {
            LineWriter::Buffered
        } else {
            LineWriter::Direct
        }
    }
}

/// Starts the thread that writes out lines that have waited [`BUFFER_FLUSH_INTERVAL`]. It sleeps
/// until a line lands in the empty buffer, so an idle process never wakes it (a pod's sidecar
/// is idle most of its life).
fn start_flusher(target: &'static str) {
    let spawned = std::thread::Builder::new()
        .name("log-flush".to_string())
        .spawn(|| {
            loop {
                // An unpark that came before this park makes it return at once: no line waits
                // unseen. A wake-up with nothing buffered (spurious, or flushed meanwhile)
                // parks again.
                std::thread::park();
                if buffer().is_empty() {
                    continue;
                }
                std::thread::sleep(BUFFER_FLUSH_INTERVAL);
                flush();
            }
        });
    match spawned {
        Ok(handle) => {
            // The thread is known before lines are buffered: the first one unparks it.
            let _first_wins = FLUSHER.set(handle.thread().clone());
            let _first_wins = BUFFERED_TARGET.set(target);
        }
        Err(e) => eprintln!("log lines of {target} are written unbuffered: {e}"),
    }
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
