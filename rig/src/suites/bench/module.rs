//! The reference module's figures: `rig-guest bench mechanisms` in a guest
//! booted as a run would boot it, and ivshmem against host memory copies.

use super::{boot_error, Bar, Figure};
use crate::exec::prepare::Prepared;
use crate::exec::run::{Event, RunError, RunOptions};
use crate::exec::setup::{host_setup, HostSetup};
use crate::guest::protocol::Nonce;
use crate::host::shm::SharedMemory;
use crate::vm::qemu::QemuConfig;
use crate::vm::Vm;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
pub(super) fn module_figures(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
