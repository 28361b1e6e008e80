//! Machine-readable results: the JSON file of `--json` (one entry per
//! kernel, groups, steps), built from the same results the KTAP shows.

use crate::results::RunReport;
use crate::results::{CheckResult, Outcome};
use serde::Serialize;
use std::path::PathBuf;

/// One step.
#[derive(Debug, Serialize)]
pub struct StepJson {
    pub name: String,
    /// `pass`, `fail` or `not_run`.
    pub outcome: &'static str,
    /// Why it failed or did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub output: String,
    pub elapsed_ms: f64,
    pub host_side: bool,
}

/// One group.
#[derive(Debug, Serialize)]
pub struct GroupJson {
    pub name: String,
    pub passed: bool,
    pub steps: Vec<StepJson>,
}

/// One kernel's run.
#[derive(Debug, Serialize)]
pub struct KernelJson {
    pub kernel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    pub passed: bool,
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
    pub kernels: Vec<KernelJson>,
}

/// A step as JSON.
pub fn step(r: &CheckResult) -> StepJson {
    let (outcome, message) = match &r.outcome {
        Outcome::Pass => ("pass", None),
        Outcome::Fail(m) => ("fail", Some(m.clone())),
        Outcome::NotRun(m) => ("not_run", Some(m.clone())),
    };
    StepJson {
        name: r.name.clone(),
        outcome,
        message,
        output: r.output.clone(),
        elapsed_ms: r.elapsed.as_secs_f64() * 1000.0,
        host_side: r.host_side,
    }
}

/// A finished run as JSON.
pub fn kernel(report: &RunReport) -> KernelJson {
    let t = &report.timings;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    KernelJson {
        kernel: report.kernel.clone(),
        release: Some(report.release.clone()),
        passed: report.passed(),
        error: None,
        run_dir: report.kept.then(|| report.run_dir.clone()),
        groups: report
            .tests
            .iter()
            .map(|g| GroupJson {
                name: g.name.clone(),
                passed: g.passed(),
                steps: g.results.iter().map(step).collect(),
            })
            .collect(),
        timings_ms: Some(
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
        ),
    }
}

/// A kernel the rig could not run.
pub fn kernel_error(name: &str, error: &str) -> KernelJson {
    KernelJson {
        kernel: name.to_string(),
        release: None,
        passed: false,
        error: Some(error.to_string()),
        run_dir: None,
        groups: vec![],
        timings_ms: None,
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn json_shape() {
        let r = CheckResult {
            name: "s".into(),
            outcome: Outcome::Fail("bad".into()),
            output: "o".into(),
            elapsed: Duration::from_millis(5),
            host_side: true,
        };
        let all = RunJson {
            passed: false,
            kernels: vec![KernelJson {
                groups: vec![GroupJson { name: "g".into(), passed: false, steps: vec![step(&r)] }],
                ..kernel_error("k", "x")
            }],
        };
        let v: serde_json::Value = serde_json::from_str(&serde_json::to_string(&all).expect("json")).expect("parse");
        assert_eq!(v["kernels"][0]["groups"][0]["steps"][0]["outcome"], "fail");
        assert_eq!(v["kernels"][0]["groups"][0]["steps"][0]["message"], "bad");
        assert_eq!(v["kernels"][0]["error"], "x");
    }
}
