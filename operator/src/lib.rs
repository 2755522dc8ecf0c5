//! The ModelServer operator: renders ModelServers into Deployments, Services, autoscalers and
//! disruption budgets, and (with `run`) reconciles them on a cluster.

pub mod api_requests;
pub mod cli;
pub mod controller;
pub mod error;
pub mod http;
pub mod labels;
pub mod metrics;
pub mod render;
pub mod run;
pub mod text;
