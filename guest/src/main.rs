//! `rig-guest`: the guest-side programs of the rig, one subcommand per
//! mechanism of the reference module. Linked statically so the initramfs
//! needs no libc. Exit status 0 means the check passed; 1 a check failed;
//! 2 a usage error. Each assertion prints one line (`ok: ...` or
//! `FAIL: ...: expected ..., saw ...`), then a verdict line.

mod args;
mod bench;
mod doorbell;
mod fault;
mod fuzz;
mod ioctl;
mod kernel;
mod kfile;
mod mmap;
mod netlink;
mod pong;
mod pool;
mod procfs;
mod report;
mod reserved;
mod rw;
mod shm;
mod sockopt;
mod sys;
mod unbind;
mod unload;

use std::process::ExitCode;

const USAGE: &str = "usage: rig-guest <command> [options]
commands:
  shm-info                              print what RIG_IOC_SHM_INFO reports
  shm-fill   --seed N --offset N --len N  write the pattern through the /dev/rig_shm mapping
  shm-verify --seed N --offset N --len N  check the pattern through the /dev/rig_shm mapping
  netlink                               1: netlink hands out addresses; /dev/mem refuses, /dev/rig_mem maps
  mmap-kmalloc [--seed N]               2: mmap of a kmalloc'd buffer
  mmap-vmalloc [--seed N]               2: mmap of a vmalloc'd buffer, one pfn per page
  mmap-vmalloc-user [--seed N]          2: vmalloc_user + remap_vmalloc_range (the modern way)
  fault                                 3: pages handed out by .fault; SIGBUS beyond them
  sockopt                               4: get/setsockopt through nf_register_sockopt
  procfs                                5: /proc/rig_kmod with seq_file
  rw                                    6: read/write on /dev/rig_rw
  ioctl                                 7: _IOR/_IOW/_IOWR ioctls on /dev/rig_ioctl
  kfile                                 8: the file the kernel writes and reads
  reserved [--seed N]                   9: memory reserved at boot (memmap=)
  pool [--count N --seed N --len N --interval-us N]
                                        10: kernel producer, userspace consumer
  doorbell --expect plain|doorbell      11: the doorbell mode, vectors, a ring to ourselves
  hring [--count N --timeout S --detach PREFIX]
                                        11: consume buffers the host produced, ring it back;
                                        with --detach in the background, once waiting in poll()
  collect PREFIX [--timeout S]          the output and verdict of a --detach program
  db-pong [--count N --ready-file PATH --timeout-ms N --peer P]
                                        answer each ring of vector 0 with a ring of peer P
                                        on vector 1, N times (rig bench's round trip)
  pool-info [--drain 1]                 the pool's state and the ring's counters (after taking
                                        and giving back every ready buffer, with --drain)
  unbind-while-mapped                   unbinding the device revokes BAR2 mappings (SIGBUS), rebinds
  unload-while-mapped                   rmmod is refused while regions are mapped
  kernel-clean                          no kernel warning, oops or call trace so far
  bench mechanisms [--ms N]             figures for `rig bench`: each mechanism for N ms
  fuzz [--seed N --threads N --ops N --secs S --stream T --rebind-every N --trace 1 --detach PREFIX]
                                        random and edge-case input to every interface, from several threads";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let no_args = |f: fn() -> Result<(), args::Failure>| {
        if rest.is_empty() {
            f()
        } else {
            Err(args::Failure::Usage(format!("{cmd} takes no options")))
        }
    };
    let result = match cmd.as_str() {
        "shm-info" => shm::info(),
        "shm-fill" => args::Region::parse(rest).and_then(|r| shm::fill(&r)),
        "shm-verify" => args::Region::parse(rest).and_then(|r| shm::verify(&r)),
        "netlink" => no_args(netlink::run),
        "mmap-kmalloc" => mmap::run(rest, mmap::Which::Kmalloc),
        "mmap-vmalloc" => mmap::run(rest, mmap::Which::Vmalloc),
        "mmap-vmalloc-user" => mmap::run(rest, mmap::Which::VmallocUser),
        "fault" => no_args(fault::run),
        "sockopt" => no_args(sockopt::run),
        "procfs" => no_args(procfs::run),
        "rw" => no_args(rw::run),
        "ioctl" => no_args(ioctl::run),
        "kfile" => no_args(kfile::run),
        "reserved" => reserved::run(rest),
        "pool" => pool::run(rest),
        "pool-info" => pool::info_cmd(rest),
        "doorbell" => doorbell::run(rest),
        "hring" => doorbell::hring(rest),
        "collect" => doorbell::collect_cmd(rest),
        "db-pong" => pong::run(rest),
        "unbind-while-mapped" => no_args(unbind::run),
        "unload-while-mapped" => no_args(unload::run),
        "kernel-clean" => no_args(kernel::run),
        "bench" => match rest.split_first() {
            Some((what, opts)) if what == "mechanisms" => bench::mechanisms(opts),
            _ => Err(args::Failure::Usage("bench mechanisms".into())),
        },
        "fuzz" => fuzz::run(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(args::Failure::Usage(format!("unknown command `{other}`"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(args::Failure::Usage(msg)) => {
            eprintln!("rig-guest: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(args::Failure::Check(msg)) => {
            println!("FAIL: {msg}");
            ExitCode::from(1)
        }
    }
}
