//! The doorbell figure: the host rings, the guest wakes and rings back,
//! through the reference module and through VFIO, each on guests of its own.

use super::{boot_error, Bar, BenchError, BenchOptions, Figure, Stats};
use crate::exec::devices;
use crate::exec::prepare::{prepare, Prepared};
use crate::exec::run::{Event, RunOptions};
use crate::exec::setup::{self};
use crate::guest::protocol::Nonce;
use crate::host::doorbell::{Doorbell, HOST_PEER_ID};
use crate::plan::step::Check;
use crate::plan::{Bind, DevicePlan, Plan, ShmPlan, DEFAULT_IOMMU, FIRST_DEVICE_SLOT};
use crate::results::Timings;
use crate::vm::Vm;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The doorbell round trips of each boot, per driver.
#[derive(Default)]
struct RoundTrips {
    module: Vec<Vec<Duration>>,
    vfio: Vec<Vec<Duration>>,
}

/// The doorbell figure: the host rings vector 0, the guest wakes and rings
/// the host back on vector 1; through the module and through VFIO.
pub(super) fn doorbell_figure(
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
