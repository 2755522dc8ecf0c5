//! Connection and forwarding hardening against misbehaving clients and slow workers, with the
//! real binary and real Python workers: slot accounting after 504s, clients that stop reading,
//! early 413s, client-side body faults, and the connection limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// A request the sidecar timed out (504) still runs in the worker: its slot stays taken until the
/// worker has finished, so the worker never gets more requests at once than executorThreads.
#[tokio::test]
async fn a_timed_out_request_keeps_its_slot_until_the_worker_is_done() {
    let sidecar = Sidecar::serve(
        &["--executor-threads", "1", "--request-timeout", "700ms"],
        &[],
    );
    let client = client();
    sidecar.wait_ready(&client).await;

    // Held in the worker past the timeout.
    let held = client
        .post(sidecar.url("/predict?gate=held"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 504);
    let status = sidecar.status(&client).await;
    assert_eq!(status["workers"][0]["in_flight"], 1, "{status}");

    // The worker still runs the first request on its only slot: a second one must not reach it
    // (it would answer 200 at once); it waits in the queue and times out there.
    let second = client
        .post(sidecar.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.status(),
        504,
        "the worker was given a second request while its only slot was busy"
    );

    // Once the worker finishes the first request the slot is free again.
    release(&client, &sidecar, "held").await;
    wait_for("the slot to be freed", DEADLINE, || async {
        sidecar.status(&client).await["workers"][0]["in_flight"] == 0
    })
    .await;
    let third = client
        .post(sidecar.url("/predict"))
        .body(IRIS_ROWS)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 200);
    assert_eq!(
        sidecar
            .metric(&client, r#"modelserver_rejected_total{reason="timeout"}"#)
            .await,
        2.0
    );
}
