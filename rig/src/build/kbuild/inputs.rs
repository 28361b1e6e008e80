//! The build's inputs: which source files count, the hash of everything
//! that affects the output (to skip unchanged rebuilds), and the copy into
//! the build directory that keeps kbuild's incremental build.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracing::debug;

use super::{BuildRequest, KbuildError};
use crate::kernel::fetch::KernelTree;
use crate::support::{hex, io_err};

/// Kbuild outputs and editor/VCS droppings: never copied or hashed.
pub(super) fn is_build_product(name: &str) -> bool {
    const SUFFIXES: &[&str] = &[".o", ".ko", ".mod", ".mod.c", ".cmd", ".a", ".order", ".symvers", ".dwo", ".log", "~"];
    name.starts_with('.') || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Source files under `src` (relative, sorted), skipping build products,
/// hidden entries, symlinked directories and `exclude` (a build directory
/// that may live inside the source).
pub(super) fn source_files(src: &Path, exclude: &Path) -> Result<Vec<PathBuf>, KbuildError> {
    let exclude = exclude.canonicalize().ok();
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = src.join(&rel);
        if exclude.is_some() && dir.canonicalize().ok() == exclude {
            continue;
        }
        let entries = fs::read_dir(&dir).map_err(io_err("read directory", &dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", &dir))?;
            let name = entry.file_name();
            let Some(name_str) = name.to_str() else {
                debug!(path = %entry.path().display(), "skipping non-UTF-8 name");
                continue;
            };
            if is_build_product(name_str) {
                continue;
            }
            let ty = entry.file_type().map_err(io_err("stat", &entry.path()))?;
            if ty.is_dir() {
                stack.push(rel.join(&name));
            } else if ty.is_file() || (ty.is_symlink() && entry.path().is_file()) {
                files.push(rel.join(&name));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Hash of everything that affects the build output.
pub(super) fn build_hash(
    src: &Path,
    files: &[PathBuf],
    tree: &KernelTree,
    req: &BuildRequest,
    env_id: &str,
) -> Result<String, KbuildError> {
    let mut contents = Vec::with_capacity(files.len());
    for f in files {
        let path = src.join(f);
        contents.push((f.to_string_lossy().into_owned(), fs::read(&path).map_err(io_err("read", &path))?));
    }
    let params = [
        ("release", tree.release.as_str()),
        ("package_version", tree.package_version.as_str()),
        ("env", env_id),
        ("w1", if req.extra_cflags_w1 { "1" } else { "0" }),
    ];
    Ok(hash_inputs(&contents, &params, &req.make_vars))
}

/// Pure part of the build hash; every item is length-prefixed so that no
/// two different input sets serialise the same.
pub(super) fn hash_inputs(
    files: &[(String, Vec<u8>)],
    params: &[(&str, &str)],
    make_vars: &[(String, String)],
) -> String {
    let mut h = Sha256::new();
    let mut put = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    put(b"rig-build-hash-v1");
    for (k, v) in params {
        put(k.as_bytes());
        put(v.as_bytes());
    }
    put(b"make_vars");
    for (k, v) in make_vars {
        put(k.as_bytes());
        put(v.as_bytes());
    }
    put(b"files");
    for (name, data) in files {
        put(name.as_bytes());
        put(data);
    }
    hex(&h.finalize())
}

/// Copies `files` from `src` to `out`, leaving identical files alone so
/// their mtimes (and kbuild's incremental build) survive.
pub(super) fn copy_sources(src: &Path, out: &Path, files: &[PathBuf]) -> Result<(), KbuildError> {
    for f in files {
        let from = src.join(f);
        let to = out.join(f);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
        }
        let data = fs::read(&from).map_err(io_err("read", &from))?;
        if fs::read(&to).is_ok_and(|old| old == data) {
            continue;
        }
        fs::write(&to, &data).map_err(io_err("write", &to))?;
    }
    fs::create_dir_all(out).map_err(io_err("create directory", out))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::kbuild::fixtures::tree;

    #[test]
    fn hash_changes_with_each_input() {
        let files = vec![("main.c".to_owned(), b"int x;".to_vec())];
        let vars = vec![("KCFLAGS".to_owned(), "-g".to_owned())];
        let params = [("release", "6.1.0-50-cloud-amd64"), ("cc", "gcc-12")];
        let base = hash_inputs(&files, &params, &vars);
        assert_eq!(base, hash_inputs(&files, &params, &vars));
        assert_eq!(base.len(), 64);
        let other_file = vec![("main.c".to_owned(), b"int y;".to_vec())];
        assert_ne!(base, hash_inputs(&other_file, &params, &vars));
        assert_ne!(base, hash_inputs(&files, &[("release", "6.1.0-51-cloud-amd64"), ("cc", "gcc-12")], &vars));
        assert_ne!(base, hash_inputs(&files, &params, &[]));
        // Length prefixes: moving bytes between name and content changes it.
        let shifted = vec![("main.ci".to_owned(), b"nt x;".to_vec())];
        assert_ne!(base, hash_inputs(&shifted, &params, &vars));
    }

    #[test]
    fn sources_skip_products_and_nested_out_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let out = src.join("build");
        for f in [
            "Kbuild",
            "main.c",
            "include/uapi/x.h",
            "main.o",
            "m.ko",
            "m.mod.c",
            ".main.o.cmd",
            "modules.order",
            ".git/HEAD",
            "build/Kbuild",
        ] {
            let p = src.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f).unwrap();
        }
        let files = source_files(&src, &out).unwrap();
        let names: Vec<_> = files.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(names, ["Kbuild", "include/uapi/x.h", "main.c"]);

        let t = tree("6.1.0-50-cloud-amd64");
        let req =
            BuildRequest { src_dir: src.clone(), out_dir: out.clone(), make_vars: vec![], extra_cflags_w1: false };
        let h1 = build_hash(&src, &files, &t, &req, "host:gcc-12").unwrap();
        // Build products do not affect the hash...
        fs::write(src.join("main.o"), "changed").unwrap();
        assert_eq!(h1, build_hash(&src, &source_files(&src, &out).unwrap(), &t, &req, "host:gcc-12").unwrap());
        // ...sources and W=1 do.
        fs::write(src.join("main.c"), "changed").unwrap();
        let h2 = build_hash(&src, &files, &t, &req, "host:gcc-12").unwrap();
        assert_ne!(h1, h2);
        let w1 = BuildRequest { extra_cflags_w1: true, ..req.clone() };
        assert_ne!(h2, build_hash(&src, &files, &t, &w1, "host:gcc-12").unwrap());

        copy_sources(&src, &out, &files).unwrap();
        assert_eq!(fs::read_to_string(out.join("include/uapi/x.h")).unwrap(), "include/uapi/x.h");
        assert!(!out.join("main.o").exists());
    }
}
