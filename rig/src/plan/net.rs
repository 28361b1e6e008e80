//! The NICs' side of a plan: which `[[device]]`s capture, and the host
//! steps on their cables (`host.pcap`, `host.send`), validated.

use super::file::{DeviceSpec, PcapSpec, SendSpec};
use super::step::Action;
use super::validate::Ctx;
use super::ConfigError;
use crate::host::net::{parse_mac, Burst, FrameFilter, FrameSource, FRAME_LEN};
use crate::vm::devices::DeviceTable;
use regex::Regex;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// The NICs of a guest, by name, and the ones that capture.
#[derive(Clone, Debug, Default)]
pub(super) struct Nics {
    pub all: Vec<String>,
    pub capturing: Vec<String>,
}

/// `capture` is for NICs only; which devices are NICs.
pub(super) fn nics(cx: &Ctx, list: &[Spanned<DeviceSpec>], table: &DeviceTable) -> Result<Nics, ConfigError> {
    let mut n = Nics::default();
    for (i, d) in list.iter().enumerate() {
        let d = d.get_ref();
        // Kinds were checked by `devices`.
        let nic = table.get(d.kind.get_ref()).is_ok_and(|k| k.is_nic());
        if nic {
            n.all.push(d.name.get_ref().clone());
        }
        match &d.capture {
            Some(c) if *c.get_ref() && !nic => {
                return Err(cx.invalid(
                    c.span(),
                    &format!("device[{i}].capture"),
                    format!(
                        "`capture` records a NIC's frames; {} is not a NIC (igb, e1000e, virtio-net)",
                        d.kind.get_ref()
                    ),
                ))
            }
            Some(c) if *c.get_ref() => n.capturing.push(d.name.get_ref().clone()),
            _ => {}
        }
    }
    Ok(n)
}

fn mac(cx: &Ctx, span: &Range<usize>, key: &str, text: &Option<String>) -> Result<Option<[u8; 6]>, ConfigError> {
    text.as_deref().map(parse_mac).transpose().map_err(|m| cx.invalid(span.clone(), key, m))
}

/// `host.pcap`: the check's name and action.
pub(super) fn pcap(
    cx: &Ctx,
    p: &PcapSpec,
    span: Range<usize>,
    key: &str,
    nics: &Nics,
) -> Result<(String, Action), ConfigError> {
    let key = format!("{key}.host.pcap");
    if !nics.capturing.contains(&p.device) {
        let why = if nics.all.contains(&p.device) {
            format!("{} does not record its frames: give it capture = true", p.device)
        } else {
            format!("no [[device]] NIC `{}` (igb, e1000e, virtio-net) with capture = true", p.device)
        };
        return Err(cx.invalid(span, &format!("{key}.device"), why));
    }
    let filter = FrameFilter {
        len: p.frame_len.map(|l| l as usize),
        ethertype: p.ethertype,
        src: mac(cx, &span, &format!("{key}.src"), &p.src)?,
        dst: mac(cx, &span, &format!("{key}.dst"), &p.dst)?,
    };
    let min = p.min_packets.unwrap_or(1);
    if p.max_packets.is_some_and(|m| m < min) {
        return Err(cx.invalid(span, &format!("{key}.max_packets"), "is below min_packets"));
    }
    let same_as = match &p.same_count_as {
        None => None,
        Some(re) => {
            let r = Regex::new(&format!("(?m){re}"))
                .map_err(|e| cx.invalid(span.clone(), &format!("{key}.same_count_as"), e.to_string()))?;
            if r.captures_len() < 2 {
                return Err(cx.invalid(
                    span,
                    &format!("{key}.same_count_as"),
                    "needs a group around the number, e.g. 'TX-packets:\\s+(\\d+)'",
                ));
            }
            Some(r)
        }
    };
    if p.slack.is_some() && same_as.is_none() {
        return Err(cx.invalid(span, &format!("{key}.slack"), "applies with same_count_as only"));
    }
    let which = filter.describe();
    let frames = if which.is_empty() { "frames".to_string() } else { format!("{which} frames") };
    let name = match (&same_as, p.max_packets) {
        (Some(re), _) => format!(
            "host: {} sent as many {frames} as /{}/ says (at least {min})",
            p.device,
            re.as_str().trim_start_matches("(?m)")
        ),
        (None, Some(max)) => format!("host: {} sent {min} to {max} {frames}", p.device),
        (None, None) => format!("host: {} sent at least {min} {frames}", p.device),
    };
    let action = Action::HostPcap {
        device: p.device.clone(),
        filter,
        min,
        max: p.max_packets,
        same_as,
        slack: p.slack.unwrap_or(0),
    };
    Ok((name, action))
}

/// Frames per second `host.send` paces to by default: QEMU's igb and
/// e1000e drop what arrives while their receive ring is full (they do not
/// hold it back), so the host must not outrun the guest's driver.
pub const DEFAULT_SEND_RATE: u64 = 10_000;
/// Most frames one `host.send` makes.
const MAX_BURST: u64 = 100_000_000;

/// `host.send`: the check's name and action.
pub(super) fn send(
    cx: &Ctx,
    s: &SendSpec,
    span: Range<usize>,
    key: &str,
    nics: &Nics,
) -> Result<(String, Action), ConfigError> {
    let key = format!("{key}.host.send");
    if !nics.all.contains(&s.device) {
        return Err(cx.invalid(
            span,
            &format!("{key}.device"),
            format!("no [[device]] NIC `{}` (igb, e1000e, virtio-net)", s.device),
        ));
    }
    let rate = s.rate.unwrap_or(DEFAULT_SEND_RATE);
    let timeout = Duration::from_secs(s.timeout.unwrap_or(60).clamp(1, 86_400));
    let pace = if rate == 0 { String::new() } else { format!(" at {rate}/s") };
    let (frames, name) = match (&s.pcap, s.count) {
        (Some(p), None) => {
            if s.frame_len.is_some() || s.ethertype.is_some() || s.src.is_some() || s.dst.is_some() {
                return Err(cx.invalid(
                    span,
                    &key,
                    "a pcap file's frames are sent as they are: give frame_len, ethertype, src and dst with count only",
                ));
            }
            let path = cx.resolve(p.get_ref());
            if !path.is_file() {
                return Err(cx.invalid(
                    p.span(),
                    &format!("{key}.pcap"),
                    format!("file {} does not exist", path.display()),
                ));
            }
            let name = format!("host: sends the frames of {} to {}{pace}", p.get_ref(), s.device);
            (FrameSource::Pcap(path), name)
        }
        (None, Some(count)) => {
            if !(1..=MAX_BURST).contains(&count) {
                return Err(cx.invalid(span, &format!("{key}.count"), format!("give 1 to {MAX_BURST} frames")));
            }
            let len = s.frame_len.map_or(64, |l| l as usize);
            if !FRAME_LEN.contains(&len) {
                return Err(cx.invalid(
                    span,
                    &format!("{key}.frame_len"),
                    format!(
                        "{len} bytes: an Ethernet frame without its FCS has {} to {} bytes",
                        FRAME_LEN.start(),
                        FRAME_LEN.end()
                    ),
                ));
            }
            let burst = Burst {
                count,
                len,
                src: mac(cx, &span, &format!("{key}.src"), &s.src)?.unwrap_or([2, 0, 0, 0, 0, 1]),
                dst: mac(cx, &span, &format!("{key}.dst"), &s.dst)?.unwrap_or([0xff; 6]),
                ethertype: s.ethertype.unwrap_or(0x88b5),
            };
            let name = format!("host: sends {count} {len}-byte frames to {}{pace}", s.device);
            (FrameSource::Burst(burst), name)
        }
        _ => return Err(cx.invalid(span, &key, "give `count` (a burst the host makes) or `pcap` (a file's frames)")),
    };
    Ok((name, Action::HostSend { device: s.device.clone(), frames, rate, timeout }))
}

#[cfg(test)]
mod tests {
    use crate::host::net::{FrameFilter, FrameSource};
    use crate::kernel::catalog::Catalog;
    use crate::plan::step::Action;
    use crate::plan::{parse, ConfigError, Plan};
    use std::path::Path;

    fn parse_in(dir: &Path, text: &str) -> Result<Plan, ConfigError> {
        parse(&dir.join("rig.toml"), text, &Catalog::builtin().expect("catalog"))
    }

    const NICS: &str = "[[device]]\nname = \"nic0\"\nkind = \"igb\"\nbind = \"vfio-pci\"\ncapture = true\n[[device]]\nname = \"nic1\"\nkind = \"virtio-net\"\nbind = \"none\"\n";

    #[test]
    fn pcap_and_send_steps() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("frames.pcap"), crate::host::net::pcap_header()).expect("pcap");
        let text = format!(
            "{NICS}[[test]]\nname = \"t\"\n  [[test.step]]\n  host.pcap = {{ device = \"nic0\", min_packets = 1000, frame_len = 64, ethertype = 0x0800, dst = \"02:00:00:00:00:00\", same_count_as = 'TX-packets:\\s+(\\d+)', slack = 64 }}\n  [[test.step]]\n  host.send = {{ device = \"nic1\", count = 5000, rate = 0 }}\n  [[test.step]]\n  host.send = {{ device = \"nic0\", pcap = \"frames.pcap\" }}\n"
        );
        let p = parse_in(d.path(), &text).expect("plan");
        assert_eq!(p.guest.captures, ["nic0"]);
        let c = &p.tests[0].checks;
        match &c[0].action {
            Action::HostPcap { device, filter, min, max, same_as, slack } => {
                assert_eq!((device.as_str(), *min, *max, *slack), ("nic0", 1000, None, 64));
                assert_eq!(
                    filter,
                    &FrameFilter { len: Some(64), ethertype: Some(0x800), src: None, dst: Some([2, 0, 0, 0, 0, 0]) }
                );
                let re = same_as.as_ref().expect("regex");
                assert_eq!(
                    re.captures("RX\n  TX-packets: 42  x").and_then(|c| c.get(1)).map(|m| m.as_str()),
                    Some("42")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(c[0].name.starts_with("host: nic0 sent as many 64-byte, ethertype 0x0800"), "{}", c[0].name);
        match &c[1].action {
            Action::HostSend { device, frames: FrameSource::Burst(b), rate, .. } => {
                assert_eq!((device.as_str(), b.count, b.len, b.dst, *rate), ("nic1", 5000, 64, [0xff; 6], 0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c[1].name, "host: sends 5000 64-byte frames to nic1");
        assert!(
            matches!(&c[2].action, Action::HostSend { frames: FrameSource::Pcap(p), rate: 10_000, .. } if p.ends_with("frames.pcap"))
        );
    }

    #[test]
    fn bad_nic_steps_name_the_fix() {
        let d = tempfile::tempdir().expect("tempdir");
        let step = |s: &str| format!("{NICS}[[test]]\nname = \"t\"\n  [[test.step]]\n  {s}\n");
        for (text, key, needle) in [
            (step("host.pcap = { device = \"nic1\" }"), "host.pcap.device", "give it capture = true"),
            (step("host.pcap = { device = \"edu0\" }"), "host.pcap.device", "no [[device]] NIC `edu0`"),
            (step("host.pcap = { device = \"nic0\", src = \"02:00\" }"), "host.pcap.src", "not a MAC"),
            (step("host.pcap = { device = \"nic0\", same_count_as = 'TX' }"), "same_count_as", "group"),
            (step("host.pcap = { device = \"nic0\", slack = 3 }"), "host.pcap.slack", "same_count_as"),
            (step("host.pcap = { device = \"nic0\", min_packets = 5, max_packets = 2 }"), "max_packets", "below"),
            (step("host.send = { device = \"nic9\", count = 1 }"), "host.send.device", "nic9"),
            (step("host.send = { device = \"nic0\" }"), "host.send", "`count`"),
            (step("host.send = { device = \"nic0\", count = 1, frame_len = 20 }"), "frame_len", "60 to 1514"),
            (step("host.send = { device = \"nic0\", pcap = \"nope.pcap\" }"), "host.send.pcap", "does not exist"),
            (
                "[[device]]\nname = \"e\"\nkind = \"edu\"\ncapture = true\n".to_string(),
                "device[0].capture",
                "edu is not a NIC",
            ),
        ] {
            let e = parse_in(d.path(), &text).map(|_| ()).expect_err(&text).to_string();
            assert!(e.contains(key) && e.contains(needle), "{text}\n=> {e}");
        }
    }
}
