//! Kubernetes-style durations and quantities.
