//! The folders of `rig/src` are stages that depend on each other one way
//! (docs/architecture.md): no folder imports, directly or through others,
//! a folder that imports it back. Test modules may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `crate::<stage>` references outside `#[cfg(test)]` modules.
fn imports(text: &str, stages: &BTreeSet<String>) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let code = code.split("#[cfg(test)]\npub(super) mod tests").next().unwrap_or(code);
    code.match_indices("crate::")
        .filter_map(|(i, _)| {
            let rest = &code[i + 7..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            stages.contains(&name).then_some(name)
        })
        .collect()
}

fn reaches(g: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str, seen: &mut BTreeSet<String>) -> bool {
    if !seen.insert(from.to_owned()) {
        return false;
    }
    g[from].iter().any(|n| n == to || reaches(g, n, to, seen))
}

#[test]
fn stages_depend_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stages = BTreeSet::new();
    for e in std::fs::read_dir(&src).expect("src").flatten() {
        let p = e.path();
        let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        // cli/ and main.rs are the binary; lib.rs only lists the stages.
        if !["cli", "main", "lib"].contains(&name.as_str()) {
            stages.insert(name);
        }
    }
    let mut graph = BTreeMap::new();
    for s in &stages {
        let mut files = vec![];
        let dir = src.join(s);
        if dir.is_dir() {
            rs_files(&dir, &mut files);
        } else {
            files.push(src.join(format!("{s}.rs")));
        }
        let mut deps = BTreeSet::new();
        for f in files {
            deps.extend(imports(&std::fs::read_to_string(&f).expect("read"), &stages));
        }
        deps.remove(s);
        graph.insert(s.clone(), deps);
    }
    let mut cycles = vec![];
    for a in &stages {
        for b in stages.range(a.clone()..).skip(1) {
            if reaches(&graph, a, b, &mut BTreeSet::new()) && reaches(&graph, b, a, &mut BTreeSet::new()) {
                cycles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(cycles.is_empty(), "stages import each other: {cycles:?}\ngraph: {graph:#?}");
    // The lowest stage uses nothing else; the binary-facing ones are on top.
    assert!(graph["support"].is_empty(), "{graph:#?}");
    for low in ["support", "plan", "kernel", "build", "image", "guest", "vm", "host", "results"] {
        assert!(!graph[low].contains("exec") && !graph[low].contains("suites"), "{low} reaches up: {graph:#?}");
    }
}
