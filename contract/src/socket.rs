//! The Unix sockets of managed workers: worker `i` serves on `<socket dir>/worker-<i>.sock`, a
//! path it reads from `MODELSERVER_SOCKET`.

/// Longest Unix socket path Linux accepts (`sun_path` is 108 bytes including the NUL).
pub const MAX_SOCKET_PATH_LEN: usize = 107;

/// The file name of worker `index`'s socket inside the socket directory.
pub fn socket_file_name(index: usize) -> String {
    format!("worker-{index}.sock")
}
