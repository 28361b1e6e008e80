//! Text shared by the summary writers: check labels and bounded excerpts of
//! outputs that may be megabytes long or carry terminal escapes.

/// `group: check` (the boot group's checks by their own name), one line.
pub fn label(group: &str, check: &str) -> String {
    let check = first_line(check);
    if group == "boot" {
        check
    } else {
        format!("{group}: {check}")
    }
}

/// The first line, with `…` when more follow.
pub fn first_line(s: &str) -> String {
    let mut lines = s.trim().lines();
    let first = lines.next().unwrap_or_default().to_owned();
    if lines.next().is_some() {
        first + " …"
    } else {
        first
    }
}

/// At most `head` + `tail` lines and `max_chars` characters of `text`, the
/// cuts marked; control characters other than tab and newline shown as
/// `\xNN` (consoles emit them; summaries and annotations would garble).
pub fn excerpt(text: &str, head: usize, tail: usize, max_chars: usize) -> String {
    let text = crate::support::head_and_tail(text.trim_end(), head, tail);
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max_chars {
            let rest = text.chars().count() - n;
            out.push_str(&format!("\n[... {rest} more characters]"));
            break;
        }
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `n thing` or `n things`.
pub fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_lines() {
        assert_eq!(label("boot", "insmod a.ko"), "insmod a.ko");
        assert_eq!(label("mmap", "cat x\ncat y"), "mmap: cat x …");
        assert_eq!(first_line("  one  "), "one");
        assert_eq!(plural(1, "kernel"), "1 kernel");
        assert_eq!(plural(0, "kernel"), "0 kernels");
    }

    #[test]
    fn excerpts_are_bounded_and_printable() {
        let long: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let e = excerpt(&long, 2, 1, 1000);
        assert_eq!(e, "line 1\nline 2\n[... 97 lines ...]\nline 100");
        assert_eq!(excerpt("\u{1b}[6n\rok\n\n", 5, 5, 100), "\\x1b[6n\\x0dok");
        assert_eq!(excerpt(&"é".repeat(10), 5, 5, 4), "éééé\n[... 6 more characters]");
    }
}
