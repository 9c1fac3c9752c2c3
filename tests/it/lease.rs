//! Leader election on the simulator: one holder at a time, takeover only after expiry, and
//! work stops when leadership is lost.

use shepherd::controller::lease::{LeaseConfig, release, run_as_leader, try_acquire};
use shepherd_sim::{ClusterConfig, SimCluster};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn config(identity: &str) -> LeaseConfig {
    let mut cfg = LeaseConfig::new("default", "shepherd-test", identity);
    cfg.duration = Duration::from_secs(2);
    cfg.renew_every = Duration::from_millis(200);
    cfg
}

async fn cluster() -> (
    SimCluster,
    kube::Api<k8s_openapi::api::coordination::v1::Lease>,
) {
    let sim = SimCluster::start(ClusterConfig::new("mgmt")).await.unwrap();
    let client = sim.kube_client("admin").unwrap();
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    let namespaces: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(
        client.clone(),
        &kube::discovery::ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
    );
    let _ = namespaces
        .create(&Default::default(), &serde_json::from_value(ns).unwrap())
        .await;
    (sim, kube::Api::namespaced(client, "default"))
}

#[tokio::test]
async fn only_one_replica_holds_the_lease_until_it_expires() {
    let (_sim, api) = cluster().await;
    let (a, b) = (config("replica-a"), config("replica-b"));
    assert!(try_acquire(&api, &a).await.unwrap());
    assert!(
        !try_acquire(&api, &b).await.unwrap(),
        "b must not take a live lease"
    );
    assert!(try_acquire(&api, &a).await.unwrap(), "the holder renews");
    // a stops renewing: b takes over once the lease has expired, and a cannot take it back.
    tokio::time::sleep(a.duration + Duration::from_millis(300)).await;
    assert!(try_acquire(&api, &b).await.unwrap());
    assert!(!try_acquire(&api, &a).await.unwrap());
    let lease = api.get("shepherd-test").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(lease.lease_transitions, Some(1));
}

#[tokio::test]
async fn a_released_lease_is_taken_over_at_once_and_only_its_holder_releases() {
    let (_sim, api) = cluster().await;
    let (a, b) = (config("replica-a"), config("replica-b"));
    assert!(try_acquire(&api, &a).await.unwrap());
    assert!(!release(&api, &b).await.unwrap(), "b does not hold it");
    assert!(!try_acquire(&api, &b).await.unwrap());
    assert!(release(&api, &a).await.unwrap());
    // Long before the lease would have expired.
    assert!(try_acquire(&api, &b).await.unwrap());
    let lease = api.get("shepherd-test").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(lease.lease_transitions, Some(1));
}

#[tokio::test]
async fn a_replica_that_shuts_down_hands_over_without_waiting_for_expiry() {
    let (sim, api) = cluster().await;
    let client = sim.kube_client("admin").unwrap();
    let mut a = config("replica-a");
    a.duration = Duration::from_secs(30);
    let shutdown = CancellationToken::new();
    let leading = Arc::new(AtomicUsize::new(0));
    let runner = tokio::spawn({
        let (shutdown, leading) = (shutdown.clone(), leading.clone());
        run_as_leader(client, a, shutdown, move |lost| {
            let leading = leading.clone();
            async move {
                leading.fetch_add(1, Ordering::SeqCst);
                lost.cancelled().await;
            }
        })
    });
    while leading.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    runner.await.unwrap();
    assert!(try_acquire(&api, &config("replica-b")).await.unwrap());
}

#[tokio::test]
async fn two_running_replicas_never_work_at_the_same_time() {
    let (sim, _api) = cluster().await;
    let client = sim.kube_client("admin").unwrap();
    let working = Arc::new(AtomicUsize::new(0));
    let overlap = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let replica = |identity: &str, stop: CancellationToken| {
        let (working, overlap, started) = (working.clone(), overlap.clone(), started.clone());
        let client = client.clone();
        let cfg = config(identity);
        tokio::spawn(run_as_leader(
            client,
            cfg,
            stop,
            move |lost: CancellationToken| {
                let (working, overlap, started) =
                    (working.clone(), overlap.clone(), started.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    if working.fetch_add(1, Ordering::SeqCst) > 0 {
                        overlap.fetch_add(1, Ordering::SeqCst);
                    }
                    lost.cancelled().await;
                    working.fetch_sub(1, Ordering::SeqCst);
                }
            },
        ))
    };
    let stop_a = stop.child_token();
    let a = replica("replica-a", stop_a.clone());
    let b = replica("replica-b", stop.child_token());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "exactly one replica leads"
    );
    // The leader goes away; the other takes over after the lease lapses.
    stop_a.cancel();
    a.await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while started.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second replica never took over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        overlap.load(Ordering::SeqCst),
        0,
        "two replicas worked at once"
    );
    stop.cancel();
    b.await.unwrap();
}

/// A renewal that hangs (the API server stops answering) used to keep the leader working
/// for as long as the call hung, past the lease's expiry: two leaders. Now the leader steps
/// down before the lease can expire in the others' eyes.
#[tokio::test]
async fn a_hung_renewal_makes_the_leader_step_down_before_the_lease_expires() {
    let (sim, _api) = cluster().await;
    let client = sim.kube_client("admin").unwrap();
    let cfg = config("replica-a");
    let duration = cfg.duration;
    let (leading, mut led) = tokio::sync::watch::channel(false);
    let (stepped_down, mut stepped) = tokio::sync::watch::channel(None);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_as_leader(client, cfg, stop.clone(), move |lost| {
        let (leading, stepped_down) = (leading.clone(), stepped_down.clone());
        async move {
            leading.send_replace(true);
            lost.cancelled().await;
            stepped_down.send_replace(Some(tokio::time::Instant::now()));
        }
    }));
    led.wait_for(|l| *l).await.unwrap();
    // Let one renewal succeed, then every request hangs for a minute.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hung_from = tokio::time::Instant::now();
    sim.faults().set_latency(Duration::from_secs(60));
    let at = tokio::time::timeout(Duration::from_secs(10), stepped.wait_for(Option::is_some))
        .await
        .expect("the leader stepped down")
        .unwrap()
        .unwrap();
    // The last renewal was before `hung_from`, so the lease expires in others' eyes no later
    // than `duration` after it.
    assert!(
        at <= hung_from + duration,
        "stepped down {:?} after the API server hung; the lease lasts {duration:?}",
        at - hung_from
    );
    sim.faults().set_latency(Duration::ZERO);
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}
