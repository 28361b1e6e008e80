//! `rig bench`: the project's scoreboard, all in one run, per kernel.
//! Figures, not pass/fail: each is a [`Figure`] of bars (median, min, max
//! of its samples), written to a JSON file and drawn as an SVG chart
//! ([`super::bench_plot`]). A new figure is one more function returning a
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

use crate::exec::devices;
use crate::exec::prepare::{prepare, Prepared};
use crate::exec::run::{Event, RunError, RunOptions};
use crate::exec::setup::{self, host_setup, private_dir, HostSetup};
use crate::guest::console::Resume;
use crate::guest::protocol::{self, Nonce, READY_MARKER};
use crate::host::doorbell::{Doorbell, HOST_PEER_ID};
use crate::host::shm::SharedMemory;
use crate::plan::step::Check;
use crate::plan::{Bind, DevicePlan, Plan, ShmPlan, DEFAULT_IOMMU, FIRST_DEVICE_SLOT};
use crate::results::Timings;
use crate::vm::accel;
use crate::vm::qemu::{self, QemuConfig, SerialBackend};
use crate::vm::snapshot;
use crate::vm::{cpu_time, Launch, Vm, VmError};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Labels of the boot figure.
pub const COLD_VERBOSE: &str = "rig, cold boot, bzImage, verbose console (as before PVH)";
pub const COLD_BZIMAGE: &str = "rig, cold boot, bzImage";
pub const COLD_PVH: &str = "rig, cold boot, PVH";
pub const BARE: &str = "bare QEMU, same image";
pub const RESTORE: &str = "rig, restored guest";

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
        super::bench_plot::draw(&report, svg).map_err(|e| io_error(svg)(std::io::Error::other(e)))?;
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

/// The boot and console figures.
fn boot_figures(
    opts: &BenchOptions,
    run: &RunOptions,
    p: &Prepared,
    accel: qemu::Accel,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<(Figure, Figure, Figure), RunError> {
    let name = &p.tree.name;
    let (mut verbose, mut bz, mut pvh, mut bare, mut restored) = (vec![], vec![], vec![], vec![], vec![]);
    // QEMU's CPU time to the same point: what a loaded machine changes least.
    let (mut verbose_cpu, mut bz_cpu, mut pvh_cpu, mut bare_cpu, mut restored_cpu) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut steps, mut stdio_rtt, mut socket_rtt) = (vec![], vec![], vec![]);
    // The saved guest the restores start from, made by the first PVH boot.
    let mut saver = guest(run, p, accel, p.kernel.path())?;
    let state = saver.private.path().join("guest.state");
    for i in 0..opts.boots.max(1) {
        emit(Event::Progress(format!("{name}: boots, round {} of {}", i + 1, opts.boots.max(1))));
        let mut g = guest(run, p, accel, &p.tree.vmlinuz)?;
        g.cfg.cmdline = verbose_cmdline(&g.cfg.cmdline);
        let r = cold_boot(&g, run.boot_timeout, interrupt.clone(), 0, None);
        let (took, cpu, _) = g.kept(r)?;
        verbose.push(took);
        verbose_cpu.extend(cpu);
        let mut g = guest(run, p, accel, &p.tree.vmlinuz)?;
        let r = cold_boot(&g, run.boot_timeout, interrupt.clone(), 0, None);
        let (took, cpu, _) = g.kept(r)?;
        bz.push(took);
        bz_cpu.extend(cpu);
        let (took, cpu, rig_steps) = if i == 0 {
            let r = cold_boot(&saver, run.boot_timeout, interrupt.clone(), opts.steps, Some(&state));
            saver.kept(r)?
        } else {
            let mut g = guest(run, p, accel, p.kernel.path())?;
            let r = cold_boot(&g, run.boot_timeout, interrupt.clone(), opts.steps, None);
            g.kept(r)?
        };
        pvh.push(took);
        pvh_cpu.extend(cpu);
        steps.extend(rig_steps);
        let mut g = guest(run, p, accel, p.kernel.path())?;
        let r = bare_sample(&g.cfg, g.private.path(), run.boot_timeout, RawConsole::Stdio, opts.steps);
        let (took, cpu, rtts) = g.kept(r)?;
        bare.push(took);
        bare_cpu.extend(cpu);
        stdio_rtt.extend(rtts);
        let r = bare_sample(&g.cfg, g.private.path(), run.boot_timeout, RawConsole::Socket, opts.steps);
        let (_, _, rtts) = g.kept(r)?;
        socket_rtt.extend(rtts);
        let r = restore_sample(&saver, &state, interrupt.clone());
        let (took, cpu) = saver.kept(r)?;
        restored.push(took);
        restored_cpu.extend(cpu);
    }
    let mut boot = Figure::new("boot", "Spawn to a ready shell", "ms", name);
    boot.bars = vec![
        Bar::ms(COLD_VERBOSE, &verbose),
        Bar::ms(COLD_BZIMAGE, &bz),
        Bar::ms(COLD_PVH, &pvh),
        Bar::ms(BARE, &bare),
        Bar::ms(RESTORE, &restored),
    ];
    if let (Some(v), Some(b)) = (boot.median(COLD_VERBOSE), boot.median(COLD_PVH)) {
        boot.notes.push(format!("PVH / bzImage with a verbose console: {:.2} (goal <= 0.75)", b / v));
    }
    if let (Some(a), Some(b), Some(r)) = (boot.median(COLD_BZIMAGE), boot.median(COLD_PVH), boot.median(RESTORE)) {
        boot.notes.push(format!("PVH / bzImage: {:.2}", b / a));
        boot.notes.push(format!("restore is {:.1}x sooner than a PVH boot", b / r));
    }
    let mut cpu = Figure::new("boot-cpu", "QEMU's CPU time to a ready shell", "ms", name);
    cpu.bars = vec![
        Bar::ms(COLD_VERBOSE, &verbose_cpu),
        Bar::ms(COLD_BZIMAGE, &bz_cpu),
        Bar::ms(COLD_PVH, &pvh_cpu),
        Bar::ms(BARE, &bare_cpu),
        Bar::ms(RESTORE, &restored_cpu),
    ];
    if let (Some(v), Some(b)) = (cpu.median(COLD_VERBOSE), cpu.median(COLD_PVH)) {
        if v > 0.0 {
            cpu.notes.push(format!("PVH / bzImage with a verbose console: {:.2}", b / v));
        }
    }
    if let (Some(a), Some(b), Some(r)) = (cpu.median(COLD_BZIMAGE), cpu.median(COLD_PVH), cpu.median(RESTORE)) {
        if a > 0.0 && r > 0.0 {
            cpu.notes.push(format!("PVH / bzImage: {:.2}; a PVH boot / a restore: {:.1}", b / a, b / r));
        }
    }
    let mut console = Figure::new("console", "One step against the raw round trip of the same text", "ms", name);
    console.bars = vec![
        Bar::ms("rig step (rexpect, marks, status)", &steps),
        Bar::ms("raw round trip, unix socket", &socket_rtt),
        Bar::ms("raw round trip, QEMU stdio", &stdio_rtt),
    ];
    let (step, raw) = (console.bars[0].median, console.bars[1].median);
    if raw > 0.0 {
        console.notes.push(format!("step / raw round trip on the socket: {:.2}", step / raw));
    }
    Ok((boot, cpu, console))
}

/// The kernel command line of the rig's boot before this work: the kernel's
/// default (verbose) console level, lock prefixes patched for one CPU.
pub fn verbose_cmdline(cmdline: &[String]) -> Vec<String> {
    cmdline.iter().filter(|w| !w.starts_with("loglevel=") && *w != "noreplace-smp" && *w != "quiet").cloned().collect()
}

/// A rig guest from spawn to a ready shell (wall and QEMU CPU time); then
/// `steps` steps; then, with `save`, saved to that file. Powered off at the end.
fn cold_boot(
    g: &Guest,
    timeout: Duration,
    interrupt: Arc<AtomicBool>,
    steps: usize,
    save: Option<&Path>,
) -> Result<(Duration, Option<Duration>, Vec<Duration>), RunError> {
    let dir = g.private.path();
    let start = Instant::now();
    let mut vm = Vm::start(&g.cfg, dir, Nonce::new(), interrupt).map_err(|e| boot_error(e, dir))?;
    vm.wait_ready(timeout).map_err(|e| boot_error(e, dir))?;
    vm.console.prepare_shell(Duration::from_secs(20)).map_err(|e| boot_error(e.into(), dir))?;
    let took = start.elapsed();
    let cpu = vm.cpu_time();
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let out = vm.console.run("true", Duration::from_secs(10)).map_err(|e| boot_error(e.into(), dir))?;
        times.push(out.elapsed);
    }
    if let Some(state) = save {
        let socket = vm.qmp_socket().map(Path::to_path_buf).unwrap_or_default();
        snapshot::save(&socket, state, Duration::from_secs(120))
            .map_err(|e| boot_error(VmError::Restore { detail: e.to_string(), stderr: String::new() }, dir))?;
        vm.discard();
    } else {
        vm.shutdown(Duration::from_secs(5));
    }
    Ok((took, cpu, times))
}

/// A guest restored from `state`: spawn to its shell answering a step
/// (wall and QEMU CPU time).
fn restore_sample(
    g: &Guest,
    state: &Path,
    interrupt: Arc<AtomicBool>,
) -> Result<(Duration, Option<Duration>), RunError> {
    let dir = g.private.path();
    let start = Instant::now();
    let how = Launch::Restore { state, resume: Resume::default() };
    let mut vm = Vm::launch(&g.cfg, dir, Nonce::new(), interrupt, how).map_err(|e| boot_error(e, dir))?;
    vm.console.run("true", Duration::from_secs(20)).map_err(|e| boot_error(e.into(), dir))?;
    let took = start.elapsed();
    let cpu = vm.cpu_time();
    vm.discard();
    Ok((took, cpu))
}

/// How a bare sample talks to the console: QEMU's stdio, or the same unix
/// socket the rig uses but read raw (no rexpect), for a like-for-like round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RawConsole {
    Stdio,
    Socket,
}

/// QEMU with a raw console: spawn to a set-up shell (wall and QEMU CPU
/// time), and raw round trips of the very text a rig step sends.
fn bare_sample(
    cfg: &QemuConfig,
    private: &Path,
    timeout: Duration,
    how: RawConsole,
    steps: usize,
) -> Result<(Duration, Option<Duration>, Vec<Duration>), RunError> {
    let mut cfg = cfg.clone();
    cfg.qmp_socket = None;
    // The shell's port raw; the kernel's console goes nowhere, as a bare
    // QEMU user would not read it either.
    let socket = private.join("raw-shell.sock");
    let _ = std::fs::remove_file(&socket);
    cfg.console = SerialBackend::Null;
    cfg.shell = match how {
        RawConsole::Stdio => SerialBackend::Stdio,
        RawConsole::Socket => SerialBackend::Socket(socket.clone()),
    };
    let spawn_err = |source| RunError::Boot {
        source: Box::new(VmError::Spawn { binary: cfg.binary.display().to_string(), source }),
        run_dir: private.to_path_buf(),
    };
    let listener = match how {
        RawConsole::Socket => Some(std::os::unix::net::UnixListener::bind(&socket).map_err(spawn_err)?),
        RawConsole::Stdio => None,
    };
    let start = Instant::now();
    let mut child = Command::new(&cfg.binary)
        .args(qemu::argv(&cfg))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(spawn_err)?;
    let (mut reader, mut writer): (Box<dyn Read + Send>, Box<dyn Write>) = match &listener {
        Some(l) => {
            let (stream, _) = l.accept().map_err(spawn_err)?;
            (Box::new(stream.try_clone().map_err(spawn_err)?), Box::new(stream))
        }
        None => {
            let out = child.stdout.take().ok_or_else(|| spawn_err(std::io::Error::other("no stdout")))?;
            let inp = child.stdin.take().ok_or_else(|| spawn_err(std::io::Error::other("no stdin")))?;
            (Box::new(out), Box::new(inp))
        }
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let wait_for = |needle: &[u8], seen: &mut Vec<u8>| -> bool {
        let until = Instant::now() + timeout;
        loop {
            if let Some(pos) = seen.windows(needle.len()).position(|w| w == needle) {
                seen.drain(..pos + needle.len());
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.extend(chunk),
                Err(_) => return false,
            }
        }
    };
    let ready = wait_for(READY_MARKER.as_bytes(), &mut seen);
    // Like the rig: no tty echo and the same one-byte prompts.
    let shell_ready = ready
        && writer.write_all(protocol::shell_setup_line().as_bytes()).and_then(|_| writer.flush()).is_ok()
        && wait_for(format!("{}\r\n", protocol::SHELL_OK_MARKER).as_bytes(), &mut seen);
    let took = start.elapsed();
    let cpu = cpu_time(child.id());
    let mut rtts = Vec::new();
    let nonce = Nonce::new();
    if shell_ready {
        // The very text a rig step sends, so the difference from a rig
        // step is the rig's own overhead.
        for i in 0..steps as u64 {
            let t = Instant::now();
            let _ = writer.write_all(protocol::step_line(&nonce, i, "true").as_bytes()).and_then(|_| writer.flush());
            if !wait_for(format!("{}\r\n", protocol::end_marker(&nonce, i, 0)).as_bytes(), &mut seen) {
                break;
            }
            rtts.push(t.elapsed());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    if !shell_ready {
        return Err(RunError::Boot {
            source: Box::new(VmError::BootTimeout {
                waited: timeout,
                tail: String::from_utf8_lossy(&seen).into_owned(),
                hint: String::new(),
            }),
            run_dir: private.to_path_buf(),
        });
    }
    Ok((took, cpu, rtts))
}

/// What the guest measured of one mechanism: operations, bytes, seconds.
pub type Measured = Result<(u64, u64, f64), String>;

/// One `BENCH` line of `rig-guest bench`: its mechanism and what it
/// measured, or the mechanism's error.
pub fn parse_bench_line(line: &str) -> Option<(String, Measured)> {
    let rest = line.trim().strip_prefix("BENCH ")?;
    let field = |k: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')));
    let name = field("name")?.to_string();
    // The error is the rest of the line, spaces and all.
    if let Some((_, e)) = rest.split_once(" error=") {
        return Some((name, Err(e.to_string())));
    }
    let ops = field("ops")?.parse().ok()?;
    let bytes = field("bytes")?.parse().ok()?;
    let secs: f64 = field("secs")?.parse().ok()?;
    (secs > 0.0).then_some((name, Ok((ops, bytes, secs))))
}

/// Host memcpy of `len` bytes, in MB/s, for `budget`.
fn host_memcpy_mbps(len: usize, budget: Duration) -> f64 {
    let src = vec![0xa5u8; len];
    let mut dst = vec![0u8; len];
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < budget {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        bytes += len as u64;
    }
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// The host reading the ivshmem region through its mapping, in MB/s.
fn host_shm_read_mbps(shm: &SharedMemory, budget: Duration) -> f64 {
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < budget {
        match shm.read(0, shm.size()) {
            Ok(b) => bytes += std::hint::black_box(b).len() as u64,
            Err(_) => break,
        }
    }
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// The module's figures: one guest as a run would boot it (the config's
/// shared memory and doorbell), `rig-guest bench` in it.
fn module_figures(
    run: &RunOptions,
    p: &Prepared,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<Vec<Figure>, RunError> {
    let HostSetup { server: _server, shm, images: _images, cfg, private, .. } = host_setup(run, p, emit)?;
    let result = module_figures_in(run, p, interrupt, &cfg, shm.as_ref(), private.path());
    crate::exec::run::keep_if_named(private, result)
}

fn module_figures_in(
    run: &RunOptions,
    p: &Prepared,
    interrupt: Arc<AtomicBool>,
    cfg: &QemuConfig,
    shm: Option<&SharedMemory>,
    dir: &Path,
) -> Result<Vec<Figure>, RunError> {
    let name = &p.tree.name;
    let mut vm = Vm::start(cfg, dir, Nonce::new(), interrupt).map_err(|e| boot_error(e, dir))?;
    vm.wait_ready(run.boot_timeout).map_err(|e| boot_error(e, dir))?;
    vm.console.prepare_shell(Duration::from_secs(20)).map_err(|e| boot_error(e.into(), dir))?;
    let out = vm
        .console
        .run("rig-guest bench mechanisms --ms 300", Duration::from_secs(120))
        .map_err(|e| boot_error(e.into(), dir))?;
    let mut ops = Figure::new("mechanisms-ops", "The module's mechanisms: operations", "ops/s", name);
    let mut mbps = Figure::new("mechanisms-mbps", "The module's mechanisms: bandwidth", "MB/s", name);
    let mut guest_shm_mbps = None;
    for (mech, r) in out.output.lines().filter_map(parse_bench_line) {
        match r {
            Ok((n, bytes, secs)) => {
                ops.bars.push(Bar::of(&mech, &[n as f64 / secs]));
                if bytes > 0 {
                    let v = bytes as f64 / secs / 1e6;
                    mbps.bars.push(Bar::of(&mech, &[v]));
                    if mech == "ivshmem-write" {
                        guest_shm_mbps = Some(v);
                    }
                }
            }
            Err(e) => ops.notes.push(format!("{mech}: {e}")),
        }
    }
    if ops.bars.is_empty() {
        ops.notes.push(format!("rig-guest bench printed no figures: {}", crate::support::tail_bytes(&out.output, 300)));
    }
    let mut ivshmem = Figure::new("ivshmem", "Guest to host through ivshmem against host memory copies", "MB/s", name);
    if let Some(v) = guest_shm_mbps {
        ivshmem.bars.push(Bar::of("guest writes BAR2 (mmap of /dev/rig_shm)", &[v]));
    }
    if let Some(m) = shm {
        ivshmem
            .bars
            .push(Bar::of("host reads the region (vm-memory)", &[host_shm_read_mbps(m, Duration::from_millis(200))]));
        let len = usize::try_from(m.size()).unwrap_or(4 << 20);
        ivshmem.bars.push(Bar::of("host memcpy, same size", &[host_memcpy_mbps(len, Duration::from_millis(200))]));
    }
    vm.shutdown(Duration::from_secs(5));
    Ok(vec![ops, mbps, ivshmem])
}

/// The doorbell round trips of each boot, per driver.
#[derive(Default)]
struct RoundTrips {
    module: Vec<Vec<Duration>>,
    vfio: Vec<Vec<Duration>>,
}

/// The doorbell figure: the host rings vector 0, the guest wakes and rings
/// the host back on vector 1; through the module and through VFIO.
fn doorbell_figure(
    opts: &BenchOptions,
    run: &RunOptions,
    p: &Prepared,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<Figure, BenchError> {
    let db = doorbells(opts, run, p, interrupt, emit)?;
    let mut fig =
        Figure::new("doorbell", "Doorbell round trip: host rings, guest wakes and rings back", "us", &p.tree.name);
    let us = |boots: &[Vec<Duration>]| boots.concat().iter().map(|d| d.as_secs_f64() * 1e6).collect::<Vec<f64>>();
    // Where the host's scheduler puts QEMU's threads moves the figure from
    // boot to boot: each boot's median is a note.
    let medians = |boots: &[Vec<Duration>]| {
        boots.iter().map(|b| format!("{:.0}", Stats::of(b).median_ms * 1000.0)).collect::<Vec<_>>().join(", ")
    };
    if !db.module.is_empty() {
        fig.bars.push(Bar::of(DOORBELL_MODULE, &us(&db.module)));
        fig.notes.push(format!("module, median per boot (us): {}", medians(&db.module)));
    }
    if !db.vfio.is_empty() {
        fig.bars.push(Bar::of(DOORBELL_VFIO, &us(&db.vfio)));
        fig.notes.push(format!("VFIO, median per boot (us): {}", medians(&db.vfio)));
    }
    Ok(fig)
}

/// Labels of the doorbell figure.
pub const DOORBELL_MODULE: &str = "kernel module (rig-guest db-pong)";
pub const DOORBELL_VFIO: &str = "VFIO (rig-udrv pong)";

/// Both doorbell round trips, in one run: the module's when the config's
/// guest has a doorbell module (the reference suite's does), and VFIO's;
/// their guests boot in turn, `boots` times each.
fn doorbells(
    opts: &BenchOptions,
    run: &RunOptions,
    p: &Prepared,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<RoundTrips, BenchError> {
    let mut out = RoundTrips::default();
    if opts.pings == 0 {
        return Ok(out);
    }
    let n = opts.pings;
    let with_module = run.plan.guest.shm.is_some_and(|s| s.doorbell) && !p.modules.is_empty();
    if !with_module {
        emit(Event::Note("no doorbell round trip through a module: the config's guest has no ivshmem-doorbell module (the reference suite's has)".into()));
    }
    let module_cmd =
        format!("rig-guest db-pong --count {n} --ready-file {PONG}.ready --timeout-ms 10000 --peer {HOST_PEER_ID}");
    let vfio_cmd = format!(
        "rig-udrv pong --device ${PONG_DEVICE_VAR} --count {n} --ready-file {PONG}.ready --timeout 10 --peer {HOST_PEER_ID}"
    );
    let vfio_run = RunOptions { plan: vfio_plan(&run.plan, &vfio_cmd), ..run.clone() };
    let mut t = Timings::default();
    let vp = prepare(&vfio_run, &mut t, &interrupt, emit)?;
    for i in 0..opts.boots.max(1) {
        if with_module {
            let what = "rig-guest db-pong (the reference module)";
            let rtts = pong_sample(run, p, &module_cmd, what, n, &interrupt, emit)?;
            emit(Event::Note(format!(
                "doorbell round trip {}, module: median {:.3} ms",
                i + 1,
                Stats::of(&rtts).median_ms
            )));
            out.module.push(rtts);
        }
        let rtts = pong_sample(&vfio_run, &vp, &vfio_cmd, "rig-udrv pong (VFIO)", n, &interrupt, emit)?;
        emit(Event::Note(format!("doorbell round trip {}, VFIO: median {:.3} ms", i + 1, Stats::of(&rtts).median_ms)));
        out.vfio.push(rtts);
    }
    Ok(out)
}

/// Where the pong programs leave their ready file, output and status.
const PONG: &str = "/tmp/rig-pong";
/// The VFIO guest's doorbell device, and the variable of its address.
const PONG_DEVICE: &str = "ivsh0";
const PONG_DEVICE_VAR: &str = "RIG_DEV_IVSH0";

/// A guest of the config's kernel with nothing but an ivshmem-doorbell
/// bound to vfio-pci, the Intel IOMMU, and rig-udrv (the setup step names
/// it, so the image carries it; the benchmark runs it itself).
fn vfio_plan(base: &Plan, command: &str) -> Plan {
    let mut plan = base.clone();
    plan.modules.clear();
    plan.intree.clear();
    plan.guest.cmdline.clear();
    plan.guest.files.clear();
    plan.guest.shm = Some(ShmPlan { size: 4 << 20, doorbell: true, vectors: 2 });
    plan.guest.iommu = Some(DEFAULT_IOMMU.into());
    plan.guest.devices = vec![DevicePlan {
        name: PONG_DEVICE.into(),
        kind: "ivshmem-doorbell".into(),
        bind: Bind::VfioPci,
        slot: FIRST_DEVICE_SLOT,
        image_size: None,
    }];
    plan.setup = vec![Check::command("pong", command, Duration::from_secs(30))];
    plan.tests.clear();
    plan.teardown.clear();
    plan
}

/// `command` in the background, in a subshell that ends at once (so the
/// shell has no job to report), then a wait for its ready file.
fn background(command: &str) -> String {
    format!(
        "( ({command}; echo $? >{PONG}.status) >{PONG}.log 2>&1 & ); for i in $(seq 300); do [ -e {PONG}.ready ] && break; sleep 0.1; done; [ -e {PONG}.ready ]"
    )
}

/// Waits for the background program's status; prints its output.
fn collect() -> String {
    format!(
        "for i in $(seq 600); do [ -e {PONG}.status ] && break; sleep 0.1; done; cat {PONG}.log; [ \"$(cat {PONG}.status)\" = 0 ]"
    )
}

/// One guest: `command` answers `n` rings; the host times each round trip.
fn pong_sample(
    run: &RunOptions,
    p: &Prepared,
    command: &str,
    what: &str,
    n: usize,
    interrupt: &Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<Vec<Duration>, BenchError> {
    let setup::HostSetup { server, shm, images, cfg, choice: _, private } = setup::host_setup(run, p, emit)?;
    let result = pong_in(run, p, command, what, n, interrupt, server, &cfg, &private);
    drop((shm, images));
    // A failed boot names the directory as kept: keep it then.
    if let Err(BenchError::Run(e)) = &result {
        if e.run_dir() == Some(private.path()) {
            let _ = private.keep();
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn pong_in(
    run: &RunOptions,
    p: &Prepared,
    command: &str,
    what: &str,
    n: usize,
    interrupt: &Arc<AtomicBool>,
    server: Option<crate::host::doorbell::DoorbellServer>,
    cfg: &crate::vm::qemu::QemuConfig,
    host_private: &tempfile::TempDir,
) -> Result<Vec<Duration>, BenchError> {
    let private = host_private.path();
    let failed = |detail: String| BenchError::Guest { what: what.into(), output: detail };
    let mut server = server.ok_or_else(|| failed("the guest has no ivshmem-doorbell server".into()))?;
    let mut vm = Vm::start(cfg, private, Nonce::new(), interrupt.clone()).map_err(|e| boot_error(e, private))?;
    let boot = vm.wait_ready(run.boot_timeout).map_err(|e| boot_error(e, private))?;
    for r in devices::boot_results(&boot.log, &p.devices) {
        if !r.passed() {
            return Err(failed(format!("{}: {:?}", r.name, r.outcome)));
        }
    }
    vm.console.prepare_shell(Duration::from_secs(20)).map_err(|e| boot_error(e.into(), private))?;
    let step = |vm: &mut Vm, line: &str| -> Result<String, BenchError> {
        match vm.console.run(line, Duration::from_secs(90)) {
            Ok(out) if out.status == 0 => Ok(out.output),
            Ok(out) => Err(failed(out.output)),
            Err(e) => Err(failed(e.to_string())),
        }
    };
    step(&mut vm, &background(command))?;
    let mut rtts = Vec::with_capacity(n);
    for index in 0..n {
        let t = Instant::now();
        let rung = server.ring_guest(0).and_then(|_| server.wait_ring(1, Duration::from_secs(10)));
        if let Err(detail) = rung {
            let output = step(&mut vm, &format!("cat {PONG}.log")).unwrap_or_default();
            return Err(BenchError::Doorbell { what: what.into(), index, detail: format!("{detail}\n{output}") });
        }
        rtts.push(t.elapsed());
    }
    step(&mut vm, &collect())?;
    vm.shutdown(Duration::from_secs(5));
    Ok(rtts)
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
    fn reads_the_guests_bench_lines() {
        assert_eq!(
            parse_bench_line("BENCH name=ioctl ops=1000 bytes=48000 secs=0.5"),
            Some(("ioctl".into(), Ok((1000, 48000, 0.5))))
        );
        assert_eq!(
            parse_bench_line("BENCH name=pool-ioctl error=open /dev/rig_pool: ENOENT"),
            Some(("pool-ioctl".into(), Err("open /dev/rig_pool: ENOENT".into())))
        );
        assert_eq!(parse_bench_line("ok: something else"), None);
        assert_eq!(parse_bench_line("BENCH name=x ops=1 bytes=0 secs=0"), None);
    }

    #[test]
    fn the_verbose_baseline_drops_only_the_quieting_words() {
        let words = ["panic=-1", "loglevel=5", "rdinit=/init", "noreplace-smp", "console=ttyS0"].map(String::from);
        assert_eq!(verbose_cmdline(&words), ["panic=-1", "rdinit=/init", "console=ttyS0"]);
    }

    #[test]
    fn figures_find_their_bars() {
        let mut f = Figure::new("boot", "t", "ms", "k");
        f.bars.push(Bar::of(COLD_PVH, &[2.0, 4.0]));
        assert_eq!(f.median(COLD_PVH), Some(3.0));
        assert_eq!(f.median(RESTORE), None);
    }
}
