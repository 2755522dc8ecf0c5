//! A worker's stderr: passed through byte for byte to the sidecar's own stderr (so the container
//! log shows it as before), while the last few lines are kept in a bounded buffer for the
//! termination message when the worker crash-loops.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;
use tracing::debug;

/// Most bytes of a worker's stderr kept for the termination message.
pub const TAIL_MAX_BYTES: usize = 2048;
/// Most lines of a worker's stderr kept for the termination message.
pub const TAIL_MAX_LINES: usize = 20;
/// Read size when copying a worker's stderr.
const COPY_CHUNK: usize = 8192;

/// The last [`TAIL_MAX_BYTES`] of one worker run's output.
#[derive(Debug, Default)]
pub struct OutputTail {
    bytes: VecDeque<u8>,
    /// Older bytes were dropped, so the first kept line may be cut.
    truncated: bool,
}

impl OutputTail {
    /// Appends output, dropping the oldest bytes beyond the bound.
    pub fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(TAIL_MAX_BYTES);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.truncated = true;
        }
    }

    /// Forgets everything (a new run starts).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.truncated = false;
    }

    /// The last [`TAIL_MAX_LINES`] complete lines, trailing whitespace trimmed, invalid UTF-8
    /// replaced.
    pub fn lines(&self) -> Vec<String> {
        let (front, back) = self.bytes.as_slices();
        let mut raw = Vec::with_capacity(self.bytes.len());
        raw.extend_from_slice(front);
        raw.extend_from_slice(back);
        let text = String::from_utf8_lossy(&raw);
        let mut lines: Vec<&str> = text.lines().collect();
        if self.truncated && lines.len() > 1 {
            // The first line lost its beginning with the dropped bytes.
            lines.remove(0);
        }
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        let skip = lines.len().saturating_sub(TAIL_MAX_LINES);
        lines[skip..]
            .iter()
            .map(|l| l.trim_end().to_string())
            .collect()
    }
}

/// One worker's tail, shared between the copying task and the supervisor.
#[derive(Debug, Clone, Default)]
pub struct SharedTail(Arc<Mutex<OutputTail>>);

impl SharedTail {
    /// Runs `f` on the tail.
    pub fn with<R>(&self, f: impl FnOnce(&mut OutputTail) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Copies `from` to the sidecar's stderr until it ends, keeping the tail in `tail`.
pub fn pass_through(
    worker: usize,
    mut from: impl AsyncRead + Unpin + Send + 'static,
    tail: SharedTail,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    let chunk = &buf[..n];
                    tail.with(|t| t.push(chunk));
                    // Written like the sidecar's own log lines (synchronously, whole chunks), so
                    // the two stay in order and a worker's line is not split by a log line.
                    if let Err(e) = std::io::stderr().lock().write_all(chunk) {
                        debug!(worker, error = %e, "cannot copy worker output to stderr");
                    }
                }
                Err(e) => {
                    debug!(worker, error = %e, "cannot read worker stderr");
                    break;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_within_bounds() {
        let mut tail = OutputTail::default();
        for i in 0..100 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        let lines = tail.lines();
        assert_eq!(lines.len(), TAIL_MAX_LINES);
        assert_eq!(lines.first().map(String::as_str), Some("line 80"));
        assert_eq!(lines.last().map(String::as_str), Some("line 99"));
    }

    #[test]
    fn drops_the_cut_first_line_and_bounds_bytes() {
        let mut tail = OutputTail::default();
        tail.push(&[b'x'; TAIL_MAX_BYTES]);
        tail.push(b"\nModuleNotFoundError: No module named 'nope'\n\n");
        let lines = tail.lines();
        assert_eq!(lines, vec!["ModuleNotFoundError: No module named 'nope'"]);
        assert!(tail.bytes.len() <= TAIL_MAX_BYTES);
        tail.clear();
        assert!(tail.lines().is_empty());
    }

    #[test]
    fn partial_lines_and_invalid_utf8_are_kept_readable() {
        let mut tail = OutputTail::default();
        tail.push(b"Traceback (most rec");
        tail.push(b"ent call last):\r\n  bad \xff byte\nno newline at the end");
        assert_eq!(
            tail.lines(),
            vec![
                "Traceback (most recent call last):",
                "  bad \u{fffd} byte",
                "no newline at the end"
            ]
        );
    }
}
