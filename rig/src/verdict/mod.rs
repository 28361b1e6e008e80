//! Verdicts from what the guest kernel printed.
//!
//! This folder turns console lines into kernel reports ([`classify`]): which
//! kind of report (oops, WARNING, lockup, memory corruption, ...), a short
//! title naming the function at fault, the report's lines and a key that
//! makes repeats of one report count once. It never prints and does no I/O:
//! callers feed it text, from the live console or from a saved log.

pub mod classify;

pub use classify::{classify, dedup, Class, Classifier, Event, KernelReport, Severity};
