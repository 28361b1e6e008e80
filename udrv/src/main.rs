//! `rig-udrv`: the rig's reference userspace driver. It owns a PCI device
//! from a process through VFIO (vfio-ioctls), the way DPDK, SPDK or ixy
//! do, and checks it against QEMU's virtual devices. Linked statically so
//! the initramfs needs no libc.
//!
//! Each subcommand prints one line per assertion (`ok: ...`, or
//! `FAIL: ...: expected ..., saw ...`), `note:` lines that assert
//! nothing, then `PASS <cmd>: N assertions`. Exit status 0: every
//! assertion held; 1: one failed; 2: usage error.

mod args;
mod edu;
mod hring;
mod ivshmem;
mod kmsg;
mod mmio;
mod nvme;
mod pci;
mod pong;
mod report;
mod vfio;

use report::Failure;
use std::process::ExitCode;

const USAGE: &str = "usage: rig-udrv <command> --device <BDF> [options]
The device must be bound to vfio-pci (driver_override + drivers_probe).
commands:
  edu --device BDF [--seed N] [--iova N] [--only PARTS]
        QEMU's edu (1234:11e8): IDs, liveness, factorial with its MSI,
        DMA both ways through the IOMMU, a blocked DMA to an unmapped IOVA;
        PARTS: some of ids,liveness,msi,dma,unmapped (default all)
  ivshmem --device BDF [--count N] [--seed N] [--timeout S] [--ready-file PATH]
        ivshmem-doorbell (1af4:1110) against the rig's ivshmem server:
        MSI-X, IVPosition, the host ring (count buffers), the doorbell;
        PATH is created once the host may produce
  nvme --device BDF [--size BYTES] [--seed N] [--iova N] [--write-seed N [--write-at BYTES]]
        an NVMe controller: CAP and VS, then admin and I/O queues (polled),
        Identify, a read of the first 4 KiB of namespace 1, and with
        --write-seed a 4 KiB write of that pattern (default at 1 MiB)
  pong --device BDF --count N [--ready-file PATH] [--timeout S] [--peer P]
        ivshmem-doorbell: answer each ring on MSI-X vector 0 with a ring of
        peer P (default 1, the host) on vector 1, N times (rig bench)
  pattern --seed N --len N
        write the rig's seeded byte pattern to stdout (for host-side images)";

/// `pattern --seed N --len N`: what `rig_abi::fill_pattern` makes, on stdout.
fn pattern(args: &[String]) -> Result<(), Failure> {
    use std::io::Write;
    let o = args::Opts::parse(args, &["--seed", "--len"])?;
    let seed = o.num32("--seed", 0)?;
    let len = o.num("--len", 4096)?;
    let mut out = std::io::stdout().lock();
    let mut chunk = vec![0u8; 65536];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(chunk.len() as u64) as usize;
        rig_abi::fill_pattern(seed, at, &mut chunk[..n]);
        out.write_all(&chunk[..n]).map_err(|e| Failure::Check(format!("write stdout: {e}")))?;
        at += n as u64;
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "edu" => edu::run(rest),
        "ivshmem" => ivshmem::run(rest),
        "nvme" => nvme::run(rest),
        "pong" => pong::run(rest),
        "pattern" => pattern(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown command `{other}`"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("rig-udrv: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Check(msg)) => {
            println!("FAIL: {msg}");
            ExitCode::from(1)
        }
    }
}
