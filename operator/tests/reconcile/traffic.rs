//! Reconcile scenarios of `spec.canary` and `spec.route`: the exact requests, the children as the
//! API server holds them, and the conditions, as the canary comes up, takes traffic and goes, and
//! as a Gateway's controller reports on the route.

use super::*;

fn stored(cluster: &Cluster, path: &str) -> Value {
    cluster.api.get(path).unwrap_or_else(|| panic!("no {path}"))
}

fn replicas(cluster: &Cluster, name: &str) -> Value {
    stored(cluster, &deployment(name))["spec"]["replicas"].clone()
}

fn with_canary(weight: i32) -> Value {
    let mut spec = iris();
    spec["replicas"] = json!(4);
    spec["canary"] = json!({"weight": weight, "image": "registry.example.com/acme/iris:1.5.0"});
    spec
}

/// One reconcile after the watches delivered everything, then the watches again.
async fn settle(cluster: &mut Cluster, name: &str) {
    cluster.deliver();
    cluster.reconcile(name).await.expect("reconcile");
    cluster.deliver();
}

#[tokio::test]
async fn a_canary_behind_the_shared_service_takes_pods_from_the_stable_version_only_once_available()
{
    let mut cluster = Cluster::new();
    cluster.create("iris", with_canary(25));
    settle(&mut cluster, "iris").await;
    let sent = cluster.sent();
    assert!(
        sent.contains(&apply(&deployment("iris-canary"))),
        "{sent:#?}"
    );
    assert!(sent.contains(&apply(&policy("iris-canary"))), "{sent:#?}");
    assert!(
        !sent.contains(&apply(&service("iris-canary"))),
        "no route: the canary shares the Service"
    );
    // The stable version keeps its four pods until a canary pod is available.
    assert_eq!(replicas(&cluster, "iris"), 4);
    assert_eq!(replicas(&cluster, "iris-canary"), 1);
    let canary = stored(&cluster, &deployment("iris-canary"));
    let template_labels = &canary["spec"]["template"]["metadata"]["labels"];
    assert_eq!(template_labels[labels::CANARY_OF], "iris");
    assert_eq!(
        template_labels[labels::INSTANCE],
        "iris",
        "the shared Service selects the canary's pods too"
    );
    assert_eq!(
        canary["spec"]["selector"]["matchLabels"],
        json!({labels::NAME: labels::APP_NAME, labels::CANARY_OF: "iris"})
    );
    let containers = &canary["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers[0]["image"],
        "registry.example.com/acme/iris:1.5.0"
    );

    cluster.roll_out("iris");
    settle(&mut cluster, "iris").await;
    assert_eq!(
        cluster.condition("iris", ConditionType::Ready),
        is("True", "Available")
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::Reconciling),
        is("True", "CanaryRollout")
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::CanaryReady),
        is("False", "DeploymentPending")
    );

    // The canary's pod is available: the stable version gives one up, the canary is ready.
    cluster.roll_out("iris-canary");
    settle(&mut cluster, "iris").await;
    assert_eq!(replicas(&cluster, "iris"), 3);
    cluster.roll_out("iris");
    settle(&mut cluster, "iris").await;
    assert_eq!(
        cluster.condition("iris", ConditionType::CanaryReady),
        is("True", "Available")
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::Reconciling),
        is("False", "Idle")
    );
    let status = &stored(&cluster, &modelserver("iris"))["status"];
    assert_eq!(
        status["image"], "registry.example.com/acme/iris:1.4.0",
        "the stable version's"
    );
    let status = &status["canary"];
    assert_eq!(status["weight"], 25);
    assert_eq!(status["trafficPercent"], 25, "1 of 4 ready pods");
    assert_eq!(status["image"], "registry.example.com/acme/iris:1.5.0");

    // Abort: the canary goes, the stable version gets its pods back.
    cluster.edit_spec("iris", |spec| {
        spec.as_object_mut().map(|s| s.remove("canary"));
    });
    settle(&mut cluster, "iris").await;
    let sent = cluster.sent();
    assert!(
        sent.contains(&format!("DELETE {}", deployment("iris-canary"))),
        "{sent:#?}"
    );
    assert!(sent.contains(&format!("DELETE {}", policy("iris-canary"))));
    assert_eq!(replicas(&cluster, "iris"), 4);
    assert!(cluster.api.get(&deployment("iris-canary")).is_none());
}

#[tokio::test]
async fn a_canary_whose_name_is_taken_is_stalled_and_the_other_object_left_alone() {
    let mut cluster = Cluster::new();
    cluster.api.insert(
        &deployment("iris-canary"),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "iris-canary", "namespace": NS,
                "labels": {labels::MANAGED_BY: labels::OPERATOR_NAME},
                "ownerReferences": [{"apiVersion": "modelserver.dev/v1alpha1", "kind": "ModelServer",
                    "name": "other", "uid": "uid-other", "controller": true}]},
            "spec": {"replicas": 7}}),
    );
    cluster.create("iris", with_canary(25));
    cluster.ready("iris").await;
    assert_eq!(
        cluster.condition("iris", ConditionType::Stalled),
        is("True", "NameConflict")
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::Ready),
        is("True", "Available"),
        "the stable version serves"
    );
    assert_eq!(replicas(&cluster, "iris-canary"), 7);
}

fn routed(weight: Option<i32>) -> Value {
    let mut spec = iris();
    spec["replicas"] = json!(4);
    spec["server"] = json!({"requestTimeout": "30s"});
    spec["route"] = json!({"parentRefs": [{"name": "public", "sectionName": "web"}],
        "hostnames": ["iris.example.com"], "pathPrefix": "/v1/iris"});
    if let Some(weight) = weight {
        spec["canary"] = json!({"weight": weight, "model": {"args": ["--v2"]}});
    }
    spec
}

/// The Gateway's controller writes what it thinks of the route's current generation.
fn gateway_reports(cluster: &Cluster, accepted: &str, resolved: &str) {
    cluster.api.update(&route("iris"), |route_object| {
        let generation = route_object["metadata"]["generation"].clone();
        let condition = |type_: &str, status: &str, reason: &str| {
            json!({"type": type_, "status": status, "reason": reason,
                "message": format!("{type_} is {status}"), "observedGeneration": generation,
                "lastTransitionTime": "2026-12-01T00:00:00Z"})
        };
        let refused = |ok: &str, yes: &'static str, no: &'static str| if ok == "True" { yes } else { no };
        route_object["status"] = json!({"parents": [{
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                "name": "public", "namespace": NS, "sectionName": "web"},
            "controllerName": "example.com/gateway",
            "conditions": [
                condition("Accepted", accepted, refused(accepted, "Accepted", "NotAllowedByListeners")),
                condition("ResolvedRefs", resolved, refused(resolved, "ResolvedRefs", "BackendNotFound")),
            ],
        }]});
    });
}

#[tokio::test]
async fn a_route_mirrors_what_its_gateway_says_and_takes_the_canary_once_it_is_ready() {
    let mut cluster = Cluster::with_gateway_api(true);
    cluster.api.insert(
        &gateway("public"),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "public", "namespace": NS},
            "spec": {"gatewayClassName": "example", "listeners": [
                {"name": "web", "port": 8443, "protocol": "HTTPS", "hostname": "*.example.com"}]}}),
    );
    cluster.create("iris", routed(Some(10)));
    settle(&mut cluster, "iris").await;
    let sent = cluster.sent();
    assert!(sent.contains(&apply(&route("iris"))), "{sent:#?}");
    assert!(
        sent.contains(&apply(&service("iris-canary"))),
        "the route's canary backend"
    );
    let route_object = stored(&cluster, &route("iris"));
    assert_eq!(
        route_object["spec"]["parentRefs"],
        json!([{"name": "public", "sectionName": "web"}])
    );
    let rule = &route_object["spec"]["rules"][0];
    assert_eq!(
        rule["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/v1/iris"}}])
    );
    assert_eq!(rule["timeouts"], json!({"request": "35s"}));
    assert_eq!(
        rule["backendRefs"],
        json!([{"name": "iris", "port": 80}]),
        "no canary backend before a canary pod is ready"
    );
    // With a route the canary's pods are not behind the stable Service.
    let canary = stored(&cluster, &deployment("iris-canary"));
    assert!(canary["spec"]["template"]["metadata"]["labels"][labels::INSTANCE].is_null());
    assert_eq!(replicas(&cluster, "iris"), 4);
    let status = &stored(&cluster, &modelserver("iris"))["status"];
    assert_eq!(status["url"], "https://iris.example.com:8443/v1/iris");
    assert_eq!(status["clusterUrl"], "http://iris.ml.svc.cluster.local");
    assert_eq!(
        cluster.condition("iris", ConditionType::RouteAccepted),
        is("Unknown", "RoutePending")
    );

    // The Gateway accepts the route; both versions come up; the canary joins the route.
    gateway_reports(&cluster, "True", "True");
    cluster.roll_out("iris");
    cluster.roll_out("iris-canary");
    settle(&mut cluster, "iris").await;
    let rule = &stored(&cluster, &route("iris"))["spec"]["rules"][0];
    assert_eq!(
        rule["backendRefs"],
        json!([{"name": "iris", "port": 80, "weight": 90}, {"name": "iris-canary", "port": 80, "weight": 10}])
    );
    // The route changed (a new generation): the Gateway has to report on it again.
    assert_eq!(
        cluster.condition("iris", ConditionType::RouteAccepted),
        is("Unknown", "RoutePending")
    );
    gateway_reports(&cluster, "True", "True");
    settle(&mut cluster, "iris").await;
    assert_eq!(
        cluster.condition("iris", ConditionType::RouteAccepted),
        is("True", "Accepted")
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::CanaryReady),
        is("True", "Available")
    );
    assert_eq!(
        stored(&cluster, &modelserver("iris"))["status"]["canary"]["trafficPercent"],
        10
    );
    for type_ in [ConditionType::Reconciling, ConditionType::Stalled] {
        assert_eq!(cluster.condition("iris", type_).0, "False", "{type_}");
    }

    // The Gateway's listener moves: its watch reconciles the ModelServer, whose URL follows.
    cluster.api.update(&gateway("public"), |g| {
        g["spec"]["listeners"][0]["port"] = json!(9443);
    });
    assert_eq!(cluster.deliver(), names(&["iris"]));
    cluster.reconcile("iris").await.expect("reconcile");
    assert_eq!(
        stored(&cluster, &modelserver("iris"))["status"]["url"],
        "https://iris.example.com:9443/v1/iris"
    );

    // The Gateway refuses the route: Stalled, with the Gateway's reason.
    gateway_reports(&cluster, "False", "True");
    settle(&mut cluster, "iris").await;
    assert_eq!(
        cluster.condition("iris", ConditionType::RouteAccepted),
        is("False", "RouteNotAccepted")
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::Stalled),
        is("True", "RouteNotAccepted")
    );
    assert!(
        cluster
            .message("iris", ConditionType::Stalled)
            .contains("NotAllowedByListeners"),
        "{}",
        cluster.message("iris", ConditionType::Stalled)
    );

    // Removing spec.route and spec.canary deletes the route and the canary's children.
    cluster.edit_spec("iris", |spec| {
        if let Some(spec) = spec.as_object_mut() {
            spec.remove("route");
            spec.remove("canary");
        }
    });
    settle(&mut cluster, "iris").await;
    let sent = cluster.sent();
    for path in [
        route("iris"),
        deployment("iris-canary"),
        service("iris-canary"),
        policy("iris-canary"),
    ] {
        assert!(
            sent.contains(&format!("DELETE {path}")),
            "{path}: {sent:#?}"
        );
    }
    let status = &stored(&cluster, &modelserver("iris"))["status"];
    assert_eq!(status["url"], "http://iris.ml.svc.cluster.local");
    assert!(status["clusterUrl"].is_null() && status["canary"].is_null());
}

#[tokio::test]
async fn without_the_gateway_api_a_route_is_reported_and_nothing_else_breaks() {
    let mut cluster = Cluster::with_gateway_api(false);
    cluster.create("iris", routed(None));
    cluster.ready("iris").await;
    assert_eq!(
        cluster.condition("iris", ConditionType::RouteAccepted),
        is("False", "GatewayAPIMissing")
    );
    assert_eq!(
        cluster.condition("iris", ConditionType::Stalled),
        is("True", "GatewayAPIMissing")
    );
    // No request to the Gateway API at all.
    cluster.reconcile("iris").await.expect("reconcile");
    assert!(cluster.sent().iter().all(|l| !l.contains(GATEWAY_API)));
}

fn scaled_object(name: &str) -> String {
    format!("/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects/{name}")
}

#[tokio::test]
async fn concurrency_autoscaling_replaces_the_hpa_with_a_keda_scaled_object_and_back() {
    let mut cluster = Cluster::with_gateway_api(true);
    let mut spec = iris();
    spec["replicas"] = json!(3);
    spec["server"] = json!({"workers": 2, "executorThreads": 3});
    spec["autoscaling"] = json!({"maxReplicas": 6, "minReplicas": 2});
    cluster.create("iris", spec);
    cluster.ready("iris").await;
    assert!(cluster.api.get(&autoscaler("iris")).is_some());
    let before = replicas(&cluster, "iris");

    cluster.edit_spec("iris", |spec| {
        spec["autoscaling"]["metric"] = json!("concurrency");
        spec["autoscaling"]["scaleDownDelay"] = json!("30s");
    });
    settle(&mut cluster, "iris").await;
    let sent = cluster.sent();
    assert!(sent.contains(&apply(&scaled_object("iris"))), "{sent:#?}");
    assert!(
        sent.contains(&format!("DELETE {}", autoscaler("iris"))),
        "the operator's HPA goes: KEDA makes its own: {sent:#?}"
    );
    let object = stored(&cluster, &scaled_object("iris"));
    let spec = &object["spec"];
    assert_eq!(
        spec["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris"})
    );
    assert_eq!(
        (
            spec["minReplicaCount"].clone(),
            spec["maxReplicaCount"].clone()
        ),
        (json!(2), json!(6))
    );
    let trigger = &spec["triggers"][0];
    assert_eq!(trigger["type"], "prometheus");
    assert_eq!(trigger["metricType"], "AverageValue");
    assert_eq!(trigger["metadata"]["threshold"], "6", "2 workers x 3 slots");
    assert_eq!(
        trigger["metadata"]["query"],
        "sum(modelserver_inflight_requests{namespace=\"ml\",modelserver=\"iris\"}) + (sum(modelserver_queue_depth{namespace=\"ml\",modelserver=\"iris\"}) or vector(0))"
    );
    assert_eq!(
        trigger["metadata"]["serverAddress"],
        "http://prometheus-operated.monitoring.svc:9090"
    );
    assert_eq!(
        spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        30
    );
    // The operator still leaves the count to the autoscaler.
    assert_eq!(replicas(&cluster, "iris"), before);

    // Back to cpu: the ScaledObject goes, the HPA comes back.
    cluster.edit_spec("iris", |spec| {
        spec["autoscaling"] = json!({"maxReplicas": 6, "minReplicas": 2});
    });
    settle(&mut cluster, "iris").await;
    let sent = cluster.sent();
    assert!(
        sent.contains(&format!("DELETE {}", scaled_object("iris"))),
        "{sent:#?}"
    );
    assert!(sent.contains(&apply(&autoscaler("iris"))), "{sent:#?}");
}

#[tokio::test]
async fn concurrency_autoscaling_without_keda_is_stalled_and_sends_nothing_to_it() {
    let mut cluster = Cluster::with_gateway_api(false);
    let mut spec = iris();
    spec["autoscaling"] = json!({"maxReplicas": 4, "metric": "concurrency"});
    cluster.create("iris", spec);
    settle(&mut cluster, "iris").await;
    assert_eq!(
        cluster.condition("iris", ConditionType::Stalled),
        is("True", "KEDAMissing")
    );
    assert!(cluster.sent().iter().all(|l| !l.contains("keda.sh")));
    assert!(cluster.api.get(&autoscaler("iris")).is_none());
}
