//! The sidecar's settings: the command line and `MODELSERVER_*` environment defined once, in the
//! `modelserver-contract` crate the operator renders them from.

pub use modelserver_contract::cli::{
    Cli, Command, CorsArgs, DrainArgs, InstallArgs, LogArgs, LogFormat, ProxyArgs, ServeArgs,
    ServerArgs,
};
pub use modelserver_contract::env;
pub use modelserver_contract::socket::MAX_SOCKET_PATH_LEN;
pub use modelserver_contract::upstream::UpstreamAddr;
