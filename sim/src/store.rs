//! The in-memory object store of one cluster: one resourceVersion counter, a bounded log
//! of change events (the "watch window"; older versions answer `410 Gone`) and a
//! broadcast channel for live watchers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::{ApiError, ApiResult};
use crate::resources::ResKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the log and sent to watchers.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    pub rv: u64,
    pub type_: EventType,
    pub key: ResKey,
    pub namespace: String,
    pub object: Arc<Value>,
    /// The previous state for MODIFIED events (selector transitions need it).
    pub old: Option<Arc<Value>>,
}

type ObjKey = (String, String);

/// Retained events after a version, plus the live receiver that follows them.
pub type WatchStart = (Vec<Arc<ChangeEvent>>, broadcast::Receiver<Arc<ChangeEvent>>);

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Arc<Value>>>,
    log: VecDeque<Arc<ChangeEvent>>,
    window: usize,
    /// The oldest resourceVersion a watch may start from (events after it are retained).
    oldest: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<ChangeEvent>>,
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

pub fn rv_of(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion").parse().unwrap_or(0)
}

impl Store {
    pub fn new(window: usize) -> Self {
        let (tx, _) = broadcast::channel(65_536);
        Store {
            inner: Mutex::new(Inner {
                window: window.max(1),
                ..Default::default()
            }),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every mutation is a
        // single insert/remove), so poisoning is not fatal.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, key: &ResKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.lock()
            .objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// All objects of a resource (optionally one namespace), sorted by namespace/name,
    /// with the store's current resourceVersion.
    pub fn list(&self, key: &ResKey, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let g = self.lock();
        let items = match g.objects.get(key) {
            None => vec![],
            Some(m) => match ns {
                Some(ns) => m
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v.clone())
                    .collect(),
                None => m.values().cloned().collect(),
            },
        };
        (items, g.rv)
    }

    /// Every object in every resource (for garbage collection scans).
    pub fn all(&self) -> Vec<(ResKey, Arc<Value>)> {
        let g = self.lock();
        g.objects
            .iter()
            .flat_map(|(k, m)| m.values().map(move |v| (k.clone(), v.clone())))
            .collect()
    }

    fn record(g: &mut Inner, tx: &broadcast::Sender<Arc<ChangeEvent>>, ev: ChangeEvent) {
        let ev = Arc::new(ev);
        g.log.push_back(ev.clone());
        while g.log.len() > g.window {
            if let Some(old) = g.log.pop_front() {
                g.oldest = old.rv;
            }
        }
        let _ = tx.send(ev);
    }

    /// Creates an object; sets its resourceVersion. `AlreadyExists` if present.
    pub fn create(&self, key: &ResKey, mut obj: Value, dry_run: bool) -> ApiResult<Value> {
        let mut g = self.lock();
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        if g.objects
            .get(key)
            .is_some_and(|m| m.contains_key(&(ns.clone(), name.clone())))
        {
            return Err(ApiError::already_exists(&key.group, &key.plural, &name));
        }
        if dry_run {
            return Ok(obj);
        }
        g.rv += 1;
        let rv = g.rv;
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let arc = Arc::new(obj.clone());
        g.objects
            .entry(key.clone())
            .or_default()
            .insert((ns.clone(), name), arc.clone());
        Self::record(
            &mut g,
            &self.tx,
            ChangeEvent {
                rv,
                type_: EventType::Added,
                key: key.clone(),
                namespace: ns,
                object: arc,
                old: None,
            },
        );
        Ok(obj)
    }

    /// Replaces an object if its stored resourceVersion equals `expected_rv`.
    pub fn update(
        &self,
        key: &ResKey,
        mut obj: Value,
        expected_rv: u64,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let mut g = self.lock();
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let cur = g
            .objects
            .get(key)
            .and_then(|m| m.get(&(ns.clone(), name.clone())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&key.group, &key.plural, &name))?;
        if rv_of(&cur) != expected_rv {
            return Err(ApiError::stale(&key.group, &key.plural, &name));
        }
        if dry_run {
            return Ok(obj);
        }
        // A no-op write keeps the resourceVersion and emits no event, like the real server.
        let mut probe = obj.clone();
        probe["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
        if probe == *cur {
            return Ok(probe);
        }
        g.rv += 1;
        let rv = g.rv;
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let arc = Arc::new(obj.clone());
        g.objects
            .entry(key.clone())
            .or_default()
            .insert((ns.clone(), name), arc.clone());
        Self::record(
            &mut g,
            &self.tx,
            ChangeEvent {
                rv,
                type_: EventType::Modified,
                key: key.clone(),
                namespace: ns,
                object: arc,
                old: Some(cur),
            },
        );
        Ok(obj)
    }

    /// Removes an object (if `expected_rv` is given it must match).
    pub fn delete(
        &self,
        key: &ResKey,
        ns: &str,
        name: &str,
        expected_rv: Option<u64>,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let mut g = self.lock();
        let k = (ns.to_string(), name.to_string());
        let cur = g
            .objects
            .get(key)
            .and_then(|m| m.get(&k))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&key.group, &key.plural, name))?;
        if let Some(e) = expected_rv
            && rv_of(&cur) != e
        {
            return Err(ApiError::stale(&key.group, &key.plural, name));
        }
        if dry_run {
            return Ok((*cur).clone());
        }
        g.objects.get_mut(key).map(|m| m.remove(&k));
        g.rv += 1;
        let rv = g.rv;
        // The DELETED event carries the final state with a new resourceVersion.
        let mut last = (*cur).clone();
        last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let arc = Arc::new(last.clone());
        Self::record(
            &mut g,
            &self.tx,
            ChangeEvent {
                rv,
                type_: EventType::Deleted,
                key: key.clone(),
                namespace: ns.to_string(),
                object: arc,
                old: None,
            },
        );
        Ok(last)
    }

    /// Starts a watch: the retained events after `from_rv` plus a live receiver, taken
    /// atomically so nothing is missed or duplicated. `Err(Gone)` if `from_rv` is older
    /// than the window.
    pub fn watch_from(&self, from_rv: u64) -> ApiResult<WatchStart> {
        let g = self.lock();
        if from_rv < g.oldest {
            return Err(ApiError::gone(format!(
                "too old resource version: {from_rv} ({})",
                g.oldest + 1
            )));
        }
        let backlog = g.log.iter().filter(|e| e.rv > from_rv).cloned().collect();
        Ok((backlog, self.tx.subscribe()))
    }

    /// A live receiver only (for watches starting "now" and for controllers).
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<ChangeEvent>>, u64) {
        let g = self.lock();
        (self.tx.subscribe(), g.rv)
    }

    /// Shrinks (or grows) the retained window; shrinking forgets old events at once.
    pub fn set_window(&self, window: usize) {
        let mut g = self.lock();
        g.window = window.max(1);
        while g.log.len() > g.window {
            if let Some(old) = g.log.pop_front() {
                g.oldest = old.rv;
            }
        }
    }

    /// Forgets every retained event: any watch from an older version gets 410.
    pub fn compact(&self) {
        let mut g = self.lock();
        g.log.clear();
        g.oldest = g.rv;
    }
}
