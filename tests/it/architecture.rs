//! The layering rules of docs/architecture.md, checked on the source: a rule that is only
//! written down drifts. Each `use` or path naming another module of the crate is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The module a file belongs to below `top` (e.g. `app/requests.rs` -> `app::requests`,
/// `app/admission/policy.rs` -> `app::admission`).
fn module_of(file: &Path, depth: usize) -> String {
    let relative = file.strip_prefix(SRC).expect("under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .filter(|p| p != "mod")
        .collect();
    parts.truncate(depth);
    parts.join("::")
}

/// The code of a file without comments and without its `#[cfg(test)]` tail (tests may
/// reach anywhere).
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("readable source");
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Modules `file` names, as `crate::a::b` (depth 2) or `super::b` within `parent`.
fn references(code: &str, parent: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (prefix, base) in [
        ("crate::", String::new()),
        ("super::", format!("{parent}::")),
    ] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            if let Some(first) = segments.first() {
                let full = format!("{base}{first}");
                let parts: Vec<&str> = full.split("::").collect();
                let top = parts[0].to_string();
                let second = if base.is_empty() {
                    segments.get(1).map(|s| s.to_string())
                } else {
                    parts.get(1).map(|s| s.to_string())
                };
                found.insert(match second {
                    Some(s) if s.chars().next().is_some_and(|c| c.is_lowercase()) => {
                        format!("{top}::{s}")
                    }
                    _ => top,
                });
            }
        }
    }
    found
}

#[test]
fn domain_imports_no_outer_layer_and_no_io_crate() {
    let forbidden = [
        "crate::crd",
        "crate::http",
        "crate::app",
        "crate::db",
        "crate::controller",
        "crate::jobs",
        "crate::clusters",
        "crate::cli",
        "crate::run",
        "shepherd_types::crd",
        "shepherd_types::api",
        "kube::",
        "sqlx::",
        "riverqueue::",
        "axum::",
    ];
    let mut violations = Vec::new();
    for file in rust_files(&Path::new(SRC).join("domain")) {
        let code = code(&file);
        for f in forbidden {
            if code.contains(f) {
                violations.push(format!("{} uses {f}", file.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "domain must stay pure:\n{}",
        violations.join("\n")
    );
}

#[test]
fn app_and_db_do_not_import_http_controller_or_cli() {
    let mut violations = Vec::new();
    for layer in ["app", "db"] {
        for file in rust_files(&Path::new(SRC).join(layer)) {
            let code = code(&file);
            for f in [
                "crate::http",
                "crate::controller",
                "crate::cli",
                "crate::run",
                "axum::",
            ] {
                if code.contains(f) {
                    violations.push(format!("{} uses {f}", file.display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_db_layer_owns_no_transaction() {
    let mut violations = Vec::new();
    for file in rust_files(&Path::new(SRC).join("db")) {
        let code = code(&file);
        for f in [".begin()", ".commit()"] {
            if code.contains(f) {
                violations.push(format!("{} calls {f}", file.display()));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Modules at one depth that reach each other, directly or through others, are a cycle.
fn cycles(depth: usize, within: &str) -> Vec<String> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(Path::new(SRC)) {
        let module = module_of(&file, depth);
        if !module.starts_with(within) || module.split("::").count() < depth {
            continue;
        }
        let parent = module.rsplit_once("::").map(|(p, _)| p).unwrap_or("");
        for target in references(&code(&file), parent) {
            let target: String = target
                .split("::")
                .take(depth)
                .collect::<Vec<_>>()
                .join("::");
            if target != module && target.starts_with(within) && target.split("::").count() == depth
            {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    let mut found = Vec::new();
    for start in edges.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    found.push(format!("{} -> {start}", path.join(" -> ")));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found
}

#[test]
fn the_use_cases_form_no_cycle() {
    let found = cycles(2, "app::");
    assert!(
        found.is_empty(),
        "module cycles in app:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_layers_form_no_cycle() {
    let found = cycles(1, "");
    assert!(
        found.is_empty(),
        "module cycles between layers:\n{}",
        found.join("\n")
    );
}

#[test]
fn references_name_crate_and_super_paths() {
    // The checker itself: both spellings of a path to another module are edges.
    let refs = references("use crate::app::requests::X; super::approvals::y()", "app");
    assert!(refs.contains("app::requests"), "{refs:?}");
    assert!(refs.contains("app::approvals"), "{refs:?}");
}
