//! The guest protocol: every marker the guest prints and every line the rig
//! types into its shell, in one place. `/init` (image), the console driver,
//! the boot watchdog and `rig bench` all take them from here.

/// `/init` prints this with `uname -r` once the pseudo filesystems are up.
pub const BOOTED_MARKER: &str = "RIG-BOOTED";

/// `/init` prints `RIG-INSMOD <file> <status>` after each module.
pub const INSMOD_MARKER: &str = "RIG-INSMOD";

/// `/init` prints this once every module is loaded, before the shell.
pub const READY_MARKER: &str = "RIG-READY";

/// `/init` prints this when the shell exited and a new one takes over.
pub const RESPAWN_MARKER: &str = "RIG-SHELL-RESPAWN";

/// The shell prints this once it is set up for scripting.
pub const SHELL_OK_MARKER: &str = "RIG-SHELL-OK";

/// The shell's prompt (PS1 and PS2) while the rig drives it: ASCII RS,
/// which [`crate::guest::console::clean`] drops. busybox's line editor takes
/// ~4 ms longer per prompt when a prompt is empty (measured by `rig bench`);
/// one byte keeps it at ~1 ms.
pub const PROMPT_CHAR: char = '\u{1e}';

/// Makes the shell scriptable: no echo, one-byte prompts, then
/// [`SHELL_OK_MARKER`] (split by `''` so the command's own echo never
/// matches it).
pub fn shell_setup_line() -> String {
    let (head, tail) = SHELL_OK_MARKER.split_at(SHELL_OK_MARKER.len() / 2);
    format!("stty -echo; PS1=\"$(printf '\\{:03o}')\"; PS2=\"$PS1\"; echo {head}''{tail}\n", PROMPT_CHAR as u32)
}

/// The text sent for step `n`: the command in a group (so a trailing `&` or
/// comment stays harmless), stdin closed, then the end marker with `$?`.
/// The marker's digits are only `%s` placeholders here, so an echoed
/// command never matches [`end_marker_pattern`].
pub fn step_line(n: u64, command: &str) -> String {
    format!("{{ {command}\n}} </dev/null; printf '\\n<RIG-END:%s:%s>\\n' {n} $?\n")
}

/// The regex of step `n`'s end marker; group 1 is the exit status.
pub fn end_marker_pattern(n: u64) -> String {
    format!(r"\n<RIG-END:{n}:(\d+)>\r?\n")
}

/// What the guest prints at the end of step `n` (the line after its output).
pub fn end_marker(n: u64, status: i32) -> String {
    format!("<RIG-END:{n}:{status}>")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_line_hides_its_marker() {
        let l = shell_setup_line();
        assert!(l.starts_with("stty -echo; PS1=\"$(printf '\\036')\""), "{l}");
        assert!(l.ends_with("echo RIG-SH''ELL-OK\n"), "{l}");
        assert!(!l.contains(SHELL_OK_MARKER));
    }

    #[test]
    fn step_line_and_marker_agree() {
        let l = step_line(7, "true");
        assert_eq!(l, "{ true\n} </dev/null; printf '\\n<RIG-END:%s:%s>\\n' 7 $?\n");
        let re = regex::Regex::new(&end_marker_pattern(7)).expect("re");
        assert!(!re.is_match(&l));
        let printed = format!("out\r\n\r\n{}\r\n", end_marker(7, 3));
        assert_eq!(re.captures(&printed).and_then(|c| c.get(1)).map(|m| m.as_str()), Some("3"));
        assert!(!re.is_match(&format!("\n{}\n", end_marker(8, 0))));
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
