//! The suite figure: `rig matrix` of the bench's config over all its
//! kernels, wall time, in the three ways a suite can run: one guest for all
//! groups with a cold boot (as before crash isolation), a restored guest
//! per group with a cold boot, and the default (groups share a guest until
//! one fails) starting from the boots saved by the cold runs.

use super::{BenchError, BenchOptions, Figure};
use crate::exec::run::{Event, RunError, RunOptions};
use crate::plan::Isolation;
use crate::suites::matrix::{run_matrix, MatrixOptions};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Labels of the suite figure.
pub const SHARED_COLD: &str = "one guest for all groups, cold boot (before)";
pub const GROUP_COLD: &str = "a restored guest per group, cold boot";
pub const ON_FAILURE_SAVED: &str = "restored after a failure, saved boot (now)";

/// One matrix over `kernels` with `isolation`; its wall time.
fn matrix_wall(
    run: &RunOptions,
    kernels: &[String],
    isolation: Isolation,
    cold_boot: bool,
    interrupt: &Arc<AtomicBool>,
) -> Result<Duration, BenchError> {
    let mut base = run.clone();
    base.plan.guest.isolation = isolation;
    base.cold_boot = cold_boot;
    let out = tempfile::tempdir().map_err(|source| RunError::TempDir { dir: std::env::temp_dir(), source })?;
    let opts = MatrixOptions {
        base,
        kernels: kernels.to_vec(),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        out_dir: out.path().into(),
    };
    let report = run_matrix(&opts, interrupt.clone(), &|_, _| {})
        .map_err(|e| BenchError::Guest { what: "the suite's matrix".into(), output: e.to_string() })?;
    if !report.passed() {
        let failed: Vec<&str> = report.runs.iter().filter(|r| !r.passed()).map(|r| r.kernel.as_str()).collect();
        return Err(BenchError::Guest {
            what: format!("the suite's matrix ({isolation:?})"),
            output: format!("it did not pass on {}", failed.join(", ")),
        });
    }
    Ok(report.wall)
}

/// The suite figure, `opts.suite_rounds` rounds of each way.
pub(super) fn suite_figure(
    opts: &BenchOptions,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<Figure, BenchError> {
    let (mut shared, mut group, mut saved) = (vec![], vec![], vec![]);
    let rounds = opts.suite_rounds;
    for i in 0..rounds {
        emit(Event::Progress(format!("the suite on {} kernels, round {} of {rounds}", opts.kernels.len(), i + 1)));
        shared.push(matrix_wall(&opts.run, &opts.kernels, Isolation::None, true, &interrupt)?);
        // Saves each kernel's boot for the next one.
        group.push(matrix_wall(&opts.run, &opts.kernels, Isolation::Group, true, &interrupt)?);
        saved.push(matrix_wall(&opts.run, &opts.kernels, Isolation::OnFailure, false, &interrupt)?);
    }
    let mut f = Figure::new("suite", "rig matrix of the suite, wall time", "ms", &opts.kernels.join(", "));
    f.bars = vec![
        super::Bar::ms(SHARED_COLD, &shared),
        super::Bar::ms(GROUP_COLD, &group),
        super::Bar::ms(ON_FAILURE_SAVED, &saved),
    ];
    if let (Some(before), Some(g), Some(now)) =
        (f.median(SHARED_COLD), f.median(GROUP_COLD), f.median(ON_FAILURE_SAVED))
    {
        f.notes.push(format!("now / before: {:.2} (goal <= 0.5)", now / before));
        f.notes.push(format!("a restored guest per group / before: {:.2}", g / before));
    }
    Ok(f)
}
