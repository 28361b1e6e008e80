//! `rig boots`: boot reliability. Boots each kernel's guest (built module,
//! initramfs and ivshmem device as in a run) many times, several at once,
//! each to the ready marker with every module loaded and no kernel warning,
//! then powers it off; counts the failures and writes the figures as JSON.
//! A failed boot keeps its directory (console.log, qemu.cmdline).
//!
//! This is the test behind the rig's QEMU choice: QEMU 7.2 under TCG
//! double-faults 6.12 guests now and then when two boot at once.

use crate::exec::prepare::{prepare, Prepared};
use crate::exec::run::{Event, RunError, RunOptions};
use crate::exec::setup::{self, private_dir};
use crate::guest::protocol::Nonce;
use crate::host::shm::SharedMemory;
use crate::plan::ShmPlan;
use crate::results::Timings;
use crate::suites::bench::Stats;
use crate::vm::accel;
use crate::vm::qemu;
use crate::vm::Vm;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// What to boot.
#[derive(Clone, Debug)]
pub struct BootsOptions {
    /// Options shared by every kernel (`kernel` is replaced).
    pub base: RunOptions,
    /// Catalog names.
    pub kernels: Vec<String>,
    /// Boots per kernel.
    pub boots: usize,
    /// Guests booting at once.
    pub parallel: usize,
    /// The JSON file.
    pub out: PathBuf,
}

/// One boot.
#[derive(Clone, Debug, Serialize)]
pub struct BootSample {
    /// 1-based.
    pub index: usize,
    /// Reached the marker with all modules loaded and a clean log, then powered off.
    pub ok: bool,
    /// Spawn to ready marker.
    pub boot_ms: f64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Kept directory of a failed boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_dir: Option<PathBuf>,
}

/// One kernel's figures.
#[derive(Clone, Debug, Serialize)]
pub struct KernelBoots {
    pub kernel: String,
    pub release: String,
    pub boots: usize,
    pub failures: usize,
    /// Boot times of the good boots.
    pub boot: Stats,
    /// The failed boots (all of them).
    pub failed: Vec<BootSample>,
}

/// The whole file.
#[derive(Clone, Debug, Serialize)]
pub struct BootsReport {
    pub qemu_version: String,
    pub accel: String,
    pub parallel: usize,
    pub host_cpus: usize,
    pub boots_per_kernel: usize,
    pub wall_secs: f64,
    pub kernels: Vec<KernelBoots>,
}

impl BootsReport {
    /// Failed boots over all kernels.
    pub fn failures(&self) -> usize {
        self.kernels.iter().map(|k| k.failures).sum()
    }
}

/// Boots every kernel `opts.boots` times, `opts.parallel` at once, and
/// writes `opts.out`. Errors only when a kernel cannot be prepared (fetch,
/// build) or the file cannot be written; failed boots are data.
pub fn repeated_boots(
    opts: &BootsOptions,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<BootsReport, RunError> {
    let started = Instant::now();
    let (major, minor, micro) = qemu::version(&opts.base.qemu)?;
    let choice = accel::decide(opts.base.accel, &accel::probe());
    emit(Event::Note(format!("accelerator: {} ({})", choice.accel.name(), choice.reason)));
    let mut kernels = Vec::new();
    for name in &opts.kernels {
        let mut ro = RunOptions { kernel: name.clone(), ..opts.base.clone() };
        // Boots take a plain ivshmem device like a run's (no doorbell server).
        let size = ro.plan.guest.shm.map_or(4 << 20, |s| s.size);
        ro.plan.guest.shm = Some(ShmPlan { size, doorbell: false, vectors: 1 });
        let mut t = Timings::default();
        let p = prepare(&ro, &mut t, &interrupt, emit)?;
        let samples = boot_many(&ro, &p, choice.accel, opts, interrupt.clone(), emit);
        if interrupt.load(Ordering::Relaxed) {
            return Err(RunError::Interrupted);
        }
        let good: Vec<Duration> =
            samples.iter().filter(|s| s.ok).map(|s| Duration::from_secs_f64(s.boot_ms / 1000.0)).collect();
        let failed: Vec<BootSample> = samples.iter().filter(|s| !s.ok).cloned().collect();
        emit(Event::Note(format!(
            "{name}: {} boots, {} failed, boot median {:.2} s",
            samples.len(),
            failed.len(),
            Stats::of(&good).median_ms / 1000.0
        )));
        kernels.push(KernelBoots {
            kernel: name.clone(),
            release: p.tree.release.clone(),
            boots: samples.len(),
            failures: failed.len(),
            boot: Stats::of(&good),
            failed,
        });
    }
    let report = BootsReport {
        qemu_version: format!("{major}.{minor}.{micro}"),
        accel: choice.accel.name().into(),
        parallel: opts.parallel,
        host_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        boots_per_kernel: opts.boots,
        wall_secs: started.elapsed().as_secs_f64(),
        kernels,
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| RunError::TempDir { dir: opts.out.clone(), source: std::io::Error::other(e) })?;
    std::fs::write(&opts.out, json + "\n").map_err(|source| RunError::TempDir { dir: opts.out.clone(), source })?;
    Ok(report)
}

/// `opts.boots` boots of one prepared guest, `opts.parallel` at a time.
fn boot_many(
    ro: &RunOptions,
    p: &Prepared,
    accel: qemu::Accel,
    opts: &BootsOptions,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Vec<BootSample> {
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<BootSample>();
    let mut samples = Vec::with_capacity(opts.boots);
    std::thread::scope(|s| {
        for _ in 0..opts.parallel.max(1) {
            let tx = tx.clone();
            let (next, interrupt) = (&next, interrupt.clone());
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= opts.boots || interrupt.load(Ordering::Relaxed) {
                    break;
                }
                if tx.send(one_boot(ro, p, accel, i + 1, interrupt.clone())).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for sample in rx {
            let every = (opts.boots / 10).max(1);
            if !sample.ok {
                emit(Event::Note(format!(
                    "{} boot {} FAILED: {} (kept: {})",
                    p.tree.name,
                    sample.index,
                    sample.error.as_deref().unwrap_or("?").lines().next().unwrap_or(""),
                    sample.kept_dir.as_ref().map_or("-".into(), |d| d.display().to_string())
                )));
            } else if (samples.len() + 1) % every == 0 {
                emit(Event::Note(format!(
                    "{}: {} of {} boots done ({:.2} s)",
                    p.tree.name,
                    samples.len() + 1,
                    opts.boots,
                    sample.boot_ms / 1000.0
                )));
            }
            samples.push(sample);
        }
    });
    samples.sort_by_key(|s| s.index);
    samples
}

/// One boot: ready marker, every module loaded, every device bound, no
/// warning, clean power-off.
fn one_boot(ro: &RunOptions, p: &Prepared, accel: qemu::Accel, index: usize, interrupt: Arc<AtomicBool>) -> BootSample {
    let fail = |error: String, boot_ms: f64, dir: Option<tempfile::TempDir>| BootSample {
        index,
        ok: false,
        boot_ms,
        error: Some(error),
        kept_dir: dir.map(tempfile::TempDir::keep),
    };
    let dir = match private_dir("rig-boot-") {
        Ok(d) => d,
        Err(e) => return fail(e.to_string(), 0.0, None),
    };
    let shm = match ro.plan.guest.shm.map(|s| SharedMemory::create(&dir.path().join("ivshmem"), s.size)).transpose() {
        Ok(s) => s,
        Err(e) => return fail(e.to_string(), 0.0, Some(dir)),
    };
    // QEMU opens the devices' images; they stay in the directory until it goes.
    if let Err(e) = setup::create_images(&ro.plan, dir.path()) {
        return fail(e.to_string(), 0.0, Some(dir));
    }
    let cfg = match setup::guest_config(ro, p, accel, dir.path(), shm.as_ref()) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string(), 0.0, Some(dir)),
    };
    let start = Instant::now();
    let mut vm = match Vm::start(&cfg, dir.path(), Nonce::new(), interrupt) {
        Ok(vm) => vm,
        Err(e) => return fail(e.to_string(), 0.0, Some(dir)),
    };
    let boot = match vm.wait_ready(ro.boot_timeout) {
        Ok(b) => b,
        Err(e) => {
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            drop(vm);
            return fail(e.to_string(), ms, Some(dir));
        }
    };
    let boot_ms = boot.elapsed.as_secs_f64() * 1000.0;
    let loaded: Vec<String> = p.loaded().map(|m| m.file.clone()).collect();
    let mut problems: Vec<String> = crate::exec::run::insmod_results(&boot.log, &loaded)
        .into_iter()
        .chain(crate::exec::devices::boot_results(&boot.log, &p.devices))
        .filter(|r| !r.passed())
        .map(|r| format!("{}: {:?}", r.name, r.outcome))
        .collect();
    problems.extend(boot.reports.iter().map(|a| format!("kernel report: {}", a.report.title)));
    let powered_off = vm.shutdown(Duration::from_secs(10)).is_some_and(|s| s.success());
    if !powered_off {
        problems.push("QEMU did not exit cleanly after poweroff -f".into());
    }
    drop(vm);
    if problems.is_empty() {
        BootSample { index, ok: true, boot_ms, error: None, kept_dir: None }
    } else {
        fail(problems.join("; "), boot_ms, Some(dir))
    }
}
