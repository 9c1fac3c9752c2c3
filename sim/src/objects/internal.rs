//! Writes by the simulator's own controllers: no admission, no schema checks, retried on
//! conflicts, with finalizers and garbage collection honoured.

use serde_json::{Value, json};

use super::{Core, finalizers, now, strip_for_generation};
use crate::apply;
use crate::resources::ResourceDef;
use crate::store::rv_of;

impl Core {
    /// Read-modify-write by a simulated controller, retried on conflicts. `sub` is
    /// "status" for status writes. The closure returns false to skip the write.
    pub fn internal_modify(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        manager: &str,
        sub: &str,
        f: impl Fn(&mut Value) -> bool,
    ) -> Option<Value> {
        for _ in 0..10 {
            let cur = self.store.get(&def.key(), ns, name)?;
            let mut new = (*cur).clone();
            if !f(&mut new) {
                return Some((*cur).clone());
            }
            if def.has_generation
                && sub.is_empty()
                && strip_for_generation(&cur, def.status_subresource)
                    != strip_for_generation(&new, def.status_subresource)
            {
                let g = cur["metadata"]["generation"].as_i64().unwrap_or(0);
                new["metadata"]["generation"] = json!(g + 1);
            }
            apply::record_update(
                &cur,
                &mut new,
                manager,
                &def.api_version(),
                sub,
                &now(),
                def.schema.as_deref(),
            );
            match self.store.update(&def.key(), new, rv_of(&cur), false) {
                Ok(v) => {
                    if !v["metadata"]["deletionTimestamp"].is_null() && finalizers(&v).is_empty() {
                        if let Ok(gone) = self.store.delete(&def.key(), ns, name, None, false) {
                            self.on_removed(&def.key(), &gone);
                        }
                        self.gc();
                    }
                    return Some(v);
                }
                Err(e) if e.code == 409 => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// Deletes on behalf of a simulated controller (finalizers honoured, GC run).
    pub fn internal_delete(&self, def: &ResourceDef, ns: &str, name: &str) -> bool {
        let Some(o) = self.store.get(&def.key(), ns, name) else {
            return false;
        };
        let changed = self.soft_delete(&def.key(), &o);
        self.gc();
        changed
    }
}
