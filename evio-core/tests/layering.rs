//! The architecture rule of evio-core, checked: imports between its modules
//! point one way. No module imports (with `use crate::…`) from a module
//! that imports it, directly or around a circle. See docs/architecture.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Module name of a source file: `table/mod.rs` and `table/output.rs` both
/// belong to `table` (a module's own submodules are its private business).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate's `src` directory and every `.rs` file below it.
fn crate_sources() -> (PathBuf, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    (src, files)
}

/// Modules `x` named as `crate::x::…`, in `use` declarations (also inside
/// braces) or written out in code.
fn crate_imports(text: &str) -> BTreeSet<String> {
    // Line comments and attributes out, so each statement starts with its
    // keyword.
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .map(|l| {
            let t = l.trim_start();
            match (t.starts_with("#["), t.find(']')) {
                (true, Some(end)) => &t[end + 1..],
                _ => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    // Paths written out in code: `crate::module::Item`.
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() && rest[name.len()..].starts_with("::") {
            found.insert(name);
        }
    }
    // Every `use` keyword (at the start of a statement, after `pub`, or
    // after a brace), up to the `;` that ends it.
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(i) = code[at..].find("use ") {
        let start = at + i;
        at = start + 4;
        let before = start.checked_sub(1).map(|j| bytes[j]);
        if !matches!(
            before,
            None | Some(b' ' | b'\n' | b'\t' | b'{' | b'}' | b';' | b')')
        ) {
            continue;
        }
        let Some(len) = code[at..].find(';') else {
            break;
        };
        let rest = &code[at..at + len];
        let rest: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
        let Some(rest) = rest.strip_prefix("crate::") else {
            continue;
        };
        let names: Vec<&str> = if let Some(inner) = rest.strip_prefix('{') {
            inner
                .trim_end_matches('}')
                .split(',')
                .map(|p| p.split("::").next().unwrap_or(""))
                .collect()
        } else {
            vec![rest.split("::").next().unwrap_or("")]
        };
        for n in names {
            if !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                found.insert(n.to_string());
            }
        }
    }
    found
}

#[test]
fn imports_between_modules_point_one_way() {
    let (src, files) = crate_sources();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let module = module_of(&src, f);
        if module == "lib" {
            continue;
        }
        let imports = crate_imports(&fs::read_to_string(f).unwrap());
        let edges = graph.entry(module.clone()).or_default();
        // Items re-exported at the crate root (`crate::Addr`) are not modules.
        edges.extend(imports.into_iter().filter(|m| *m != module));
    }
    assert!(graph.len() >= 10, "found only {:?}", graph.keys());
    // Depth-first search for a cycle, reporting the circle it finds.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut circle = path[i..].to_vec();
            circle.push(m.to_string());
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            if graph.contains_key(next) {
                if let Some(c) = visit(next, graph, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(circle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!(
                "evio-core modules import each other in a circle: {}",
                circle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_import_parser_sees_braced_and_nested_paths() {
    let text = "//! docs [`X`](crate::y::X)\nuse crate::a::X;\nuse crate::{b::Y, c};\n#[allow(x)] use crate::e::G; // crate::z::W\npub(crate) use crate::d::{E, F};\nuse std::io;\nfn f() { let _ = crate::g::h(); crate::Addr::Unix(None); }";
    let got: Vec<String> = crate_imports(text).into_iter().collect();
    assert_eq!(got, ["a", "b", "c", "d", "e", "g"]);
}

/// Where `needle` occurs in code (comments left out), as `file:line`.
fn occurrences(src: &Path, files: &[PathBuf], needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for f in files {
        let text = fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains(needle) {
                let rel = f.strip_prefix(src).unwrap().display().to_string();
                found.push(format!("{rel}:{}", n + 1));
            }
        }
    }
    found
}

/// The rule that no connection slot is freed while a callback runs (or
/// while the loop still holds a `Slot`), kept by the structure: the slab
/// frees a slot in one function (`ConnTable::reap`), which asks for the
/// loop's `Quiescent` proof, made only by the event loop between
/// iterations (and once more after its last `on_closed`).
#[test]
fn slots_are_freed_in_one_place_between_iterations() {
    let (src, files) = crate_sources();
    let frees: Vec<String> = [
        ".remove(",
        ".try_remove(",
        ".drain(",
        ".retain(",
        ".clear()",
    ]
    .iter()
    .flat_map(|n| occurrences(&src, &files, &format!("slab{n}")))
    .collect();
    assert_eq!(frees.len(), 1, "slab slots freed at {frees:?}");
    assert!(frees[0].starts_with("table/mod.rs:"), "{frees:?}");
    let proofs = occurrences(&src, &files, "Quiescent::between_iterations()");
    assert!(!proofs.is_empty());
    for p in &proofs {
        assert!(
            p.starts_with("event_loop/mod.rs:") || p.starts_with("table/mod.rs:"),
            "a Quiescent proof made outside the event loop: {p} (all: {proofs:?})"
        );
    }
}
