//! Machine-readable results: the JSON file of `--json` (one entry per
//! kernel, groups, steps), built from the same results the KTAP shows.

use crate::plan::step::Source;
use crate::results::{CheckResult, Counts, KernelResult, Tree};
use serde::Serialize;
use std::path::PathBuf;

/// One step.
#[derive(Debug, Serialize)]
pub struct StepJson {
    pub name: String,
    /// `pass`, `fail`, `crash`, `not_run` or `skip`.
    pub outcome: &'static str,
    /// Why it failed, crashed, did not run or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub output: String,
    pub elapsed_ms: f64,
    pub host_side: bool,
    /// The step in the config: `{"file": absolute path, "line": 1-based}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// One group.
#[derive(Debug, Serialize)]
pub struct GroupJson {
    pub name: String,
    /// The worst outcome of its steps.
    pub status: &'static str,
    pub passed: bool,
    pub steps: Vec<StepJson>,
}

/// One kernel's run.
#[derive(Debug, Serialize)]
pub struct KernelJson {
    pub kernel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The worst outcome of its steps.
    pub status: &'static str,
    pub passed: bool,
    pub counts: Counts,
    /// Set when the rig could not run this kernel at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<PathBuf>,
    pub groups: Vec<GroupJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings_ms: Option<std::collections::BTreeMap<&'static str, f64>>,
}

/// The whole file.
#[derive(Debug, Serialize)]
pub struct RunJson {
    pub passed: bool,
    pub status: &'static str,
    pub counts: Counts,
    pub kernels: Vec<KernelJson>,
}

/// A step as JSON.
pub fn step(r: &CheckResult) -> StepJson {
    StepJson {
        name: r.name.clone(),
        outcome: r.outcome.status().name(),
        message: r.outcome.message().map(str::to_owned),
        output: r.output.clone(),
        elapsed_ms: r.elapsed.as_secs_f64() * 1000.0,
        host_side: r.host_side,
        source: r.source.clone(),
    }
}

/// A kernel as JSON.
pub fn kernel(k: &KernelResult) -> KernelJson {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let groups = k
        .groups()
        .iter()
        .map(|g| GroupJson {
            name: g.name.clone(),
            status: g.counts().status().name(),
            passed: g.passed(),
            steps: g.results.iter().map(step).collect(),
        })
        .collect();
    let counts = k.counts();
    let mut j = KernelJson {
        kernel: k.kernel().to_owned(),
        release: None,
        status: counts.status().name(),
        passed: k.passed(),
        counts,
        error: None,
        run_dir: None,
        groups,
        timings_ms: None,
    };
    match k {
        KernelResult::Ran(r) => {
            let t = &r.timings;
            j.release = Some(r.release.clone());
            j.run_dir = r.kept.then(|| r.run_dir.clone());
            j.timings_ms = Some(
                [
                    ("fetch", ms(t.fetch)),
                    ("build", ms(t.build)),
                    ("initramfs", ms(t.initramfs)),
                    ("boot", ms(t.boot)),
                    ("checks", ms(t.checks)),
                    ("shutdown", ms(t.shutdown)),
                    ("total", ms(t.total)),
                ]
                .into_iter()
                .collect(),
            );
        }
        KernelResult::Error(e) => {
            j.error = Some(e.message.clone());
            j.run_dir = e.run_dir.clone();
        }
    }
    j
}

/// The whole tree as JSON.
pub fn document(tree: &Tree) -> RunJson {
    let counts = tree.counts();
    RunJson {
        passed: tree.passed(),
        status: counts.status().name(),
        counts,
        kernels: tree.kernels.iter().map(kernel).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{KernelError, Outcome, RunReport, Stage, TestResult};
    use std::time::Duration;

    #[test]
    fn json_shape() {
        let r = CheckResult {
            name: "s".into(),
            outcome: Outcome::Fail("bad".into()),
            output: "o".into(),
            elapsed: Duration::from_millis(5),
            host_side: true,
            source: Some(Source { file: PathBuf::from("/w/rig.toml"), line: 9 }),
        };
        let ran = RunReport {
            kernel: "k".into(),
            release: "6.1".into(),
            tests: vec![TestResult { name: "g".into(), results: vec![r.clone()] }],
            results: vec![r],
            run_dir: PathBuf::new(),
            kept: false,
            timings: Default::default(),
        };
        let err = KernelError { kernel: "j".into(), stage: Stage::Build, message: "x".into(), run_dir: None };
        let tree = Tree { kernels: vec![KernelResult::Ran(ran), KernelResult::Error(err)] };
        let v: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&document(&tree)).expect("json")).expect("parse");
        assert_eq!(v["kernels"][0]["groups"][0]["steps"][0]["outcome"], "fail");
        assert_eq!(v["kernels"][0]["groups"][0]["steps"][0]["message"], "bad");
        assert_eq!(
            v["kernels"][0]["groups"][0]["steps"][0]["source"],
            serde_json::json!({"file": "/w/rig.toml", "line": 9})
        );
        assert!(v["kernels"][1]["groups"][0]["steps"][0].get("source").is_none());
        assert_eq!(v["kernels"][1]["error"], "x");
        assert_eq!(v["kernels"][1]["groups"][0]["steps"][0]["name"], "the modules build");
        assert_eq!(v["counts"]["failed"], 2);
        assert_eq!(v["status"], "fail");
    }
}
