//! Names the operator puts on every child: label keys and values, the field manager, container,
//! port, volume and path names shared with the sidecar.

/// `app.kubernetes.io/name`: what the application is.
pub const NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: which ModelServer (its name).
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/managed-by`.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// On a canary's pods: the name of the ModelServer whose canary they are (the canary
/// Deployment's selector).
pub const CANARY_OF: &str = "modelserver.dev/canary-of";
/// `app.kubernetes.io/part-of`.
pub const PART_OF: &str = "app.kubernetes.io/part-of";

/// Value of [`NAME`] and [`PART_OF`].
pub const APP_NAME: &str = "modelserver";
/// The operator's name: value of [`MANAGED_BY`], and the server-side apply field manager.
pub const OPERATOR_NAME: &str = "modelserver-operator";
/// The server-side apply field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = OPERATOR_NAME;

/// The label selector of everything the operator manages, pods included:
/// `app.kubernetes.io/managed-by=modelserver-operator`.
pub fn managed_by_selector() -> String {
    format!("{MANAGED_BY}={OPERATOR_NAME}")
}
