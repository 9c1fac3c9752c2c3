//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never reconcile at
//! once (kube-runtime has none of its own). The holder renews every `renew_every`; another
//! replica takes over only after `duration` without renewal, or at once after the holder
//! released it on shutdown. Losing the lease stops the work before anything else can start it
//! elsewhere.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity, e.g. its pod name.
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}

/// Tries once to take or renew the lease; true when this replica holds it afterwards.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs() as i32),
        acquire_time: acquired.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                ..Default::default()
            },
            spec: Some(spec(0, None)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let current = lease.spec.clone().unwrap_or_default();
    let held_by_me = current.holder_identity.as_deref() == Some(cfg.identity.as_str());
    // Released by a holder that shut down: free at once.
    let released = current.holder_identity.as_deref().is_none_or(str::is_empty);
    let expired = match (&current.renew_time, current.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(secs)) => renewed
            .saturating_add(SignedDuration::from_secs(secs as i64))
            .map(|end| end < now)
            .unwrap_or(true),
        _ => true,
    };
    if !held_by_me && !expired && !released {
        return Ok(false);
    }
    let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!held_by_me);
    let acquired = if held_by_me {
        current.acquire_time.clone()
    } else {
        None
    };
    lease.spec = Some(spec(transitions, acquired));
    // The resourceVersion from the read makes this a compare-and-swap: if another replica
    // renewed or took it meanwhile, the API server answers 409 and we are not the leader.
    match api
        .replace(&lease.name_any(), &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up if this replica holds it, so another takes over without waiting for it
/// to expire (a rolling update does not leave the reconcilers idle for `duration`). Called
/// only after the work stopped. Compare-and-swap like `try_acquire`: a lease someone else
/// took meanwhile is left alone.
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        return Ok(false);
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(false);
    };
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return Ok(false);
    }
    spec.holder_identity = None;
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    match api
        .replace(&lease.name_any(), &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs `work` whenever this replica leads, until `shutdown`. `work` receives a token that
/// is cancelled when leadership is lost; it must stop promptly then.
pub async fn run_as_leader<F, Fut>(
    client: Client,
    cfg: LeaseConfig,
    shutdown: CancellationToken,
    work: F,
) where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    while !shutdown.is_cancelled() {
        let attempt = tokio::time::timeout(cfg.renew_every, try_acquire(&api, &cfg)).await;
        match attempt.unwrap_or_else(|_| Ok(false)) {
            Ok(true) => {}
            Ok(false) => {
                tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(cfg.renew_every) => continue }
            }
            Err(err) => {
                tracing::warn!(error = %err, "lease: cannot reach the API server");
                tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(cfg.renew_every) => continue }
            }
        }
        tracing::info!(lease = %cfg.name, identity = %cfg.identity, "lease: leading");
        let lost = shutdown.child_token();
        let task = tokio::spawn(work(lost.clone()));
        // Renew until shutdown, failure, or someone else holding it. Give up leadership
        // before the lease could expire in others' eyes.
        let deadline_slack = cfg.duration.saturating_sub(cfg.renew_every);
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(cfg.renew_every) => {}
            }
            // A renewal that hangs must not keep this replica leading past the point where
            // others may take the lease: it gets only the time left before that.
            let left = deadline_slack.saturating_sub(last_renewal.elapsed());
            match tokio::time::timeout(left, try_acquire(&api, &cfg)).await {
                Ok(Ok(true)) => last_renewal = tokio::time::Instant::now(),
                Ok(Ok(false)) => {
                    tracing::warn!(lease = %cfg.name, "lease: lost to another replica");
                    break;
                }
                Ok(Err(err)) => tracing::warn!(error = %err, "lease: renewal failed"),
                Err(_) => tracing::warn!(timeout = ?left, "lease: renewal timed out"),
            }
            if last_renewal.elapsed() >= deadline_slack {
                tracing::warn!(lease = %cfg.name, "lease: not renewed in time; stepping down");
                break;
            }
        }
        lost.cancel();
        let _ = task.await;
        if shutdown.is_cancelled() {
            match tokio::time::timeout(cfg.renew_every, release(&api, &cfg)).await {
                Ok(Ok(true)) => tracing::info!(lease = %cfg.name, "lease: released"),
                Ok(Ok(false)) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "lease: cannot release"),
                Err(_) => tracing::warn!("lease: release timed out"),
            }
        }
    }
}
