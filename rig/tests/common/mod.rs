//! What the tests of kernel reports share: which report each fixture and
//! capture config makes, on which kernels, with which title.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Mutex;

/// The four catalog kernels.
pub const CATALOG: [&str; 4] = ["bullseye-5.10", "bookworm-6.1", "trixie-6.12", "sid-7"];

/// Fixture name, the class and title its first report must get, and a
/// needle its header line contains.
pub const EXPECT: &[(&str, &str, &str, &str)] = &[
    ("warning", "warning", "WARNING in rig_faulty_write", "WARNING: "),
    ("kernel_bug", "kernel_bug", "kernel BUG in rig_bug", "kernel BUG at"),
    ("bug_work", "kernel_bug", "kernel BUG in rig_bugon_work", "kernel BUG at"),
    ("bug_timer", "kernel_bug", "kernel BUG in rig_bugon_timer", "kernel BUG at"),
    ("invalid_opcode", "invalid_opcode", "invalid opcode in rig_ud2", "invalid opcode:"),
    ("null_deref", "null_deref", "BUG: kernel NULL pointer dereference in rig_null_deref", "NULL pointer"),
    ("gpf", "gpf", "general protection fault in rig_gpf", "general protection fault"),
    ("page_fault", "page_fault", "BUG: unable to handle page fault in rig_page_fault", "BUG: unable to handle"),
    ("list_del", "list_corruption", "list_del corruption in rig_list_del", "list_del corruption"),
    ("slab_oob", "slab_corruption", "BUG kmalloc-32: Right Redzone overwritten in rig_slab_oob", "BUG kmalloc-32"),
    ("slab_uaf", "slab_corruption", "BUG rig_uaf: Poison overwritten in rig_slab_uaf", "BUG rig_uaf"),
    ("fortify", "fortify", "FORTIFY: memset buffer overflow in rig_fortify", "detected buffer overflow"),
    ("ubsan", "ubsan", "UBSAN: array-index-out-of-bounds in rig_ubsan", "UBSAN:"),
    ("kfence", "kfence", "KFENCE: out-of-bounds write in rig_kfence", "BUG: KFENCE"),
    ("soft_lockup", "soft_lockup", "soft lockup in rig_soft_lockup", "soft lockup"),
    ("rcu_stall", "rcu_stall", "RCU stall in rig_rcu_stall", "stall"),
    ("hung_task", "hung_task", "task hung in rig_hung_task", "blocked for more than"),
    ("hung_task_loglevel5", "hung_task", "task hung", "blocked for more than"),
    ("stack_overflow", "stack_overflow", "stack overflow in rig_recurse", "stack"),
    ("panic", "panic", "kernel panic: rig_faulty: panic on request", "Kernel panic"),
    ("iommu_fault", "iommu_fault", "IOMMU fault: DMA Write by 00:01.0: PTE Write access is not set", "DMAR"),
];

/// Reports each catalog kernel can print, so each must have a fixture.
pub fn producible(kernel: &str) -> BTreeSet<&'static str> {
    let mut all: BTreeSet<&str> = [
        "warning",
        "kernel_bug",
        "bug_work",
        "bug_timer",
        "invalid_opcode",
        "null_deref",
        "gpf",
        "page_fault",
        "list_del",
        "slab_oob",
        "slab_uaf",
        "fortify",
        "soft_lockup",
        "rcu_stall",
        "hung_task",
        "stack_overflow",
        "panic",
        "iommu_fault",
    ]
    .into();
    // CONFIG_KFENCE=y from 6.12 on (5.10 predates KFENCE; 6.1's cloud config lacks it).
    if kernel == "trixie-6.12" || kernel == "sid-7" {
        all.insert("kfence");
    }
    all
}

/// The `not ok` lines of a KTAP report (skips aside), each with the
/// diagnostics under it.
pub fn failures(ktap: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for line in ktap.lines() {
        let t = line.trim_start();
        if t.starts_with("not ok ") && !t.contains("# SKIP") {
            out.push(t.to_owned());
        } else if let (Some(last), true) = (out.last_mut(), t.starts_with('#')) {
            last.push('\n');
            last.push_str(t);
        }
    }
    out
}

/// Runs `jobs` two at a time (two guests suit a 2-core runner) and returns
/// the problems `f` found.
pub fn in_parallel<T: Send>(jobs: Vec<T>, f: impl Fn(&T) -> Option<String> + Sync) -> Vec<String> {
    let queue = Mutex::new(jobs);
    let problems = Mutex::new(vec![]);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(job) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else { break };
                if let Some(p) = f(&job) {
                    problems.lock().unwrap_or_else(|e| e.into_inner()).push(p);
                }
            });
        }
    });
    problems.into_inner().unwrap_or_else(|e| e.into_inner())
}
