//! How a worker run ended, in words for `/status`, the log and the termination message, and as a
//! reason label for `worker_exits_total{reason}`. A SIGKILL nobody in the sidecar sent is most
//! often the kernel's OOM killer: when the cgroup's OOM-kill counter rose it is named so; when
//! the counter cannot be read but a memory limit is set it is named "likely" so, with the limit.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::sys::signal::Signal;
use serde::Serialize;

use super::cgroup::format_quantity;

/// Why a worker run ended (`worker_exits_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// It exited with a status code.
    Exit,
    /// A signal killed it.
    Signal,
    /// SIGKILL, likely from the OOM killer.
    Oom,
    /// It could not be started (or waited for) at all.
    StartFailed,
    /// It stopped answering its readiness path while serving and the sidecar killed it.
    Hung,
}

impl ExitReason {
    /// Every reason, for registering the label values.
    pub const ALL: [Self; 5] = [
        Self::Exit,
        Self::Signal,
        Self::Oom,
        Self::StartFailed,
        Self::Hung,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exit => "exit",
            Self::Signal => "signal",
            Self::Oom => "oom",
            Self::StartFailed => "start_failed",
            Self::Hung => "hung",
        }
    }
}

/// A run's end: the reason and the words (`exit code 3`, `killed by SIGKILL, likely out of
/// memory (limit 512Mi)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerExit {
    /// Category.
    pub reason: ExitReason,
    /// Human-readable description, without the worker's name.
    pub text: String,
}

impl WorkerExit {
    /// A run that never started.
    pub fn start_failed(text: String) -> Self {
        Self {
            reason: ExitReason::StartFailed,
            text,
        }
    }

    /// A run the sidecar ended with SIGKILL because the worker hung (`text` says how).
    pub fn hung(text: String) -> Self {
        Self {
            reason: ExitReason::Hung,
            text,
        }
    }

    /// One sentence naming the worker: `worker 0 killed by SIGKILL`, `worker 1 exited: exit
    /// code 3`.
    pub fn summary(&self, worker: usize) -> String {
        match self.reason {
            ExitReason::Exit => format!("worker {worker} exited: {}", self.text),
            _ => format!("worker {worker} {}", self.text),
        }
    }
}

/// What the memory cgroup says about a SIGKILL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryEvidence {
    /// The OOM-kill counter rose during the run (None: not readable).
    pub oom_kill_rose: Option<bool>,
    /// The container's memory limit in bytes, when set.
    pub limit: Option<u64>,
}

/// Classifies a wait result.
pub fn classify(status: std::io::Result<ExitStatus>, memory: MemoryEvidence) -> WorkerExit {
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            return WorkerExit::start_failed(format!("cannot wait for the process: {e}"));
        }
    };
    match (status.code(), status.signal()) {
        (Some(code), _) => WorkerExit {
            reason: ExitReason::Exit,
            text: format!("exit code {code}"),
        },
        (None, Some(sig)) if sig == Signal::SIGKILL as i32 => killed(memory),
        (None, Some(sig)) => WorkerExit {
            reason: ExitReason::Signal,
            text: match Signal::try_from(sig) {
                Ok(signal) => format!("killed by {signal}"),
                Err(_) => format!("killed by signal {sig}"),
            },
        },
        (None, None) => WorkerExit {
            reason: ExitReason::Exit,
            text: status.to_string(),
        },
    }
}

fn killed(memory: MemoryEvidence) -> WorkerExit {
    let likely_oom = match memory.oom_kill_rose {
        Some(rose) => rose,
        None => memory.limit.is_some(),
    };
    if !likely_oom {
        return WorkerExit {
            reason: ExitReason::Signal,
            text: "killed by SIGKILL".to_string(),
        };
    }
    let text = match memory.limit {
        Some(limit) => format!(
            "killed by SIGKILL, likely out of memory (limit {})",
            format_quantity(limit)
        ),
        None => "killed by SIGKILL, likely out of memory".to_string(),
    };
    WorkerExit {
        reason: ExitReason::Oom,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signalled(sig: Signal) -> std::io::Result<ExitStatus> {
        Ok(ExitStatus::from_raw(sig as i32))
    }

    const MI512: Option<u64> = Some(512 << 20);

    #[test]
    fn sigkill_is_named_oom_from_the_evidence() {
        let cases = [
            (None, None, ExitReason::Signal, "killed by SIGKILL"),
            (
                None,
                MI512,
                ExitReason::Oom,
                "killed by SIGKILL, likely out of memory (limit 512Mi)",
            ),
            (
                Some(true),
                MI512,
                ExitReason::Oom,
                "killed by SIGKILL, likely out of memory (limit 512Mi)",
            ),
            (
                Some(true),
                None,
                ExitReason::Oom,
                "killed by SIGKILL, likely out of memory",
            ),
            // The counter is readable and did not move: someone else sent the SIGKILL.
            (Some(false), MI512, ExitReason::Signal, "killed by SIGKILL"),
        ];
        for (rose, limit, reason, text) in cases {
            let exit = classify(
                signalled(Signal::SIGKILL),
                MemoryEvidence {
                    oom_kill_rose: rose,
                    limit,
                },
            );
            assert_eq!((exit.reason, exit.text.as_str()), (reason, text));
        }
    }

    #[test]
    fn exit_codes_and_other_signals() {
        let exit = classify(Ok(ExitStatus::from_raw(3 << 8)), MemoryEvidence::default());
        assert_eq!(exit.reason, ExitReason::Exit);
        assert_eq!(exit.summary(1), "worker 1 exited: exit code 3");
        let exit = classify(
            signalled(Signal::SIGSEGV),
            MemoryEvidence {
                oom_kill_rose: Some(true),
                limit: MI512,
            },
        );
        assert_eq!(exit.reason, ExitReason::Signal);
        assert_eq!(exit.summary(0), "worker 0 killed by SIGSEGV");
    }
}
