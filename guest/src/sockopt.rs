//! 4. get/setsockopt through nf_register_sockopt().
//!
//! On an IPv4 socket at level SOL_IP: a message set is read back (with the
//! set count), wrong lengths give EINVAL, unknown option numbers
//! ENOPROTOOPT, inside the module's range and outside it.

use crate::args::Failure;
use crate::report::{Report, SysChecks};
use crate::sys::{ename, errno, Fd, Sys};
use rig_abi::{SoMsg, SoStats, SO_BASE, SO_MAX, SO_MSG, SO_MSG_MAX, SO_STATS};
use std::mem::size_of;

fn set(fd: &Fd, opt: i32, buf: &[u8]) -> Sys<()> {
    // SAFETY: buf is valid for its length.
    let rc = unsafe { libc::setsockopt(fd.0, libc::SOL_IP, opt, buf.as_ptr().cast(), buf.len() as libc::socklen_t) };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// getsockopt with a buffer of `len` bytes; returns the bytes and the length the kernel set.
fn get(fd: &Fd, opt: i32, len: usize) -> Sys<(Vec<u8>, usize)> {
    let mut buf = vec![0u8; len];
    let mut l = len as libc::socklen_t;
    // SAFETY: buf is valid for len bytes, l for a socklen_t.
    let rc = unsafe { libc::getsockopt(fd.0, libc::SOL_IP, opt, buf.as_mut_ptr().cast(), &mut l) };
    if rc < 0 {
        Err(errno())
    } else {
        Ok((buf, l as usize))
    }
}

fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: T is a padding-free repr(C) integer struct.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

fn from_bytes<T: Copy + Default>(b: &[u8]) -> T {
    let mut v = T::default();
    let n = b.len().min(size_of::<T>());
    // SAFETY: copies at most size_of::<T>() bytes into a plain integer struct.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), (&mut v as *mut T).cast::<u8>(), n) };
    v
}

fn message(text: &str) -> SoMsg {
    let mut m = SoMsg { len: text.len() as u32, ..SoMsg::default() };
    m.data[..text.len()].copy_from_slice(text.as_bytes());
    m
}

pub fn run() -> Result<(), Failure> {
    let mut r = Report::new("sockopt");
    let Some(fd) = r.success("an IPv4 UDP socket", Fd::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)) else {
        return r.finish();
    };
    let sets_before =
        get(&fd, SO_STATS, size_of::<SoStats>()).map(|(b, _)| from_bytes::<SoStats>(&b).sets).unwrap_or(0);

    let text = "hello from setsockopt";
    r.success("setsockopt(SOL_IP, RIG_SO_MSG) stores a message", set(&fd, SO_MSG, &bytes_of(&message(text))));
    match get(&fd, SO_MSG, size_of::<SoMsg>()) {
        Ok((b, len)) => {
            let m: SoMsg = from_bytes(&b);
            r.eq(
                "getsockopt(RIG_SO_MSG) returns it",
                text.as_bytes().to_vec(),
                m.data[..m.len.min(56) as usize].to_vec(),
            );
            r.eq("with the full struct length", size_of::<SoMsg>(), len);
            r.eq("and seq counting the sets", sets_before as u32 + 1, m.seq);
        }
        Err(e) => {
            r.check(false, "getsockopt(RIG_SO_MSG)", "success", ename(e));
        }
    }

    let full = bytes_of(&message(text));
    r.errno("a set one byte short fails", libc::EINVAL, &set(&fd, SO_MSG, &full[..full.len() - 1]));
    let mut long = full.clone();
    long.push(0);
    r.errno("a set one byte long fails", libc::EINVAL, &set(&fd, SO_MSG, &long));
    let mut too_long = message("");
    too_long.len = SO_MSG_MAX as u32 + 1;
    r.errno(
        "a message claiming more than RIG_SO_MSG_MAX bytes fails",
        libc::EINVAL,
        &set(&fd, SO_MSG, &bytes_of(&too_long)),
    );
    r.errno("a get with a short buffer fails", libc::EINVAL, &get(&fd, SO_MSG, 32).map(|_| ()));
    r.errno("a get with a long buffer fails", libc::EINVAL, &get(&fd, SO_MSG, 65).map(|_| ()));
    if let Ok((b, _)) = get(&fd, SO_MSG, size_of::<SoMsg>()) {
        let m: SoMsg = from_bytes(&b);
        r.eq(
            "the refused sets left the message alone",
            text.as_bytes().to_vec(),
            m.data[..m.len.min(56) as usize].to_vec(),
        );
    }

    let unknown = SO_MAX - 1;
    r.errno("an unknown set option inside the module's range fails", libc::ENOPROTOOPT, &set(&fd, unknown, &full));
    r.errno(
        "an unknown get option inside the module's range fails",
        libc::ENOPROTOOPT,
        &get(&fd, unknown, 64).map(|_| ()),
    );
    r.errno("RIG_SO_STATS is get-only", libc::ENOPROTOOPT, &set(&fd, SO_STATS, &full));
    r.errno("an option outside any range fails", libc::ENOPROTOOPT, &set(&fd, SO_BASE + 0x100, &full));

    match get(&fd, SO_STATS, size_of::<SoStats>()) {
        Ok((b, _)) => {
            let s: SoStats = from_bytes(&b);
            r.eq("RIG_SO_STATS counts exactly one more successful set", sets_before + 1, s.sets);
        }
        Err(e) => {
            r.check(false, "getsockopt(RIG_SO_STATS)", "success", ename(e));
        }
    }
    r.finish()
}
