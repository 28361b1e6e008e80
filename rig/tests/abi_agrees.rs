//! The C header is the ABI; the Rust mirror must agree with it. This test
//! compiles a probe against guest-kmod/include/uapi/rig_kmod.h with the host
//! C compiler and compares every number, string, size and offset. It also
//! reads the header itself so that a `#define`, a struct or a field added
//! there without a Rust counterpart fails the test.

use rig_abi::*;
use std::collections::{BTreeSet, HashMap};
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A C expression and the Rust value it must have.
type Item = (&'static str, u64);

/// `(C expression, Rust value)` for every number of the header.
fn numbers() -> Vec<Item> {
    vec![
        ("RIG_ABI_VERSION", ABI_VERSION as u64),
        ("RIG_IVSHMEM_VENDOR", IVSHMEM_VENDOR as u64),
        ("RIG_IVSHMEM_DEVICE", IVSHMEM_DEVICE as u64),
        ("RIG_SHM_MAGIC", SHM_MAGIC as u64),
        ("RIG_SHM_HEADER_OFFSET", SHM_HEADER_OFFSET),
        ("RIG_SHM_G2H_OFFSET", SHM_G2H_OFFSET),
        ("RIG_SHM_H2G_OFFSET", SHM_H2G_OFFSET),
        ("RIG_SHM_AREA_SIZE", SHM_AREA_SIZE),
        ("RIG_SHM_FREE_OFFSET", SHM_FREE_OFFSET),
        ("RIG_SHM_MIN_SIZE", SHM_MIN_SIZE),
        ("RIG_STATE_PROBED", STATE_PROBED as u64),
        ("RIG_STATE_REMOVED", STATE_REMOVED as u64),
        ("RIG_IOC_MAGIC", IOC_MAGIC as u64),
        ("RIG_IOC_SHM_INFO", IOC_SHM_INFO as u64),
        // issue 3
        ("RIG_POOL_STATUS_OFFSET", POOL_STATUS_OFFSET),
        ("RIG_HRING_OFFSET", HRING_OFFSET),
        ("RIG_POOL_OFFSET", POOL_OFFSET),
        ("RIG_POOL_NBUF", POOL_NBUF as u64),
        ("RIG_POOL_BUF_SIZE", POOL_BUF_SIZE as u64),
        ("RIG_POOL_KBUFS", POOL_KBUFS as u64),
        ("RIG_HRING_FIRST_BUF", HRING_FIRST_BUF as u64),
        ("RIG_HRING_SLOTS", HRING_SLOTS as u64),
        ("RIG_SHM_NETLINK_OFFSET", SHM_NETLINK_OFFSET),
        ("RIG_SHM_USED_END", SHM_USED_END),
        ("RIG_NETLINK_PROTO", NETLINK_PROTO as u64),
        ("RIG_NL_MSG_GET", NL_MSG_GET as u64),
        ("RIG_NL_MSG_SHARED", NL_MSG_SHARED as u64),
        ("RIG_NL_PAGES_ORDER", NL_PAGES_ORDER as u64),
        ("RIG_NL_PAGES_SIZE", NL_PAGES_SIZE),
        ("RIG_KMALLOC_SIZE", KMALLOC_SIZE),
        ("RIG_VMALLOC_SIZE", VMALLOC_SIZE),
        ("RIG_VMALLOC_USER_SIZE", VMALLOC_USER_SIZE),
        ("RIG_FAULT_PAGES", FAULT_PAGES),
        ("RIG_REGION_KMALLOC", REGION_KMALLOC as u64),
        ("RIG_REGION_VMALLOC", REGION_VMALLOC as u64),
        ("RIG_REGION_FAULT", REGION_FAULT as u64),
        ("RIG_REGION_RESERVED", REGION_RESERVED as u64),
        ("RIG_REGION_VMALLOC_USER", REGION_VMALLOC_USER as u64),
        ("RIG_SO_BASE", SO_BASE as u64),
        ("RIG_SO_MSG", SO_MSG as u64),
        ("RIG_SO_STATS", SO_STATS as u64),
        ("RIG_SO_MAX", SO_MAX as u64),
        ("RIG_SO_MSG_MAX", SO_MSG_MAX as u64),
        ("RIG_RW_BUF_SIZE", RW_BUF_SIZE),
        ("RIG_CONFIG_NAME_LEN", CONFIG_NAME_LEN as u64),
        ("RIG_CONFIG_F_VERBOSE", CONFIG_F_VERBOSE as u64),
        ("RIG_CONFIG_F_FAST", CONFIG_F_FAST as u64),
        ("RIG_CONFIG_F_ALL", CONFIG_F_ALL as u64),
        ("RIG_CONFIG_LEVEL_MAX", CONFIG_LEVEL_MAX as u64),
        ("RIG_POOL_MAGIC", POOL_MAGIC as u64),
        ("RIG_POOL_BUF_MAGIC", POOL_BUF_MAGIC as u64),
        ("RIG_POOL_READY", POOL_READY as u64),
        ("RIG_POOL_GONE", POOL_GONE as u64),
        ("RIG_POOL_SRC_KERNEL", POOL_SRC_KERNEL as u64),
        ("RIG_POOL_SRC_HOST", POOL_SRC_HOST as u64),
        ("RIG_POOL_HDR_SIZE", POOL_HDR_SIZE as u64),
        ("RIG_POOL_PAYLOAD_MAX", POOL_PAYLOAD_MAX as u64),
        ("RIG_HRING_MAGIC", HRING_MAGIC as u64),
        ("RIG_HRING_HOST_MAGIC", HRING_HOST_MAGIC as u64),
        ("RIG_HRING_READY", HRING_READY as u64),
        ("RIG_HRING_GONE", HRING_GONE as u64),
        ("RIG_PEER_NONE", PEER_NONE as u64),
        ("RIG_DB_VEC_PRODUCED", DB_VEC_PRODUCED as u64),
        ("RIG_DB_VEC_CONSUMED", DB_VEC_CONSUMED as u64),
        ("RIG_DB_MAX_VECTORS", DB_MAX_VECTORS as u64),
        ("RIG_IOC_GET_CONFIG", IOC_GET_CONFIG as u64),
        ("RIG_IOC_SET_CONFIG", IOC_SET_CONFIG as u64),
        ("RIG_IOC_XCHG_CONFIG", IOC_XCHG_CONFIG as u64),
        ("RIG_IOC_RESET_CONFIG", IOC_RESET_CONFIG as u64),
        ("RIG_IOC_CONFIG_MAXNR", IOC_CONFIG_MAXNR as u64),
        ("RIG_IOC_REGION_INFO", IOC_REGION_INFO as u64),
        ("RIG_IOC_POOL_INFO", IOC_POOL_INFO as u64),
        ("RIG_IOC_POOL_START", IOC_POOL_START as u64),
        ("RIG_IOC_POOL_TAKE", IOC_POOL_TAKE as u64),
        ("RIG_IOC_POOL_TAKE_WAIT", IOC_POOL_TAKE_WAIT as u64),
        ("RIG_IOC_POOL_RELEASE", IOC_POOL_RELEASE as u64),
        ("RIG_IOC_DB_INFO", IOC_DB_INFO as u64),
        ("RIG_IOC_DB_RING", IOC_DB_RING as u64),
        ("RIG_IOC_DB_WAIT", IOC_DB_WAIT as u64),
    ]
}

/// `(C string macro, Rust value)`.
fn strings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RIG_SHM_DEV_NAME", SHM_DEV_NAME),
        ("RIG_MEM_DEV_NAME", dev::MEM),
        ("RIG_KMALLOC_DEV_NAME", dev::KMALLOC),
        ("RIG_VMALLOC_DEV_NAME", dev::VMALLOC),
        ("RIG_VMALLOC_USER_DEV_NAME", dev::VMALLOC_USER),
        ("RIG_FAULT_DEV_NAME", dev::FAULT),
        ("RIG_RW_DEV_NAME", dev::RW),
        ("RIG_IOCTL_DEV_NAME", dev::IOCTL),
        ("RIG_RESERVED_DEV_NAME", dev::RESERVED),
        ("RIG_POOL_DEV_NAME", dev::POOL),
        ("RIG_DB_DEV_NAME", dev::DOORBELL),
        ("RIG_PROC_DIR", PROC_DIR),
        ("RIG_NL_GREETING", NL_GREETING),
        ("RIG_FAULT_STR0", FAULT_STR0),
        ("RIG_FAULT_STR1", FAULT_STR1),
        ("RIG_KMALLOC_GREETING", KMALLOC_GREETING),
        ("RIG_VMALLOC_GREETING", VMALLOC_GREETING),
        ("RIG_VMALLOC_USER_GREETING", VMALLOC_USER_GREETING),
        ("RIG_RESERVED_GREETING", RESERVED_GREETING),
        ("RIG_KFILE_DEFAULT_PATH", KFILE_DEFAULT_PATH),
        ("RIG_KFILE_GREETING", KFILE_GREETING),
    ]
}

/// `sizeof(struct x)` and `offsetof(struct x, field)` for every struct
/// and field, as (C expression, Rust value).
fn layouts() -> Vec<(String, u64)> {
    let mut v = Vec::new();
    macro_rules! layout {
        ($c:literal, $t:ty, [$($f:ident),* $(,)?]) => {
            v.push((format!("sizeof(struct {})", $c), size_of::<$t>() as u64));
            $(v.push((format!("offsetof(struct {}, {})", $c, stringify!($f)), offset_of!($t, $f) as u64));)*
        };
    }
    layout!("rig_shm_header", ShmHeader, [magic, abi_version, size, state, probe_count, bar_phys, kernel_release]);
    layout!("rig_shm_info", ShmInfo, [phys_addr, size, abi_version, reserved]);
    layout!("rig_nl_shared", NlShared, [pages_phys, pages_size, shm_phys, shm_size, abi_version, greeting_len]);
    layout!("rig_region_info", RegionInfo, [phys, size, kind, reserved]);
    layout!("rig_so_msg", SoMsg, [len, seq, data]);
    layout!("rig_so_stats", SoStats, [sets, gets]);
    layout!("rig_config", Config, [flags, level, cookie, name]);
    layout!("rig_pool_buf", PoolBuf, [magic, source, seq, len, seed, index, reserved]);
    layout!(
        "rig_pool_status",
        PoolStatus,
        [magic, state, nbuf, kbufs, produced, consumed, host_consumed, free, ready, last_seq]
    );
    layout!(
        "rig_hring",
        Hring,
        [
            prod,
            host_peer,
            host_magic,
            host_reserved,
            cons,
            guest_peer,
            guest_state,
            guest_magic,
            nslots,
            first_buf,
            irqs,
            bad,
            guest_reserved
        ]
    );
    layout!(
        "rig_pool_info",
        PoolInfo,
        [nbuf, buf_size, kbufs, free, ready, taken, produced, consumed, host_queued, host_consumed, pending, reserved]
    );
    layout!("rig_pool_start", PoolStart, [count, len, seed, interval_us]);
    layout!("rig_pool_desc", PoolDesc, [index, source, seq, len, seed]);
    layout!("rig_pool_release", PoolRelease, [index, reserved]);
    layout!("rig_db_info", DbInfo, [doorbell, own_peer, vectors, host_peer, irqs, rings]);
    layout!("rig_db_ring", DbRing, [peer, vector]);
    layout!("rig_db_wait", DbWait, [vector, timeout_ms, count]);
    v
}

/// (seed, index) pairs for comparing `rig_pattern_byte` with `pattern_byte`.
const PATTERN_SAMPLES: [(u32, u64); 6] =
    [(0, 0), (7, 1), (1000, 4031), (0xdead_beef, 0x1234_5678), (u32::MAX, u64::MAX), (42, 1 << 40)];

fn header_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-kmod/include/uapi/rig_kmod.h")
}

fn probe_source() -> String {
    let mut s = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"uapi/rig_kmod.h\"\n\
         #define P(name, value) printf(\"N %s\\t%llu\\n\", name, (unsigned long long)(value))\n\
         #define S(name, value) printf(\"S %s\\t%s\\n\", name, value)\nint main(void)\n{\n",
    );
    for (expr, _) in numbers() {
        s.push_str(&format!("\tP(\"{expr}\", {expr});\n"));
    }
    for (expr, _) in layouts() {
        s.push_str(&format!("\tP(\"{expr}\", {expr});\n"));
    }
    for (name, _) in strings() {
        s.push_str(&format!("\tS(\"{name}\", {name});\n"));
    }
    // Per struct, the sum of its fields' sizes (see structs_have_no_hidden_padding).
    let mut sums: Vec<(String, Vec<String>)> = Vec::new();
    for (expr, _) in layouts() {
        if let Some(rest) = expr.strip_prefix("offsetof(struct ").and_then(|r| r.strip_suffix(')')) {
            let (st, field) = rest.split_once(", ").expect("struct, field");
            let term = format!("sizeof(((struct {st} *)0)->{field})");
            match sums.iter_mut().find(|(s, _)| s == st) {
                Some((_, terms)) => terms.push(term),
                None => sums.push((st.to_string(), vec![term])),
            }
        }
    }
    for (st, terms) in sums {
        s.push_str(&format!("\tP(\"fieldsum(struct {st})\", {});\n", terms.join(" + ")));
    }
    for (seed, index) in PATTERN_SAMPLES {
        s.push_str(&format!("\tP(\"pattern {seed} {index}\", rig_pattern_byte({seed}u, {index}ull));\n"));
    }
    s.push_str("\treturn 0;\n}\n");
    s
}

/// Numbers and strings the compiled probe prints.
fn c_values() -> (HashMap<String, u64>, HashMap<String, String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("probe.c");
    let bin = dir.path().join("probe");
    std::fs::write(&src, probe_source()).expect("write probe");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-Wall", "-Wextra", "-Werror", "-std=c99", "-I"])
        .arg(root.join("guest-kmod/include"))
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .output()
        .expect("run the C compiler (install gcc)");
    assert!(out.status.success(), "probe did not compile: {}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&bin).output().expect("run probe");
    let text = String::from_utf8_lossy(&run.stdout).into_owned();
    let (mut nums, mut strs) = (HashMap::new(), HashMap::new());
    for line in text.lines() {
        let (kind, rest) = line.split_at(2);
        let (k, v) = rest.split_once('\t').expect("key\\tvalue");
        match kind {
            "N " => nums.insert(k.to_string(), v.parse().expect("number")).map(|_| ()),
            "S " => strs.insert(k.to_string(), v.to_string()).map(|_| ()),
            other => panic!("probe printed `{other}`"),
        };
    }
    (nums, strs)
}

#[test]
fn c_header_and_rust_mirror_agree() {
    let (c, cstr) = c_values();
    let mut rust: Vec<(String, u64)> = numbers().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    rust.extend(layouts());
    rust.extend(PATTERN_SAMPLES.iter().map(|&(s, i)| (format!("pattern {s} {i}"), pattern_byte(s, i) as u64)));
    let mut wrong = Vec::new();
    for (name, value) in &rust {
        match c.get(name) {
            Some(cv) if cv == value => {}
            other => wrong.push(format!("{name}: C {other:?}, Rust {value}")),
        }
    }
    for (name, value) in strings() {
        match cstr.get(name) {
            Some(cv) if cv == value => {}
            other => wrong.push(format!("{name}: C {other:?}, Rust {value:?}")),
        }
    }
    assert!(wrong.is_empty(), "ABI mismatch:\n{}", wrong.join("\n"));
    // Every number the probe prints is compared (the field sums have their own test).
    assert_eq!(c.keys().filter(|k| !k.starts_with("fieldsum")).count(), rust.len());
}

/// Every `#define RIG_*`, every struct and every field of the header has a
/// Rust counterpart above: nothing added to the header can be forgotten.
#[test]
fn nothing_in_the_header_is_left_out() {
    let text = std::fs::read_to_string(header_path()).expect("read the uapi header");
    let mut known: BTreeSet<String> = numbers().iter().map(|(k, _)| k.to_string()).collect();
    known.extend(strings().iter().map(|(k, _)| k.to_string()));
    let layout: BTreeSet<String> = layouts().into_iter().map(|(k, _)| k).collect();

    let mut missing = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("#define ") {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let function_like = rest[name.len()..].starts_with('(');
            if name.starts_with("RIG_") && !function_like && !known.contains(&name) {
                missing.push(format!("#define {name}"));
            }
        } else if let Some(rest) = t.strip_prefix("struct ").filter(|r| r.ends_with('{')) {
            let name = rest.trim_end_matches('{').trim().to_string();
            if !layout.contains(&format!("sizeof(struct {name})")) {
                missing.push(format!("struct {name}"));
            }
            current = Some(name);
        } else if t.starts_with("};") {
            current = None;
        } else if let (Some(s), Some(decl)) = (&current, t.strip_prefix("__")) {
            // "__u32 name;" or "__u8 name[N];"
            let field = decl.split_whitespace().nth(1).unwrap_or("");
            let field: String = field.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !layout.contains(&format!("offsetof(struct {s}, {field})")) {
                missing.push(format!("struct {s}.{field}"));
            }
        }
    }
    assert!(missing.is_empty(), "in the header but not in the Rust mirror or this test:\n{}", missing.join("\n"));
}

/// Every struct is padding-free: its fields' sizes add up to its size, so
/// the layout cannot differ between compilers or with Rust's repr(C).
#[test]
fn structs_have_no_hidden_padding() {
    let (c, _) = c_values();
    let mut checked = 0;
    for (expr, value) in &c {
        if let Some(s) = expr.strip_prefix("fieldsum(struct ").and_then(|r| r.strip_suffix(')')) {
            let size = c[&format!("sizeof(struct {s})")];
            assert_eq!(*value, size, "struct {s}: fields {value} bytes, struct {size}: padding");
            checked += 1;
        }
    }
    assert_eq!(checked, layouts().iter().filter(|(k, _)| k.starts_with("sizeof")).count());
}
