//! The sidecar's last words for the kubelet: when workers crash-loop (or cannot start), a short
//! human-readable message in the container's termination-message file, which Kubernetes shows in
//! the pod's status (and the operator in the ModelServer's). First line: a one-line summary
//! (`WorkerCrashLoop: worker 0 exited 6 times in 10m; last exit: exit code 1`), then the
//! worker's last stderr lines. Writing is best effort: outside a pod the file usually cannot be
//! opened, which is logged at debug level only.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use modelserver_units::format_duration;
use tracing::{debug, info};

use crate::errors::SidecarError;

/// Kubernetes keeps at most 4096 bytes of the message; stay below.
pub const MAX_MESSAGE_BYTES: usize = 4000;
/// The summary line is cut at this length, so the output always has room.
const MAX_SUMMARY_BYTES: usize = 1024;
/// The reason word the message starts with.
pub const CRASH_LOOP_REASON: &str = "WorkerCrashLoop";

/// The message for an error that ends the sidecar, when there is one to leave.
pub fn message(error: &SidecarError) -> Option<String> {
    match error {
        SidecarError::CrashLoop {
            worker,
            exits,
            window_secs,
            last_exit,
            last_output,
            ..
        } => Some(crash_loop_message(
            *worker,
            *exits,
            &format_duration(Duration::from_secs(*window_secs)),
            last_exit,
            last_output,
        )),
        _ => None,
    }
}

/// Formats the crash-loop message, dropping the oldest output lines to fit
/// [`MAX_MESSAGE_BYTES`].
pub fn crash_loop_message(
    worker: usize,
    exits: usize,
    window: &str,
    last_exit: &str,
    output: &[String],
) -> String {
    let summary = format!(
        "{CRASH_LOOP_REASON}: worker {worker} exited {exits} times in {window}; last exit: {last_exit}"
    );
    let mut text = cut(&summary, MAX_SUMMARY_BYTES).to_string();
    text.push('\n');
    if output.is_empty() {
        text.push_str(&format!("worker {worker} wrote nothing to stderr\n"));
        return text;
    }
    text.push_str(&format!("last output of worker {worker}:\n"));
    let room = MAX_MESSAGE_BYTES.saturating_sub(text.len());
    let mut kept: Vec<&str> = Vec::new();
    let mut used = 0;
    for line in output.iter().rev() {
        let line = cut(line, room);
        if used + line.len() + 1 > room {
            break;
        }
        used += line.len() + 1;
        kept.push(line);
    }
    for line in kept.iter().rev() {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The longest prefix of `s` within `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Writes `message` to `path`, replacing what was there; failures are logged at debug level.
pub fn write(path: &Path, message: &str) {
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(message.as_bytes()));
    match result {
        Ok(()) => info!(path = %path.display(), "termination message written"),
        Err(e) => {
            debug!(path = %path.display(), error = %e, "cannot write the termination message")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_then_output() {
        let output = vec![
            "Traceback (most recent call last):".to_string(),
            "ModuleNotFoundError: No module named 'x'".to_string(),
        ];
        let text = crash_loop_message(0, 3, "10m", "exit code 1", &output);
        assert_eq!(
            text,
            "WorkerCrashLoop: worker 0 exited 3 times in 10m; last exit: exit code 1\n\
             last output of worker 0:\n\
             Traceback (most recent call last):\n\
             ModuleNotFoundError: No module named 'x'\n"
        );
        let text = crash_loop_message(1, 1, "10m", "could not start", &[]);
        assert!(
            text.ends_with("worker 1 wrote nothing to stderr\n"),
            "{text}"
        );
    }

    #[test]
    fn stays_under_the_kubernetes_limit_keeping_the_newest_lines() {
        let output: Vec<String> = (0..200)
            .map(|i| format!("{i:04} {}", "é".repeat(60)))
            .collect();
        let text = crash_loop_message(0, 6, "10m", &"x".repeat(5000), &output);
        assert!(text.len() <= MAX_MESSAGE_BYTES, "{}", text.len());
        assert!(text.starts_with("WorkerCrashLoop: worker 0 exited 6 times"));
        assert!(text.trim_end().ends_with(&output[199]), "{text}");
        assert!(!text.contains(&output[0]));
    }
}
