//! The boot figures (rig cold boots, bare QEMU, a restored guest, in wall
//! and QEMU CPU time) and the console figure (a step against the raw round
//! trip of the same text).

use super::{boot_error, guest, Bar, BenchOptions, Figure, Guest};
use crate::exec::prepare::Prepared;
use crate::exec::run::{Event, RunError, RunOptions};
use crate::guest::console::Resume;
use crate::guest::protocol::{self, Nonce, READY_MARKER};
use crate::vm::qemu::{self, QemuConfig, SerialBackend};
use crate::vm::snapshot;
use crate::vm::{cpu_time, Launch, Vm, VmError};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Labels of the boot figure.
pub const COLD_VERBOSE: &str = "rig, cold boot, bzImage, verbose console (as before PVH)";
pub const COLD_BZIMAGE: &str = "rig, cold boot, bzImage";
pub const COLD_PVH: &str = "rig, cold boot, PVH";
pub const BARE: &str = "bare QEMU, same image";
pub const RESTORE: &str = "rig, restored guest";

/// The boot and console figures.
pub(super) fn boot_figures(
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
/// default (verbose) console level, lock prefixes patched for one CPU, the
/// crypto self-tests run.
pub fn verbose_cmdline(cmdline: &[String]) -> Vec<String> {
    let later = ["noreplace-smp", "quiet", "cryptomgr.notests"];
    cmdline.iter().filter(|w| !w.starts_with("loglevel=") && !later.contains(&w.as_str())).cloned().collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verbose_baseline_drops_only_the_quieting_words() {
        let words = ["panic=-1", "loglevel=5", "rdinit=/init", "noreplace-smp", "cryptomgr.notests", "console=ttyS0"]
            .map(String::from);
        assert_eq!(verbose_cmdline(&words), ["panic=-1", "rdinit=/init", "console=ttyS0"]);
    }
}
