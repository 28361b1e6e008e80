//! `rig parse`: a saved run directory back to its verdicts, as kunit.py's
//! `parse` reads a saved log. The kernel's reports are classified again from
//! console.log, put on steps by the step marks in it, and charged in the
//! run's order; guest steps get their verdicts from the same function the
//! run used ([`super::step::guest_outcome`]). Only what the logs cannot hold
//! comes from run.json (see [`super::record`]).

use super::record::{self, How, RunRecord};
use super::step::{guest_outcome, report_outcome, Charged};
use crate::guest::kernel_console::{read_log, Attributed};
use crate::guest::protocol::Nonce;
use crate::plan::step::Expect;
use crate::results::{CheckResult, Outcome, RunReport, TestResult, Timings};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A run directory that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A file is missing or unreadable.
    #[error("cannot read {}: {source}; is {} a run directory kept by `rig run --keep`?", path.display(), dir.display())]
    Read { path: PathBuf, dir: PathBuf, source: std::io::Error },
    /// run.json is not a record this rig writes.
    #[error("{}: {message}", path.display())]
    Record { path: PathBuf, message: String },
}

fn read(dir: &Path, name: &str) -> Result<String, ReplayError> {
    let path = dir.join(name);
    std::fs::read(&path).map(|b| String::from_utf8_lossy(&b).into_owned()).map_err(|source| ReplayError::Read {
        path,
        dir: dir.to_path_buf(),
        source,
    })
}

/// The record (`run.json`) of the run saved in `dir`.
pub fn read_record(dir: &Path) -> Result<RunRecord, ReplayError> {
    let path = dir.join(record::FILE);
    let text = read(dir, record::FILE)?;
    let rec: RunRecord =
        serde_json::from_str(&text).map_err(|e| ReplayError::Record { path: path.clone(), message: e.to_string() })?;
    if rec.format != record::FORMAT {
        let message = format!("record format {} (this rig reads {})", rec.format, record::FORMAT);
        return Err(ReplayError::Record { path, message });
    }
    Ok(rec)
}

/// The verdicts of the run saved in `dir`.
pub fn replay(dir: &Path) -> Result<RunReport, ReplayError> {
    replay_record(dir, &read_record(dir)?)
}

/// The verdicts of `rec`, saved in `dir` with its logs.
pub fn replay_record(dir: &Path, rec: &RunRecord) -> Result<RunReport, ReplayError> {
    let console = read(dir, "console.log")?;
    let reports = read_log(&console, &Nonce::fixed(&rec.nonce));
    Ok(verdicts(rec, &reports, dir))
}

/// The verdicts of `rec` given the kernel's `reports` (pure).
pub fn verdicts(rec: &RunRecord, reports: &[Attributed], dir: &Path) -> RunReport {
    let mut charged = Charged::default();
    let mut tests = vec![];
    for g in &rec.groups {
        let mut results = vec![];
        for c in &g.checks {
            let (outcome, output) = match &c.how {
                How::Fixed(f) => (f.outcome(), f.output.clone()),
                How::BootClean => {
                    let boot: Vec<Attributed> =
                        reports.iter().filter(|a| rec.boot_reports.contains(a.report.lines.start())).cloned().collect();
                    report_outcome(&charged.fresh(boot)).unwrap_or((Outcome::Pass, String::new()))
                }
                How::Guest(gr) => {
                    let mine: Vec<Attributed> = reports.iter().filter(|a| a.step == Some(gr.step)).cloned().collect();
                    let expect = gr.expect.as_deref().and_then(|e| Expect::from_record(e).ok());
                    let report = gr.report.as_deref().and_then(crate::verdict::Class::from_name);
                    guest_outcome(&gr.ending, &mine, gr.status, &expect, report, &mut charged)
                }
                How::KernelLog => {
                    report_outcome(&charged.fresh(reports.to_vec())).unwrap_or((Outcome::Pass, String::new()))
                }
            };
            // The run turned the failure of the check its kernel died under into a crash.
            let outcome = match outcome {
                Outcome::Fail(m) if c.crashed => Outcome::Crash(m),
                o => o,
            };
            results.push(CheckResult {
                name: c.name.clone(),
                outcome,
                output,
                elapsed: Duration::from_secs_f64(c.elapsed_ms / 1000.0),
                host_side: c.host_side,
                source: c.source.clone(),
            });
        }
        tests.push(TestResult { name: g.name.clone(), results });
    }
    let results = tests.iter().flat_map(|t| t.results.iter().cloned()).collect();
    RunReport {
        kernel: rec.kernel.clone(),
        release: rec.release.clone(),
        tests,
        results,
        run_dir: dir.to_path_buf(),
        kept: true,
        timings: Timings::default(),
    }
}
