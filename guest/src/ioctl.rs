//! 7. ioctl with _IOR/_IOW/_IOWR numbers on /dev/rig_ioctl.
//!
//! Decodes each number into dir/type/nr/size; GET, SET, XCHG and RESET a
//! struct rig_config; a wrong type, number, size or direction gives ENOTTY,
//! an invalid struct EINVAL, a bad pointer EFAULT.

use crate::args::Failure;
use crate::report::{Report, SysChecks};
use crate::sys::{dev_path, Fd};
use rig_abi::ioc;
use rig_abi::{Config, CONFIG_F_FAST, CONFIG_F_VERBOSE, CONFIG_LEVEL_MAX, CONFIG_NAME_LEN, IOC_MAGIC};
use rig_abi::{IOC_GET_CONFIG, IOC_RESET_CONFIG, IOC_SET_CONFIG, IOC_XCHG_CONFIG};

fn config(flags: u32, level: u32, cookie: u64, name: &str) -> Config {
    let mut c = Config { flags, level, cookie, ..Config::default() };
    c.name[..name.len()].copy_from_slice(name.as_bytes());
    c
}

fn dir_name(d: u32) -> &'static str {
    match d {
        ioc::NONE => "none",
        ioc::READ => "read",
        ioc::WRITE => "write",
        _ => "read|write",
    }
}

pub fn run() -> Result<(), Failure> {
    let mut r = Report::new("ioctl");
    let size = std::mem::size_of::<Config>() as u32;
    let numbers = [
        ("RIG_IOC_GET_CONFIG", IOC_GET_CONFIG, (ioc::READ, IOC_MAGIC, 0x10u8, size)),
        ("RIG_IOC_SET_CONFIG", IOC_SET_CONFIG, (ioc::WRITE, IOC_MAGIC, 0x11, size)),
        ("RIG_IOC_XCHG_CONFIG", IOC_XCHG_CONFIG, (ioc::READ | ioc::WRITE, IOC_MAGIC, 0x12, size)),
        ("RIG_IOC_RESET_CONFIG", IOC_RESET_CONFIG, (ioc::NONE, IOC_MAGIC, 0x13, 0)),
    ];
    for (name, cmd, want) in numbers {
        let (dir, ty, nr, sz) = ioc::decode(cmd);
        r.eq(
            format!(
                "{name} = {cmd:#010x} decodes to dir {}, type '{}', nr {nr:#x}, size {sz}",
                dir_name(dir),
                ty as char
            ),
            want,
            (dir, ty, nr, sz),
        );
    }

    let path = dev_path(rig_abi::dev::IOCTL);
    let Some(fd) = r.success(format!("open {path}"), Fd::open(&path, libc::O_RDWR)) else {
        return r.finish();
    };
    let mut c = Config::default();
    r.success("RIG_IOC_RESET_CONFIG", fd.ioctl_raw(IOC_RESET_CONFIG, 0));
    r.success("RIG_IOC_GET_CONFIG", fd.ioctl(IOC_GET_CONFIG, &mut c));
    r.eq("the defaults", config(0, 1, 0, "default"), c);

    let mut set = config(CONFIG_F_VERBOSE, 3, 0xdead_beef, "set by rig-guest");
    r.success("RIG_IOC_SET_CONFIG", fd.ioctl(IOC_SET_CONFIG, &mut set));
    let mut got = Config::default();
    r.success("RIG_IOC_GET_CONFIG", fd.ioctl(IOC_GET_CONFIG, &mut got));
    r.eq("GET returns what SET stored", set, got);

    let new = config(CONFIG_F_FAST, CONFIG_LEVEL_MAX, 42, "exchanged");
    let mut x = new;
    r.success("RIG_IOC_XCHG_CONFIG", fd.ioctl(IOC_XCHG_CONFIG, &mut x));
    r.eq("XCHG hands back the old config", set, x);
    r.success("RIG_IOC_GET_CONFIG", fd.ioctl(IOC_GET_CONFIG, &mut got));
    r.eq("and stores the new one", new, got);

    let mut bad = config(0x80, 1, 0, "bad flags");
    r.errno("SET with an unknown flag fails", libc::EINVAL, &fd.ioctl(IOC_SET_CONFIG, &mut bad));
    let mut bad = config(0, CONFIG_LEVEL_MAX + 1, 0, "bad level");
    r.errno("SET with a level above the maximum fails", libc::EINVAL, &fd.ioctl(IOC_SET_CONFIG, &mut bad));
    let mut bad = config(0, 1, 0, "");
    bad.name = [b'a'; CONFIG_NAME_LEN];
    r.errno("SET with a name that is not NUL-terminated fails", libc::EINVAL, &fd.ioctl(IOC_SET_CONFIG, &mut bad));
    r.success("RIG_IOC_GET_CONFIG", fd.ioctl(IOC_GET_CONFIG, &mut got));
    r.eq("the refused SETs changed nothing", new, got);

    let wrong = [
        ("another type ('x')", ioc::ior::<Config>(b'x', 0x10)),
        ("a number past the last (0x14)", ioc::ior::<Config>(IOC_MAGIC, 0x14)),
        ("a number below the first (0x0f)", ioc::ior::<Config>(IOC_MAGIC, 0x0f)),
        ("GET's number with another size (16)", ioc::ior::<[u8; 16]>(IOC_MAGIC, 0x10)),
        ("GET's number as _IOW", ioc::iow::<Config>(IOC_MAGIC, 0x10)),
        ("GET's number as _IO", ioc::ioc(ioc::NONE, IOC_MAGIC, 0x10, 0)),
        ("RESET's number as _IOR", ioc::ior::<Config>(IOC_MAGIC, 0x13)),
    ];
    for (what, cmd) in wrong {
        let mut c = Config::default();
        r.errno(format!("{what}: {cmd:#010x} is not this device's ioctl"), libc::ENOTTY, &fd.ioctl(cmd, &mut c));
    }
    r.errno("GET into a bad pointer fails", libc::EFAULT, &fd.ioctl_raw(IOC_GET_CONFIG, 8));
    r.errno("SET from a bad pointer fails", libc::EFAULT, &fd.ioctl_raw(IOC_SET_CONFIG, 8));

    r.success("RIG_IOC_RESET_CONFIG", fd.ioctl_raw(IOC_RESET_CONFIG, 0));
    r.success("RIG_IOC_GET_CONFIG", fd.ioctl(IOC_GET_CONFIG, &mut got));
    r.eq("RESET brings the defaults back", config(0, 1, 0, "default"), got);
    r.finish()
}
