//! The kernel-report classifier against consoles of real kernels
//! (tests/fixtures/reports/<kernel>/<class>.log, made as its README says).
//! Nothing boots here.

use rig::verdict::{classify, Class, Classifier, Event, KernelReport};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod common;
use common::{producible, CATALOG, EXPECT};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports")
}

/// Every (kernel, fixture name, path) with a report in it (boot logs aside).
fn fixtures() -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root()).expect("fixture dir").map(|e| e.expect("entry").path()) {
        if !dir.is_dir() || dir.ends_with("capture") {
            continue;
        }
        let kernel = dir.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        for f in std::fs::read_dir(&dir).expect("kernel dir").map(|e| e.expect("entry").path()) {
            let stem = f.file_stem().and_then(|s| s.to_str()).expect("stem").to_string();
            if f.extension().and_then(|e| e.to_str()) == Some("log") && stem != "boot" {
                out.push((kernel.clone(), stem, f));
            }
        }
    }
    out.sort();
    assert!(out.len() >= 60, "fixtures missing: {}", out.len());
    out
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).expect("read fixture")).into_owned()
}

fn expect(stem: &str) -> (Class, &'static str, &'static str) {
    let e = EXPECT.iter().find(|e| e.0 == stem).unwrap_or_else(|| panic!("no expectation for fixture {stem}"));
    let class = Class::from_name(e.1).unwrap_or_else(|| panic!("no class named {}", e.1));
    (class, e.2, e.3)
}

/// The raw line `no` (1-based) from its printk time prefix on.
fn raw_line(text: &str, no: usize) -> String {
    let line = text.split('\n').nth(no - 1).expect("line in range");
    let clean: String = line.chars().filter(|&c| c == '\t' || !c.is_control()).collect();
    clean[clean.find('[').expect("kernel line")..].trim_end().to_string()
}

fn first_report(kernel: &str, stem: &str, path: &Path) -> (String, KernelReport) {
    let text = read(path);
    let reports = classify(&text);
    let first = reports.into_iter().next().unwrap_or_else(|| panic!("{kernel}/{stem}: no report"));
    (text, first)
}

#[test]
fn every_catalog_kernel_has_every_report_it_can_print() {
    let have: BTreeSet<(String, String)> = fixtures().into_iter().map(|(k, s, _)| (k, s)).collect();
    for kernel in CATALOG {
        for class in producible(kernel) {
            assert!(have.contains(&(kernel.to_string(), class.to_string())), "missing {kernel}/{class}.log");
        }
    }
}

#[test]
fn each_fixture_gets_its_class_and_title() {
    for (kernel, stem, path) in fixtures() {
        let (_, r) = first_report(&kernel, &stem, &path);
        let (class, title, _) = expect(&stem);
        assert_eq!((r.class, r.title.as_str()), (class, title), "{kernel}/{stem}");
        assert_eq!(r.key, format!("{}|{}", class.name(), title));
    }
}

#[test]
fn excerpts_run_from_the_first_line_through_the_call_trace() {
    for (kernel, stem, path) in fixtures() {
        let (text, r) = first_report(&kernel, &stem, &path);
        let (_, _, needle) = expect(&stem);
        let lines: Vec<&str> = r.excerpt.lines().collect();
        let at = format!("{kernel}/{stem}:\n{}", r.excerpt);
        // It starts at a marker or at the header itself, and ends where the range says.
        assert_eq!(lines[0], raw_line(&text, *r.lines.start()), "{at}");
        assert_eq!(*lines.last().expect("lines"), raw_line(&text, *r.lines.end()), "{at}");
        let header = lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle}: {at}"));
        assert!(header < 6, "{at}");
        let opener = ["cut here", "=====", "overwritten]"].iter().any(|m| lines[0].contains(m));
        assert!(header == 0 || opener, "{at}");
        // The kernel line before it is no part of it (no `cut here` left out).
        let before = text.split('\n').take(*r.lines.start() - 1).filter(|l| l.contains("] ")).last();
        assert!(before.is_none_or(|l| !l.contains("cut here")), "{at}");
        // The call trace is in, and names the function the title blames.
        match r.class {
            Class::IommuFault => assert!(lines.iter().all(|l| l.contains("DMAR")), "{at}"),
            Class::HungTask if stem == "hung_task_loglevel5" => {}
            Class::Kfence => assert!(lines.iter().any(|l| l.starts_with('[') && l.contains("]  rig_kfence+"))),
            _ => assert!(r.excerpt.contains("Call Trace:") || r.excerpt.contains("Call trace:"), "{at}"),
        }
        if let Some(f) = r.title.rsplit(" in ").next().filter(|f| f.starts_with("rig_")) {
            // As a frame, maybe a compiler clone (`rig_fortify.cold+0xc/0xe`).
            assert!(r.excerpt.contains(&format!("{f}+0x")) || r.excerpt.contains(&format!("{f}.")), "{f} not in {at}");
        }
    }
}

#[test]
fn a_panic_after_a_report_is_part_of_it() {
    let mut panics = 0;
    for (kernel, stem, path) in fixtures() {
        let text = read(&path);
        let mut c = Classifier::new();
        let mut events = c.feed(&text);
        events.extend(c.finish());
        let reports: Vec<KernelReport> = events
            .into_iter()
            .filter_map(|e| match e {
                Event::Completed(r) => Some(r),
                Event::Started { .. } => None,
            })
            .collect();
        for (i, line) in text.split('\n').enumerate() {
            if line.contains("] Kernel panic - not syncing") {
                let r = reports.iter().find(|r| r.lines.contains(&(i + 1)));
                let r = r.unwrap_or_else(|| panic!("{kernel}/{stem}:{}: panic outside any report", i + 1));
                assert!(r.panicked && r.excerpt.contains("Kernel panic - not syncing"), "{kernel}/{stem}");
                panics += 1;
            }
        }
    }
    assert!(panics >= 12, "{panics}");
}

#[test]
fn boot_logs_and_output_that_mimics_reports_give_none() {
    let mut seen = 0;
    for kernel in CATALOG {
        let path = root().join(kernel).join("boot.log");
        let text = read(&path);
        assert!(text.contains("Kernel panic - not syncing: fake") && text.contains("] Linux version"), "{kernel}");
        assert_eq!(classify(&text), vec![], "{kernel}/boot.log");
        seen += 1;
    }
    assert_eq!(seen, 4);
}

#[test]
fn a_report_and_its_replay_count_once() {
    let mut replays = 0;
    for (kernel, stem, path) in fixtures() {
        let text = read(&path);
        let (_, _, needle) = expect(&stem);
        let mut c = Classifier::new();
        let mut events = c.feed(&text);
        events.extend(c.finish());
        let (class, title, _) = expect(&stem);
        let key = format!("{}|{}", class.name(), title);
        let completed = events.iter().filter(|e| matches!(e, Event::Completed(r) if r.key == key)).count();
        let deduped = classify(&text);
        let report = deduped.iter().find(|r| r.key == key).expect("report");
        assert_eq!(report.repeats, completed, "{kernel}/{stem}");
        assert_eq!(deduped.iter().filter(|r| r.key == key).count(), 1, "{kernel}/{stem}");
        // Files with the rig's dmesg replay hold the report twice.
        if text.lines().filter(|l| l.contains("] Linux version")).count() > 0 && text.matches(needle).count() > 1 {
            replays += usize::from(completed >= 2);
        }
    }
    assert!(replays >= 4, "only {replays} fixtures exercise a replay");
}

#[test]
fn feeding_small_chunks_live_finds_what_classify_finds() {
    for (kernel, stem, path) in fixtures() {
        let text = read(&path);
        let mut c = Classifier::new();
        let mut events = Vec::new();
        let mut started = 0;
        let bytes = text.as_bytes();
        let mut at = 0;
        // Odd chunk sizes cut lines, escape codes and the time prefix apart.
        for size in [1usize, 7, 13, 64, 3].iter().cycle() {
            if at >= bytes.len() {
                break;
            }
            let mut end = (at + size).min(bytes.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            for e in c.feed(&text[at..end]) {
                match e {
                    Event::Started { .. } => started += 1,
                    Event::Completed(r) => events.push(r),
                }
            }
            at = end;
        }
        for e in c.finish() {
            if let Event::Completed(r) = e {
                events.push(r);
            }
        }
        assert_eq!(started, events.len(), "{kernel}/{stem}");
        assert_eq!(rig::verdict::dedup(events), classify(&text), "{kernel}/{stem}");
    }
}
