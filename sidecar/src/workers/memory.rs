//! A worker process's resident memory, for the memory ceiling (`--max-worker-memory`): `VmRSS`
//! in `/proc/<pid>/status`. Only the worker's own process is counted, not processes it started.

use std::path::Path;

/// The resident memory of process `pid` in bytes, when `/proc` tells it.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    vm_rss(&text)
}

/// `VmRSS` of a `/proc/<pid>/status` text, in bytes (the kernel writes it in kB).
pub fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_resident_set_in_bytes() {
        let status = "Name:\tpython3\nVmPeak:\t  30000 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(vm_rss(status), Some(12345 * 1024));
        assert_eq!(
            vm_rss("Name:\tkthreadd\n"),
            None,
            "kernel threads have none"
        );
        assert_eq!(vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn this_process_has_resident_memory() {
        assert!(resident_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
