//! The ModelServer operator: renders ModelServers into Deployments, Services, autoscalers and
//! disruption budgets, and (with `run`) reconciles them on a cluster.

pub mod cli;
pub mod error;
pub mod labels;
pub mod render;
