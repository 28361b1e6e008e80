//! The build's inputs: which source files count, the hash of everything
//! that affects the output (to skip unchanged rebuilds), the kernel headers
//! a build used (from kbuild's own dependency lists), the record of a good
//! build, and the copy into the build directory that keeps kbuild's
//! incremental build.

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

/// What the build-hash file records of a good build: the inputs' hash,
/// the digest of the kernel files it was built against, and each module's
/// SHA256. All three are checked before the build is reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BuildRecord {
    /// [`build_hash`] of the sources, kernel release, environment, flags.
    pub(super) inputs: String,
    /// [`headers_digest`] of the kernel files the build read.
    pub(super) headers: String,
    /// Each module (path relative to the build directory) and its SHA256.
    pub(super) modules: Vec<(String, String)>,
}

impl BuildRecord {
    pub(super) fn format(&self) -> String {
        let mut text = format!("{}\nheaders {}\n", self.inputs, self.headers);
        for (ko, sha) in &self.modules {
            text.push_str(&format!("ko {sha} {ko}\n"));
        }
        text
    }

    /// `None` for anything else, including the one-line file older rigs wrote.
    pub(super) fn parse(text: &str) -> Option<BuildRecord> {
        let mut lines = text.lines();
        let inputs = lines.next()?.trim().to_owned();
        let headers = lines.next()?.strip_prefix("headers ")?.to_owned();
        let mut modules = Vec::new();
        for line in lines {
            let (sha, ko) = line.strip_prefix("ko ")?.split_once(' ')?;
            modules.push((ko.to_owned(), sha.to_owned()));
        }
        (!inputs.is_empty() && !modules.is_empty()).then_some(BuildRecord { inputs, headers, modules })
    }
}

/// The files named in the `deps_<target> := \` lists of a kbuild `.cmd`
/// file (fixdep's output), without the `$(wildcard ...)` config entries.
pub(super) fn cmd_file_deps(text: &str) -> Vec<String> {
    let mut deps = Vec::new();
    let mut in_list = false;
    for line in text.lines() {
        if !in_list {
            in_list = line.starts_with("deps_") && line.trim_end().ends_with(":= \\");
            continue;
        }
        let item = line.trim().trim_end_matches('\\').trim();
        if !item.is_empty() && !item.starts_with("$(") {
            deps.push(item.to_owned());
        }
        in_list = line.trim_end().ends_with('\\');
    }
    deps
}

/// The files outside `out` that the build in `out` read, from the `.cmd`
/// files kbuild left there (relative paths are relative to `objtree`,
/// where make runs), plus the kernel's `.config` and `Module.symvers`
/// (modpost's input), sorted and deduplicated.
pub(super) fn kernel_deps(out: &Path, objtree: &Path) -> Result<Vec<PathBuf>, KbuildError> {
    let mut deps = vec![objtree.join(".config"), objtree.join("Module.symvers")];
    let mut stack = vec![out.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(io_err("read directory", &dir))?.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if name.starts_with('.') && name.ends_with(".cmd") {
                let text = fs::read_to_string(&path).map_err(io_err("read", &path))?;
                deps.extend(cmd_file_deps(&text).into_iter().map(|d| objtree.join(d)));
            }
        }
    }
    deps.retain(|d| !d.starts_with(out));
    deps.sort();
    deps.dedup();
    Ok(deps)
}

/// Hash of the paths and contents of `deps`; `host_path` says where a
/// path the build saw is on the host (a chroot's own files are under its
/// root). A file that cannot be read hashes as missing.
pub(super) fn headers_digest(deps: &[PathBuf], host_path: impl Fn(&Path) -> PathBuf) -> String {
    let mut h = Sha256::new();
    for dep in deps {
        let bytes = dep.as_os_str().as_encoded_bytes();
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
        match fs::read(host_path(dep)) {
            Ok(data) => {
                h.update((data.len() as u64).to_le_bytes());
                h.update(&data);
            }
            Err(_) => h.update(u64::MAX.to_le_bytes()),
        }
    }
    hex(&h.finalize())
}

/// Lower-case hex SHA256 of `path`'s contents.
pub(super) fn file_sha256(path: &Path) -> Result<String, KbuildError> {
    let data = fs::read(path).map_err(io_err("read", path))?;
    Ok(hex(&Sha256::digest(&data)))
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

    #[test]
    fn build_record_roundtrip_and_old_format() {
        let r = BuildRecord {
            inputs: "ab".repeat(32),
            headers: "cd".repeat(32),
            modules: vec![("rig_kmod.ko".into(), "ef".repeat(32)), ("sub/x.ko".into(), "01".repeat(32))],
        };
        assert_eq!(BuildRecord::parse(&r.format()), Some(r.clone()));
        // The one-line file of older rigs is not a record: the module is built again.
        assert_eq!(BuildRecord::parse(&format!("{}\n", r.inputs)), None);
        assert_eq!(BuildRecord::parse(&format!("{}\nheaders {}\n", r.inputs, r.headers)), None);
        assert_eq!(BuildRecord::parse(""), None);
    }

    #[test]
    fn deps_from_cmd_files() {
        let text = "cmd_/b/main.o := gcc -c main.c\n\nsource_/b/main.o := /b/main.c\n\n\
deps_/b/main.o := \\\n  /k/common/include/linux/compiler-version.h \\\n    $(wildcard include/config/CC_VERSION_TEXT) \\\n  \
/k/common/include/linux/kconfig.h \\\n  include/generated/autoconf.h \\\n  /b/compat.h \\\n\n/b/main.o: $(deps_/b/main.o)\n\n$(deps_/b/main.o):\n";
        assert_eq!(
            cmd_file_deps(text),
            [
                "/k/common/include/linux/compiler-version.h",
                "/k/common/include/linux/kconfig.h",
                "include/generated/autoconf.h",
                "/b/compat.h"
            ]
        );
        assert!(cmd_file_deps("cmd_x := ld -r\n").is_empty());

        let tmp = tempfile::tempdir().unwrap();
        let (out, objtree) = (tmp.path().join("b"), tmp.path().join("k/flavour"));
        fs::create_dir_all(out.join("sub")).unwrap();
        fs::create_dir_all(objtree.join("include/generated")).unwrap();
        let cmd = format!(
            "deps_x := \\\n  include/generated/autoconf.h \\\n  {}/compat.h \\\n  {}/h.h \\\n\n",
            out.display(),
            tmp.path().display()
        );
        fs::write(out.join(".main.o.cmd"), &cmd).unwrap();
        fs::write(out.join("sub/.x.o.cmd"), &cmd).unwrap();
        let deps = kernel_deps(&out, &objtree).unwrap();
        let want: Vec<PathBuf> = vec![
            tmp.path().join("h.h"),
            objtree.join(".config"),
            objtree.join("Module.symvers"),
            objtree.join("include/generated/autoconf.h"),
        ];
        assert_eq!(deps, want);

        // The digest follows the files' contents, and a missing file counts.
        let same = |p: &Path| p.to_owned();
        let d0 = headers_digest(&deps, same);
        fs::write(objtree.join("include/generated/autoconf.h"), "#define CONFIG_X 1\n").unwrap();
        let d1 = headers_digest(&deps, same);
        assert_ne!(d0, d1);
        assert_eq!(d1, headers_digest(&deps, same));
        fs::write(objtree.join("include/generated/autoconf.h"), "#define CONFIG_X 2\n").unwrap();
        assert_ne!(d1, headers_digest(&deps, same));
        // Paths of a chroot's own files are looked up under its root.
        let chroot = tmp.path().join("chroot");
        fs::create_dir_all(chroot.join(tmp.path().strip_prefix("/").unwrap())).unwrap();
        fs::write(chroot.join(tmp.path().strip_prefix("/").unwrap()).join("h.h"), "in the chroot").unwrap();
        let in_chroot = |p: &Path| {
            if p == tmp.path().join("h.h") {
                chroot.join(p.strip_prefix("/").unwrap())
            } else {
                p.to_owned()
            }
        };
        assert_ne!(headers_digest(&deps, same), headers_digest(&deps, in_chroot));
    }
}
