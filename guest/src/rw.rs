//! 6. read/write with copy_to_user/copy_from_user on /dev/rig_rw.
//!
//! Counts and file positions are honoured, the buffer is bounded (a write
//! past its end stores what fits, then ENOSPC), a bad pointer gives EFAULT,
//! and thousands of writes leave no allocations behind (the article's
//! version leaked one per write).

use crate::args::Failure;
use crate::report::{Report, SysChecks};
use crate::sys::{dev_path, read_text, Fd};
use rig_abi::RW_BUF_SIZE;

/// Active objects in the kmalloc caches (/proc/slabinfo), if readable.
fn kmalloc_objects() -> Option<u64> {
    let text = read_text("/proc/slabinfo").ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("kmalloc-"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum(),
    )
}

pub fn run() -> Result<(), Failure> {
    let mut r = Report::new("rw");
    let path = dev_path(rig_abi::dev::RW);
    let Some(fd) = r.success(format!("open {path} with O_TRUNC"), Fd::open(&path, libc::O_RDWR | libc::O_TRUNC)) else {
        return r.finish();
    };
    r.eq("O_TRUNC empties it (SEEK_END is 0)", Ok(0), fd.seek(0, libc::SEEK_END));
    r.eq("write(\"hello\") writes 5 bytes", Ok(5), fd.write(b"hello"));
    r.eq("write(\", world\") writes 7 more", Ok(7), fd.write(b", world"));
    r.eq("the position is 12", Ok(12), fd.seek(0, libc::SEEK_CUR));
    r.eq("lseek(0)", Ok(0), fd.seek(0, libc::SEEK_SET));
    let mut b3 = [0u8; 3];
    r.eq("read(3) returns 3 bytes", Ok(3), fd.read(&mut b3));
    r.eq("they are \"hel\"", b"hel".to_vec(), b3.to_vec());
    let mut rest = [0u8; 100];
    r.eq("read(100) returns the 9 left", Ok(9), fd.read(&mut rest));
    r.eq("they are \"lo, world\"", b"lo, world".to_vec(), rest[..9].to_vec());
    r.eq("read at the end returns 0", Ok(0), fd.read(&mut rest));
    r.eq("SEEK_END is the end of the data", Ok(12), fd.seek(0, libc::SEEK_END));

    let tail = b"0123456789";
    let at = RW_BUF_SIZE - 6;
    r.eq("a write of 10 bytes 6 before the end stores 6", Ok(6), fd.pwrite(tail, at));
    let mut got = [0u8; 10];
    r.eq("reading there gives the 6 stored", Ok(6), fd.pread(&mut got, at));
    r.eq("they are the first 6 written", tail[..6].to_vec(), got[..6].to_vec());
    r.errno("a write at the end fails", libc::ENOSPC, &fd.pwrite(b"x", RW_BUF_SIZE));
    r.errno("seeking past the buffer fails", libc::EINVAL, &fd.seek(RW_BUF_SIZE as i64 + 1, libc::SEEK_SET));

    let _ = fd.seek(0, libc::SEEK_SET);
    r.errno("write() from a bad pointer fails", libc::EFAULT, &fd.write_raw(8, 16));
    let _ = fd.seek(0, libc::SEEK_SET);
    r.errno("read() into a bad pointer fails", libc::EFAULT, &fd.read_raw(8, 16));
    r.eq("after the failed calls, reading 5 bytes at 0 works", Ok(5), fd.pread(&mut got[..5], 0));
    r.eq("it still starts with \"hello\"", b"hello".to_vec(), got[..5].to_vec());

    let before = kmalloc_objects();
    let msg = [b'z'; 100];
    let mut ok = 0;
    for _ in 0..2000 {
        if fd.pwrite(&msg, 0) == Ok(100) {
            ok += 1;
        }
    }
    r.eq("2000 writes of 100 bytes all succeed", 2000, ok);
    match (before, kmalloc_objects()) {
        (Some(b), Some(a)) => {
            r.check(
                a < b + 500,
                "they leave no kmalloc objects behind",
                format!("fewer than {} objects in kmalloc-* (+500 for noise)", b + 500),
                format!("{a} (was {b})"),
            );
        }
        _ => r.note("no /proc/slabinfo: allocations per write not checked"),
    }
    drop(fd);
    if let Ok(fd) = Fd::open(&path, libc::O_RDONLY) {
        r.eq("opened read-only it keeps its data", Ok(RW_BUF_SIZE as i64), fd.seek(0, libc::SEEK_END));
    }
    r.finish()
}
