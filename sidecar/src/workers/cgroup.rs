//! The container's memory cgroup, read to name out-of-memory kills: the memory limit (cgroup v2
//! `memory.max`, v1 `memory/memory.limit_in_bytes`) and the OOM-kill counter (v2 `memory.events`,
//! v1 `memory/memory.oom_control`, field `oom_kill`). In a pod the container sees its own cgroup
//! at the root (`/sys/fs/cgroup`); the root is configurable so tests can use a fake one.

use std::path::{Path, PathBuf};

/// cgroup v2 memory limit file.
pub const V2_MEMORY_MAX: &str = "memory.max";
/// cgroup v2 memory events file (holds `oom_kill N`).
pub const V2_MEMORY_EVENTS: &str = "memory.events";
/// cgroup v1 memory controller directory.
pub const V1_MEMORY_DIR: &str = "memory";
/// cgroup v1 memory limit file.
pub const V1_LIMIT: &str = "memory.limit_in_bytes";
/// cgroup v1 OOM control file (holds `oom_kill N` on kernels since 4.13).
pub const V1_OOM_CONTROL: &str = "memory.oom_control";
/// The counter name in both event files.
pub const OOM_KILL_FIELD: &str = "oom_kill";
/// v2 spelling of "no limit".
const NO_LIMIT: &str = "max";
/// Limits at or above this are "no limit" (v1 reports a huge page-aligned number).
pub const UNLIMITED_FROM: u64 = 1 << 60;

/// Reads the memory limit and OOM-kill counter of one cgroup root.
#[derive(Debug, Clone)]
pub struct MemoryCgroup {
    root: PathBuf,
}

impl MemoryCgroup {
    /// The cgroup mounted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The memory limit in bytes, when one is set and readable.
    pub fn limit(&self) -> Option<u64> {
        let text = read(&self.root.join(V2_MEMORY_MAX))
            .or_else(|| read(&self.root.join(V1_MEMORY_DIR).join(V1_LIMIT)))?;
        parse_limit(&text)
    }

    /// How many processes the kernel's OOM killer has killed in this cgroup, when readable.
    pub fn oom_kills(&self) -> Option<u64> {
        read(&self.root.join(V2_MEMORY_EVENTS))
            .and_then(|t| parse_counter(&t, OOM_KILL_FIELD))
            .or_else(|| {
                read(&self.root.join(V1_MEMORY_DIR).join(V1_OOM_CONTROL))
                    .and_then(|t| parse_counter(&t, OOM_KILL_FIELD))
            })
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Parses a limit file: `max` or a value at or above [`UNLIMITED_FROM`] mean no limit.
pub fn parse_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == NO_LIMIT {
        return None;
    }
    text.parse::<u64>().ok().filter(|&n| n < UNLIMITED_FROM)
}

/// Finds `name N` in a flat-keyed cgroup file.
pub fn parse_counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next() == Some(name))
            .then(|| fields.next()?.parse().ok())
            .flatten()
    })
}

/// Formats bytes as a Kubernetes quantity: the largest binary suffix that divides exactly
/// (`512Mi`, `1536Mi`, `2Gi`), else plain bytes.
pub fn format_quantity(bytes: u64) -> String {
    const SUFFIXES: [&str; 6] = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"];
    for (i, suffix) in SUFFIXES.iter().enumerate() {
        let shift = 10 * (SUFFIXES.len() - i);
        let unit = 1u64 << shift;
        if bytes != 0 && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(format_quantity(512 * 1024 * 1024), "512Mi");
        assert_eq!(format_quantity(1536 * 1024 * 1024), "1536Mi");
        assert_eq!(format_quantity(2 * 1024 * 1024 * 1024), "2Gi");
        assert_eq!(format_quantity(1000), "1000");
        assert_eq!(format_quantity(4096), "4Ki");
        assert_eq!(format_quantity(0), "0");
    }

    #[test]
    fn limits_and_counters() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("536870912\n"), Some(536_870_912));
        assert_eq!(parse_limit("garbage"), None);
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_counter(events, OOM_KILL_FIELD), Some(1));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_counter(v1, OOM_KILL_FIELD), Some(3));
        assert_eq!(parse_counter("oom 1\n", OOM_KILL_FIELD), None);
    }

    #[test]
    fn reads_v2_then_v1_layouts() {
        let v2 = tempfile::tempdir().unwrap();
        std::fs::write(v2.path().join(V2_MEMORY_MAX), "536870912\n").unwrap();
        std::fs::write(v2.path().join(V2_MEMORY_EVENTS), "oom 1\noom_kill 4\n").unwrap();
        let cg = MemoryCgroup::new(v2.path());
        assert_eq!(cg.limit(), Some(512 << 20));
        assert_eq!(cg.oom_kills(), Some(4));

        let v1 = tempfile::tempdir().unwrap();
        let dir = v1.path().join(V1_MEMORY_DIR);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(V1_LIMIT), "1073741824\n").unwrap();
        std::fs::write(dir.join(V1_OOM_CONTROL), "under_oom 0\noom_kill 0\n").unwrap();
        let cg = MemoryCgroup::new(v1.path());
        assert_eq!(cg.limit(), Some(1 << 30));
        assert_eq!(cg.oom_kills(), Some(0));

        let none = tempfile::tempdir().unwrap();
        let cg = MemoryCgroup::new(none.path());
        assert_eq!((cg.limit(), cg.oom_kills()), (None, None));
    }
}
