//! The crate's module graph has no cycles: a module (a file or folder directly under `src/`)
//! may use another only if that one does not, directly or through others, use it back. The
//! graph is read from the sources: every `crate::name` outside comments and unit tests is an
//! edge. The module documentation of `lib.rs` names the layers this keeps apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules whose job is to see everything: the library root and the test server.
const ROOTS: [&str; 3] = ["lib", "main", "testing"];

#[test]
fn the_module_graph_has_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(graph.len() > 10, "modules found: {:?}", graph.keys());
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "modules that use each other (each line is a cycle, one edge per step):\n{}",
        cycles
            .iter()
            .map(|cycle| cycle.join(" -> "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `module -> modules it uses`, for the modules directly under `src`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    // `crate::AppState` is `crate::state::AppState`: the root's re-exports name their module.
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs is readable");
    let reexported: BTreeMap<String, String> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("pub use "))
        .filter_map(|rest| rest.split_once("::"))
        .flat_map(|(module, items)| {
            items
                .trim_matches(|c: char| "{};".contains(c))
                .split(',')
                .map(|item| (item.trim().to_owned(), module.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("src is readable") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a name")
            .to_owned();
        if ROOTS.contains(&name.as_str()) {
            continue;
        }
        let mut uses = BTreeSet::new();
        for file in rust_files(&path) {
            let text = std::fs::read_to_string(&file).expect("readable source");
            uses.extend(
                used_modules(&text)
                    .into_iter()
                    .map(|used| reexported.get(&used).cloned().unwrap_or(used)),
            );
        }
        uses.remove(&name);
        graph.insert(name, uses);
    }
    graph
}

fn rust_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_dir() {
        std::fs::read_dir(path)
            .expect("a readable folder")
            .flat_map(|entry| rust_files(&entry.expect("an entry").path()))
            .collect()
    } else if path.extension().is_some_and(|ext| ext == "rs") {
        vec![path.to_path_buf()]
    } else {
        Vec::new()
    }
}

/// The first segments of every `crate::…` path in `text`, outside comments and the unit tests
/// at the end of a file.
fn used_modules(text: &str) -> BTreeSet<String> {
    let code: String = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut used = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        used.insert(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            used.insert(first_segment(&item));
        } else {
            used.insert(first_segment(rest));
        }
    }
    used.remove("");
    used
}

fn first_segment(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every elementary cycle's shortest witness, one per strongly connected group of modules.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut covered = BTreeSet::new();
    for start in graph.keys() {
        if covered.contains(start) {
            continue;
        }
        // Breadth-first from `start` back to itself: the shortest cycle through it.
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.as_str()]);
        let mut closed = None;
        while let Some(module) = queue.pop_front() {
            for next in graph.get(module).into_iter().flatten() {
                if next == start {
                    closed = Some(module);
                    queue.clear();
                    break;
                }
                if graph.contains_key(next) && !previous.contains_key(next.as_str()) {
                    previous.insert(next, module);
                    queue.push_back(next);
                }
            }
        }
        if let Some(mut last) = closed {
            let mut cycle = vec![start.clone()];
            while last != start {
                cycle.push(last.to_owned());
                last = previous[last];
            }
            cycle[1..].reverse();
            cycle.push(start.clone());
            covered.extend(cycle.iter().cloned());
            found.push(cycle);
        }
    }
    found
}

#[test]
fn the_reader_sees_grouped_and_nested_paths_and_skips_comments() {
    let text = "use crate::{a::X, b::{c, d}, e};\n// crate::f\nfn g() { crate::h::i(); }\n\
                fn j() { krate::k(); }\n#[cfg(test)]\nmod tests { use crate::l; }\n";
    let used: Vec<String> = used_modules(text).into_iter().collect();
    assert_eq!(used, ["a", "b", "e", "h"]);
}
