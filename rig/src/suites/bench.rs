//! `rig bench`: boot latency of a rig guest against bare QEMU booting the
//! same kernel and initramfs, the console's raw round trip against a rig
//! step, and the ivshmem doorbell round trip through the reference module
//! and through VFIO (rig-udrv), written to a JSON file. Figures, not
//! pass/fail: targets are judged by reading the file.

use crate::exec::devices;
use crate::exec::prepare::{prepare, Prepared};
use crate::exec::run::{keep_if_named, Event, RunError, RunOptions};
use crate::exec::setup::{self, private_dir};
use crate::guest::protocol::{self, Nonce, READY_MARKER};
use crate::host::doorbell::Doorbell;
use crate::host::shm::SharedMemory;
use crate::plan::step::Check;
use crate::plan::{Bind, DevicePlan, Plan, ShmPlan, DEFAULT_IOMMU, FIRST_DEVICE_SLOT};
use crate::results::Timings;
use crate::vm::accel;
use crate::vm::qemu::{self, SerialBackend};
use crate::vm::{Vm, VmError};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The guest to boot.
    pub run: RunOptions,
    /// Boots per variant.
    pub boots: usize,
    /// Console round trips / steps per boot.
    pub steps: usize,
    /// Doorbell round trips per boot of each driver's guest (module, VFIO),
    /// which boot `boots` times each, alternating; 0 skips them.
    pub pings: usize,
    /// Where the JSON goes.
    pub out: PathBuf,
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
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        let median = match ms.len() {
            0 => 0.0,
            n if n % 2 == 1 => ms[n / 2],
            n => (ms[n / 2 - 1] + ms[n / 2]) / 2.0,
        };
        Stats {
            n: ms.len(),
            min_ms: ms.first().copied().unwrap_or(0.0),
            median_ms: median,
            max_ms: ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// The benchmark's findings.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub kernel: String,
    pub release: String,
    pub accel: String,
    pub qemu_version: String,
    /// Spawn to ready marker, rig (console socket, QMP, ivshmem, watchdog).
    pub rig_boot: Stats,
    /// Spawn to ready marker, bare QEMU with `-serial stdio`, same kernel and initramfs.
    pub bare_boot: Stats,
    /// Raw console round trip (`echo` over QEMU's stdio, no rexpect).
    pub bare_console_round_trip: Stats,
    /// Raw round trip over the rig's own transport (the unix socket), no rexpect.
    pub socket_console_round_trip: Stats,
    /// One rig step (`true` through rexpect, with its end marker and status).
    pub rig_step: Stats,
    /// Power-off to QEMU exit, rig.
    pub rig_poweroff: Stats,
    /// Doorbell round trip through the reference module (`rig-guest
    /// db-pong`): the host rings vector 0, the guest wakes in
    /// RIG_IOC_DB_WAIT and rings the host on vector 1, the host sees it.
    /// `None` when the config's guest has no doorbell module.
    pub doorbell_module: Option<Stats>,
    /// The same through VFIO: `rig-udrv pong` owns an ivshmem-doorbell bound
    /// to vfio-pci (Intel IOMMU), MSI-X into an eventfd, the Doorbell
    /// register through the mmap()ed BAR0.
    pub doorbell_vfio: Option<Stats>,
    /// The median of each boot's round trips, module then VFIO (where the
    /// host's scheduler puts QEMU's threads moves them from boot to boot).
    pub doorbell_module_per_boot_ms: Vec<f64>,
    /// See `doorbell_module_per_boot_ms`.
    pub doorbell_vfio_per_boot_ms: Vec<f64>,
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

/// Runs the benchmark and writes `opts.out`.
pub fn bench(
    opts: &BenchOptions,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<BenchReport, BenchError> {
    let mut t = Timings::default();
    let p = prepare(&opts.run, &mut t, &interrupt, emit)?;
    let choice = accel::decide(opts.run.accel, &accel::probe());
    emit(Event::Note(format!("accelerator: {} ({})", choice.accel.name(), choice.reason)));
    let (major, minor, micro) = qemu::version(&opts.run.qemu).map_err(RunError::from)?;

    let (mut rig_boot, mut rig_step, mut poweroff) = (vec![], vec![], vec![]);
    let (mut bare_boot, mut bare_rtt, mut socket_rtt) = (vec![], vec![], vec![]);
    for i in 0..opts.boots {
        let (boot, steps, off) = rig_sample(opts, &p, choice.accel, interrupt.clone())?;
        emit(Event::Note(format!("rig boot {}: {boot:.2?}", i + 1)));
        rig_boot.push(boot);
        rig_step.extend(steps);
        poweroff.push(off);
        let (boot, rtts) = bare_sample(opts, &p, choice.accel, RawConsole::Stdio)?;
        emit(Event::Note(format!("bare boot {}: {boot:.2?}", i + 1)));
        bare_boot.push(boot);
        bare_rtt.extend(rtts);
        let (_, rtts) = bare_sample(opts, &p, choice.accel, RawConsole::Socket)?;
        socket_rtt.extend(rtts);
    }
    let db = doorbells(opts, &p, interrupt, emit)?;
    let all = |boots: &[Vec<Duration>]| (!boots.is_empty()).then(|| Stats::of(&boots.concat()));
    let medians = |boots: &[Vec<Duration>]| boots.iter().map(|b| Stats::of(b).median_ms).collect::<Vec<f64>>();
    let report = BenchReport {
        kernel: p.tree.name.clone(),
        release: p.tree.release.clone(),
        accel: choice.accel.name().into(),
        qemu_version: format!("{major}.{minor}.{micro}"),
        rig_boot: Stats::of(&rig_boot),
        bare_boot: Stats::of(&bare_boot),
        bare_console_round_trip: Stats::of(&bare_rtt),
        socket_console_round_trip: Stats::of(&socket_rtt),
        rig_step: Stats::of(&rig_step),
        rig_poweroff: Stats::of(&poweroff),
        doorbell_module: all(&db.module),
        doorbell_vfio: all(&db.vfio),
        doorbell_module_per_boot_ms: medians(&db.module),
        doorbell_vfio_per_boot_ms: medians(&db.vfio),
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| RunError::TempDir { dir: opts.out.clone(), source: std::io::Error::other(e) })?;
    std::fs::write(&opts.out, json + "\n").map_err(|source| RunError::TempDir { dir: opts.out.clone(), source })?;
    Ok(report)
}

/// The doorbell round trips of each boot, per driver.
#[derive(Default)]
struct RoundTrips {
    module: Vec<Vec<Duration>>,
    vfio: Vec<Vec<Duration>>,
}

/// Both doorbell round trips, in one run: the module's when the config's
/// guest has a doorbell module (the reference suite's does), and VFIO's;
/// their guests boot in turn, `boots` times each.
fn doorbells(
    opts: &BenchOptions,
    p: &Prepared,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<RoundTrips, BenchError> {
    let mut out = RoundTrips::default();
    if opts.pings == 0 {
        return Ok(out);
    }
    let n = opts.pings;
    let with_module = opts.run.plan.guest.shm.is_some_and(|s| s.doorbell) && !p.modules.is_empty();
    if !with_module {
        emit(Event::Note("no doorbell round trip through a module: the config's guest has no ivshmem-doorbell module (the reference suite's has)".into()));
    }
    let module_cmd = format!("rig-guest db-pong --count {n} --ready-file {PONG}.ready --timeout-ms 10000");
    let vfio_cmd =
        format!("rig-udrv pong --device ${PONG_DEVICE_VAR} --count {n} --ready-file {PONG}.ready --timeout 10");
    let vfio_run = RunOptions { plan: vfio_plan(&opts.run.plan, &vfio_cmd), ..opts.run.clone() };
    let mut t = Timings::default();
    let vp = prepare(&vfio_run, &mut t, &interrupt, emit)?;
    for i in 0..opts.boots.max(1) {
        if with_module {
            let what = "rig-guest db-pong (the reference module)";
            let rtts = pong_sample(&opts.run, p, &module_cmd, what, n, &interrupt, emit)?;
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
    let mut vm = Vm::start(cfg, private, Nonce::new(), interrupt.clone()).map_err(|e| boot_error(e, host_private))?;
    let boot = vm.wait_ready(run.boot_timeout).map_err(|e| boot_error(e, host_private))?;
    for r in devices::boot_results(&boot.log, &p.devices) {
        if !r.passed() {
            return Err(failed(format!("{}: {:?}", r.name, r.outcome)));
        }
    }
    vm.console.prepare_shell(Duration::from_secs(20)).map_err(|e| boot_error(e.into(), host_private))?;
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

/// The benchmark boots ivshmem-plain guests (no doorbell server).
fn shm_size(opts: &BenchOptions) -> u64 {
    opts.run.plan.guest.shm.map_or(4 << 20, |s| s.size)
}

fn plain(opts: &BenchOptions) -> RunOptions {
    let mut run = opts.run.clone();
    run.plan.guest.shm = Some(crate::plan::ShmPlan { size: shm_size(opts), doorbell: false, vectors: 1 });
    run
}

fn boot_error(source: VmError, dir: &tempfile::TempDir) -> RunError {
    RunError::Boot { source: Box::new(source), run_dir: dir.path().to_path_buf() }
}

/// One rig guest: boot time, step times, power-off time.
fn rig_sample(
    opts: &BenchOptions,
    p: &Prepared,
    accel: qemu::Accel,
    interrupt: Arc<AtomicBool>,
) -> Result<(Duration, Vec<Duration>, Duration), RunError> {
    let private = private_dir("rig-bench-")?;
    let result = rig_sample_in(opts, p, accel, interrupt, &private);
    keep_if_named(private, result)
}

fn rig_sample_in(
    opts: &BenchOptions,
    p: &Prepared,
    accel: qemu::Accel,
    interrupt: Arc<AtomicBool>,
    private: &tempfile::TempDir,
) -> Result<(Duration, Vec<Duration>, Duration), RunError> {
    let shm = SharedMemory::create(&private.path().join("ivshmem"), shm_size(opts))?;
    let _images = setup::create_images(&opts.run.plan, private.path())?;
    let cfg = setup::guest_config(&plain(opts), p, accel, private.path(), Some(&shm))?;
    let start = Instant::now();
    let mut vm = Vm::start(&cfg, private.path(), Nonce::new(), interrupt).map_err(|e| boot_error(e, private))?;
    vm.wait_ready(opts.run.boot_timeout).map_err(|e| boot_error(e, private))?;
    let boot = start.elapsed();
    vm.console.prepare_shell(Duration::from_secs(20)).map_err(|e| boot_error(e.into(), private))?;
    let mut steps = Vec::with_capacity(opts.steps);
    for _ in 0..opts.steps {
        let out = vm.console.run("true", Duration::from_secs(10)).map_err(|e| boot_error(e.into(), private))?;
        steps.push(out.elapsed);
    }
    let off = Instant::now();
    vm.shutdown(Duration::from_secs(5));
    Ok((boot, steps, off.elapsed()))
}

/// How a bare sample talks to the console: QEMU's stdio, or the same unix
/// socket the rig uses but read raw (no rexpect), for a like-for-like round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RawConsole {
    Stdio,
    Socket,
}

/// QEMU with a raw console: boot time and raw `echo` round trips.
fn bare_sample(
    opts: &BenchOptions,
    p: &Prepared,
    accel: qemu::Accel,
    how: RawConsole,
) -> Result<(Duration, Vec<Duration>), RunError> {
    let private = private_dir("rig-bare-")?;
    let result = bare_sample_in(opts, p, accel, how, &private);
    keep_if_named(private, result)
}

fn bare_sample_in(
    opts: &BenchOptions,
    p: &Prepared,
    accel: qemu::Accel,
    how: RawConsole,
    private: &tempfile::TempDir,
) -> Result<(Duration, Vec<Duration>), RunError> {
    let shm = SharedMemory::create(&private.path().join("ivshmem"), shm_size(opts))?;
    let _images = setup::create_images(&opts.run.plan, private.path())?;
    let mut cfg = setup::guest_config(&plain(opts), p, accel, private.path(), Some(&shm))?;
    cfg.qmp_socket = None;
    // The shell's port raw; the kernel's console goes nowhere, as a bare
    // QEMU user would not read it either.
    let socket = private.path().join("raw-shell.sock");
    cfg.console = SerialBackend::Null;
    cfg.shell = match how {
        RawConsole::Stdio => SerialBackend::Stdio,
        RawConsole::Socket => SerialBackend::Socket(socket.clone()),
    };
    let spawn_err = |source| RunError::Boot {
        source: Box::new(VmError::Spawn { binary: cfg.binary.display().to_string(), source }),
        run_dir: private.path().to_path_buf(),
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
    let timeout = opts.run.boot_timeout;
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
    let boot = start.elapsed();
    let mut rtts = Vec::new();
    // Like the rig: no tty echo and the same one-byte prompts.
    let nonce = Nonce::new();
    let shell_ready = ready
        && writer.write_all(protocol::shell_setup_line().as_bytes()).and_then(|_| writer.flush()).is_ok()
        && wait_for(format!("{}\r\n", protocol::SHELL_OK_MARKER).as_bytes(), &mut seen);
    if shell_ready {
        // The very text a rig step sends, so the difference from
        // `rig_step` is the rig's own overhead.
        for i in 0..opts.steps as u64 {
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
    if !ready {
        return Err(RunError::Boot {
            source: Box::new(VmError::BootTimeout {
                waited: timeout,
                tail: String::from_utf8_lossy(&seen).into_owned(),
                hint: String::new(),
            }),
            run_dir: private.path().to_path_buf(),
        });
    }
    Ok((boot, rtts))
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
}
