//! The GitHub Action (`action.yml`) run here by a stand-in runner, since no
//! GitHub runner is reachable: it reads the workflow and the composite
//! action, substitutes `${{ inputs.* }}`, `${{ github.* }}`, `${{ runner.* }}`,
//! `${{ steps.*.outputs.* }}`, `${{ vars.* }}`, `${{ matrix.* }}` and
//! `${{ needs.*.outputs.* }}`, evaluates `if:`, runs each `run:` step with
//! its shell and the runner's files (GITHUB_ENV, GITHUB_PATH, GITHUB_OUTPUT,
//! GITHUB_STEP_SUMMARY), reads the workflow commands (`::error ...::`) in
//! their output as the runner does, and emulates the `uses:` steps: actions/cache
//! restore and save against a local store directory, upload-artifact into
//! an upload list (uploads.json), checkout and rust-cache as no-ops. An
//! expression or action it does not know fails the test, so the action
//! stays within what is checked here.
//!
//! The README's example workflow (extracted from README.md) runs end to end
//! on the default kernel with an empty cache store, then the `kernel` job of
//! `.github/workflows/matrix.yml` (the rig's own CI, `uses: ./`) runs with
//! that store on a fresh rig cache: restored, so nothing is downloaded. Then
//! the action runs on the example with one step made to fail: the job fails,
//! the job summary folds the failure, and an annotation points at the step's
//! line in rig.toml. The
//! rig caches are private to the test (hard links into the user's cache for
//! the default kernel), so the user's cache is never pruned. Needs the
//! default kernel once (network), QEMU, busybox-static and `make guest`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use yaml_rust2::{Yaml, YamlLoader};

/// The commit the stand-in runner checks out (GITHUB_SHA).
const FAKE_SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Action runs boot guests: one at a time.
static ONE_RUN: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository root")
}

fn load_yaml(text: &str, what: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(docs.len(), 1, "{what}: one YAML document");
    docs.remove(0)
}

/// A scalar as the runner sees it (everything is a string).
fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn map(y: &Yaml) -> Vec<(String, &Yaml)> {
    y.as_hash().map(|h| h.iter().filter_map(|(k, v)| Some((scalar(k)?, v))).collect()).unwrap_or_default()
}

/// The README's example workflow, between the action-example markers.
fn readme_example() -> String {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    let block = readme
        .split("<!-- action-example:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- action-example:end -->").next())
        .expect("README.md has the action-example markers");
    let body = block.split("```yaml\n").nth(1).and_then(|b| b.split("```").next()).expect("a yaml block");
    body.to_owned()
}

/// `name=value` lines and `name<<DELIM` blocks (GITHUB_OUTPUT, GITHUB_ENV).
fn parse_kv_file(path: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_owned(), value.to_owned());
        } else if !line.trim().is_empty() {
            panic!("{}: malformed line `{line}`", path.display());
        }
    }
    out
}

#[derive(Clone, Debug, Default)]
struct StepResult {
    outputs: BTreeMap<String, String>,
    conclusion: &'static str,
}

/// The expression contexts of one workflow job or one composite action.
#[derive(Clone, Debug, Default)]
struct Ctx {
    inputs: BTreeMap<String, String>,
    github: BTreeMap<String, String>,
    runner: BTreeMap<String, String>,
    vars: BTreeMap<String, String>,
    matrix: BTreeMap<String, String>,
    needs: BTreeMap<String, BTreeMap<String, String>>,
    steps: BTreeMap<String, StepResult>,
    env: BTreeMap<String, String>,
    failed: bool,
}

impl Ctx {
    fn lookup(&self, path: &str) -> String {
        let parts: Vec<&str> = path.split('.').collect();
        let get = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned();
        let found = match parts.as_slice() {
            ["inputs", k] => Some(get(&self.inputs, k).unwrap_or_else(|| panic!("undeclared input `{k}`"))),
            ["github", k] => Some(get(&self.github, k).unwrap_or_else(|| panic!("no github.{k} here"))),
            ["runner", k] => Some(get(&self.runner, k).unwrap_or_else(|| panic!("no runner.{k} here"))),
            ["vars", k] => Some(get(&self.vars, k).unwrap_or_default()),
            ["env", k] => Some(get(&self.env, k).unwrap_or_default()),
            ["matrix", k] => Some(get(&self.matrix, k).unwrap_or_else(|| panic!("no matrix.{k}"))),
            ["steps", id, "outputs", k] => {
                Some(self.steps.get(*id).and_then(|s| get(&s.outputs, k)).unwrap_or_default())
            }
            ["steps", id, "conclusion"] => {
                Some(self.steps.get(*id).map(|s| s.conclusion.to_owned()).unwrap_or_default())
            }
            ["needs", job, "outputs", k] => Some(
                self.needs.get(*job).and_then(|o| get(o, k)).unwrap_or_else(|| panic!("no needs.{job}.outputs.{k}")),
            ),
            _ => None,
        };
        found.unwrap_or_else(|| panic!("the stand-in runner does not know `{path}`"))
    }

    fn operand(&self, s: &str) -> String {
        let s = s.trim();
        if let Some(lit) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            return lit.replace("''", "'");
        }
        self.lookup(s)
    }

    /// One expression: a context path, a literal, `a == b`, `a != b`,
    /// `always()`, `success()`, `failure()`.
    fn eval(&self, expr: &str) -> String {
        let e = expr.trim();
        match e {
            "always()" => return "true".into(),
            "success()" => return (!self.failed).to_string(),
            "failure()" => return self.failed.to_string(),
            _ => {}
        }
        if let Some((a, b)) = e.split_once("&&") {
            return (self.truthy(a) && self.truthy(b)).to_string();
        }
        if let Some((a, b)) = e.split_once("!=") {
            return (self.operand(a) != self.operand(b)).to_string();
        }
        if let Some((a, b)) = e.split_once("==") {
            return (self.operand(a) == self.operand(b)).to_string();
        }
        assert!(!e.contains('('), "the stand-in runner does not know the function in `{e}`");
        self.operand(e)
    }

    fn truthy(&self, expr: &str) -> bool {
        let v = self.eval(expr);
        !(v.is_empty() || v == "false" || v == "0")
    }

    /// Replaces every `${{ ... }}` in `s`.
    fn subst(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("${{") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find("}}").unwrap_or_else(|| panic!("unclosed expression in `{s}`")) + i;
            out.push_str(&self.eval(&rest[i + 3..end]));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// A step's `if:` (implicitly `success() && ...` without a status function).
    fn should_run(&self, cond: &Yaml) -> bool {
        let Some(c) = scalar(cond) else { return !self.failed };
        let c = c.trim().trim_start_matches("${{").trim_end_matches("}}").to_owned();
        let has_status = ["always()", "success()", "failure()", "cancelled()"].iter().any(|f| c.contains(f));
        if has_status {
            self.truthy(&c)
        } else {
            !self.failed && self.truthy(&c)
        }
    }
}

/// An upload-artifact call as the runner would have made it.
#[derive(Debug)]
struct Upload {
    name: String,
    files: Vec<PathBuf>,
}

/// The stand-in runner: one machine, one cache store, one upload list.
struct Runner {
    workspace: PathBuf,
    temp: PathBuf,
    store: PathBuf,
    machine_env: BTreeMap<String, String>,
    job_env: BTreeMap<String, String>,
    path_prepend: Vec<String>,
    uploads: Vec<Upload>,
    action_outputs: Vec<BTreeMap<String, String>>,
    summary: String,
    log: String,
    /// Workflow commands the steps printed, as the runner decoded them.
    commands: Vec<WorkflowCommand>,
    step_no: usize,
}

/// A workflow command (`::name key=value,...::data`), decoded.
#[derive(Clone, Debug)]
struct WorkflowCommand {
    name: String,
    props: BTreeMap<String, String>,
    data: String,
}

/// The workflow command on `line`, as actions/runner's ActionCommand
/// parses it: leading blanks trimmed, `::name props::data`, properties split
/// on `,` and `=`, then `%0D`, `%0A` (and in properties `%3A`, `%2C`)
/// decoded, `%25` last. Only the annotation commands.
fn workflow_command(line: &str) -> Option<WorkflowCommand> {
    let rest = line.trim_start().strip_prefix("::")?;
    let end = rest.find("::")?;
    let (info, data) = (&rest[..end], &rest[end + 2..]);
    let (name, props) = info.split_once(' ').unwrap_or((info, ""));
    if !["error", "warning", "notice"].contains(&name) {
        return None;
    }
    let decode = |s: &str, prop: bool| {
        let mut s = s.replace("%0D", "\r").replace("%0A", "\n");
        if prop {
            s = s.replace("%3A", ":").replace("%2C", ",");
        }
        s.replace("%25", "%")
    };
    let props = props
        .trim()
        .split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), decode(v, true)))
        .collect();
    Some(WorkflowCommand { name: name.to_owned(), props, data: decode(data, false) })
}

impl Runner {
    fn new(workspace: &Path, temp: &Path, store: &Path, machine_env: BTreeMap<String, String>) -> Runner {
        fs::create_dir_all(temp).expect("runner temp");
        fs::create_dir_all(store).expect("store");
        Runner {
            workspace: workspace.to_owned(),
            temp: temp.to_owned(),
            store: store.to_owned(),
            machine_env,
            job_env: BTreeMap::new(),
            path_prepend: vec![],
            uploads: vec![],
            action_outputs: vec![],
            summary: String::new(),
            log: String::new(),
            commands: vec![],
            step_no: 0,
        }
    }

    fn github(&self, action_path: Option<&Path>) -> BTreeMap<String, String> {
        let mut g = BTreeMap::new();
        g.insert("workspace".into(), self.workspace.display().to_string());
        g.insert("ref".into(), "refs/heads/main".into());
        g.insert("repository".into(), "user/module".into());
        if let Some(p) = action_path {
            g.insert("action_path".into(), p.display().to_string());
        }
        g
    }

    fn runner_ctx(&self) -> BTreeMap<String, String> {
        let mut r = BTreeMap::new();
        r.insert("os".into(), "Linux".into());
        r.insert("arch".into(), "X64".into());
        r.insert("temp".into(), self.temp.display().to_string());
        r
    }

    fn note(&mut self, s: &str) {
        eprintln!("[runner] {s}");
        self.log.push_str(s);
        self.log.push('\n');
    }

    /// Runs a `run:` step; returns success and its outputs.
    fn run_shell(
        &mut self,
        script: &str,
        shell: &str,
        step_env: &BTreeMap<String, String>,
        action_path: Option<&Path>,
    ) -> (bool, BTreeMap<String, String>) {
        self.step_no += 1;
        let n = self.step_no;
        let file = self.temp.join(format!("_step{n}.sh"));
        fs::write(&file, script).expect("script");
        let files: BTreeMap<&str, PathBuf> = [
            ("GITHUB_ENV", self.temp.join(format!("_env{n}"))),
            ("GITHUB_PATH", self.temp.join(format!("_path{n}"))),
            ("GITHUB_OUTPUT", self.temp.join(format!("_output{n}"))),
            ("GITHUB_STEP_SUMMARY", self.temp.join(format!("_summary{n}"))),
        ]
        .into_iter()
        .collect();
        for f in files.values() {
            fs::write(f, "").expect("runner file");
        }
        let argv: Vec<String> = match shell {
            "bash" => vec!["bash".into(), "--noprofile".into(), "--norc".into(), "-eo".into(), "pipefail".into()],
            "sh" => vec!["sh".into(), "-e".into()],
            other => panic!("the stand-in runner has no shell `{other}`"),
        };
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).arg(&file).current_dir(&self.workspace).env_clear();
        let mut env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| !k.starts_with("GITHUB_")).collect();
        env.extend(self.machine_env.clone());
        env.extend(self.job_env.clone());
        env.extend(step_env.clone());
        for (k, v) in [
            ("CI", "true".to_owned()),
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITHUB_WORKSPACE", self.workspace.display().to_string()),
            ("GITHUB_SERVER_URL", "https://github.com".to_owned()),
            ("GITHUB_REPOSITORY", "user/module".to_owned()),
            ("GITHUB_SHA", FAKE_SHA.to_owned()),
            ("RUNNER_TEMP", self.temp.display().to_string()),
            ("RUNNER_OS", "Linux".to_owned()),
            ("RUNNER_ARCH", "X64".to_owned()),
        ] {
            env.insert(k.into(), v);
        }
        if let Some(p) = action_path {
            env.insert("GITHUB_ACTION_PATH".into(), p.display().to_string());
        }
        for (k, f) in &files {
            env.insert((*k).into(), f.display().to_string());
        }
        let path = env.get("PATH").cloned().unwrap_or_default();
        let mut parts = self.path_prepend.clone();
        parts.push(path);
        env.insert("PATH".into(), parts.join(":"));
        cmd.envs(&env);
        let out = cmd.output().expect("run a step");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        self.note(text.trim_end());
        // The runner reads commands from both streams.
        self.commands.extend(text.lines().filter_map(workflow_command));
        for (k, v) in parse_kv_file(&files["GITHUB_ENV"]) {
            self.job_env.insert(k, v);
        }
        for p in fs::read_to_string(&files["GITHUB_PATH"]).unwrap_or_default().lines() {
            self.path_prepend.insert(0, p.to_owned());
        }
        self.summary.push_str(&fs::read_to_string(&files["GITHUB_STEP_SUMMARY"]).unwrap_or_default());
        (out.status.success(), parse_kv_file(&files["GITHUB_OUTPUT"]))
    }

    /// One `uses:` step other than the rig's own action.
    fn emulate(&mut self, uses: &str, with: &BTreeMap<String, String>) -> (bool, BTreeMap<String, String>) {
        let (name, _version) = uses.split_once('@').unwrap_or_else(|| panic!("`{uses}` has no version"));
        let mut outputs = BTreeMap::new();
        let lines = |k: &str| -> Vec<String> {
            with.get(k)
                .map(|v| v.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        match name {
            "actions/checkout" | "Swatinem/rust-cache" => {
                self.note(&format!("{uses}: the workspace is already in place"));
                (true, outputs)
            }
            "actions/cache/restore" => {
                let key = with.get("key").cloned().expect("cache key");
                assert!(!key.is_empty() && !key.contains(','), "bad cache key `{key}`");
                let paths = lines("path");
                let entries = self.store_entries();
                let exact = entries.iter().find(|(k, _)| *k == key);
                let partial = || {
                    lines("restore-keys")
                        .iter()
                        .find_map(|prefix| entries.iter().rev().find(|(k, _)| k.starts_with(prefix.as_str())))
                };
                let hit = match exact.or_else(partial) {
                    Some((k, dir)) => {
                        restore_paths(dir, &paths);
                        self.note(&format!("cache restored from key {k}"));
                        outputs.insert("cache-matched-key".into(), k.clone());
                        if *k == key {
                            "true"
                        } else {
                            "false"
                        }
                    }
                    None => {
                        self.note(&format!("cache not found for key {key}"));
                        ""
                    }
                };
                outputs.insert("cache-hit".into(), hit.into());
                outputs.insert("cache-primary-key".into(), key);
                (true, outputs)
            }
            "actions/cache/save" => {
                let key = with.get("key").cloned().expect("cache key");
                assert!(!key.is_empty(), "empty cache key");
                if self.store_entries().iter().any(|(k, _)| *k == key) {
                    self.note(&format!("cache entry {key} exists: not saved again"));
                    return (true, outputs);
                }
                let dir = self.store.join(format!("{:03}", self.store_entries().len()));
                save_paths(&dir, &lines("path"));
                fs::write(dir.join("key"), &key).expect("key");
                self.note(&format!("cache saved with key {key}"));
                (true, outputs)
            }
            "actions/upload-artifact" => {
                let name = with.get("name").cloned().unwrap_or_else(|| "artifact".into());
                assert!(
                    !name.is_empty() && !name.contains(['"', ':', '<', '>', '|', '*', '?', '\\', '/', '\n']),
                    "artifact name `{name}` has a character GitHub refuses"
                );
                let mut files = Vec::new();
                for p in lines("path") {
                    files.extend(walk(Path::new(&p)));
                }
                let policy = with.get("if-no-files-found").cloned().unwrap_or_else(|| "warn".into());
                if files.is_empty() && policy == "error" {
                    return (false, outputs);
                }
                self.note(&format!("uploaded artifact {name}: {} files", files.len()));
                self.uploads.push(Upload { name, files });
                (true, outputs)
            }
            other => panic!("the stand-in runner does not emulate `{other}`"),
        }
    }

    fn store_entries(&self) -> Vec<(String, PathBuf)> {
        let mut dirs: Vec<PathBuf> = fs::read_dir(&self.store).expect("store").flatten().map(|e| e.path()).collect();
        dirs.sort();
        dirs.into_iter().filter_map(|d| Some((fs::read_to_string(d.join("key")).ok()?, d))).collect()
    }

    /// Runs the composite action in `dir` with `with`; returns success and outputs.
    fn run_action(&mut self, dir: &Path, with: &BTreeMap<String, String>) -> (bool, BTreeMap<String, String>, Ctx) {
        let action = load_yaml(&fs::read_to_string(dir.join("action.yml")).expect("action.yml"), "action.yml");
        assert_eq!(scalar(&action["runs"]["using"]).as_deref(), Some("composite"));
        let mut ctx = Ctx { github: self.github(Some(dir)), runner: self.runner_ctx(), ..Ctx::default() };
        for (name, spec) in map(&action["inputs"]) {
            let value = with.get(&name).cloned().or_else(|| scalar(&spec["default"])).unwrap_or_default();
            ctx.inputs.insert(name, value);
        }
        for k in with.keys() {
            assert!(ctx.inputs.contains_key(k), "`with: {k}` is not an input of the action");
        }
        for step in action["runs"]["steps"].as_vec().expect("runs.steps") {
            self.step(step, &mut ctx, Some(dir), true);
        }
        let mut outputs = BTreeMap::new();
        for (name, spec) in map(&action["outputs"]) {
            let value = scalar(&spec["value"]).unwrap_or_default();
            outputs.insert(name, ctx.subst(&value));
        }
        self.action_outputs.push(outputs.clone());
        (!ctx.failed, outputs, ctx)
    }

    /// One step of a job or of the composite action.
    fn step(&mut self, step: &Yaml, ctx: &mut Ctx, action_path: Option<&Path>, in_action: bool) {
        let id = scalar(&step["id"]);
        let name = scalar(&step["name"]).map(|n| ctx.subst(&n)).unwrap_or_default();
        let record = |ctx: &mut Ctx, outputs, conclusion| {
            if let Some(id) = &id {
                ctx.steps.insert(id.clone(), StepResult { outputs, conclusion });
            }
        };
        if !ctx.should_run(&step["if"]) {
            self.note(&format!("--- skipped: {name}"));
            record(ctx, BTreeMap::new(), "skipped");
            return;
        }
        self.note(&format!("--- {}", if name.is_empty() { "step" } else { &name }));
        let env: BTreeMap<String, String> =
            map(&step["env"]).into_iter().map(|(k, v)| (k, ctx.subst(&scalar(v).unwrap_or_default()))).collect();
        let with: BTreeMap<String, String> =
            map(&step["with"]).into_iter().map(|(k, v)| (k, ctx.subst(&scalar(v).unwrap_or_default()))).collect();
        let (ok, outputs) = if let Some(script) = scalar(&step["run"]) {
            let shell = scalar(&step["shell"]);
            assert!(!in_action || shell.is_some(), "a composite action's run step needs `shell:` ({name})");
            let script = ctx.subst(&script);
            self.run_shell(&script, shell.as_deref().unwrap_or("bash"), &env, action_path)
        } else if let Some(uses) = scalar(&step["uses"]) {
            let local = uses == "./" || uses.split('@').next().is_some_and(|r| r.ends_with("/rig"));
            if local {
                let (ok, outputs, _) = self.run_action(&root(), &with);
                (ok, outputs)
            } else {
                self.emulate(&uses, &with)
            }
        } else {
            panic!("step `{name}` has neither run nor uses");
        };
        if !ok {
            ctx.failed = true;
        }
        record(ctx, outputs, if ok { "success" } else { "failure" });
    }

    /// Runs job `job` of `workflow`; returns success and the job's outputs.
    fn run_job(
        &mut self,
        workflow: &Yaml,
        job: &str,
        matrix: BTreeMap<String, String>,
        needs: BTreeMap<String, BTreeMap<String, String>>,
        vars: &BTreeMap<String, String>,
    ) -> (bool, BTreeMap<String, String>) {
        let j = &workflow["jobs"][job];
        assert!(!j.is_badvalue(), "no job `{job}`");
        self.job_env.clear();
        self.path_prepend.clear();
        let mut ctx = Ctx {
            github: self.github(None),
            runner: self.runner_ctx(),
            vars: vars.clone(),
            matrix,
            needs,
            ..Ctx::default()
        };
        for (k, v) in map(&workflow["env"]).into_iter().chain(map(&j["env"])) {
            let v = ctx.subst(&scalar(v).unwrap_or_default());
            self.job_env.insert(k, v);
        }
        ctx.env = self.job_env.clone();
        for step in j["steps"].as_vec().expect("steps") {
            self.step(step, &mut ctx, None, false);
        }
        let outputs =
            map(&j["outputs"]).into_iter().map(|(k, v)| (k, ctx.subst(&scalar(v).unwrap_or_default()))).collect();
        (!ctx.failed, outputs)
    }
}

/// Every file under `p` (or `p` itself).
fn walk(p: &Path) -> Vec<PathBuf> {
    let Ok(md) = p.symlink_metadata() else { return vec![] };
    if !md.is_dir() {
        return vec![p.to_owned()];
    }
    let mut out = Vec::new();
    for e in fs::read_dir(p).expect("read_dir").flatten() {
        out.extend(walk(&e.path()));
    }
    out.sort();
    out
}

/// Hard-links `from` (a file or a tree) to `to`, replacing what differs.
fn link_tree(from: &Path, to: &Path) {
    let md = from.symlink_metadata().expect("stat");
    if md.is_dir() {
        fs::create_dir_all(to).expect("mkdir");
        for e in fs::read_dir(from).expect("read_dir").flatten() {
            link_tree(&e.path(), &to.join(e.file_name()));
        }
    } else if md.is_file() {
        if to.symlink_metadata().is_ok_and(|t| t.ino() == md.ino() && t.dev() == md.dev()) {
            return;
        }
        let _ = fs::remove_file(to);
        fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        fs::hard_link(from, to).expect("hard link");
    }
}

fn save_paths(entry: &Path, paths: &[String]) {
    for (i, p) in paths.iter().enumerate() {
        assert!(!p.starts_with('!'), "exclusions are not used by the action");
        if Path::new(p).exists() {
            link_tree(Path::new(p), &entry.join(i.to_string()));
        }
    }
}

fn restore_paths(entry: &Path, paths: &[String]) {
    for (i, p) in paths.iter().enumerate() {
        let stored = entry.join(i.to_string());
        if stored.exists() {
            link_tree(&stored, Path::new(p));
        }
    }
}

/// A private rig cache with the default kernel hard-linked from the user's.
fn seeded_cache(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_rig")).args(["fetch", "bookworm-6.1"]).output().expect("rig fetch");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let user = rig::kernel::fetch::default_cache_dir();
    fs::create_dir_all(dir.join("kernels")).expect("mkdir");
    let ok = Command::new("cp")
        .arg("-al")
        .arg(user.join("kernels/bookworm-6.1"))
        .arg(dir.join("kernels/bookworm-6.1"))
        .status()
        .expect("cp");
    assert!(ok.success());
}

fn machine_env(cache: &Path) -> BTreeMap<String, String> {
    [("RIG_CACHE_DIR".to_owned(), cache.display().to_string()), ("RIG_LOG".to_owned(), "warn".to_owned())]
        .into_iter()
        .collect()
}

fn os_release(dir: &Path, id: &str, pretty: &str) -> PathBuf {
    let p = dir.join("os-release");
    fs::write(&p, format!("ID={id}\nPRETTY_NAME=\"{pretty}\"\nVERSION_CODENAME=x\n")).expect("os-release");
    p
}

fn hello_workspace(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).expect("workspace");
    for f in ["Kbuild", "Makefile", "hello_counter.c", "rig.toml"] {
        fs::copy(root().join("examples/hello").join(f), dir.join(f)).expect("copy example");
    }
    dir.to_owned()
}

/// What the action promised and uploaded for one kernel's run.
fn check_results(
    r: &Runner,
    uploads: &Path,
    outputs: &BTreeMap<String, String>,
    (config, kernel, artifact): (&str, &str, &str),
) {
    let log = &r.log;
    assert_eq!(outputs["passed"], "true", "{log}");
    assert_eq!(outputs["exit-code"], "0", "{log}");
    assert_eq!(outputs["kernels"], kernel);
    let results = PathBuf::from(&outputs["results-dir"]);
    let junit = results.join(format!("{kernel}.junit.xml"));
    assert_eq!(outputs["junit"], junit.display().to_string());
    let xml = fs::read_to_string(&junit).expect("JUnit file");
    assert!(xml.contains("<testsuite") && !xml.contains("<failure"), "{xml}");
    // The upload list as the runner wrote it.
    let list: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(uploads).expect("upload list")).expect("json");
    let up = list
        .as_array()
        .expect("a list")
        .iter()
        .find(|u| u["name"] == artifact)
        .unwrap_or_else(|| panic!("no artifact {artifact} in {list}"));
    let files: Vec<&str> = up["files"].as_array().expect("files").iter().filter_map(|f| f.as_str()).collect();
    for f in [junit, results.join(format!("{kernel}.tap")), results.join(kernel).join("console.log")] {
        assert!(files.contains(&f.to_str().expect("utf-8")), "{} is not uploaded: {files:?}", f.display());
    }
    // The job summary: the verdict, the table and the timings.
    let summary = &r.summary;
    assert!(summary.contains(&format!("### ✅ rig: {config} — passed on {kernel}\n")), "{summary}");
    assert!(summary.contains(&format!("| check | {kernel} |\n")), "{summary}");
    assert!(summary.contains("| **result** | ✅ ") && summary.contains("<summary>Timings</summary>"), "{summary}");
    assert!(!summary.contains("<details><summary>❌") && r.commands.is_empty(), "{summary}\n{:?}", r.commands);
    assert_eq!(fs::read_to_string(results.join("summary.md")).expect("summary.md"), *summary);
}

fn write_upload_list(r: &Runner, path: &Path) {
    let list: Vec<serde_json::Value> = r
        .uploads
        .iter()
        .map(|u| serde_json::json!({"name": u.name, "files": u.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>()}))
        .collect();
    fs::write(path, serde_json::to_string_pretty(&list).expect("json")).expect("upload list");
}

#[test]
fn readme_example_then_the_matrix_job_from_the_saved_cache() {
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let user = rig::kernel::fetch::default_cache_dir();
    fs::create_dir_all(&user).expect("cache dir");
    // Beside the user's cache, so the hard links work.
    let tmp = tempfile::Builder::new().prefix(".rig-action-test-").tempdir_in(&user).expect("tempdir");
    let t = tmp.path();
    let store = t.join("store");

    // 1. The README's workflow in a module's repository (examples/hello),
    // with an empty cache store.
    let workspace = hello_workspace(&t.join("module"));
    let cache1 = t.join("cache1");
    seeded_cache(&cache1);
    let example = load_yaml(&readme_example(), "README example");
    let jobs = map(&example["jobs"]);
    assert_eq!(jobs.len(), 1, "the README example has one job");
    let mut r = Runner::new(&workspace, &t.join("temp1"), &store, machine_env(&cache1));
    // A Debian runner: the archive may come from the system's sources.
    let vars = BTreeMap::from([("RIG_DEBIAN_ARCHIVE".to_owned(), String::new())]);
    let (ok, _) = r.run_job(&example, &jobs[0].0, BTreeMap::new(), BTreeMap::new(), &vars);
    assert!(ok, "the README example failed:\n{}", r.log);
    let outputs = r.action_outputs.last().cloned().expect("the example runs the action");
    write_upload_list(&r, &t.join("uploads1.json"));
    check_results(&r, &t.join("uploads1.json"), &outputs, ("rig.toml", "bookworm-6.1", "rig-bookworm-6.1"));
    assert_eq!(outputs["cache-hit"], "", "the store was empty");
    let saved: u64 = outputs["cache-size"].parse().expect("cache-size in bytes");
    assert!(saved > 0 && saved <= 4 << 30, "{saved}");
    let keys: Vec<String> = r.store_entries().into_iter().map(|(k, _)| k).collect();
    let week = String::from_utf8(Command::new("date").args(["-u", "+%G-W%V"]).output().expect("date").stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(keys.iter().any(|k| k.starts_with("rig-target-Linux-X64-")), "{keys:?}");
    let cache_key = keys.iter().find(|k| k.starts_with("rig-cache-")).expect("the rig cache was saved");
    assert!(cache_key.starts_with(&format!("rig-cache-v1-Linux-X64-bookworm-6.1-{week}-")), "{cache_key}");
    let first = started.elapsed();
    eprintln!("README example: {:.0} s, rig cache saved: {} MiB", first.as_secs_f64(), saved >> 20);

    // 2. The rig's own matrix job (`uses: ./`) for the default kernel, on a
    // machine whose rig cache is empty: the store brings it back.
    let matrix =
        load_yaml(&fs::read_to_string(root().join(".github/workflows/matrix.yml")).expect("matrix.yml"), "matrix.yml");
    assert_eq!(
        scalar(&matrix["jobs"]["kernel"]["strategy"]["matrix"]["include"]).as_deref(),
        Some("${{ fromJSON(needs.kernels.outputs.kernels) }}")
    );
    let cache2 = t.join("cache2");
    let mut r = Runner::new(&root(), &t.join("temp2"), &store, machine_env(&cache2));
    let (ok, list_outputs) = r.run_job(&matrix, "kernels", BTreeMap::new(), BTreeMap::new(), &vars);
    assert!(ok, "{}", r.log);
    let list: serde_json::Value = serde_json::from_str(&list_outputs["kernels"]).expect("kernels JSON");
    let entry =
        list.as_array().expect("list").iter().find(|e| e["kernel"] == "bookworm-6.1").expect("the default kernel");
    let one: BTreeMap<String, String> = entry
        .as_object()
        .expect("entry")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let needs = BTreeMap::from([("kernels".to_owned(), list_outputs)]);
    let (ok, _) = r.run_job(&matrix, "kernel", one, needs, &vars);
    assert!(ok, "the matrix job failed:\n{}", r.log);
    let outputs = r.action_outputs.last().cloned().expect("the job runs the action");
    write_upload_list(&r, &t.join("uploads2.json"));
    check_results(
        &r,
        &t.join("uploads2.json"),
        &outputs,
        ("guest-kmod/rig.toml", "bookworm-6.1", "rig-matrix-bookworm-6.1"),
    );
    assert_eq!(outputs["cache-hit"], "true", "{}", r.log);
    assert_eq!(outputs["cache-size"], "", "a hit is neither pruned nor saved again");
    assert!(cache2.join("kernels/bookworm-6.1/tree.json").is_file(), "the kernel was not restored");
    assert!(!cache2.join("apt").exists(), "the run went to the archive although the cache was restored");
    let second = started.elapsed();
    eprintln!("matrix job: {:.0} s", (second - first).as_secs_f64());

    // 3. The example with a step that fails, from the same store: the job
    // fails, the summary folds the failure, and the annotation is on the
    // step's `[[test.step]]` line in rig.toml.
    let workspace = hello_workspace(&t.join("failing"));
    let config = fs::read_to_string(workspace.join("rig.toml")).expect("rig.toml");
    let failing = config.replace("expect_regex = '^hello 1$'", "expect_regex = '^hello 2$'");
    assert_ne!(failing, config, "the example's second step changed");
    fs::write(workspace.join("rig.toml"), &failing).expect("rig.toml");
    let lines: Vec<&str> = failing.lines().collect();
    let named = lines.iter().position(|l| l.contains("name = \"first read greets")).expect("the step");
    let header = lines[..named].iter().rposition(|l| l.trim() == "[[test.step]]").expect("its header") + 1;
    let mut r = Runner::new(&workspace, &t.join("temp3"), &store, machine_env(&t.join("cache3")));
    let (ok, outputs, ctx) = r.run_action(&root(), &BTreeMap::new());
    assert!(!ok, "a failing step must fail the job:\n{}", r.log);
    assert_eq!((outputs["passed"].as_str(), outputs["exit-code"].as_str()), ("false", "1"), "{}", r.log);
    assert_eq!(ctx.steps["run"].conclusion, "success", "the run step never fails itself");
    assert_eq!(ctx.steps["restore-cache"].outputs["cache-hit"], "true");
    let errors: Vec<&WorkflowCommand> = r.commands.iter().filter(|c| c.name == "error").collect();
    assert_eq!(errors.len(), 1, "{:?}", r.commands);
    let e = errors[0];
    assert_eq!(e.props.get("file").map(String::as_str), Some("rig.toml"), "{e:?}");
    assert_eq!(e.props.get("line"), Some(&header.to_string()), "{e:?}");
    assert_eq!(
        e.props.get("title").map(String::as_str),
        Some("greeting: first read greets and counts one open failed on bookworm-6.1")
    );
    assert!(e.data.starts_with("bookworm-6.1: output does not match /(?m)^hello 2$/\n  output:\n  hello 1"), "{e:?}");
    let summary = &r.summary;
    assert!(summary.contains("### ❌ rig: rig.toml — failed on bookworm-6.1\n"), "{summary}");
    assert!(summary.contains("| greeting: first read greets and counts one open | ❌ fail |"), "{summary}");
    assert!(
        summary.contains(&format!(
            "<details><summary>❌ <b>bookworm-6.1</b> · greeting: first read greets and counts one open — output does \
             not match /(?m)^hello 2$/</summary>\n\nStep at [rig.toml:{header}](https://github.com/user/module/blob/\
             {FAKE_SHA}/rig.toml#L{header}).\n\nOutput:\n\n```text\nhello 1\n```\n"
        )),
        "{summary}"
    );
    eprintln!(
        "failing example: {:.0} s; all three: {:.0} s",
        (started.elapsed() - second).as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn ubuntu_runner_without_an_archive_fails_at_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let workspace = hello_workspace(&t.join("module"));
    let mut env = machine_env(&t.join("cache"));
    env.insert("OS_RELEASE".into(), os_release(t, "ubuntu", "Ubuntu 24.04.3 LTS").display().to_string());
    let mut r = Runner::new(&workspace, &t.join("temp"), &t.join("store"), env.clone());
    let started = Instant::now();
    let (ok, _, ctx) = r.run_action(&root(), &BTreeMap::new());
    assert!(!ok);
    assert!(r.log.contains("::error title=rig action::this runner is Ubuntu 24.04.3 LTS"), "{}", r.log);
    assert!(r.log.contains("set the `debian-archive` input"), "{}", r.log);
    assert_eq!(ctx.steps["check"].conclusion, "failure");
    assert_eq!(ctx.steps["run"].conclusion, "skipped");
    assert!(started.elapsed().as_secs() < 10, "it did not fail at once");
    // With the input it gets past the check.
    let mut r = Runner::new(&workspace, &t.join("temp"), &t.join("store"), env);
    let with = BTreeMap::from([("debian-archive".to_owned(), "http://mirror.invalid/debian".to_owned())]);
    let mut ctx = Ctx { github: r.github(Some(&root())), runner: r.runner_ctx(), ..Ctx::default() };
    ctx.inputs = BTreeMap::from([
        ("config".to_owned(), "rig.toml".to_owned()),
        ("debian-archive".to_owned(), with["debian-archive"].clone()),
        ("cache-size".to_owned(), "4G".to_owned()),
    ]);
    let action = load_yaml(&fs::read_to_string(root().join("action.yml")).expect("action.yml"), "action.yml");
    r.step(&action["runs"]["steps"][0], &mut ctx, Some(&root()), true);
    assert_eq!(ctx.steps["check"].conclusion, "success", "{}", r.log);
    assert_eq!(r.job_env.get("RIG_DEBIAN_ARCHIVE").map(String::as_str), Some("http://mirror.invalid/debian"));
}

#[test]
fn expressions_and_output_files() {
    let mut ctx = Ctx::default();
    ctx.inputs.insert("a".into(), "x".into());
    ctx.steps.insert(
        "s".into(),
        StepResult { outputs: BTreeMap::from([("hit".to_owned(), "true".to_owned())]), conclusion: "success" },
    );
    assert_eq!(ctx.subst("${{ inputs.a }}-${{ steps.s.outputs.hit }}-${{ steps.t.outputs.hit }}"), "x-true-");
    assert!(!ctx.should_run(&Yaml::String("steps.s.outputs.hit != 'true'".into())));
    assert!(ctx.should_run(&Yaml::String("${{ steps.t.outputs.hit != 'true' }}".into())));
    ctx.failed = true;
    assert!(!ctx.should_run(&Yaml::BadValue));
    assert!(ctx.should_run(&Yaml::String("always()".into())));
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = tmp.path().join("out");
    fs::write(&f, "a=1\nlist<<EOF\nx\ny\nEOF\nb=2=3\n").expect("write");
    let kv = parse_kv_file(&f);
    assert_eq!((kv["a"].as_str(), kv["list"].as_str(), kv["b"].as_str()), ("1", "x\ny", "2=3"));
    let c = workflow_command("  ::error file=a%2Cb%3Ac.toml,line=3,title=t%253A::x%0Ay: %25z").expect("a command");
    assert_eq!((c.name.as_str(), c.props["file"].as_str(), c.props["line"].as_str()), ("error", "a,b:c.toml", "3"));
    assert_eq!((c.props["title"].as_str(), c.data.as_str()), ("t%3A", "x\ny: %z"));
    assert!(workflow_command("::set-output name=x::y").is_none() && workflow_command("rig: ::error").is_none());
}
