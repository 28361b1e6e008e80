//! 1. Netlink hands out the address of shared pages.
//!
//! Asks the module over its netlink protocol for the physical addresses of
//! its pages and of the ivshmem BAR2, shows that /dev/mem refuses to map
//! them (STRICT_DEVMEM), maps both through the module's /dev/rig_mem at
//! those addresses, reads the greeting, and writes it into the region at
//! RIG_SHM_NETLINK_OFFSET for the host to check. A caller without
//! CAP_SYS_ADMIN must get -EPERM.

use crate::args::Failure;
use crate::report::{Report, SysChecks};
use crate::sys::{c_str, dev_path, ename, errno, in_child, ChildEnd, Fd, Map, Sys, RW};
use rig_abi::{NlShared, ShmInfo, NL_GREETING, NL_MSG_GET, NL_MSG_SHARED, NL_PAGES_SIZE, SHM_MAGIC};
use std::mem::size_of;

const NLMSG_HDRLEN: usize = 16;

/// What the module answered.
#[derive(Debug)]
pub enum Answer {
    Shared(NlShared),
    /// NLMSG_ERROR with this (negative) errno.
    Error(i32),
}

pub fn ask() -> Result<Answer, String> {
    let sock = Fd::socket(libc::AF_NETLINK, libc::SOCK_RAW, rig_abi::NETLINK_PROTO)
        .map_err(|e| format!("socket(AF_NETLINK, {}): {}", rig_abi::NETLINK_PROTO, ename(e)))?;
    // A reply that never comes must not hang the check.
    let tv = libc::timeval { tv_sec: 5, tv_usec: 0 };
    // SAFETY: valid option value of the right size.
    unsafe {
        libc::setsockopt(
            sock.0,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    // SAFETY: zero is a valid sockaddr_nl; the kernel is pid 0.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    let req = libc::nlmsghdr {
        nlmsg_len: NLMSG_HDRLEN as u32,
        nlmsg_type: NL_MSG_GET,
        nlmsg_flags: libc::NLM_F_REQUEST as u16,
        nlmsg_seq: 1,
        nlmsg_pid: 0,
    };
    // SAFETY: req and kernel are valid for their sizes.
    let sent = unsafe {
        libc::sendto(
            sock.0,
            (&req as *const libc::nlmsghdr).cast(),
            NLMSG_HDRLEN,
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(format!("sendto: {}", ename(errno())));
    }
    let mut buf = [0u8; 4096];
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::recv(sock.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(format!("recv: {}", ename(errno())));
    }
    let n = n as usize;
    if n < NLMSG_HDRLEN {
        return Err(format!("short answer of {n} bytes"));
    }
    // SAFETY: at least a header's worth of bytes; read unaligned.
    let hdr: libc::nlmsghdr = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
    match hdr.nlmsg_type {
        t if t == libc::NLMSG_ERROR as u16 && n >= NLMSG_HDRLEN + 4 => {
            let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
            Ok(Answer::Error(err))
        }
        NL_MSG_SHARED if n >= NLMSG_HDRLEN + size_of::<NlShared>() => {
            // SAFETY: enough bytes for the payload; read unaligned.
            Ok(Answer::Shared(unsafe { std::ptr::read_unaligned(buf[NLMSG_HDRLEN..].as_ptr().cast()) }))
        }
        t => Err(format!("answer of type {t:#x} and {n} bytes")),
    }
}

fn shm_info() -> Sys<ShmInfo> {
    let fd = Fd::open(&dev_path(rig_abi::SHM_DEV_NAME), libc::O_RDWR)?;
    let mut info = ShmInfo::default();
    fd.ioctl(rig_abi::IOC_SHM_INFO, &mut info)?;
    Ok(info)
}

/// Drops root (and with it every capability) in a child and asks again.
fn unprivileged_is_refused(r: &mut Report) {
    let end = in_child(|| {
        // SAFETY: plain system calls in the forked child.
        let dropped = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(65534, 65534, 65534) == 0
                && libc::setresuid(65534, 65534, 65534) == 0
        };
        if !dropped {
            println!("note: child could not drop root: {}", ename(errno()));
            return 2;
        }
        match ask() {
            Ok(Answer::Error(e)) if e == -libc::EPERM => 0,
            other => {
                println!("note: unprivileged child got {other:?}");
                1
            }
        }
    });
    r.eq("a caller without CAP_SYS_ADMIN (uid 65534) gets NLMSG_ERROR -EPERM", Ok(ChildEnd::Exited(0)), end);
}

pub fn run() -> Result<(), Failure> {
    let mut r = Report::new("netlink");
    let Some(answer) = r.must("the module answers RIG_NL_MSG_GET on its netlink protocol", ask()) else {
        return r.finish();
    };
    let sh = match answer {
        Answer::Shared(s) => s,
        Answer::Error(e) => return r.abort(format!("root got NLMSG_ERROR {} instead of the addresses", ename(-e))),
    };
    r.note(format!(
        "pages at {:#x} ({:#x} bytes), ivshmem BAR2 at {:#x} ({:#x} bytes)",
        sh.pages_phys, sh.pages_size, sh.shm_phys, sh.shm_size
    ));
    r.eq("the answer carries RIG_ABI_VERSION", rig_abi::ABI_VERSION, sh.abi_version);
    r.eq("pages_size is RIG_NL_PAGES_SIZE", NL_PAGES_SIZE, sh.pages_size);
    r.check(
        sh.pages_phys != 0 && sh.pages_phys % 4096 == 0,
        "pages_phys is a page-aligned address",
        "non-zero and page-aligned",
        format!("{:#x}", sh.pages_phys),
    );
    r.eq("greeting_len is the greeting's length", NL_GREETING.len() as u32, sh.greeting_len);
    match shm_info() {
        Ok(info) => {
            r.eq("shm_phys is BAR2 as RIG_IOC_SHM_INFO reports it", info.phys_addr, sh.shm_phys);
            r.eq("shm_size is BAR2's size", info.size, sh.shm_size);
        }
        Err(e) => {
            r.check(false, "RIG_IOC_SHM_INFO for comparison", "success", ename(e));
        }
    }

    // What 2.6 did: map the address through /dev/mem. STRICT_DEVMEM says no.
    match Fd::open("/dev/mem", libc::O_RDWR | libc::O_SYNC) {
        Ok(mem) => {
            let m = Map::new(&mem, NL_PAGES_SIZE as usize, RW, libc::MAP_SHARED, sh.pages_phys);
            r.errno("/dev/mem refuses to map the pages (System RAM, STRICT_DEVMEM)", libc::EPERM, &m.map(|_| ()));
            let mut b = [0u8; 16];
            r.errno("/dev/mem refuses to read them too", libc::EPERM, &mem.pread(&mut b, sh.pages_phys));
            let m = Map::new(&mem, 4096, RW, libc::MAP_SHARED, sh.shm_phys);
            r.errno(
                "/dev/mem refuses to map BAR2, claimed by the driver (IO_STRICT_DEVMEM)",
                libc::EPERM,
                &m.map(|_| ()),
            );
        }
        Err(e) => {
            r.check(false, "open /dev/mem", "success", ename(e));
        }
    }

    // What works now: the module's own device, at the same offsets.
    let Some(rm) = r.success("open /dev/rig_mem", Fd::open(&dev_path(rig_abi::dev::MEM), libc::O_RDWR)) else {
        return r.finish();
    };
    if let Some(m) = r.success(
        "/dev/rig_mem maps the pages at offset pages_phys",
        Map::new(&rm, NL_PAGES_SIZE as usize, RW, libc::MAP_SHARED, sh.pages_phys),
    ) {
        r.eq("the pages hold the greeting", NL_GREETING.to_string(), c_str(&m.read(0, 64)));
    }
    let beyond = Map::new(&rm, 4096, RW, libc::MAP_SHARED, sh.pages_phys + NL_PAGES_SIZE);
    r.errno("/dev/rig_mem refuses the page after them", libc::EPERM, &beyond.map(|_| ()));
    let across = Map::new(&rm, NL_PAGES_SIZE as usize + 4096, RW, libc::MAP_SHARED, sh.pages_phys);
    r.errno("/dev/rig_mem refuses a mapping that runs past them", libc::EPERM, &across.map(|_| ()));
    let private = Map::new(&rm, 4096, RW, libc::MAP_PRIVATE, sh.pages_phys);
    r.errno("/dev/rig_mem refuses a private mapping", libc::EINVAL, &private.map(|_| ()));

    let len = rig_abi::SHM_USED_END as usize;
    if let Some(bar) =
        r.success("/dev/rig_mem maps BAR2 at offset shm_phys", Map::new(&rm, len, RW, libc::MAP_SHARED, sh.shm_phys))
    {
        r.eq("BAR2 starts with the module's header magic", SHM_MAGIC, bar.read_obj::<u32>(0));
        let off = rig_abi::SHM_NETLINK_OFFSET as usize;
        let mut text = NL_GREETING.as_bytes().to_vec();
        text.push(0);
        bar.write(off, &text);
        r.note(format!("wrote the greeting at region offset {off:#x} for the host"));
        // The same bytes through /dev/rig_shm: the address really is BAR2.
        match Fd::open(&dev_path(rig_abi::SHM_DEV_NAME), libc::O_RDWR)
            .and_then(|f| Map::new(&f, len, RW, libc::MAP_SHARED, 0))
        {
            Ok(shm) => {
                r.eq(
                    "/dev/rig_shm sees the greeting written at shm_phys",
                    NL_GREETING.to_string(),
                    c_str(&shm.read(off, 64)),
                );
            }
            Err(e) => {
                r.check(false, "map /dev/rig_shm for comparison", "success", ename(e));
            }
        }
    }

    unprivileged_is_refused(&mut r);
    r.finish()
}
