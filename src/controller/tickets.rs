//! Ticket changes reach the objects that asked for them: every transaction that changes a
//! ticket announces its id on a PostgreSQL channel (`db::tickets::CHANGED_CHANNEL`); this
//! listener finds the VmRequest or VmOperation with that ticket's request uid and asks its
//! controller to reconcile it. A lost notification (e.g. while reconnecting) is caught by the
//! controllers' periodic resync.

use crate::crd::{VmOperation, VmRequest};
use crate::db;
use futures::channel::mpsc::UnboundedSender;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub async fn forward_changes(
    pool: PgPool,
    requests: Store<VmRequest>,
    operations: Store<VmOperation>,
    request_changes: UnboundedSender<ObjectRef<VmRequest>>,
    operation_changes: UnboundedSender<ObjectRef<VmOperation>>,
    stop: CancellationToken,
) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for ticket changes; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        if let Err(err) = listener.listen(db::tickets::CHANGED_CHANNEL).await {
            tracing::warn!(error = %err, "cannot listen for ticket changes; retrying");
            continue;
        }
        loop {
            let notification = tokio::select! {
                () = stop.cancelled() => return,
                n = listener.recv() => n,
            };
            let ticket_id = match notification {
                Ok(n) => match n.payload().parse::<Uuid>() {
                    Ok(id) => id,
                    Err(_) => continue,
                },
                Err(err) => {
                    tracing::warn!(error = %err, "listening for ticket changes failed; reconnecting");
                    break;
                }
            };
            let uid = match pool.acquire().await {
                Ok(mut conn) => db::tickets::request_uid(&mut conn, ticket_id).await,
                Err(err) => Err(err),
            };
            let uid = match uid {
                Ok(Some(uid)) => uid,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, %ticket_id, "looking up a changed ticket failed");
                    continue;
                }
            };
            if let Some(obj) = requests
                .state()
                .into_iter()
                .find(|o| o.uid().as_deref() == Some(&uid))
            {
                let _ = request_changes.unbounded_send(ObjectRef::from_obj(obj.as_ref()));
            } else if let Some(obj) = operations
                .state()
                .into_iter()
                .find(|o| o.uid().as_deref() == Some(&uid))
            {
                let _ = operation_changes.unbounded_send(ObjectRef::from_obj(obj.as_ref()));
            }
        }
    }
}
