//! `rig bench`: the project's scoreboard, all in one run, per kernel.
//! Figures, not pass/fail: each is a [`Figure`] of bars (median, min, max
//! of its samples), written to a JSON file and drawn as an SVG chart
//! ([`plot`]). A new figure is one more function returning a
//! `Figure`, pushed in [`bench_kernel`].
//!
//! Per kernel:
//! - `boot`: spawn to a ready shell, rig cold boot from the bzImage and
//!   through PVH, bare QEMU on the same image and initramfs, and a guest
//!   restored from a saved one (how soon an isolated test group starts);
//!   `boot-cpu`: the same in QEMU's CPU time, which a loaded machine
//!   changes much less than wall time;
//! - `console`: one rig step against the raw round trip of the same text,
//!   on the rig's socket and on QEMU's stdio;
//! - `mechanisms-ops`, `mechanisms-mbps`: the reference module's
//!   mechanisms, measured in the guest by `rig-guest bench mechanisms`;
//! - `ivshmem`: the guest writing into BAR2 against the host reading the
//!   region and copying memory;
//! - `doorbell`: the host rings the guest, the guest wakes and rings back,
//!   through the reference module (`rig-guest db-pong`) and through VFIO
//!   (`rig-udrv pong`), each on guests of its own booted `boots` times.
//!
//! Over all kernels, `suite`: `rig matrix` of the config, wall time, with
//! one guest for all groups, a restored guest per group, and the default
//! isolation from saved boots.

mod boot;
mod doorbell;
mod module;
pub mod plot;
mod suite;

use boot::boot_figures;
pub use boot::{verbose_cmdline, BARE, COLD_BZIMAGE, COLD_PVH, COLD_VERBOSE, RESTORE};
use doorbell::doorbell_figure;
pub use doorbell::{DOORBELL_MODULE, DOORBELL_VFIO};
use module::module_figures;
pub use module::{parse_bench_line, Measured};
use suite::suite_figure;
pub use suite::{GROUP_COLD, ON_FAILURE_SAVED, SHARED_COLD};

use crate::exec::prepare::{prepare, Prepared};
use crate::exec::run::{Event, RunError, RunOptions};
use crate::exec::setup::{self, private_dir};
use crate::host::shm::SharedMemory;
use crate::results::Timings;
use crate::vm::accel;
use crate::vm::qemu::{self, QemuConfig};
use crate::vm::VmError;
use serde::Serialize;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The guest to boot (its `kernel` is set per kernel).
    pub run: RunOptions,
    /// The kernels, one after the other.
    pub kernels: Vec<String>,
    /// Samples per boot variant.
    pub boots: usize,
    /// Console round trips / steps per boot.
    pub steps: usize,
    /// Doorbell round trips per boot of each driver's guest (module, VFIO),
    /// which boot `boots` times each, alternating; 0 skips them.
    pub pings: usize,
    /// Rounds of the suite figure (`rig matrix` three ways); 0 skips it.
    pub suite_rounds: usize,
    /// Where the JSON goes.
    pub out: PathBuf,
    /// Where the SVG chart goes, if anywhere.
    pub plot: Option<PathBuf>,
}

/// min / median / max of a series, in milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Stats {
    pub n: usize,
    pub min_ms: f64,
    pub median_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    /// Summarises durations.
    pub fn of(samples: &[Duration]) -> Stats {
        let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        let b = Bar::of("", &ms);
        Stats { n: b.n, min_ms: b.min, median_ms: b.median, max_ms: b.max }
    }
}

/// One bar of a figure: a series of samples in the figure's unit.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Bar {
    pub label: String,
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Bar {
    /// The bar of `samples` (any order).
    pub fn of(label: &str, samples: &[f64]) -> Bar {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Bar {
            label: label.into(),
            n: v.len(),
            min: v.first().copied().unwrap_or(0.0),
            median,
            max: v.last().copied().unwrap_or(0.0),
        }
    }

    /// Durations in milliseconds.
    pub fn ms(label: &str, samples: &[Duration]) -> Bar {
        Bar::of(label, &samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>())
    }
}

/// One panel of the chart.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Figure {
    /// Stable name (`boot`, `console`, ...).
    pub id: String,
    pub title: String,
    /// The bars' unit (`ms`, `us`, `ops/s`, `MB/s`).
    pub unit: String,
    /// The kernel it was measured on.
    pub kernel: String,
    pub bars: Vec<Bar>,
    /// Ratios or remarks worth reading beside the bars.
    pub notes: Vec<String>,
}

impl Figure {
    fn new(id: &str, title: &str, unit: &str, kernel: &str) -> Figure {
        Figure {
            id: id.into(),
            title: title.into(),
            unit: unit.into(),
            kernel: kernel.into(),
            bars: vec![],
            notes: vec![],
        }
    }

    /// The median of the bar labelled `label`.
    pub fn median(&self, label: &str) -> Option<f64> {
        self.bars.iter().find(|b| b.label == label).map(|b| b.median)
    }
}

/// A kernel the figures were measured on.
#[derive(Clone, Debug, Serialize)]
pub struct KernelInfo {
    pub name: String,
    pub release: String,
    /// What the rig boots: `pvh` or `bzImage`.
    pub boots: String,
}

/// The whole run (`bench.json`).
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// This file's format.
    pub format: u32,
    pub accel: String,
    pub qemu_version: String,
    /// The host's CPUs and load average (1 min) before and after: the
    /// figures of a loaded machine are slower, their ratios less so.
    pub host_cpus: usize,
    pub load_before: f64,
    pub load_after: f64,
    pub kernels: Vec<KernelInfo>,
    pub figures: Vec<Figure>,
}

/// Why the benchmark could not produce its figures.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Preparing or booting a guest failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A guest program of the round trip failed (its output follows).
    #[error("{what} failed in the guest:\n{output}")]
    Guest { what: String, output: String },
    /// The host's side of the round trip failed.
    #[error("doorbell round trip {index} of {what}: {detail}")]
    Doorbell { what: String, index: usize, detail: String },
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|w| w.parse().ok()))
        .unwrap_or(0.0)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::TempDir { dir: path.to_path_buf(), source }
}

/// Runs the benchmark on every kernel, writes `opts.out` (and the chart).
pub fn bench(
    opts: &BenchOptions,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<BenchReport, BenchError> {
    let choice = accel::decide(opts.run.accel, &accel::probe());
    emit(Event::Note(format!("accelerator: {} ({})", choice.accel.name(), choice.reason)));
    let (major, minor, micro) = qemu::version(&opts.run.qemu).map_err(RunError::from)?;
    let load_before = load_average();
    let (mut kernels, mut figures) = (vec![], vec![]);
    for k in &opts.kernels {
        let run = RunOptions { kernel: k.clone(), ..opts.run.clone() };
        let (info, figs) = bench_kernel(opts, &run, choice.accel, interrupt.clone(), emit)?;
        kernels.push(info);
        figures.extend(figs);
    }
    if opts.suite_rounds > 0 {
        figures.push(suite_figure(opts, interrupt.clone(), emit)?);
    }
    let report = BenchReport {
        format: 1,
        accel: choice.accel.name().into(),
        qemu_version: format!("{major}.{minor}.{micro}"),
        host_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_before,
        load_after: load_average(),
        kernels,
        figures,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| io_error(&opts.out)(std::io::Error::other(e)))?;
    std::fs::write(&opts.out, json + "\n").map_err(io_error(&opts.out))?;
    if let Some(svg) = &opts.plot {
        plot::draw(&report, svg).map_err(|e| io_error(svg)(std::io::Error::other(e)))?;
    }
    Ok(report)
}

/// Every figure of one kernel.
fn bench_kernel(
    opts: &BenchOptions,
    run: &RunOptions,
    accel: qemu::Accel,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<(KernelInfo, Vec<Figure>), BenchError> {
    let mut t = Timings::default();
    let p = prepare(run, &mut t, &interrupt, emit)?;
    let name = p.tree.name.clone();
    let info = KernelInfo {
        name: name.clone(),
        release: p.tree.release.clone(),
        boots: match p.kernel {
            crate::kernel::vmlinux::BootImage::Pvh(_) => "pvh".into(),
            crate::kernel::vmlinux::BootImage::BzImage { .. } => "bzImage".into(),
        },
    };
    let (boot, cpu, console) = boot_figures(opts, run, &p, accel, interrupt.clone(), emit)?;
    let mut figures = vec![boot, cpu, console];
    emit(Event::Progress(format!("{name}: the module's mechanisms")));
    figures.extend(module_figures(run, &p, interrupt.clone(), emit)?);
    if opts.pings > 0 {
        emit(Event::Progress(format!("{name}: the doorbell round trips")));
        figures.push(doorbell_figure(opts, run, &p, interrupt, emit)?);
    }
    Ok((info, figures))
}

/// The benchmark's own guests have ivshmem-plain (no doorbell server).
fn plain(run: &RunOptions) -> RunOptions {
    let mut run = run.clone();
    let size = run.plan.guest.shm.map_or(4 << 20, |s| s.size);
    run.plan.guest.shm = Some(crate::plan::ShmPlan { size, doorbell: false, vectors: 1 });
    run
}

fn boot_error(source: VmError, dir: &Path) -> RunError {
    RunError::Boot { source: Box::new(source), run_dir: dir.to_path_buf() }
}

/// A guest of the benchmark: its private directory, memory, device images
/// and config.
struct Guest {
    private: tempfile::TempDir,
    _shm: SharedMemory,
    _images: Vec<crate::exec::setup::DeviceImage>,
    cfg: QemuConfig,
}

impl Guest {
    /// The result of a sample on this guest; a failed boot names the
    /// directory as kept, so it is kept then.
    fn kept<T>(&mut self, result: Result<T, RunError>) -> Result<T, RunError> {
        if let Err(e) = &result {
            if e.run_dir() == Some(self.private.path()) {
                self.private.disable_cleanup(true);
            }
        }
        result
    }
}

fn guest(run: &RunOptions, p: &Prepared, accel: qemu::Accel, kernel: &Path) -> Result<Guest, RunError> {
    let private = private_dir("rig-bench-")?;
    let plain = plain(run);
    let size = plain.plan.guest.shm.map_or(4 << 20, |s| s.size);
    let shm = SharedMemory::create(&private.path().join("ivshmem"), size)?;
    let images = setup::create_images(&plain.plan, private.path())?;
    let mut cfg = setup::guest_config(&plain, p, accel, private.path(), Some(&shm))?;
    cfg.kernel = kernel.to_path_buf();
    Ok(Guest { private, _shm: shm, _images: images, cfg })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_samples() {
        let d = |ms| Duration::from_millis(ms);
        let s = Stats::of(&[d(30), d(10), d(20)]);
        assert_eq!((s.n, s.min_ms, s.median_ms, s.max_ms), (3, 10.0, 20.0, 30.0));
        assert_eq!(Stats::of(&[d(10), d(20)]).median_ms, 15.0);
        assert_eq!(Stats::of(&[]).n, 0);
    }

    #[test]
    fn bars_skip_what_is_not_a_number() {
        let b = Bar::of("x", &[3.0, f64::NAN, 1.0, 2.0]);
        assert_eq!((b.n, b.min, b.median, b.max), (3, 1.0, 2.0, 3.0));
    }

    #[test]
    fn figures_find_their_bars() {
        let mut f = Figure::new("boot", "t", "ms", "k");
        f.bars.push(Bar::of(COLD_PVH, &[2.0, 4.0]));
        assert_eq!(f.median(COLD_PVH), Some(3.0));
        assert_eq!(f.median(RESTORE), None);
    }
}
