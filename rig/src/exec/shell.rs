//! `rig shell`: the same guest `rig run` boots, with its console handed to
//! the person at the terminal (for debugging a failing step). Ctrl-] leaves.

use crate::exec::prepare::{prepare, Prepared};
use crate::exec::run::{keep_if_named, Event, RunError, RunOptions};
use crate::exec::setup::{host_setup, private_dir};
use crate::guest::protocol::Nonce;
use crate::results::Timings;
use crate::vm::{Vm, VmError};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// The byte Ctrl-] sends.
const ESCAPE: u8 = 0x1d;

/// Puts the terminal in raw mode and restores it on drop.
struct RawTerminal {
    saved: Option<Termios>,
}

impl RawTerminal {
    fn new() -> RawTerminal {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        }
        RawTerminal { saved }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, t);
        }
    }
}

/// Boots the configured guest and relays the console until Ctrl-], EOF on
/// stdin, or the guest powering off.
pub fn shell(opts: &RunOptions, interrupt: Arc<AtomicBool>, emit: &mut dyn FnMut(Event)) -> Result<(), RunError> {
    let mut t = Timings::default();
    let prepared = prepare(opts, &mut t, &interrupt, emit)?;
    let run_dir = private_dir("rig-shell-")?;
    let result = relay(opts, &prepared, interrupt, &run_dir, emit);
    keep_if_named(run_dir, result)
}

/// Boots the guest with its logs in `run_dir` and relays its console.
fn relay(
    opts: &RunOptions,
    prepared: &Prepared,
    interrupt: Arc<AtomicBool>,
    run_dir: &tempfile::TempDir,
    emit: &mut dyn FnMut(Event),
) -> Result<(), RunError> {
    let host = host_setup(opts, prepared, emit)?;
    let (cfg, shm) = (&host.cfg, &host.shm);
    let boot_err = |source: VmError, dir: &tempfile::TempDir| RunError::Boot {
        source: Box::new(source),
        run_dir: dir.path().to_path_buf(),
    };
    let mut vm = Vm::start(cfg, run_dir.path(), Nonce::new(), interrupt.clone()).map_err(|e| boot_err(e, run_dir))?;
    vm.wait_ready(opts.boot_timeout).map_err(|e| boot_err(e, run_dir))?;
    if let Some(m) = shm {
        emit(Event::Note(format!("shared memory on the host: {}", m.path().display())));
    }
    emit(Event::Note("guest ready: the console is yours; Ctrl-] leaves".into()));

    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let raw = RawTerminal::new();
    let mut out = std::io::stdout();
    // A fresh prompt: the shell printed one before we attached.
    let _ = vm.console.send("\n");
    'relay: loop {
        // The kernel's messages and the shell's, as they come.
        for bytes in [vm.console.kernel().take_text(), vm.console.take_output()] {
            if !bytes.is_empty() {
                let _ = out.write_all(&bytes);
                let _ = out.flush();
            }
        }
        loop {
            match rx.try_recv() {
                Ok(bytes) => {
                    let (keep, leave) = match bytes.iter().position(|&b| b == ESCAPE) {
                        Some(i) => (&bytes[..i], true),
                        None => (&bytes[..], false),
                    };
                    if !keep.is_empty() && vm.console.send(&String::from_utf8_lossy(keep)).is_err() {
                        break 'relay;
                    }
                    if leave {
                        break 'relay;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => break 'relay,
            }
        }
        if !vm.running() || interrupt.load(Ordering::Relaxed) {
            break;
        }
        vm.console.wait_output(Duration::from_millis(10));
    }
    drop(raw);
    eprintln!();
    vm.shutdown(Duration::from_secs(3));
    Ok(())
}
