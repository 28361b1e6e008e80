//! Kernel reports from console text.
//!
//! A kernel report is what the kernel prints when something went wrong: an
//! oops, a WARNING, a lockup, a memory-corruption finding. The console mixes
//! these with the guest shell's output, so only kernel lines count: lines
//! that carry the printk time prefix (`[    3.123456] `, Debian kernels have
//! `CONFIG_PRINTK_TIME=y`). A program that prints `Kernel panic - not
//! syncing: fake` makes no report.
//!
//! [`Classifier`] works line by line for the live console: it says at once
//! when a report starts ([`Event::Started`]) and hands the whole report over
//! when it ends ([`Event::Completed`]): at its end marker, at the first
//! line that cannot belong to it, or when the caller says no more lines came
//! for a while ([`Classifier::idle`]). [`classify`] runs it over a saved log.
//!
//! The report classes and titles follow syzkaller's `pkg/report` (the titles
//! name the first function of the RIP line or the call trace that is not
//! reporting machinery or a generic helper), written anew for the reports
//! the catalog kernels (5.10 to 7.x, x86-64) print.
//!
//! Long on purpose (about 840 lines of code, the rest tests): the header
//! patterns, the body rules and the title rules of each class depend on one
//! another and read best together.

use regex::Regex;
use std::collections::HashMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::LazyLock;

/// The kind of a kernel report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// `BUG: <what>` that no other class covers (e.g. scheduling while atomic).
    Bug,
    /// `BUG: kernel NULL pointer dereference`.
    NullDeref,
    /// `BUG: unable to handle page fault for address` (or `kernel paging request`).
    PageFault,
    /// `kernel BUG at <file>:<line>!` (`BUG()`/`BUG_ON()`).
    KernelBug,
    /// `invalid opcode:` (a `ud2` that is not a `BUG()`).
    InvalidOpcode,
    /// An x86 `Oops:`/trap line (divide error, int3, ...) with no better header.
    Oops,
    /// `general protection fault` (e.g. a non-canonical address).
    GeneralProtection,
    /// `WARNING: CPU: ...` (`WARN()`/`WARN_ON()`).
    Warning,
    /// `list_add corruption` / `list_del corruption` (CONFIG_DEBUG_LIST).
    ListCorruption,
    /// `BUG kmalloc-32 (...): Right Redzone overwritten` (SLUB debugging).
    SlabCorruption,
    /// `detected buffer overflow in memset` (CONFIG_FORTIFY_SOURCE).
    Fortify,
    /// `UBSAN: <check> in <file>:<line>`.
    Ubsan,
    /// `BUG: KASAN: <kind> in <function>`.
    Kasan,
    /// `BUG: KFENCE: <kind> in <function>`.
    Kfence,
    /// `watchdog: BUG: soft lockup - CPU#0 stuck for 4s!`.
    SoftLockup,
    /// `Watchdog detected hard LOCKUP on cpu N` (NMI watchdog).
    HardLockup,
    /// `rcu: INFO: rcu_preempt self-detected stall on CPU`.
    RcuStall,
    /// `INFO: task <comm>:<pid> blocked for more than N seconds.`.
    HungTask,
    /// `BUG: stack guard page was hit` / `kernel stack overflow (double-fault)`.
    StackOverflow,
    /// `traps: PANIC: double fault` (without a stack overflow).
    DoubleFault,
    /// `Kernel panic - not syncing: <why>` with no other report before it.
    Panic,
    /// An IOMMU blocked a device's DMA (`DMAR: [DMA Write ...] ... fault addr`).
    IommuFault,
}

/// What the kernel does after a report of a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The kernel stopped.
    Panic,
    /// The current task was killed (the kernel goes on, tainted `D`); in
    /// interrupt context this becomes a panic.
    Oops,
    /// A memory or undefined-behaviour checker (SLUB debugging, KFENCE,
    /// KASAN, UBSAN) found a bug and lets the kernel go on: the guest lives,
    /// but its state cannot be trusted.
    Corruption,
    /// A warning or a stall: the kernel goes on unharmed (unless the guest
    /// was booted to panic on it, which [`KernelReport::panicked`] tells).
    Recoverable,
}

impl Class {
    /// Every class, in declaration order.
    pub const ALL: [Class; 22] = [
        Class::Bug,
        Class::NullDeref,
        Class::PageFault,
        Class::KernelBug,
        Class::InvalidOpcode,
        Class::Oops,
        Class::GeneralProtection,
        Class::Warning,
        Class::ListCorruption,
        Class::SlabCorruption,
        Class::Fortify,
        Class::Ubsan,
        Class::Kasan,
        Class::Kfence,
        Class::SoftLockup,
        Class::HardLockup,
        Class::RcuStall,
        Class::HungTask,
        Class::StackOverflow,
        Class::DoubleFault,
        Class::Panic,
        Class::IommuFault,
    ];

    /// Stable snake-case name (fixture file names use it).
    pub fn name(self) -> &'static str {
        match self {
            Class::Bug => "bug",
            Class::NullDeref => "null_deref",
            Class::PageFault => "page_fault",
            Class::KernelBug => "kernel_bug",
            Class::InvalidOpcode => "invalid_opcode",
            Class::Oops => "oops",
            Class::GeneralProtection => "gpf",
            Class::Warning => "warning",
            Class::ListCorruption => "list_corruption",
            Class::SlabCorruption => "slab_corruption",
            Class::Fortify => "fortify",
            Class::Ubsan => "ubsan",
            Class::Kasan => "kasan",
            Class::Kfence => "kfence",
            Class::SoftLockup => "soft_lockup",
            Class::HardLockup => "hard_lockup",
            Class::RcuStall => "rcu_stall",
            Class::HungTask => "hung_task",
            Class::StackOverflow => "stack_overflow",
            Class::DoubleFault => "double_fault",
            Class::Panic => "panic",
            Class::IommuFault => "iommu_fault",
        }
    }

    /// The class with this [`Class::name`].
    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }

    /// What the kernel does after such a report (when not booted to panic on it).
    pub fn severity(self) -> Severity {
        match self {
            Class::Panic | Class::DoubleFault | Class::StackOverflow => Severity::Panic,
            Class::SlabCorruption | Class::Kfence | Class::Kasan | Class::Ubsan => Severity::Corruption,
            // Debian boots with softlockup_panic, hardlockup_panic and
            // hung_task_panic off: the detectors print and the kernel goes on.
            Class::SoftLockup
            | Class::HardLockup
            | Class::RcuStall
            | Class::HungTask
            | Class::Warning
            | Class::IommuFault => Severity::Recoverable,
            _ => Severity::Oops,
        }
    }

    /// True for soft and hard lockup, hung task, RCU stall, WARNING and IOMMU
    /// fault: the kernel goes on unharmed. (Memory-corruption findings also
    /// let the guest live, but are not recoverable: see
    /// [`Severity::Corruption`].)
    pub fn recoverable(self) -> bool {
        self.severity() == Severity::Recoverable
    }

    /// Headers that open a new report even when weaker ones came first.
    fn weak(self) -> bool {
        matches!(self, Class::Oops | Class::InvalidOpcode | Class::Panic | Class::KernelBug | Class::Bug)
    }

    /// Reports framed by `=====` lines, closed by the second one.
    fn closed_by_rule(self) -> bool {
        matches!(self, Class::Kfence | Class::Kasan | Class::Ubsan)
    }

    /// Hang detectors: their stacks inside `<IRQ>`/`<NMI>` are the detector's.
    fn stall(self) -> bool {
        matches!(self, Class::SoftLockup | Class::HardLockup | Class::RcuStall)
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One kernel report found on the console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelReport {
    /// What kind of report.
    pub class: Class,
    /// A syzkaller-style title: `kernel BUG in rig_bugon_work`,
    /// `WARNING in rig_faulty_write`, `KFENCE: out-of-bounds write in f`.
    pub title: String,
    /// Equal for a report and its repeats (class and title).
    pub key: String,
    /// The report's kernel lines from its first line (or its `cut here`
    /// line) to its end, `\r`, escape codes and other output removed.
    pub excerpt: String,
    /// 1-based numbers of the report's first and last line in the input.
    pub lines: RangeInclusive<usize>,
    /// The report includes `Kernel panic - not syncing` (the guest is gone).
    pub panicked: bool,
    /// How often the report occurred (more than 1 only after [`dedup`]).
    pub repeats: usize,
}

impl KernelReport {
    /// The guest goes on unharmed after this report.
    pub fn recoverable(&self) -> bool {
        self.class.recoverable() && !self.panicked
    }
}

/// What [`Classifier`] tells about the lines it was fed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A report began (its header line was just seen); it completes later.
    Started {
        /// Its class so far (a later header of the same report may refine it).
        class: Class,
        /// 1-based number of its first line.
        line: usize,
    },
    /// A report is complete.
    Completed(KernelReport),
}

/// A console line that carries the printk time prefix.
#[derive(Clone, Debug)]
struct KLine {
    no: usize,
    time: f64,
    /// The message after `] `.
    text: String,
    /// The line from the `[` of its time prefix on.
    shown: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Header and details, before any call trace.
    Head,
    /// In or after `Call Trace:`.
    Trace,
    /// After `---[ end trace ... ]---`: register reprints and a panic may follow.
    Tail,
}

#[derive(Debug)]
struct Open {
    class: Class,
    lines: Vec<KLine>,
    phase: Phase,
    panicked: bool,
}

/// What a kernel line means for the report being collected.
enum Step {
    Join,
    /// Join, and the report is complete.
    JoinAndEnd,
    /// The report ended before this line.
    End,
}

/// Kernel time between two lines of one report, at most.
const MAX_GAP_SECS: f64 = 5.0;
/// Lines of one report, at most (a runaway report is cut here).
const MAX_LINES: usize = 2000;
/// Kernel lines between a `cut here`/`=====` marker and its header, at most.
const MAX_MARKER_LEAD: usize = 6;

/// Incremental classifier: feed it console text as it arrives.
///
/// ```
/// use rig::verdict::{Classifier, Event};
/// let mut c = Classifier::new();
/// let mut events = c.feed("[    3.100000] ------------[ cut here ]------------\r\n");
/// events.extend(c.feed("[    3.100001] kernel BUG at drivers/x.c:12!\r\n"));
/// assert!(matches!(events[0], Event::Started { .. }));
/// events.extend(c.idle());
/// assert!(matches!(&events[1], Event::Completed(r) if r.lines == (1..=2)));
/// ```
#[derive(Debug, Default)]
pub struct Classifier {
    /// Lines seen (complete ones).
    line_no: usize,
    /// Text after the last newline.
    partial: String,
    open: Option<Open>,
    /// A recent `cut here`/`=====` line and the kernel lines after it.
    pending: Vec<KLine>,
}

impl Classifier {
    /// A classifier at line 1.
    pub fn new() -> Classifier {
        Classifier::default()
    }

    /// A classifier whose first line is line `lines + 1` of a log that
    /// already holds `lines` lines (a later guest's part of one log).
    pub fn after(lines: usize) -> Classifier {
        Classifier { line_no: lines, ..Classifier::default() }
    }

    /// Complete lines seen, counting those before [`Classifier::after`].
    pub fn lines(&self) -> usize {
        self.line_no
    }

    /// Feeds any chunk of console text; complete lines are classified, the
    /// rest waits for its newline.
    pub fn feed(&mut self, text: &str) -> Vec<Event> {
        let mut events = Vec::new();
        self.partial.push_str(text);
        while let Some(nl) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=nl).collect();
            events.extend(self.line(&line[..line.len() - 1]));
        }
        events
    }

    /// Classifies one complete line (without its newline).
    pub fn line(&mut self, raw: &str) -> Vec<Event> {
        self.line_no += 1;
        let mut events = Vec::new();
        match kernel_line(self.line_no, raw) {
            Some(k) => self.kernel(k, &mut events),
            None => {
                // Other output after `end trace`: the kernel finished the report.
                if self.open.as_ref().is_some_and(|o| o.phase == Phase::Tail) && !clean(raw).trim().is_empty() {
                    events.extend(self.complete());
                }
            }
        }
        events
    }

    /// The caller saw no new lines for a while: the open report is complete.
    pub fn idle(&mut self) -> Vec<Event> {
        self.pending.clear();
        self.complete().into_iter().collect()
    }

    /// End of input: classifies a last unterminated line and completes.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            events.extend(self.line(&rest));
        }
        events.extend(self.idle());
        events
    }

    /// The report being collected: its class so far and first line.
    pub fn current(&self) -> Option<(Class, usize)> {
        self.open.as_ref().map(|o| (o.class, o.lines.first().map_or(0, |l| l.no)))
    }

    fn kernel(&mut self, k: KLine, events: &mut Vec<Event>) {
        if let Some(open) = &self.open {
            let last = open.lines.last().map_or(k.time, |l| l.time);
            // Printk times of two CPUs may be a little out of order; a
            // big step back is a replay (a `dmesg` dump), not this report.
            if k.time - last > MAX_GAP_SECS || last - k.time > 0.5 || open.lines.len() >= MAX_LINES {
                events.extend(self.complete());
            }
        }
        if let Some(open) = &mut self.open {
            match step(open, &k) {
                Step::Join => {
                    open.lines.push(k);
                    return;
                }
                Step::JoinAndEnd => {
                    open.lines.push(k);
                    events.extend(self.complete());
                    return;
                }
                Step::End => events.extend(self.complete()),
            }
        }
        if let Some(h) = header(&k.text) {
            let mut lines = std::mem::take(&mut self.pending);
            // A marker from long ago (or from a replay) is not this report's.
            if lines.first().is_some_and(|m| k.time - m.time > MAX_GAP_SECS || m.time - k.time > 0.5) {
                lines.clear();
            }
            lines.push(k);
            let first = lines[0].no;
            let panicked = h.class == Class::Panic;
            self.open = Some(Open { class: h.class, lines, phase: Phase::Head, panicked });
            events.push(Event::Started { class: h.class, line: first });
        } else if is_marker(&k.text) {
            if self.pending.len() >= MAX_MARKER_LEAD {
                self.pending.clear();
            }
            self.pending.push(k);
        } else if !self.pending.is_empty() {
            self.pending.push(k);
            if self.pending.len() > MAX_MARKER_LEAD {
                self.pending.clear();
            }
        }
    }

    fn complete(&mut self) -> Option<Event> {
        let open = self.open.take()?;
        Some(Event::Completed(build(open)))
    }
}

/// Decides what `k` means for the open report `o` (and updates its phase).
fn step(o: &mut Open, k: &KLine) -> Step {
    let text = k.text.as_str();
    let trimmed = text.trim();
    if o.class == Class::IommuFault {
        // One fault: the status line, then one `[DMA ...]` line.
        let has_fault = o.lines.iter().any(|l| T_DMAR.is_match(&l.text));
        let next_fault = trimmed.contains("DRHD: handling fault") || (has_fault && T_DMAR.is_match(trimmed));
        return if IOMMU_LINE.is_match(trimmed) && !next_fault { Step::Join } else { Step::End };
    }
    if trimmed.starts_with("---[ end Kernel panic") {
        return Step::JoinAndEnd;
    }
    if RULE.is_match(trimmed) {
        // The closing rule of a framed report, or the opening one of the next.
        return if o.class.closed_by_rule() && o.lines.len() > 1 { Step::JoinAndEnd } else { Step::End };
    }
    // FORTIFY on 6.9+ warns, ends the trace, then BUG()s (after a `cut here`
    // on 6.12, without on 7.x): one report.
    if o.class == Class::Fortify
        && o.phase == Phase::Tail
        && (CUT_HERE.is_match(trimmed) || header(text).is_some_and(|h| h.class == Class::KernelBug))
    {
        o.phase = Phase::Head;
        return Step::Join;
    }
    if let Some(h) = header(text) {
        if h.class == Class::Panic {
            o.panicked = true;
            return Step::Join;
        }
        if o.phase != Phase::Head {
            return Step::End;
        }
        if h.continuation || h.class != o.class {
            if (o.class.weak() && !h.class.weak()) || o.class == Class::Panic {
                o.class = h.class;
            }
            if o.class == Class::KernelBug && h.class == Class::KernelBug && text.contains("lib/list_debug.c") {
                o.class = Class::ListCorruption;
            }
            return Step::Join;
        }
        return Step::End;
    }
    if trimmed.starts_with("---[ end trace") {
        o.phase = Phase::Tail;
        return Step::Join;
    }
    match o.phase {
        Phase::Head => {
            if CALL_TRACE.is_match(trimmed) {
                o.phase = Phase::Trace;
            }
            Step::Join
        }
        Phase::Trace | Phase::Tail => {
            if o.class.closed_by_rule() || is_body(text) {
                Step::Join
            } else {
                Step::End
            }
        }
    }
}

/// A report header.
#[derive(Clone, Copy, Debug)]
struct Header {
    class: Class,
    /// Joins an open report rather than starting one (`invalid opcode`, `Oops:`).
    continuation: bool,
}

/// Header patterns, tried in order on the message after the time prefix.
static HEADERS: LazyLock<Vec<(Regex, Class, bool)>> = LazyLock::new(|| {
    let p = |re: &str, class: Class, cont: bool| (Regex::new(re).expect("header regex"), class, cont);
    vec![
        p(r"^(?:\S+: )?BUG: KASAN: ", Class::Kasan, false),
        p(r"^(?:\S+: )?BUG: KFENCE: ", Class::Kfence, false),
        p(r"^(?:\S+: )?BUG: soft lockup", Class::SoftLockup, false),
        p(r"^(?:NMI )?watchdog: (?:CPU\d+: )?Watchdog detected hard LOCKUP", Class::HardLockup, false),
        p(r"^BUG: (?:\w+ )?stack guard page was hit", Class::StackOverflow, false),
        p(r"^(?:Oops: )?kernel stack overflow \(double-fault\)", Class::StackOverflow, true),
        p(r"^BUG: (?:unable to handle )?kernel NULL pointer dereference", Class::NullDeref, false),
        p(r"^BUG: unable to handle (?:page fault|kernel paging request)", Class::PageFault, false),
        p(r"^BUG: \S", Class::Bug, false),
        p(r"^BUG \S+ \(.*\): \S", Class::SlabCorruption, false),
        p(r"^kernel BUG at ", Class::KernelBug, false),
        p(r"^(?:Oops: )?general protection fault", Class::GeneralProtection, false),
        p(r"^(?:Oops: )?invalid opcode: [0-9a-f]{4}", Class::InvalidOpcode, true),
        p(r"^(?:Oops: )?(?:[a-z][a-z0-9 _-]*: )?[0-9a-f]{4} \[#\d+\]", Class::Oops, true),
        p(r"^(?:\S+: )?PANIC: double fault", Class::DoubleFault, false),
        p(r"^(?:\S+: )?WARNING: (?:CPU: \d|at |\S+:\d+ )", Class::Warning, false),
        p(r"^(?:\S+: )?list_\w+ corruption", Class::ListCorruption, false),
        p(r"^(?:\w+: )?detected (?:buffer overflow|field-spanning write)", Class::Fortify, false),
        p(r"^UBSAN: \S", Class::Ubsan, false),
        p(r"^(?:rcu: )?INFO: rcu_\w+ (?:self-)?detected (?:expedited )?stall", Class::RcuStall, false),
        p(r"^INFO: task .{1,64} blocked for more than \d+ seconds", Class::HungTask, false),
        p(r"^Kernel panic - not syncing", Class::Panic, true),
        p(r"^DMAR: (?:DRHD: handling fault status|\[(?:DMA (?:Read|Write)|INTR-REMAP))", Class::IommuFault, false),
        p(r"^AMD-Vi: Event logged \[IO_PAGE_FAULT", Class::IommuFault, false),
    ]
});

fn header(text: &str) -> Option<Header> {
    if text.starts_with(' ') {
        return None;
    }
    HEADERS.iter().find(|(re, _, _)| re.is_match(text)).map(|&(_, class, continuation)| Header { class, continuation })
}

static CUT_HERE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^-+\[ cut here \]-+$").expect("regex"));
static RULE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^={20,}$").expect("regex"));
static CALL_TRACE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^Call [Tt]race:").expect("regex"));
static IOMMU_LINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(?:DMAR|AMD-Vi|iommu)\b").expect("regex"));

/// SLUB on 6.12+ names the damage before its `BUG <cache>` header.
static SLAB_DAMAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[([A-Za-z ]+)\] 0x[0-9a-f]+-0x[0-9a-f]+ @offset=").expect("regex"));

/// Lines that come just before a report's header and belong to it.
fn is_marker(text: &str) -> bool {
    let t = text.trim();
    CUT_HERE.is_match(t) || RULE.is_match(t) || SLAB_DAMAGE.is_match(t)
}

/// Lines that belong to a report once its call trace has begun.
static BODY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:$|<\/?(?:TASK|IRQ|NMI|EOI|SOFTIRQ)>|Call [Tt]race:|",
        r"(?:RIP|RSP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d{1,2}|FS|GS|CS|CR\d|DR\d|PKRU|Code|ORIG_RAX):|",
        r"Modules linked in:|---\[ end |Kernel Offset:|CPU: \d+ |Hardware name:|Workqueue:|",
        r"FIX |Disabling lock debugging|note: |Fixing recursive fault|Rebooting in|Shutting down cpus|",
        r"Sending NMI|NMI backtrace|Dumping ftrace|Tainted:|task:|kfence-#|(?:allocated|freed) by task|",
        r"Stack:|irq event stamp|(?:hard|soft)irqs last|INFO: lockdep|Showing busy workqueues|",
        r"rcu: |INFO: NMI handler \(\w+\) took too long|Stopper: )"
    ))
    .expect("body regex")
});

fn is_body(text: &str) -> bool {
    text.starts_with(' ') || text.starts_with('\t') || BODY.is_match(text.trim_end())
}

static ANSI: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|[@-Z\\-_])").expect("ansi regex"));
static PRINTK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[\s*(\d+)\.(\d{6})\](?:\[\s*[TC]\d+\])? ?").expect("printk regex"));

/// Removes `\r`, escape sequences and other control characters (tabs stay).
fn clean(raw: &str) -> String {
    let no_esc = ANSI.replace_all(raw, "");
    no_esc.chars().filter(|&c| c == '\t' || !c.is_control()).collect()
}

/// The kernel line in `raw`, if it has a printk time prefix. Output of other
/// programs before the prefix (a prompt, a line without newline) is dropped.
fn kernel_line(no: usize, raw: &str) -> Option<KLine> {
    let line = clean(raw);
    let caps = PRINTK.captures(&line)?;
    let whole = caps.get(0)?;
    let secs: f64 = format!("{}.{}", &caps[1], &caps[2]).parse().ok()?;
    let text = line[whole.end()..].trim_end().to_string();
    let shown = line[whole.start()..].trim_end().to_string();
    Some(KLine { no, time: secs, text, shown })
}

fn build(open: Open) -> KernelReport {
    let title = title(open.class, &open.lines);
    let first = open.lines.first().map_or(0, |l| l.no);
    let last = open.lines.last().map_or(first, |l| l.no);
    KernelReport {
        class: open.class,
        key: format!("{}|{title}", open.class.name()),
        title,
        excerpt: open.lines.iter().map(|l| l.shown.as_str()).collect::<Vec<_>>().join("\n"),
        lines: first..=last,
        panicked: open.panicked,
        repeats: 1,
    }
}

static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:\[<[0-9a-f]+>\]\s*)?(\?\s+)?([A-Za-z_][A-Za-z0-9_.]*)\+0x[0-9a-f]+/0x[0-9a-f]+").expect("regex")
});
static RIP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^RIP: [0-9a-f]{4}:([A-Za-z_][A-Za-z0-9_.]*)\+0x[0-9a-f]+").expect("regex"));

/// Functions that are reporting machinery, trap/IRQ plumbing or generic
/// helpers: never the culprit when a caller is there to blame.
static SKIP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:dump_stack\w*|show_stack|show_regs|__show_regs|show_trace_log_lvl|__warn\w*|warn_slowpath\w*|",
        r"report_bug|handle_bug|do_error_trap|do_trap|die|__die\w*|die_body|oops_end|panic|vpanic|nmi_panic|",
        r"\w*fortify_\w+|print_\w+|__print_\w+|check_bytes_and_report|check_object|check_slab|slab_\w+|",
        r"__slab_\w+|___slab_\w+|object_err|on_freelist|free_debug_processing|alloc_debug_processing|",
        r"free_to_partial_list|kfree|kvfree|kmalloc\w*|__kmalloc\w*|__do_kmalloc\w*|kmem_cache_\w+|",
        r"__kmem_cache_\w+|__list_\w+|list_del|list_add|exc_\w+|asm_exc_\w+|asm_sysvec_\w+|sysvec_\w+|",
        r"__sysvec_\w+|handle_softirqs|__do_softirq|do_softirq|__irq_exit_rcu|irq_exit_rcu|call_timer_fn|",
        r"__run_timers|run_timer_softirq|__run_timer_base|run_timer_base|expire_timers|__hrtimer_run_queues|",
        r"hrtimer_\w+|tick_\w+|update_process_times|watchdog_\w+|softlockup_fn|rcu_\w+|delay_tsc|",
        r"delay_halt\w*|__const_udelay|__udelay|udelay|mdelay|__delay|native_\w+|cpu_relax|__schedule|",
        r"schedule\w*|__wait_for_common|wait_for_common\w*|do_wait_for_common|wait_for_completion\w*|",
        r"io_schedule\w*|process_one_work|worker_thread|kthread|ret_from_fork\w*|page_fault_oops|",
        r"kernelmode_fixup_or_oops|__bad_area_nosemaphore|bad_area\w*|do_user_addr_fault|do_kern_addr_fault|",
        r"handle_page_fault|spurious_kernel_fault|kfence_\w+|__kfence_\w+|kasan_\w+|__kasan_\w+|__asan_\w+|",
        r"ubsan_\w+|__ubsan_\w+|memset|memcpy|memmove|__memset|__memcpy|strcpy|strscpy|strlen|",
        r"usercopy_abort|__check_object_size|check_heap_object|stack_trace_\w+|arch_stack_walk|unwind_\w+|",
        r"__unwind_\w+|sched_show_task|check_hung_\w+|hung_task\w*|nmi_\w+|default_do_nmi|lapic_\w+)$"
    ))
    .expect("skip regex")
});

/// `name.cold`, `name.isra.0`: the function is `name`.
fn base_name(f: &str) -> &str {
    f.split('.').next().unwrap_or(f)
}

/// Functions named by the report, in the order they are worth blaming.
fn candidates(class: Class, lines: &[KLine]) -> Vec<String> {
    let mut out = Vec::new();
    // Functions the header names itself.
    if let Some(h) = lines.iter().find(|l| header(&l.text).is_some_and(|h| h.class == class)) {
        if let Some(c) = HEADER_FUNC.captures(&h.text) {
            out.push(base_name(&c[1]).to_string());
        }
    }
    // An RCU stall names its stalled CPUs and may dump others too (the
    // grace-period kthread, the CPU it last ran on): the stalled CPUs'
    // stacks come first.
    let stalled: Vec<u32> = if class == Class::RcuStall {
        lines.iter().filter_map(|l| STALLED_CPU.captures(l.text.trim()).and_then(|c| c[1].parse().ok())).collect()
    } else {
        vec![]
    };
    let mut cpu: Option<u32> = None;
    let mut in_irq = false;
    let (mut rips, mut frames) = (Vec::new(), Vec::new());
    let (mut other_rips, mut other_frames) = (Vec::new(), Vec::new());
    for l in lines {
        let t = l.text.trim();
        match t {
            "<IRQ>" | "<NMI>" => in_irq = true,
            "</IRQ>" | "</NMI>" => in_irq = false,
            _ => {}
        }
        if let Some(c) = DUMP_CPU.captures(t) {
            cpu = c.get(1).or(c.get(2)).and_then(|m| m.as_str().parse().ok());
        } else if t.contains("kthread stack dump") || t.contains("GP kthread last ran") {
            cpu = None;
        }
        if class.stall() && in_irq {
            continue;
        }
        let mine = stalled.is_empty() || cpu.is_some_and(|c| stalled.contains(&c));
        let (r, f) = if mine { (&mut rips, &mut frames) } else { (&mut other_rips, &mut other_frames) };
        if let Some(c) = RIP.captures(t) {
            r.push(base_name(&c[1]).to_string());
        } else if let Some(c) = FRAME.captures(&l.text) {
            if c.get(1).is_none() && header(&l.text).is_none() {
                f.push(base_name(&c[2]).to_string());
            }
        }
    }
    out.extend(rips.into_iter().take(1));
    out.extend(frames);
    out.extend(other_rips.into_iter().take(1));
    out.extend(other_frames);
    out
}

/// `rcu: \t0-...!: (737 ticks this GP)`: CPU 0 stalls the grace period.
static STALLED_CPU: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(?:rcu:\s*)?(\d+)-\S*: \(").expect("regex"));
/// The start of one CPU's dump: `NMI backtrace for cpu 1`, `CPU: 0 PID: ...`.
static DUMP_CPU: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:NMI backtrace for cpu (\d+)|CPU: (\d+) )").expect("regex"));

/// `WARNING: ... at file:line func+0x`, `BUG: KFENCE: ... in func+0x`.
static HEADER_FUNC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\S+:\d+ |\bat |\bin )([A-Za-z_][A-Za-z0-9_.]*)\+0x[0-9a-f]+/0x[0-9a-f]+").expect("regex")
});

/// The function to blame: the first candidate that is not generic.
fn culprit(class: Class, lines: &[KLine]) -> Option<String> {
    let all = candidates(class, lines);
    all.iter().find(|f| !SKIP.is_match(f)).or(all.first()).cloned()
}

fn first_capture(lines: &[KLine], re: &Regex) -> Option<Vec<String>> {
    lines.iter().find_map(|l| {
        re.captures(&l.text).map(|c| c.iter().skip(1).map(|m| m.map_or("", |m| m.as_str()).to_string()).collect())
    })
}

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($pat).expect("title regex"));
    };
}
re!(T_KFENCE, r"BUG: KFENCE: (.+?) in [A-Za-z_]");
re!(T_KASAN, r"BUG: KASAN: ([\w-]+)");
re!(T_KASAN_RW, r"^(Read|Write) (?:of size|at addr)");
re!(T_UBSAN, r"^UBSAN: (.+?) in ");
re!(T_SLAB, r"^BUG (\S+) \(.*\): (.+)$");
re!(T_LIST, r"(list_\w+) corruption");
re!(T_FORTIFY, r"(?:^(\w+): )?detected (buffer overflow|field-spanning write)(?: in (\w+))?");
re!(T_BUG, r"^BUG: ([^:,(\[]+)");
re!(T_PANIC, r"^Kernel panic - not syncing: (.+?)\s*$");
re!(T_TRAP, r"^(?:Oops: )?(?:([a-z][a-z0-9 _-]*): )?[0-9a-f]{4} \[#");
re!(
    T_DMAR,
    r"\[(DMA (?:Read|Write)|INTR-REMAP)[^\]]*\] Request device \[(?:0000:)?([0-9a-f:.]+)\].*?\[fault reason (?:0x)?([0-9a-f]+)\] ?(.*)$"
);

fn title(class: Class, lines: &[KLine]) -> String {
    let func = culprit(class, lines);
    let with = |base: String| match &func {
        Some(f) => format!("{base} in {f}"),
        None => base,
    };
    let cap = |re: &Regex| first_capture(lines, re).unwrap_or_default();
    match class {
        Class::Bug => with(format!("BUG: {}", cap(&T_BUG).first().map_or("", |s| s.trim()))),
        Class::NullDeref => with("BUG: kernel NULL pointer dereference".into()),
        Class::PageFault => with("BUG: unable to handle page fault".into()),
        Class::KernelBug => with("kernel BUG".into()),
        Class::InvalidOpcode => with("invalid opcode".into()),
        Class::Oops => {
            let trap = cap(&T_TRAP).first().filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| "Oops".into());
            with(trap)
        }
        Class::GeneralProtection => with("general protection fault".into()),
        Class::Warning => with("WARNING".into()),
        Class::ListCorruption => {
            with(format!("{} corruption", cap(&T_LIST).first().cloned().unwrap_or_else(|| "list".into())))
        }
        Class::SlabCorruption => {
            let c = cap(&T_SLAB);
            // 6.12+ says `Object corrupt` and names the damage on a line before.
            let damage = first_capture(lines, &SLAB_DAMAGE).and_then(|d| d.into_iter().next());
            match (c.first(), damage.as_ref().or(c.get(1))) {
                (Some(cache), Some(what)) => with(format!("BUG {cache}: {}", what.trim())),
                _ => with("slab corruption".into()),
            }
        }
        Class::Fortify => {
            // `memset: detected buffer overflow: ...` (6.9+) or `detected buffer overflow in memset`.
            let c = cap(&T_FORTIFY);
            let what = c.get(1).cloned().unwrap_or_default();
            let f = [c.first(), c.get(2)].into_iter().flatten().find(|s| !s.is_empty()).cloned();
            match f {
                Some(f) => with(format!("FORTIFY: {f} {what}")),
                None => with(format!("FORTIFY: {what}")),
            }
        }
        Class::Ubsan => with(format!("UBSAN: {}", cap(&T_UBSAN).first().cloned().unwrap_or_default())),
        Class::Kasan => {
            let kind = cap(&T_KASAN).first().cloned().unwrap_or_default();
            match cap(&T_KASAN_RW).first() {
                Some(rw) => with(format!("KASAN: {kind} {rw}")),
                None => with(format!("KASAN: {kind}")),
            }
        }
        Class::Kfence => with(format!("KFENCE: {}", cap(&T_KFENCE).first().cloned().unwrap_or_default())),
        Class::SoftLockup => with("soft lockup".into()),
        Class::HardLockup => with("hard lockup".into()),
        Class::RcuStall => with("RCU stall".into()),
        Class::HungTask => with("task hung".into()),
        Class::StackOverflow => with("stack overflow".into()),
        Class::DoubleFault => with("double fault".into()),
        Class::Panic => format!("kernel panic: {}", cap(&T_PANIC).first().cloned().unwrap_or_default()),
        Class::IommuFault => match first_capture(lines, &T_DMAR) {
            Some(c) => format!("IOMMU fault: {} by {}: {}", c[0], c[1], c[3].trim()),
            None => "IOMMU fault".into(),
        },
    }
}

/// Merges repeats (same [`KernelReport::key`]): the first one stays, with
/// [`KernelReport::repeats`] counting all of them. Order of first sight.
pub fn dedup(reports: impl IntoIterator<Item = KernelReport>) -> Vec<KernelReport> {
    let mut out: Vec<KernelReport> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in reports {
        match seen.get(&r.key) {
            Some(&i) => {
                out[i].repeats += r.repeats;
                out[i].panicked |= r.panicked;
            }
            None => {
                seen.insert(r.key.clone(), out.len());
                out.push(r);
            }
        }
    }
    out
}

/// Every kernel report in a saved console log, repeats merged ([`dedup`]).
pub fn classify(text: &str) -> Vec<KernelReport> {
    let mut c = Classifier::new();
    let mut events = c.feed(text);
    events.extend(c.finish());
    dedup(events.into_iter().filter_map(|e| match e {
        Event::Completed(r) => Some(r),
        Event::Started { .. } => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> KernelReport {
        let mut r = classify(text);
        assert_eq!(r.len(), 1, "{r:#?}");
        r.remove(0)
    }

    const WARN: &str = "\
[    1.895545] ------------[ cut here ]------------\r
[    1.895814] rig_faulty: warning on request\r
[    1.896290] WARNING: CPU: 0 PID: 88 at /b/rig_faulty.c:26 rig_faulty_write+0x9b/0xad [rig_faulty]\r
[    1.896842] Modules linked in: rig_faulty(OE)\r
[    1.897935] RIP: 0010:rig_faulty_write+0x9b/0xad [rig_faulty]\r
[    1.899789] Call Trace:\r
[    1.900438]  <TASK>\r
[    1.900818]  proc_reg_write+0x56/0xa0\r
[    1.901132]  vfs_write+0xc7/0x3f0\r
[    1.901219]  ? f_dupfd+0x47/0x60\r
[    1.903024]  </TASK>\r
[    1.903124] ---[ end trace 0000000000000000 ]---\r
";

    #[test]
    fn warning_starts_at_cut_here_and_ends_at_end_trace() {
        let text = format!("rig# echo warn > /proc/rig_faulty\r\n\x1e\x1e{WARN}\r\n<RIG-END:1:0>\r\n");
        let r = one(&text);
        assert_eq!(r.class, Class::Warning);
        assert_eq!(r.title, "WARNING in rig_faulty_write");
        assert!(r.excerpt.starts_with("[    1.895545] ------------[ cut here ]"), "{}", r.excerpt);
        assert!(r.excerpt.ends_with("---[ end trace 0000000000000000 ]---"));
        assert_eq!(r.lines, 2..=13);
        assert!(r.recoverable() && !r.panicked);
    }

    #[test]
    fn program_output_without_printk_prefix_is_not_a_report() {
        let text = "Kernel panic - not syncing: fake\nBUG: kernel NULL pointer dereference, address: 0\n\
                    ------------[ cut here ]------------\nWARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2\n\
                    [ 1.0 ] BUG: no six digits\n";
        assert!(classify(text).is_empty());
    }

    #[test]
    fn live_feed_tells_start_at_once_and_completes_on_idle() {
        let mut c = Classifier::new();
        let ev = c.feed("[    2.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000\r\n[    2.0");
        assert_eq!(ev, vec![Event::Started { class: Class::NullDeref, line: 1 }]);
        assert_eq!(c.current(), Some((Class::NullDeref, 1)));
        let ev = c.feed("00100] RIP: 0010:rig_null_deref+0x5/0x10 [rig_faulty]\r\n");
        assert!(ev.is_empty());
        let ev = c.idle();
        let Some(Event::Completed(r)) = ev.first() else { panic!("{ev:?}") };
        assert_eq!(r.title, "BUG: kernel NULL pointer dereference in rig_null_deref");
        assert_eq!(r.lines, 1..=2);
        assert_eq!(c.current(), None);
    }

    #[test]
    fn other_output_after_end_trace_completes_the_report() {
        let mut c = Classifier::new();
        let mut ev = c.feed(WARN);
        assert_eq!(ev.len(), 1);
        ev.extend(c.feed("\r\n<RIG-END:1:0>\r\n"));
        assert!(matches!(ev.last(), Some(Event::Completed(r)) if r.class == Class::Warning));
    }

    #[test]
    fn repeats_dedupe_and_distinct_reports_do_not() {
        let again = WARN.replace("[    1.", "[    9.");
        let r = classify(&format!("{WARN}{again}[   10.000000] BUG: kernel NULL pointer dereference, address: 0\n"));
        assert_eq!(r.len(), 2, "{r:#?}");
        assert_eq!((r[0].class, r[0].repeats), (Class::Warning, 2));
        assert_eq!((r[1].class, r[1].repeats), (Class::NullDeref, 1));
    }

    #[test]
    fn bug_then_invalid_opcode_is_one_kernel_bug_through_the_panic() {
        let text = "\
[    1.901584] ------------[ cut here ]------------
[    1.904664] kernel BUG at /b/rig_faulty.c:82!
[    1.905915] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[    1.906819] RIP: 0010:rig_bugon_timer+0x13/0x20 [rig_faulty]
[    1.908849] Call Trace:
[    1.909497]  <IRQ>
[    1.909642]  call_timer_fn+0x27/0x130
[    1.910625]  </IRQ>
[    1.914031] ---[ end trace 0000000000000000 ]---
[    1.914150] RIP: 0010:rig_bugon_timer+0x13/0x20 [rig_faulty]
[    1.919309] Kernel panic - not syncing: Fatal exception in interrupt
[    1.919855] Kernel Offset: 0x20600000 from 0xffffffff81000000
";
        let r = one(text);
        assert_eq!((r.class, r.title.as_str()), (Class::KernelBug, "kernel BUG in rig_bugon_timer"));
        assert!(r.panicked && r.excerpt.ends_with("from 0xffffffff81000000"));
        assert_eq!(r.class.severity(), Severity::Oops);
    }

    #[test]
    fn list_del_corruption_keeps_its_class_through_kernel_bug() {
        let text = "\
[    2.1] x
[    2.000001] list_del corruption, ffffffffc0c0e0c0->next is LIST_POISON1 (dead000000000100)
[    2.000002] ------------[ cut here ]------------
[    2.000003] kernel BUG at lib/list_debug.c:53!
[    2.000004] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[    2.000005] RIP: 0010:__list_del_entry_valid.cold+0x1d/0x47
[    2.000006] Call Trace:
[    2.000007]  <TASK>
[    2.000008]  rig_list_del+0x2d/0x40 [rig_faulty]
[    2.000009]  </TASK>
";
        let r = one(text);
        assert_eq!((r.class, r.title.as_str()), (Class::ListCorruption, "list_del corruption in rig_list_del"));
        assert_eq!(r.lines, 2..=10);
    }

    #[test]
    fn trace_ends_at_the_first_line_that_is_not_part_of_a_report() {
        let text = "\
[    5.000000] INFO: task sh:88 blocked for more than 2 seconds.
[    5.000001]       Tainted: G           OE      6.1.0-50-cloud-amd64 #1
[    5.000002] task:sh              state:D stack:0     pid:88    ppid:1      flags:0x00004002
[    5.000003] Call Trace:
[    5.000004]  <TASK>
[    5.000005]  __schedule+0x34d/0x9e0
[    5.000006]  schedule_timeout+0x95/0x150
[    5.000007]  wait_for_completion_timeout+0x7c/0x130
[    5.000008]  rig_hung_task+0x3c/0x60 [rig_faulty]
[    5.000009]  </TASK>
[    5.100000] clocksource: Switched to clocksource tsc
";
        let r = one(text);
        assert_eq!((r.class, r.title.as_str()), (Class::HungTask, "task hung in rig_hung_task"));
        assert_eq!(r.lines, 1..=10);
        assert!(r.recoverable());
    }

    #[test]
    fn time_gap_and_backwards_time_end_a_report() {
        let text = "\
[    5.000000] INFO: task sh:88 blocked for more than 2 seconds.
[    5.000001] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.
[   11.000000] INFO: task sh:88 blocked for more than 8 seconds.
[    0.000000] Linux version 6.1.0
";
        let r = classify(text);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].title.as_str(), r[0].repeats, r[0].lines.clone()), ("task hung", 2, 1..=2));
    }

    #[test]
    fn stall_titles_skip_the_detectors_own_irq_stack() {
        let text = "\
[    9.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 4s! [sh:88]
[    9.000001] RIP: 0010:delay_tsc+0x4a/0xb0
[    9.000002] Call Trace:
[    9.000003]  <IRQ>
[    9.000004]  watchdog_timer_fn+0x1a0/0x200
[    9.000005]  foo_irq_thing+0x1/0x2
[    9.000006]  </IRQ>
[    9.000007]  <TASK>
[    9.000008]  rig_soft_lockup+0x1c/0x30 [rig_faulty]
[    9.000009]  </TASK>
";
        let r = one(text);
        assert_eq!(r.title, "soft lockup in rig_soft_lockup");
    }

    #[test]
    fn kfence_report_is_framed_by_rules() {
        let text = "\
[    3.000000] ==================================================================
[    3.000001] BUG: KFENCE: out-of-bounds write in rig_kfence+0x8c/0xd0 [rig_faulty]
[    3.000002] 
[    3.000003] Out-of-bounds write at 0x00000000deadbeef (1B right of kfence-#7):
[    3.000004]  rig_kfence+0x8c/0xd0 [rig_faulty]
[    3.000005] 
[    3.000006] kfence-#7: 0x000000007f5b2a2c-0x00000000c1c1c1c1, size=32, cache=kmalloc-32
[    3.000007] ==================================================================
[    3.000008] rig_faulty: something else
";
        let r = one(text);
        assert_eq!((r.class, r.title.as_str()), (Class::Kfence, "KFENCE: out-of-bounds write in rig_kfence"));
        assert_eq!(r.lines, 1..=8);
    }

    #[test]
    fn slab_report_takes_cache_and_problem() {
        let text = "\
[    2.454326] =============================================================================
[    2.454634] BUG kmalloc-32 (Tainted: G           OE     ): Right Redzone overwritten
[    2.454817] -----------------------------------------------------------------------------
[    2.455384] Allocated in rig_slab_oob+0x23/0x60 [rig_faulty] age=0 cpu=0 pid=88
[    2.455842]  kmalloc_trace+0x26/0x90
[    2.456549] Freed in ftrace_free_mem+0x1e2/0x400 age=89 cpu=0 pid=1
[    2.459209] Call Trace:
[    2.459336]  <TASK>
[    2.459475]  dump_stack_lvl+0x44/0x5c
[    2.459597]  check_bytes_and_report.cold+0x6d/0x97
[    2.459854]  kfree+0x1/0x2
[    2.459855]  rig_slab_oob+0x48/0x60 [rig_faulty]
[    2.459856]  </TASK>
[    2.459857] FIX kmalloc-32: Restoring Right Redzone 0x1-0x2=0xcc
[    2.459858] random driver message
";
        let r = one(text);
        assert_eq!(r.class, Class::SlabCorruption);
        assert_eq!(r.title, "BUG kmalloc-32: Right Redzone overwritten in rig_slab_oob");
        assert_eq!(r.lines, 1..=14);
        assert_eq!(r.class.severity(), Severity::Corruption);
        assert!(!r.recoverable());
    }

    #[test]
    fn iommu_fault_takes_dmar_lines_only() {
        let text = "\
[    4.000000] DMAR: DRHD: handling fault status reg 2
[    4.000001] DMAR: [DMA Write NO_PASID] Request device [0000:00:01.0] fault addr 0x900000 [fault reason 0x05] PTE Write access is not set
[    4.000002] edu: something
";
        let r = one(text);
        assert_eq!(r.title, "IOMMU fault: DMA Write by 00:01.0: PTE Write access is not set");
        assert_eq!(r.lines, 1..=2);
        assert!(r.recoverable());
    }

    #[test]
    fn panic_alone_is_titled_by_its_message() {
        let text = "\
[    3.000000] Kernel panic - not syncing: rig_faulty: panic on request
[    3.000001] CPU: 0 PID: 88 Comm: sh Tainted: G           OE      6.1.0
[    3.000002] Call Trace:
[    3.000003]  panic+0x1/0x2
[    3.000004]  rig_panic+0x1/0x2 [rig_faulty]
[    3.000005] Kernel Offset: 0x1 from 0x2
[    3.000006] ---[ end Kernel panic - not syncing: rig_faulty: panic on request ]---
";
        let r = one(text);
        assert_eq!((r.class, r.title.as_str()), (Class::Panic, "kernel panic: rig_faulty: panic on request"));
        assert!(r.panicked && !r.recoverable());
    }

    #[test]
    fn warning_with_panic_on_warn_is_not_recoverable() {
        let text = format!(
            "{}[    1.903200] Kernel panic - not syncing: kernel: panic_on_warn set ...\n",
            WARN.replace('\r', "")
        );
        let r = one(&text);
        assert_eq!(r.class, Class::Warning);
        assert!(r.panicked && !r.recoverable());
    }

    #[test]
    fn prefix_junk_ansi_and_caller_ids_are_tolerated() {
        let text = "\x1b[6nrig# \x1e[    7.000000][  T88] BUG: kernel NULL pointer dereference, address: 0\r\r\n\
                    [    7.000001][  T88] RIP: 0010:f00+0x1/0x2\n";
        let r = one(text);
        assert_eq!(r.title, "BUG: kernel NULL pointer dereference in f00");
        assert!(r.excerpt.starts_with("[    7.000000][  T88] BUG:"), "{}", r.excerpt);
    }

    #[test]
    fn a_stale_marker_does_not_start_a_later_report() {
        let text = "[    1.000000] ==============================\n[    1.000001] some banner\n\
                    [   30.000000] BUG: kernel NULL pointer dereference, address: 0\n[   30.000001] RIP: 0010:f+0x1/0x2\n";
        assert_eq!(one(text).lines, 3..=4);
    }

    #[test]
    fn oops_fallback_and_generic_bug_titles() {
        let r = one("[    1.000000] divide error: 0000 [#1] PREEMPT SMP NOPTI\n[    1.000001] RIP: 0010:f+0x1/0x2\n");
        assert_eq!((r.class, r.title.as_str()), (Class::Oops, "divide error in f"));
        let r = one("[    1.000000] BUG: scheduling while atomic: sh/88/0x00000002\n[    1.000001]  g+0x1/0x2\n");
        assert_eq!((r.class, r.title.as_str()), (Class::Bug, "BUG: scheduling while atomic in g"));
    }

    #[test]
    fn other_output_inside_a_report_is_skipped() {
        let text = "\
[    2.000000] BUG: unable to handle page fault for address: ffffc90000185000
[    2.000001] #PF: supervisor read access in kernel mode
some program output
[    2.000002] Oops: 0000 [#1] PREEMPT SMP NOPTI
[    2.000003] RIP: 0010:rig_page_fault+0x1c/0x50 [rig_faulty]
rig# \x1b[6n
[    2.000004] Call Trace:
[    2.000005]  rig_faulty_write+0xac/0x100 [rig_faulty]
half a line of output[    2.000006]  proc_reg_write+0x56/0xa0
[    2.000007] ---[ end trace 0000000000000000 ]---
";
        let r = one(text);
        assert_eq!(
            (r.class, r.title.as_str()),
            (Class::PageFault, "BUG: unable to handle page fault in rig_page_fault")
        );
        assert_eq!(r.lines, 1..=10);
        assert_eq!(r.excerpt.lines().count(), 8);
        assert!(r.excerpt.contains("\n[    2.000006]  proc_reg_write+0x56/0xa0\n"));
        assert!(!r.excerpt.contains("output"));
    }

    #[test]
    fn hard_lockup_in_both_prefixes() {
        for head in [
            "NMI watchdog: Watchdog detected hard LOCKUP on cpu 1",
            "watchdog: CPU1: Watchdog detected hard LOCKUP on cpu 1",
        ] {
            let text = format!(
                "[   30.000000] {head}\n[   30.000001] Modules linked in: rig_faulty(OE)\n\
                 [   30.000002] RIP: 0010:rig_hard_lockup+0x31/0x40 [rig_faulty]\n[   30.000003] Call Trace:\n\
                 [   30.000004]  <TASK>\n[   30.000005]  rig_faulty_write+0xac/0x100 [rig_faulty]\n\
                 [   30.000006] Kernel panic - not syncing: Watchdog detected hard LOCKUP on cpu 1\n"
            );
            let r = one(&text);
            assert_eq!((r.class, r.title.as_str()), (Class::HardLockup, "hard lockup in rig_hard_lockup"));
            assert!(r.panicked);
        }
    }

    #[test]
    fn double_fault_without_a_stack_overflow() {
        let text = "\
[    4.000000] traps: PANIC: double fault, error_code: 0x0
[    4.000001] double fault: 0000 [#1] PREEMPT SMP NOPTI
[    4.000002] RIP: 0010:__slab_alloc_node+0x1/0x2
[    4.000003] Call Trace:
[    4.000004]  <TASK>
[    4.000005]  cmpxchg_frob+0x10/0x20
[    4.000006]  </TASK>
[    4.000007] ---[ end trace 0000000000000000 ]---
[    4.000008] Kernel panic - not syncing: Fatal exception in interrupt
";
        let r = one(text);
        assert_eq!((r.class, r.title.as_str()), (Class::DoubleFault, "double fault in cmpxchg_frob"));
        assert!(r.panicked && r.excerpt.ends_with("Fatal exception in interrupt"));
    }

    #[test]
    fn kasan_title_has_kind_and_access() {
        let text = "\
[    5.000000] ==================================================================
[    5.000001] BUG: KASAN: slab-out-of-bounds in foo_write+0x1a/0x30 [foo]
[    5.000002] Write of size 1 at addr ffff888003f1c238 by task sh/88
[    5.000003] 
[    5.000004] Call Trace:
[    5.000005]  <TASK>
[    5.000006]  kasan_report+0x1/0x2
[    5.000007]  foo_write+0x1a/0x30 [foo]
[    5.000008]  </TASK>
[    5.000009] 
[    5.000010] Allocated by task 88:
[    5.000011]  kasan_save_stack+0x1/0x2
[    5.000012]  foo_init+0x1/0x2 [foo]
[    5.000013] The buggy address belongs to the object at ffff888003f1c220
[    5.000014] ==================================================================
[    5.000015] foo: bye
";
        let r = one(text);
        assert_eq!((r.class, r.title.as_str()), (Class::Kasan, "KASAN: slab-out-of-bounds Write in foo_write"));
        assert_eq!(r.lines, 1..=15);
        assert_eq!(r.class.severity(), Severity::Corruption);
    }

    #[test]
    fn classes_have_unique_names_and_round_trip() {
        for c in Class::ALL {
            assert_eq!(Class::from_name(c.name()), Some(c));
        }
        let recoverable: Vec<_> = Class::ALL.into_iter().filter(|c| c.recoverable()).collect();
        assert_eq!(
            recoverable,
            [Class::Warning, Class::SoftLockup, Class::HardLockup, Class::RcuStall, Class::HungTask, Class::IommuFault]
        );
    }
}
