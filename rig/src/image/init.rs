//! The guest's `/init`: mount the pseudo filesystems, load the modules
//! (reporting each status), bind the devices, reserve hugepages, say ready,
//! and keep a shell on the console. Its markers come from
//! [`crate::guest::protocol`].
//!
//! With a Debian root (`rootfs = "debian"`), `/init` does all of that up to
//! the devices and hugepages, then mounts the root's squashfs disk under a
//! tmpfs overlay, copies the rig's files onto it (the guest programs,
//! `[guest] files`, the modules), moves /dev, /proc, /sys and /tmp into it
//! and `switch_root`s to [`ROOT_INIT`], which says ready and keeps the
//! shell, Debian's own `sh`, on the same port. The environment (the
//! devices' variables) goes through the `exec`.

use crate::guest::protocol;

pub use protocol::MODULE_DIR;

/// The Debian root's init, in the initramfs and then in the root.
pub const ROOT_INIT: &str = "/lib/rig/root-init";

/// The Debian root's disk as the guest sees it (the only virtio-blk disk).
pub const ROOT_DISK: &str = "/dev/vda";

/// What `/init` sets up besides the modules and the devices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitExtras {
    /// 2 MiB hugepages to reserve (hugetlbfs goes at /dev/hugepages).
    pub hugepages: u32,
    /// Switch to the Debian root, copying these initramfs files onto it.
    pub root: Option<Vec<String>>,
}

/// A `[[device]]` as `/init` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInit {
    /// Its name in the config.
    pub name: String,
    /// Where the rig put it (`0000:00:04.0`).
    pub bdf: String,
    /// `0x1234:0x11e8`, as sysfs prints vendor and device.
    pub id: String,
    /// `kernel`, `vfio-pci` or `none`.
    pub bind: String,
    /// The variable of its address (`RIG_DEV_EDU0`); `_SYSFS` and `_GROUP` follow it.
    pub var: String,
}

/// The `/init` lines that check, bind and export every device: a function,
/// then one call and one `export` per device. A device that is not where
/// the rig put it is reported, never waited for. Binding to vfio-pci:
/// `driver_override`, unbind from the driver that took it at boot (nvme is
/// built in), `drivers_probe`. `none` keeps every driver off it.
pub fn device_lines(devices: &[DeviceInit]) -> String {
    if devices.is_empty() {
        return String::new();
    }
    let mut s = r#"# Devices: each where the rig put it, given to its driver, its variables exported.
rig_device() {
    d=/sys/bus/pci/devices/$2
    grp=
    id="$(cat $d/vendor 2>/dev/null):$(cat $d/device 2>/dev/null)"
    if [ "$id" != "$3" ]; then
        [ "$id" = ":" ] && id=-
        echo "{marker} $1 missing $id"
        return
    fi
    case $4 in
    vfio-pci|none) echo $4 >$d/driver_override ;;
    esac
    if [ $4 != kernel ] && [ -e $d/driver ]; then echo $2 >$d/driver/unbind; fi
    if [ $4 = vfio-pci ]; then echo $2 >/sys/bus/pci/drivers_probe; fi
    drv=-
    [ -e $d/driver ] && drv=$(basename "$(readlink $d/driver)")
    [ -e $d/iommu_group ] && grp=$(basename "$(readlink $d/iommu_group)")
    node=no
    [ -n "$grp" ] && [ -e /dev/vfio/$grp ] && node=yes
    echo "{marker} $1 present $drv ${grp:--} $node"
}
"#
    .replace("{marker}", protocol::DEVICE_MARKER);
    for d in devices {
        s.push_str(&format!("rig_device {} {} {} {}\n", d.name, d.bdf, d.id, d.bind));
        s.push_str(&format!(
            "export {var}={bdf} {var}_SYSFS=/sys/bus/pci/devices/{bdf} {var}_GROUP=$grp\n",
            var = d.var,
            bdf = d.bdf
        ));
    }
    s
}

/// `'it''s'`: a word for sh, whatever it holds.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The lines that reserve `n` hugepages and report what the kernel gave.
pub fn hugepage_lines(n: u32) -> String {
    if n == 0 {
        return String::new();
    }
    format!(
        "# Hugepages before the first step (DPDK and friends map them from hugetlbfs).\n\
         echo {n} >/proc/sys/vm/nr_hugepages\n\
         mkdir -p /dev/hugepages && mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages\n\
         echo \"{marker} $(cat /proc/sys/vm/nr_hugepages)\"\n",
        marker = protocol::HUGEPAGES_MARKER
    )
}

/// The lines that switch to the Debian root: the squashfs disk read-only
/// under a tmpfs overlay (so the root is writable and the image never
/// changes), the rig's files copied on, the pseudo filesystems moved in.
/// On failure they say why and fall through to the busybox shell.
pub fn root_lines(copy: &[String]) -> String {
    let mut s = format!(
        r#"# The Debian root: its squashfs disk under a tmpfs overlay.
rig_root() {{
    for i in $(seq 50); do [ -b {disk} ] && break; sleep 0.1; done
    mkdir -p /rig/ro /rig/rw /newroot
    mount -t squashfs -o ro {disk} /rig/ro || {{ echo "{marker} failed cannot mount {disk} (squashfs)"; return 1; }}
    mount -t tmpfs -o mode=0755 tmpfs /rig/rw && mkdir -p /rig/rw/upper /rig/rw/work || {{ echo "{marker} failed no tmpfs for the overlay"; return 1; }}
    mount -t overlay -o lowerdir=/rig/ro,upperdir=/rig/rw/upper,workdir=/rig/rw/work overlay /newroot || {{ echo "{marker} failed cannot mount the overlay"; return 1; }}
    for f in "$@"; do
        mkdir -p "/newroot$(dirname "$f")" && cp -p "$f" "/newroot$f" || {{ echo "{marker} failed cannot copy $f"; return 1; }}
    done
}}
if rig_root {root_init}"#,
        disk = ROOT_DISK,
        marker = protocol::ROOT_MARKER,
        root_init = ROOT_INIT,
    );
    for f in copy {
        s.push(' ');
        s.push_str(&quote(f));
    }
    s.push_str(&format!(
        r#"; then
    for m in dev proc sys tmp; do mount --move /$m /newroot/$m; done
    exec switch_root /newroot {ROOT_INIT}
fi
"#
    ));
    s
}

/// The end of an init: say ready and keep a shell on the second port.
fn shell_loop() -> String {
    format!(
        r#"echo {ready}
export PS1='{fresh_prompt}'
# A session leader that opens the tty gets it as its controlling tty, so
# Ctrl-C reaches a step. Not exec'd: the shell must not be PID 1, or its
# exit (after a background job ends, say) panics the kernel. If it exits, a
# new one takes the port and says so. The exit of the tty's session leader
# hangs up every open file of the tty, /init's own too: reopen it to speak.
while :; do
    setsid sh -c 'exec sh -i <>/dev/{shell_tty} >&0 2>&0'
    echo {respawn} >/dev/{shell_tty}
done
"#,
        shell_tty = protocol::SHELL_TTY,
        ready = protocol::READY_MARKER,
        respawn = protocol::RESPAWN_MARKER,
        fresh_prompt = protocol::FRESH_PROMPT,
    )
}

/// The Debian root's init ([`ROOT_INIT`]), run by Debian's `sh` once
/// `/init` switched to the root: it says so, then ready, then keeps the
/// shell. `poweroff` is the rig's (minbase has none), in /usr/local/sbin.
pub fn root_init_script() -> String {
    format!(
        r#"#!/bin/sh
# Generated by the rig: the Debian root's init. /init loaded the modules,
# bound the devices and reserved the hugepages before switching here.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
cd /
echo "{marker} ok $(. /etc/os-release && echo "$PRETTY_NAME")"
{shell}"#,
        marker = protocol::ROOT_MARKER,
        shell = shell_loop()
    )
}

/// The `/init` script. Modules load in the order given; their status is
/// printed so the rig can report a failing init as a failed check. Then the
/// devices are bound (after the modules: a driver the user loads may be
/// the one a device is meant for).
pub fn init_script(modules: &[(String, String)], devices: &[DeviceInit]) -> String {
    init_script_with(modules, devices, &InitExtras::default())
}

/// [`init_script`] with hugepages and maybe the switch to a Debian root.
pub fn init_script_with(modules: &[(String, String)], devices: &[DeviceInit], extras: &InitExtras) -> String {
    let mut s = String::from(
        r#"#!/bin/busybox sh
# Generated by the rig: bring the guest up, load the modules, give the console a shell.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
# Boot quietly (loglevel=5), then let the kernel's console show everything:
# a hung task's stack, say, is printed at info level.
echo 7 > /proc/sys/kernel/printk
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The first serial port is the kernel's console alone; /init and the shell
# talk on the second.
exec </dev/{shell_tty} >/dev/{shell_tty} 2>&1
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo "{booted} $(uname -r)"
"#,
    )
    .replace("{booted}", protocol::BOOTED_MARKER)
    .replace("{shell_tty}", protocol::SHELL_TTY);
    for (file, params) in modules {
        s.push_str(&format!("insmod {MODULE_DIR}/{file} {params}\n"));
        s.push_str(&protocol::insmod_report_line(file));
    }
    s.push_str(&device_lines(devices));
    s.push_str(&hugepage_lines(extras.hugepages));
    if let Some(copy) = &extras.root {
        s.push_str(&root_lines(copy));
    }
    s.push_str(&shell_loop());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugepages_and_the_debian_root() {
        let plain = init_script(&[("a.ko".into(), "".into())], &[]);
        assert!(!plain.contains("hugepages") && !plain.contains("switch_root"));
        let copy = vec!["/bin/rig-guest".to_string(), "/usr/bin/it's".to_string()];
        let s = init_script_with(
            &[("squashfs.ko".into(), "".into())],
            &[edu("vfio-pci")],
            &InitExtras { hugepages: 128, root: Some(copy) },
        );
        let at = |needle: &str| s.find(needle).unwrap_or(usize::MAX);
        assert!(s.contains("echo 128 >/proc/sys/vm/nr_hugepages"), "{s}");
        assert!(s.contains("echo \"RIG-HUGEPAGES $(cat /proc/sys/vm/nr_hugepages)\""), "{s}");
        // Modules, devices, hugepages, then the root; ready comes from the root's init.
        assert!(at("RIG-INSMOD squashfs.ko") < at("rig_device edu0"));
        assert!(at("rig_device edu0") < at("nr_hugepages") && at("nr_hugepages") < at("rig_root()"), "{s}");
        assert!(s.contains(&format!("if rig_root {ROOT_INIT} '/bin/rig-guest' '/usr/bin/it'\\''s'; then")), "{s}");
        assert!(at("exec switch_root /newroot /lib/rig/root-init") < at(protocol::READY_MARKER), "{s}");
        assert!(s.contains("lowerdir=/rig/ro,upperdir=/rig/rw/upper"), "{s}");
        let r = root_init_script();
        assert!(r.starts_with("#!/bin/sh\n"));
        assert!(r.find("RIG-ROOT ok").unwrap_or(usize::MAX) < r.find(protocol::READY_MARKER).unwrap_or(0), "{r}");
        assert!(r.contains("setsid sh -c 'exec sh -i <>/dev/ttyS1 >&0 2>&0'"), "{r}");
    }

    /// The root's lines run by a real shell against stand-ins: a copy that
    /// fails (here the first, the root's init, which this host lacks) says
    /// why and returns, so the busybox shell stays.
    #[test]
    fn root_lines_report_a_failure() {
        let Some(sh) = ["/bin/busybox", "/bin/sh"].into_iter().find(|p| std::path::Path::new(p).exists()) else {
            return;
        };
        let lines = root_lines(&["/nonexistent/file".to_string()])
            .replace("for i in $(seq 50)", "for i in 1")
            .replace("mount -t squashfs -o ro /dev/vda /rig/ro", "true")
            .replace("mount -t tmpfs -o mode=0755 tmpfs /rig/rw && mkdir -p /rig/rw/upper /rig/rw/work", "true")
            .replace(
                "mount -t overlay -o lowerdir=/rig/ro,upperdir=/rig/rw/upper,workdir=/rig/rw/work overlay /newroot",
                "true",
            )
            .replace("mkdir -p /rig/ro /rig/rw /newroot", "true")
            .replace("mkdir -p \"/newroot", "mkdir -p \"$TMPDIR/n")
            .replace("cp -p \"$f\" \"/newroot$f\"", "cp -p \"$f\" \"$TMPDIR/n$f\"");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = std::process::Command::new(sh);
        if sh.ends_with("busybox") {
            cmd.arg("sh");
        }
        let out = cmd.env("TMPDIR", dir.path()).arg("-c").arg(format!("{lines}echo stayed\n")).output().expect("sh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(protocol::root_report(&text), Some(Err(format!("cannot copy {ROOT_INIT}"))), "{text}");
        assert!(text.contains("stayed"), "{text}");
    }

    #[test]
    fn init_loads_modules_and_signals_ready() {
        let s = init_script(&[("rig_kmod.ko".into(), "".into())], &[]);
        assert!(s.starts_with("#!/bin/busybox sh"));
        assert!(s.contains("insmod /lib/rig/modules/rig_kmod.ko"));
        assert!(s.contains("RIG-INSMOD rig_kmod.ko $?"));
        assert!(s.find("RIG-INSMOD").unwrap_or(0) < s.find(protocol::READY_MARKER).unwrap_or(0));
        assert!(!s.contains("rig_device"));
    }

    fn edu(bind: &str) -> DeviceInit {
        DeviceInit {
            name: "edu0".into(),
            bdf: "0000:00:04.0".into(),
            id: "0x1234:0x11e8".into(),
            bind: bind.into(),
            var: "RIG_DEV_EDU0".into(),
        }
    }

    #[test]
    fn devices_are_bound_after_the_modules_and_before_ready() {
        let s = init_script(&[("vfio_pci.ko".into(), "".into())], &[edu("vfio-pci")]);
        let at = |needle: &str| s.find(needle).unwrap_or(usize::MAX);
        assert!(at("RIG-INSMOD vfio_pci.ko") < at("rig_device edu0"), "{s}");
        assert!(at("rig_device edu0 0000:00:04.0 0x1234:0x11e8 vfio-pci\n") < at(protocol::READY_MARKER), "{s}");
        assert!(s.contains(
            "export RIG_DEV_EDU0=0000:00:04.0 RIG_DEV_EDU0_SYSFS=/sys/bus/pci/devices/0000:00:04.0 RIG_DEV_EDU0_GROUP=$grp\n"
        ));
        // The override comes before the unbind, and the probe after both.
        assert!(at(">$d/driver_override") < at("/unbind") && at("/unbind") < at("drivers_probe"), "{s}");
        assert!(s.contains("echo \"RIG-DEVICE $1 present $drv ${grp:--} $node\""), "{s}");
        assert!(s.contains("echo \"RIG-DEVICE $1 missing $id\""), "{s}");
        assert_eq!(device_lines(&[]), "");
    }

    /// The snippet run by a real shell against a fake sysfs: the markers
    /// come out as the rig parses them.
    #[test]
    fn device_snippet_runs_in_a_shell() {
        let Some(sh) = ["/bin/busybox", "/bin/sh"].into_iter().find(|p| std::path::Path::new(p).exists()) else {
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display().to_string();
        let dev = dir.path().join("sys/bus/pci/devices/0000:00:04.0");
        std::fs::create_dir_all(&dev).expect("mkdir");
        std::fs::write(dev.join("vendor"), "0x1234\n").expect("vendor");
        std::fs::write(dev.join("device"), "0x11e8\n").expect("device");
        let lines = device_lines(&[
            edu("kernel"),
            DeviceInit { name: "nic0".into(), bdf: "0000:00:05.0".into(), var: "RIG_DEV_NIC0".into(), ..edu("none") },
        ])
        .replace("/sys/", &format!("{root}/sys/"));
        let script =
            format!("{lines}echo \"var=$RIG_DEV_EDU0 sysfs=$RIG_DEV_EDU0_SYSFS group=[$RIG_DEV_EDU0_GROUP]\"\n");
        let mut cmd = std::process::Command::new(sh);
        if sh.ends_with("busybox") {
            cmd.arg("sh");
        }
        let out = cmd.arg("-c").arg(&script).output().expect("shell");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            protocol::device_report(&text, "edu0"),
            Some(protocol::DeviceReport::Present { driver: None, group: None, vfio_node: false }),
            "{text}"
        );
        assert_eq!(
            protocol::device_report(&text, "nic0"),
            Some(protocol::DeviceReport::Missing { found: "-".into() }),
            "{text}"
        );
        let want = format!("var=0000:00:04.0 sysfs={root}/sys/bus/pci/devices/0000:00:04.0 group=[]");
        assert!(text.contains(&want), "{text}");
    }
}
