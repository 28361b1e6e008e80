//! The host side of `rig-udrv ivshmem`, for the bare-QEMU scripts in
//! udrv/scripts (the rig's suites will do this themselves later).
//!
//! `ivshmem-host --dir DIR [--count N] [--batch N] [--seed N] [--timeout S] -- QEMU ARGS...`
//!
//! Creates the shared memory file DIR/shm (4 MiB) and starts the rig's
//! ivshmem server on DIR/ivshmem.sock (`{socket}` in QEMU ARGS becomes
//! that path), starts QEMU, and then plays the host: waits for the guest
//! driver to publish the ring, produces `count` buffers in batches with
//! `rig_abi::host::produce` (payload seed `seed + seq`), rings the guest on
//! vector 0 after each batch and waits for its ring on vector 1, and checks
//! what the guest left: `cons` caught up, the guest-to-host pattern (seed
//! `!seed`), the region header, the interrupt count, no refused entries.
//! Prints one line per assertion; exits 0 when all held and QEMU exited.

use rig::host::doorbell::Doorbell;
use rig::host::doorbell::{DoorbellServer, GUEST_PEER_ID, HOST_PEER_ID};
use rig::host::shm::SharedMemory;
use rig_abi::{hring_field, ShmHeader, DB_VEC_CONSUMED, DB_VEC_PRODUCED, HRING_READY, POOL_PAYLOAD_MAX};
use rig_abi::{ABI_VERSION, SHM_AREA_SIZE, SHM_G2H_OFFSET, SHM_HEADER_OFFSET, SHM_MAGIC};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

const SHM_SIZE: u64 = 4 << 20;

struct Args {
    dir: PathBuf,
    count: u32,
    batch: u32,
    seed: u32,
    timeout: Duration,
    qemu: Vec<String>,
}

fn num(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|_| format!("`{s}` is not a number"))
}

fn parse() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let split = argv.iter().position(|a| a == "--").ok_or("missing `-- QEMU ARGS`")?;
    let (opts, qemu) = (&argv[..split], argv[split + 1..].to_vec());
    if qemu.is_empty() {
        return Err("no QEMU command after `--`".into());
    }
    let mut a =
        Args { dir: PathBuf::new(), count: 24, batch: 8, seed: 0x1234, timeout: Duration::from_secs(120), qemu };
    let mut it = opts.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let n32 = |v: &str| num(v).and_then(|n| u32::try_from(n).map_err(|_| format!("{flag} is 32-bit")));
        match flag.as_str() {
            "--dir" => a.dir = PathBuf::from(v),
            "--count" => a.count = n32(v)?,
            "--batch" => a.batch = n32(v)?,
            "--seed" => a.seed = n32(v)?,
            "--timeout" => a.timeout = Duration::from_secs(num(v)?),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    if a.dir.as_os_str().is_empty() || a.batch == 0 || a.batch > rig_abi::HRING_SLOTS {
        return Err("--dir is required and --batch is 1..=16".into());
    }
    Ok(a)
}

struct Report {
    failed: u32,
    passed: u32,
}

impl Report {
    fn check(&mut self, ok: bool, what: &str, detail: impl std::fmt::Display) -> bool {
        if ok {
            self.passed += 1;
            println!("host ok: {what}");
        } else {
            self.failed += 1;
            println!("host FAIL: {what}: {detail}");
        }
        ok
    }
}

/// Payload length of batch `i`: short, full and in between.
fn batch_len(i: u32) -> u32 {
    [1, POOL_PAYLOAD_MAX, 100 + 37 * i][i as usize % 3]
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ivshmem-host: {e}");
            return ExitCode::from(2);
        }
    };
    let mut r = Report { failed: 0, passed: 0 };
    let socket = a.dir.join("ivshmem.sock");
    let shm_path = a.dir.join("shm");
    let _ = std::fs::remove_file(&shm_path);
    let shm = match SharedMemory::create(&shm_path, SHM_SIZE) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ivshmem-host: {e}");
            return ExitCode::from(1);
        }
    };
    let mut server = match DoorbellServer::start(&socket, &shm_path, 2) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ivshmem-host: {e}");
            return ExitCode::from(1);
        }
    };
    let qemu: Vec<String> = a.qemu.iter().map(|s| s.replace("{socket}", &socket.to_string_lossy())).collect();
    let mut child = match Command::new(&qemu[0]).args(&qemu[1..]).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ivshmem-host: cannot start {}: {e}", qemu[0]);
            return ExitCode::from(1);
        }
    };
    let started = Instant::now();
    let mem = shm.memory();
    let load = |off: u64| -> u32 { mem.load(GuestAddress(off), Ordering::Acquire).unwrap_or(u32::MAX) };

    // The guest driver publishes the ring once it owns the device.
    let deadline = started + a.timeout;
    let mut alive = true;
    while load(hring_field::GUEST_STATE) != HRING_READY && Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            alive = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ready = r.check(
        load(hring_field::GUEST_STATE) == HRING_READY,
        "the guest driver published the ring",
        format!("guest_state {} (QEMU alive: {alive})", load(hring_field::GUEST_STATE)),
    );
    if ready {
        println!("host note: ring ready {:.1} s after QEMU started", started.elapsed().as_secs_f64());
        r.check(
            load(hring_field::GUEST_PEER) == GUEST_PEER_ID as u32,
            "the ring carries the guest's peer id (IVPosition)",
            load(hring_field::GUEST_PEER),
        );
        let (mut produced, mut batch) = (0u32, 0u32);
        while produced < a.count {
            let n = a.batch.min(a.count - produced);
            let len = batch_len(batch);
            let p = match rig_abi::host::produce(mem, HOST_PEER_ID as u32, n, len, a.seed) {
                Ok(p) => p,
                Err(e) => {
                    r.check(false, &format!("produce batch {batch}"), format!("{e:?}"));
                    break;
                }
            };
            let rang = server.ring_guest(DB_VEC_PRODUCED).and_then(|_| server.wait_ring(DB_VEC_CONSUMED, a.timeout));
            let ok = r.check(
                rang.is_ok(),
                &format!(
                    "batch {batch}: {n} buffers of {len} bytes (seq {}..), rang the guest, rung back",
                    p.first_seq
                ),
                rang.err().unwrap_or_default(),
            );
            if !ok {
                break;
            }
            let cons = load(hring_field::CONS);
            r.check(
                cons == p.prod,
                &format!("batch {batch}: the guest gave every slot back"),
                format!("cons {cons}, prod {}", p.prod),
            );
            produced += n;
            batch += 1;
        }
        let mut g2h = vec![0u8; SHM_AREA_SIZE as usize];
        let read = mem.read_slice(&mut g2h, GuestAddress(SHM_G2H_OFFSET));
        let bad = read.as_ref().ok().and_then(|_| rig_abi::first_mismatch(!a.seed, 0, &g2h));
        r.check(
            read.is_ok() && bad.is_none(),
            "the guest wrote the pattern (seed !seed) into the guest-to-host area",
            format!("{read:?}, first wrong byte {bad:?}"),
        );
        let hdr: Result<ShmHeader, _> = mem.read_obj(GuestAddress(SHM_HEADER_OFFSET));
        match hdr {
            Ok(h) => {
                println!("host note: guest kernel {}", h.release());
                r.check(
                    (h.magic, h.abi_version, h.size) == (SHM_MAGIC, ABI_VERSION, SHM_SIZE) && !h.release().is_empty(),
                    "the guest wrote the region header (magic, ABI, BAR2 size, kernel release)",
                    format!("{h:?}"),
                );
            }
            Err(e) => {
                r.check(false, "read the region header", e);
            }
        }
        let irqs = load(hring_field::IRQS);
        r.check(
            irqs >= batch && batch > 0,
            "the guest counted an interrupt per batch",
            format!("{irqs} for {batch} batches"),
        );
        r.check(load(hring_field::BAD) == 0, "the guest refused no entry", load(hring_field::BAD));
    }

    // The guest powers off after its driver's verdict.
    let exited = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    r.check(exited.is_some_and(|s| s.success()), "QEMU exited by itself", format!("{exited:?}"));
    println!("host note: {:.1} s from QEMU start to exit", started.elapsed().as_secs_f64());
    drop(server);
    if r.failed == 0 && r.passed > 0 {
        println!("host PASS: {} assertions", r.passed);
        ExitCode::SUCCESS
    } else {
        println!("host FAIL: {} of {} assertions failed", r.failed, r.failed + r.passed);
        ExitCode::from(1)
    }
}
