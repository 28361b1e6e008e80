//! The guest protocol: every marker the guest prints and every line the rig
//! types into its shell, in one place. `/init` (image), the console driver,
//! the boot watchdog and `rig bench` all take them from here.

/// Where the modules live in the guest; `/init` loads them in order.
pub const MODULE_DIR: &str = "/lib/rig/modules";

/// The guest's kernel console is the first serial port; the shell that runs
/// the steps, and `/init`'s own messages, use the second.
pub const KERNEL_TTY: &str = "ttyS0";
/// See [`KERNEL_TTY`].
pub const SHELL_TTY: &str = "ttyS1";

/// `/init` prints this with `uname -r` once the pseudo filesystems are up.
pub const BOOTED_MARKER: &str = "RIG-BOOTED";

/// `/init` prints `RIG-INSMOD <file> <status>` after each module.
pub const INSMOD_MARKER: &str = "RIG-INSMOD";

/// `/init` prints this once every module is loaded, before the shell.
pub const READY_MARKER: &str = "RIG-READY";

/// `/init` prints this when the shell exited and a new one takes over.
pub const RESPAWN_MARKER: &str = "RIG-SHELL-RESPAWN";

/// A fresh shell's prompt, before the rig sets it up (/init exports it).
pub const FRESH_PROMPT: &str = "rig# ";

/// The shell prints this once it is set up for scripting.
pub const SHELL_OK_MARKER: &str = "RIG-SHELL-OK";

/// The shell's prompt (PS1 and PS2) while the rig drives it: ASCII RS,
/// which [`crate::guest::console::clean`] drops. busybox's line editor takes
/// ~4 ms longer per prompt when a prompt is empty (measured by `rig bench`);
/// one byte keeps it at ~1 ms.
pub const PROMPT_CHAR: char = '\u{1e}';

/// Makes the shell scriptable: the port at 115200 baud, no echo, one-byte
/// prompts, then [`SHELL_OK_MARKER`] (split by `''` so the command's own
/// echo never matches it). The baud rate matters although nothing is
/// paced: QEMU's 16550 raises the receive timeout interrupt for bytes short
/// of the FIFO's trigger level four character times late, 4.2 ms at the
/// default 9600 baud and 0.35 ms at 115200, and a step line usually ends
/// short of it (measured: a step's round trip 7.4 ms against 2.4 ms).
pub fn shell_setup_line() -> String {
    let (head, tail) = SHELL_OK_MARKER.split_at(SHELL_OK_MARKER.len() / 2);
    format!("stty 115200 -echo; PS1=\"$(printf '\\{:03o}')\"; PS2=\"$PS1\"; echo {head}''{tail}\n", PROMPT_CHAR as u32)
}

/// Sets a restored guest's clock to `secs` since the epoch: a saved guest's
/// clock says when it was saved.
pub fn set_clock_line(secs: u64) -> String {
    format!("date -s @{secs} >/dev/null")
}

/// A per-run secret in the end markers and step marks, so a step cannot
/// forge its status or its boundaries by printing a marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nonce(String);

impl Nonce {
    /// A fresh nonce (8 hex digits from the kernel's random pool).
    pub fn new() -> Nonce {
        let mut b = [0u8; 4];
        let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
        if filled.is_err() {
            // No urandom: time and pid still differ from run to run.
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            b = (t.subsec_nanos() ^ std::process::id()).to_le_bytes();
        }
        Nonce(crate::support::hex(&b))
    }

    /// A fixed nonce (tests, and `rig parse` reading a saved run).
    pub fn fixed(s: &str) -> Nonce {
        Nonce(s.to_owned())
    }

    /// As written in the markers.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Nonce {
    fn default() -> Self {
        Nonce::new()
    }
}

/// Where step `n` begins or ends in the kernel's own log: the shell writes
/// a line to /dev/kmsg, so kernel reports and step boundaries share one
/// timeline (the console of a step and the kernel's are separate ports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepMark {
    Begin(u64),
    End(u64),
}

/// The /dev/kmsg text of a step mark. Level 4 so that `loglevel=5` shows it.
fn kmsg_mark(nonce: &Nonce, n: u64, what: &str) -> String {
    format!("echo '<4>rig-step:{}:{n}:{what}' >/dev/kmsg 2>/dev/null", nonce.0)
}

/// The step mark in a kernel message (the text after the printk time).
pub fn parse_step_mark(nonce: &Nonce, text: &str) -> Option<StepMark> {
    let rest = text.trim_end().strip_prefix("rig-step:")?.strip_prefix(nonce.0.as_str())?.strip_prefix(':')?;
    let (n, what) = rest.split_once(':')?;
    let n = n.parse().ok()?;
    match what {
        "begin" => Some(StepMark::Begin(n)),
        "end" => Some(StepMark::End(n)),
        _ => None,
    }
}

/// The line the host writes into `console.log` where a guest restored from
/// a snapshot takes over from the one before it (`n`: the how-manyth
/// restore of the run). It has no printk time, so no kernel line can be it,
/// and it carries the nonce, so no program writing to the port can fake it.
pub fn restore_mark(nonce: &Nonce, n: u64) -> String {
    format!("rig-restore:{}:{n}", nonce.0)
}

/// Whether a whole console line is a restore mark of this run.
pub fn is_restore_mark(nonce: &Nonce, line: &str) -> bool {
    line.trim_end()
        .strip_prefix("rig-restore:")
        .and_then(|r| r.strip_prefix(nonce.0.as_str()))
        .and_then(|r| r.strip_prefix(':'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The text sent for step `n`: a begin mark, the command in a group (so a
/// trailing `&` or comment stays harmless) with stdin closed, an end mark,
/// then the end marker with the command's `$?`. The marker's fields are
/// only `%s` placeholders here, so an echoed command never matches
/// [`end_marker_pattern`].
pub fn step_line(nonce: &Nonce, n: u64, command: &str) -> String {
    format!(
        "{}; {{ {command}\n}} </dev/null; __rig_s=$?; {}; printf '\\n<RIG-END:%s:%s:%s>\\n' {} {n} $__rig_s\n",
        kmsg_mark(nonce, n, "begin"),
        kmsg_mark(nonce, n, "end"),
        nonce.0
    )
}

/// The regex of step `n`'s end marker; group 1 is the exit status.
pub fn end_marker_pattern(nonce: &Nonce, n: u64) -> String {
    format!(r"\n<RIG-END:{}:{n}:(\d+)>\r?\n", nonce.0)
}

/// What the guest prints at the end of step `n` (the line after its output).
pub fn end_marker(nonce: &Nonce, n: u64, status: i32) -> String {
    format!("<RIG-END:{}:{n}:{status}>", nonce.0)
}

/// The `/init` line that reports module `file`'s insmod status.
pub fn insmod_report_line(file: &str) -> String {
    format!("echo \"{INSMOD_MARKER} {file} $?\"\n")
}

/// Module `file`'s insmod status in a boot log (the last report wins).
pub fn insmod_status<'a>(boot_log: &'a str, file: &str) -> Option<&'a str> {
    let prefix = format!("{INSMOD_MARKER} {file} ");
    boot_log.lines().rev().find_map(|l| l.trim_end_matches('\r').strip_prefix(prefix.as_str()).map(str::trim))
}

/// `/init` prints `RIG-HUGEPAGES <n>`: the 2 MiB hugepages the kernel
/// reserved when asked for them (hugetlbfs is at /dev/hugepages).
pub const HUGEPAGES_MARKER: &str = "RIG-HUGEPAGES";

/// The hugepages a boot log reports.
pub fn hugepages_report(boot_log: &str) -> Option<u32> {
    let prefix = format!("{HUGEPAGES_MARKER} ");
    boot_log.lines().rev().find_map(|l| l.trim_end_matches('\r').strip_prefix(prefix.as_str())?.trim().parse().ok())
}

/// The Debian root's init prints `RIG-ROOT ok <PRETTY_NAME>` once it runs
/// in the root; `/init` prints `RIG-ROOT failed <why>` when it could not
/// switch to it (the busybox shell stays).
pub const ROOT_MARKER: &str = "RIG-ROOT";

/// What a boot log says of the Debian root: `Ok(name)` or `Err(why)`.
pub fn root_report(boot_log: &str) -> Option<Result<String, String>> {
    let prefix = format!("{ROOT_MARKER} ");
    let line = boot_log.lines().rev().find_map(|l| l.trim_end_matches('\r').strip_prefix(prefix.as_str()))?;
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "ok" => Some(Ok(rest.trim().to_string())),
        "failed" => Some(Err(rest.trim().to_string())),
        _ => None,
    }
}

/// `/init` prints `RIG-DEVICE <name> missing <vendor:device found>` or
/// `RIG-DEVICE <name> present <driver|-> <iommu group|-> <vfio node: yes|no>`
/// once it has given each `[[device]]` to its driver.
pub const DEVICE_MARKER: &str = "RIG-DEVICE";

/// What `/init` found for a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceReport {
    /// Nothing with the device's IDs at its address (`found`: the IDs that
    /// were there, `-` for nothing).
    Missing { found: String },
    /// There, with the driver that has it, its IOMMU group and whether
    /// `/dev/vfio/<group>` exists.
    Present { driver: Option<String>, group: Option<String>, vfio_node: bool },
}

/// Device `name`'s report in a boot log (the last one wins).
pub fn device_report(boot_log: &str, name: &str) -> Option<DeviceReport> {
    let prefix = format!("{DEVICE_MARKER} {name} ");
    let line = boot_log.lines().rev().find_map(|l| l.trim_end_matches('\r').strip_prefix(prefix.as_str()))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let opt = |w: &str| (w != "-").then(|| w.to_string());
    match words.as_slice() {
        ["missing", found] => Some(DeviceReport::Missing { found: (*found).to_string() }),
        ["present", driver, group, node] => {
            Some(DeviceReport::Present { driver: opt(driver), group: opt(group), vfio_node: *node == "yes" })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_line_hides_its_marker() {
        let l = shell_setup_line();
        assert!(l.starts_with("stty 115200 -echo; PS1=\"$(printf '\\036')\""), "{l}");
        assert!(l.ends_with("echo RIG-SH''ELL-OK\n"), "{l}");
        assert!(!l.contains(SHELL_OK_MARKER));
    }

    #[test]
    fn step_line_and_marker_agree() {
        let nonce = Nonce::fixed("ab12");
        let l = step_line(&nonce, 7, "true");
        assert_eq!(
            l,
            "echo '<4>rig-step:ab12:7:begin' >/dev/kmsg 2>/dev/null; { true\n} </dev/null; __rig_s=$?; \
             echo '<4>rig-step:ab12:7:end' >/dev/kmsg 2>/dev/null; printf '\\n<RIG-END:%s:%s:%s>\\n' ab12 7 $__rig_s\n"
        );
        let re = regex::Regex::new(&end_marker_pattern(&nonce, 7)).expect("re");
        assert!(!re.is_match(&l));
        let printed = format!("out\r\n\r\n{}\r\n", end_marker(&nonce, 7, 3));
        assert_eq!(re.captures(&printed).and_then(|c| c.get(1)).map(|m| m.as_str()), Some("3"));
        assert!(!re.is_match(&format!("\n{}\n", end_marker(&nonce, 8, 0))));
        // A step that prints a marker without the nonce cannot end itself.
        assert!(!re.is_match("\n<RIG-END::7:0>\n") && !re.is_match("\n<RIG-END:7:0>\n"));
    }

    #[test]
    fn step_marks_need_the_nonce() {
        let n = Nonce::fixed("ab12");
        assert_eq!(parse_step_mark(&n, "rig-step:ab12:3:begin"), Some(StepMark::Begin(3)));
        assert_eq!(parse_step_mark(&n, "rig-step:ab12:3:end\r"), Some(StepMark::End(3)));
        assert_eq!(parse_step_mark(&n, "rig-step:ffff:3:end"), None);
        assert_eq!(parse_step_mark(&n, "rig-step:ab12:x:end"), None);
        assert_ne!(Nonce::new(), Nonce::new());
    }

    #[test]
    fn restore_marks_need_the_nonce_and_a_whole_line() {
        let n = Nonce::fixed("ab12");
        assert_eq!(restore_mark(&n, 3), "rig-restore:ab12:3");
        assert!(is_restore_mark(&n, "rig-restore:ab12:3\r"));
        assert!(!is_restore_mark(&n, "rig-restore:ffff:3"));
        assert!(!is_restore_mark(&n, "[    1.0] rig-restore:ab12:3"));
        assert!(!is_restore_mark(&n, "rig-restore:ab12:"));
    }

    #[test]
    fn device_reports() {
        let log = "RIG-INSMOD vfio.ko 0\r\nRIG-DEVICE edu0 present vfio-pci 3 yes\r\nRIG-DEVICE nvme0 present - - no\r\nRIG-DEVICE x missing 0x8086:0x10d3\r\nRIG-DEVICE y missing -\r\nRIG-DEVICE z bogus\r\n";
        assert_eq!(
            device_report(log, "edu0"),
            Some(DeviceReport::Present { driver: Some("vfio-pci".into()), group: Some("3".into()), vfio_node: true })
        );
        assert_eq!(
            device_report(log, "nvme0"),
            Some(DeviceReport::Present { driver: None, group: None, vfio_node: false })
        );
        assert_eq!(device_report(log, "x"), Some(DeviceReport::Missing { found: "0x8086:0x10d3".into() }));
        assert_eq!(device_report(log, "y"), Some(DeviceReport::Missing { found: "-".into() }));
        assert_eq!(device_report(log, "z"), None);
        assert_eq!(device_report(log, "edu"), None);
    }

    #[test]
    fn root_and_hugepage_reports() {
        let log = "RIG-HUGEPAGES 128\r\nRIG-ROOT ok Debian GNU/Linux 13 (trixie)\r\n";
        assert_eq!(hugepages_report(log), Some(128));
        assert_eq!(root_report(log), Some(Ok("Debian GNU/Linux 13 (trixie)".into())));
        assert_eq!(root_report("RIG-ROOT failed cannot mount /dev/vda\n"), Some(Err("cannot mount /dev/vda".into())));
        assert_eq!((root_report("RIG-ROOT maybe\n"), hugepages_report("RIG-HUGEPAGES x\n")), (None, None));
        assert_eq!((root_report(""), hugepages_report("")), (None, None));
    }

    #[test]
    fn insmod_reports() {
        let log = "RIG-BOOTED 6.1.0\r\nRIG-INSMOD a.ko 0\r\nRIG-INSMOD b.ko 1\r\n";
        assert_eq!(insmod_status(log, "a.ko"), Some("0"));
        assert_eq!(insmod_status(log, "b.ko"), Some("1"));
        assert_eq!(insmod_status(log, "c.ko"), None);
        assert_eq!(insmod_report_line("a.ko"), "echo \"RIG-INSMOD a.ko $?\"\n");
    }
}
