//! `rig bench`: boot latency of a rig guest against bare QEMU booting the
//! same kernel and initramfs, the console's raw round trip against a rig
//! step, written to a JSON file. Figures, not pass/fail: targets are judged
//! by reading the file.

use crate::exec::prepare::{prepare, Prepared};
use crate::exec::run::{keep_if_named, Event, RunError, RunOptions};
use crate::exec::setup::{self, private_dir};
use crate::guest::protocol::{self, Nonce, READY_MARKER};
use crate::host::shm::SharedMemory;
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
}

/// Runs the benchmark and writes `opts.out`.
pub fn bench(
    opts: &BenchOptions,
    interrupt: Arc<AtomicBool>,
    emit: &mut dyn FnMut(Event),
) -> Result<BenchReport, RunError> {
    let mut t = Timings::default();
    let p = prepare(&opts.run, &mut t, &interrupt, emit)?;
    let choice = accel::decide(opts.run.accel, &accel::probe());
    emit(Event::Note(format!("accelerator: {} ({})", choice.accel.name(), choice.reason)));
    let (major, minor, micro) = qemu::version(&opts.run.qemu)?;

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
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| RunError::TempDir { dir: opts.out.clone(), source: std::io::Error::other(e) })?;
    std::fs::write(&opts.out, json + "\n").map_err(|source| RunError::TempDir { dir: opts.out.clone(), source })?;
    Ok(report)
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
