//! The layers point one way (README "Development"): no top-level module of `src/` imports one
//! that imports it back, the domain imports nothing else of the crate, and the store only the
//! domain and the clock. Read from the source itself, so a new `use` that breaks a layer fails
//! here with the path that closes the cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may import at most, where the design says so exactly.
const ALLOWED: &[(&str, &[&str])] = &[("domain", &[]), ("store", &["domain", "clock"])];

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph();
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "modules import each other in a circle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_domain_and_the_store_import_only_what_they_may() {
    let graph = module_graph();
    for (module, allowed) in ALLOWED {
        let extra: Vec<&String> = graph
            .get(*module)
            .map(|deps| {
                deps.iter()
                    .filter(|d| !allowed.contains(&d.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            extra.is_empty(),
            "{module} imports {extra:?}; it may import only {allowed:?}"
        );
    }
}

#[test]
fn the_checker_sees_an_import_and_a_cycle() {
    // The checker itself: a `use crate::x::{..}` group and a plain path are both edges.
    let mut deps = BTreeSet::new();
    collect_imports(
        "use crate::{a::B, b};\nfn f() { crate::c::g(); }",
        &mut deps,
    );
    assert_eq!(deps, BTreeSet::from(["a".into(), "b".into(), "c".into()]));
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into();
    assert!(find_cycle(&graph).is_some());
}

/// Top-level module -> the other top-level modules its files name through `crate::`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .expect("src/ lists")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_stem()?.to_str()?.to_string();
            (path.is_dir() || path.extension().is_some_and(|x| x == "rs")).then_some(name)
        })
        .filter(|name| name != "lib" && name != "main")
        .collect();
    let mut graph = BTreeMap::new();
    for module in &modules {
        let mut deps = BTreeSet::new();
        for file in rust_files(&src, module) {
            let text = std::fs::read_to_string(&file).expect("source reads");
            collect_imports(&text, &mut deps);
        }
        deps.retain(|d| d != module && modules.contains(d));
        graph.insert(module.clone(), deps);
    }
    graph
}

fn rust_files(src: &Path, module: &str) -> Vec<PathBuf> {
    let mut files = vec![];
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// Every `crate::NAME` path and every name in a `use crate::{NAME::.., NAME}` group, outside
/// comments.
fn collect_imports(text: &str, deps: &mut BTreeSet<String>) {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split at commas outside nested braces.
            let mut depth = 0;
            let mut current = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        deps.insert(ident(&current));
                        current.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    current.push(c);
                }
            }
            deps.insert(ident(&current));
        } else {
            deps.insert(ident(rest));
        }
    }
    deps.remove("");
}

/// A cycle in the graph as the path that closes it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}
