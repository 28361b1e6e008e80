//! `rig-guest`: the guest-side programs of the rig, one subcommand per
//! mechanism of the reference module. Linked statically so the initramfs
//! needs no libc. Exit status 0 means the check passed; 1 a check failed;
//! 2 a usage error. Output is one line a kernel developer can read.

mod args;
mod shm;

use std::process::ExitCode;

const USAGE: &str = "usage: rig-guest <command> [options]
commands:
  shm-info                              print what RIG_IOC_SHM_INFO reports
  shm-fill   --seed N --offset N --len N  write the pattern through the /dev/rig_shm mapping
  shm-verify --seed N --offset N --len N  check the pattern through the /dev/rig_shm mapping";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "shm-info" => shm::info(),
        "shm-fill" => args::Region::parse(rest).and_then(|r| shm::fill(&r)),
        "shm-verify" => args::Region::parse(rest).and_then(|r| shm::verify(&r)),
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
