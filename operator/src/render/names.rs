//! Container, port, volume and path names of the rendered pod, shared with the sidecar's defaults.

/// The init container that copies the sidecar binary into the pod.
pub const INSTALL_CONTAINER: &str = "install-sidecar";
/// The container running the model (and, in managed mode, the sidecar as its entrypoint).
pub const MODEL_CONTAINER: &str = "model";
/// The native sidecar container of proxy mode.
pub const SIDECAR_CONTAINER: &str = "modelserver-sidecar";

/// Name of the public HTTP port (the Service targets it).
pub const HTTP_PORT_NAME: &str = "http";
/// Name of the admin port (probes, drain, metrics; never in the Service).
pub const ADMIN_PORT_NAME: &str = "admin";

/// Where the sidecar binary sits inside the sidecar image.
pub const SIDECAR_IMAGE_BINARY: &str = "/usr/local/bin/modelserver-sidecar";
/// The emptyDir the init container installs the sidecar into.
pub const BIN_DIR: &str = "/modelserver/bin";
/// The installed sidecar binary, as the model container runs it.
pub const SIDECAR_BINARY: &str = "/modelserver/bin/modelserver-sidecar";
/// The emptyDir holding the workers' Unix sockets.
pub const SOCKET_DIR: &str = "/modelserver/sockets";
/// Where the TLS Secret is mounted into the sidecar's container.
pub const TLS_DIR: &str = "/modelserver/tls";
/// The certificate chain's key in a `kubernetes.io/tls` Secret (and its file in [`TLS_DIR`]).
pub const TLS_CERT: &str = "tls.crt";
/// The private key's key in a `kubernetes.io/tls` Secret.
pub const TLS_KEY: &str = "tls.key";
/// The writable scratch directory (the root filesystem is read-only).
pub const TMP_DIR: &str = "/tmp";

/// Volume of [`BIN_DIR`].
pub const BIN_VOLUME: &str = "modelserver-bin";
/// Volume of [`SOCKET_DIR`].
pub const SOCKET_VOLUME: &str = "modelserver-sockets";
/// Volume of [`TLS_DIR`].
pub const TLS_VOLUME: &str = "modelserver-tls";
/// Volume of [`TMP_DIR`].
pub const TMP_VOLUME: &str = "tmp";

/// The UID and GID the containers run as (any image runs as non-root).
pub const RUN_AS_ID: i64 = 65532;
