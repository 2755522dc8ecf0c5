//! Where managed workers serve. By default worker `i` serves on the Unix socket
//! `<socket dir>/worker-<i>.sock`, a path it reads from `MODELSERVER_SOCKET`. With a worker port
//! base (for servers that bind TCP only) it serves on 127.0.0.1 at `base + i`, a port it reads
//! from `MODELSERVER_WORKER_PORT`. Workers that also serve gRPC get their gRPC port in
//! `MODELSERVER_GRPC_PORT`.

use std::ops::RangeInclusive;

/// Longest Unix socket path Linux accepts (`sun_path` is 108 bytes including the NUL).
pub const MAX_SOCKET_PATH_LEN: usize = 107;

/// The file name of worker `index`'s socket inside the socket directory.
pub fn socket_file_name(index: usize) -> String {
    format!("worker-{index}.sock")
}

/// Why a worker port range cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerPortsError {
    /// The range runs past the last TCP port.
    #[error("worker ports {base}..{base}+{workers} run past 65535")]
    PastLastPort {
        /// The first port.
        base: u16,
        /// The number of workers.
        workers: u16,
    },
    /// The gRPC range overlaps the workers' HTTP range.
    #[error("worker gRPC ports {first}-{last} overlap the worker ports {http_first}-{http_last}")]
    OverlapsWorkerPorts {
        /// The first gRPC port.
        first: u16,
        /// The last gRPC port.
        last: u16,
        /// The first HTTP port.
        http_first: u16,
        /// The last HTTP port.
        http_last: u16,
    },
    /// The range holds a port the sidecar listens on.
    #[error("worker ports {first}-{last} include the sidecar's {what} port {port}")]
    HoldsSidecarPort {
        /// The first port.
        first: u16,
        /// The last port.
        last: u16,
        /// `public` or `admin`.
        what: &'static str,
        /// The port.
        port: u16,
    },
}

/// The ports of `workers` TCP workers from `base`: refused when the range runs past 65535 or
/// holds the sidecar's public or admin port (0, a port picked at start, is not checked).
pub fn worker_ports(
    base: u16,
    workers: u16,
    public_port: u16,
    admin_port: u16,
) -> Result<RangeInclusive<u16>, WorkerPortsError> {
    let last = u32::from(base) + u32::from(workers.max(1)) - 1;
    let last = u16::try_from(last).map_err(|_| WorkerPortsError::PastLastPort { base, workers })?;
    let range = base..=last;
    for (what, port) in [("public", public_port), ("admin", admin_port)] {
        if port != 0 && range.contains(&port) {
            return Err(WorkerPortsError::HoldsSidecarPort {
                first: base,
                last,
                what,
                port,
            });
        }
    }
    Ok(range)
}

/// The gRPC ports of `workers` workers from `base`: checked like [`worker_ports`], and clear of
/// the workers' HTTP ports when they serve on TCP.
pub fn worker_grpc_ports(
    base: u16,
    workers: u16,
    public_port: u16,
    admin_port: u16,
    http_ports: Option<&RangeInclusive<u16>>,
) -> Result<RangeInclusive<u16>, WorkerPortsError> {
    let range = worker_ports(base, workers, public_port, admin_port)?;
    if let Some(http) = http_ports
        && range.start() <= http.end()
        && http.start() <= range.end()
    {
        return Err(WorkerPortsError::OverlapsWorkerPorts {
            first: *range.start(),
            last: *range.end(),
            http_first: *http.start(),
            http_last: *http.end(),
        });
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ports_stay_clear_of_the_sidecars_ports() {
        assert_eq!(worker_ports(8000, 4, 8080, 9090), Ok(8000..=8003));
        assert_eq!(worker_ports(65535, 1, 8080, 9090), Ok(65535..=65535));
        assert_eq!(
            worker_ports(65535, 2, 8080, 9090),
            Err(WorkerPortsError::PastLastPort {
                base: 65535,
                workers: 2
            })
        );
        assert_eq!(
            worker_ports(8079, 2, 8080, 9090),
            Err(WorkerPortsError::HoldsSidecarPort {
                first: 8079,
                last: 8080,
                what: "public",
                port: 8080
            })
        );
        assert!(matches!(
            worker_ports(9090, 1, 8080, 9090),
            Err(WorkerPortsError::HoldsSidecarPort { what: "admin", .. })
        ));
        assert_eq!(
            worker_grpc_ports(8001, 2, 8080, 9090, Some(&(8000..=8001))),
            Err(WorkerPortsError::OverlapsWorkerPorts {
                first: 8001,
                last: 8002,
                http_first: 8000,
                http_last: 8001
            })
        );
        assert_eq!(
            worker_grpc_ports(8002, 2, 8080, 9090, Some(&(8000..=8001))),
            Ok(8002..=8003)
        );
        assert_eq!(
            worker_grpc_ports(8000, 2, 8080, 9090, None),
            Ok(8000..=8001)
        );
        // Port 0 is picked at start and cannot collide with a fixed range.
        assert_eq!(worker_ports(1, 64, 0, 0), Ok(1..=64));
    }
}
