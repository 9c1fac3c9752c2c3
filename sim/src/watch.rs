//! Watch streams: newline-delimited JSON events, initial state, bookmarks (including the
//! `k8s.io/initial-events-end` one of streaming lists), timeouts, `410 Gone` for versions
//! older than the retained window, and cuts injected by tests.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::error::{ApiError, ApiResult};
use crate::objects::Core;
use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{ChangeEvent, EventType};

/// How watched objects are rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum Render {
    Object,
    /// `meta.k8s.io/v1` Table rows, with the `includeObject` policy.
    Table(String),
    /// `PartialObjectMetadata`.
    Metadata,
}

pub struct WatchParams {
    pub resource_version: String,
    pub send_initial_events: Option<bool>,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub namespace: Option<String>,
    pub render: Render,
}

impl WatchParams {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(&obj["metadata"]["labels"]) && self.fields.matches(obj)
    }
}

/// Renders an object the way a read of `def` returns it (version and representation).
pub fn render(def: &ResourceDef, obj: &Value, how: &Render) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(def.api_version());
    match how {
        Render::Object => o,
        Render::Metadata => {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": o["metadata"]})
        }
        Render::Table(include) => crate::table::table(def, &[o], json!({}), include),
    }
}

fn frame(type_: &str, object: Value) -> Result<Bytes, Infallible> {
    let mut line =
        serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Ok(Bytes::from(line))
}

fn classify(def: &ResourceDef, p: &WatchParams, ev: &ChangeEvent) -> Option<&'static str> {
    if ev.key != def.key() || p.namespace.as_ref().is_some_and(|ns| *ns != ev.namespace) {
        return None;
    }
    let now = p.matches(&ev.object);
    match ev.type_ {
        EventType::Added => now.then_some("ADDED"),
        EventType::Deleted => now.then_some("DELETED"),
        EventType::Modified => match (ev.old.as_ref().is_some_and(|o| p.matches(o)), now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }
}

fn bookmark(def: &ResourceDef, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta})
}

/// Starts a watch and returns the stream of frames.
pub fn start(
    core: Arc<Core>,
    def: Arc<ResourceDef>,
    p: WatchParams,
) -> ApiResult<mpsc::Receiver<Result<Bytes, Infallible>>> {
    let (tx, rx) = mpsc::channel(1024);
    let rv_param = p.resource_version.as_str();
    let initial_state = p
        .send_initial_events
        .unwrap_or(rv_param.is_empty() || rv_param == "0");
    type Start = (
        Vec<Arc<Value>>,
        u64,
        Vec<Arc<ChangeEvent>>,
        Option<broadcast::Receiver<Arc<ChangeEvent>>>,
        Option<ApiError>,
    );
    let (initial, start_rv, backlog, live, gone): Start = if initial_state {
        let (items, rv) = core.store.list(&def.key(), p.namespace.as_deref());
        let items: Vec<Arc<Value>> = items.into_iter().filter(|o| p.matches(o)).collect();
        match core.store.watch_from(rv) {
            Ok((backlog, live)) => (items, rv, backlog, Some(live), None),
            Err(e) => (vec![], rv, vec![], None, Some(e)),
        }
    } else {
        let rv: u64 = rv_param
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv_param:?}")))?;
        match core.store.watch_from(rv) {
            Ok((backlog, live)) => (vec![], rv, backlog, Some(live), None),
            Err(e) => (vec![], rv, vec![], None, Some(e)),
        }
    };
    let mut cut = core.faults.cut_signal();
    cut.borrow_and_update();
    let interval = core.bookmark_interval;
    tokio::spawn(async move {
        if let Some(e) = gone {
            // The real server answers 200 and then an ERROR event carrying 410 Expired.
            let _ = tx.send(frame("ERROR", e.to_status())).await;
            return;
        }
        let Some(mut live) = live else { return };
        for o in &initial {
            if tx
                .send(frame("ADDED", render(&def, o, &p.render)))
                .await
                .is_err()
            {
                return;
            }
        }
        if p.send_initial_events == Some(true)
            && p.bookmarks
            && tx
                .send(frame("BOOKMARK", bookmark(&def, start_rv, true)))
                .await
                .is_err()
        {
            return;
        }
        let mut last = start_rv;
        for ev in backlog {
            last = last.max(ev.rv);
            if let Some(t) = classify(&def, &p, &ev)
                && tx
                    .send(frame(t, render(&def, &ev.object, &p.render)))
                    .await
                    .is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(p.timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = cut.changed() => break,
                _ = tx.closed() => break,
                _ = tick.tick(), if p.bookmarks => {
                    if tx.send(frame("BOOKMARK", bookmark(&def, last, false))).await.is_err() {
                        break;
                    }
                }
                r = live.recv() => match r {
                    Ok(ev) => {
                        if ev.rv <= last {
                            continue;
                        }
                        last = ev.rv;
                        if let Some(t) = classify(&def, &p, &ev)
                            && tx.send(frame(t, render(&def, &ev.object, &p.render))).await.is_err()
                        {
                            break;
                        }
                    }
                    // A watcher too slow to keep up is dropped; it re-watches from its
                    // last version, as with the real server's watch cache.
                    Err(_) => break,
                },
            }
        }
    });
    Ok(rx)
}
