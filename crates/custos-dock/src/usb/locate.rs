//! Finding a recorder's mass-storage volume once it is unlocked: which block
//! device belongs to the USB device in the slot, where it is mounted, and
//! mounting it under the dock's mount root when nothing else did.
//!
//! The block device is found two ways, the first that answers winning:
//!
//! 1. sysfs: every `/sys/class/block/*` whose device path runs through the
//!    USB device's sysfs node (`<bus>-<port>.<port>…`), partitions first;
//! 2. `/dev/disk/by-id/usb-*<serial>*` links (udev's names), when the
//!    device has a serial number.
//!
//! Mount points come from `/proc/self/mountinfo`. The roots of all three
//! are parameters, so tests build a fake tree.
//!
//! This module never mounts anything outside the mount root, never mounts
//! with exec, device or set-uid rights, and never unmounts what it did not
//! mount.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::transport::{Medium, MediumCheck};

/// Why no volume was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocateError {
    /// The recorder was unplugged while waiting.
    #[error("the recorder was unplugged")]
    Gone,
    /// Nothing appeared in time.
    #[error("no mass-storage volume appeared within {} s (looked for {looked})", waited.as_secs())]
    Timeout {
        /// How long it waited.
        waited: Duration,
        /// What it looked for.
        looked: String,
    },
    /// Mounting failed.
    #[error("mounting {device} on {target} failed: {reason}")]
    Mount {
        /// The block device.
        device: PathBuf,
        /// The mount point.
        target: PathBuf,
        /// What `mount` said.
        reason: String,
    },
}

/// Finds (and releases) the volume of one recorder.
pub trait VolumeLocator: Send {
    /// Wait up to `timeout` for the volume; return the directory it is
    /// mounted on.
    fn locate(&mut self, timeout: Duration) -> Result<PathBuf, LocateError>;
    /// Whether the recorder is still plugged in.
    fn present(&mut self) -> bool;
    /// After a successful `locate`: a check that the volume found is still
    /// reached through the same device (not unplugged, not plugged back in
    /// as a new device since).
    fn medium(&self) -> Medium;
    /// Unmount what `locate` mounted, if anything.
    fn release(&mut self);
}

/// What [`SysfsLocator`] found, checked again later: the USB device node
/// with its device number on the bus (a new number after every replug),
/// the block device's `major:minor` and that it still hangs under the USB
/// device, and that the mount point is still that block device's file
/// system.
#[derive(Debug)]
pub struct SysfsMedium {
    sys_root: PathBuf,
    usb_name: String,
    devnum: Option<String>,
    block: Option<(String, String)>,
    mount_point: PathBuf,
    mount_dev: Option<u64>,
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn st_dev(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| m.dev())
}

impl SysfsMedium {
    fn capture(sys_root: &Path, usb_name: &str, device: &Path, mount_point: &Path) -> SysfsMedium {
        let block = device
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .and_then(|name| {
                read_trimmed(&sys_root.join("class/block").join(&name).join("dev"))
                    .map(|dev| (name, dev))
            });
        SysfsMedium {
            sys_root: sys_root.to_owned(),
            usb_name: usb_name.to_owned(),
            devnum: read_trimmed(
                &sys_root
                    .join("bus/usb/devices")
                    .join(usb_name)
                    .join("devnum"),
            ),
            block,
            mount_point: mount_point.to_owned(),
            mount_dev: st_dev(mount_point),
        }
    }
}

impl MediumCheck for SysfsMedium {
    fn still_attached(&self) -> Result<(), String> {
        let node = self.sys_root.join("bus/usb/devices").join(&self.usb_name);
        if !node.exists() {
            return Err(format!("USB device {} was unplugged", self.usb_name));
        }
        if let Some(devnum) = &self.devnum {
            if read_trimmed(&node.join("devnum")).as_ref() != Some(devnum) {
                return Err(format!(
                    "USB device {} was unplugged and is back as a new device",
                    self.usb_name
                ));
            }
        }
        if let Some((name, dev)) = &self.block {
            // The block device by its number: gone with the disk, and a new
            // disk after a replug is another number or not under this node.
            let by_number = self.sys_root.join("dev/block").join(dev);
            let through = std::fs::canonicalize(&by_number).is_ok_and(|real| {
                real.components().any(|c| {
                    let c = c.as_os_str().to_string_lossy();
                    c == self.usb_name.as_str() || c.starts_with(&format!("{}:", self.usb_name))
                })
            });
            if !through {
                return Err(format!("block device {name} ({dev}) is gone"));
            }
        }
        if let Some(dev) = self.mount_dev {
            if st_dev(&self.mount_point) != Some(dev) {
                return Err(format!(
                    "the volume is no longer mounted on {}",
                    self.mount_point.display()
                ));
            }
        }
        Ok(())
    }
}

/// The sysfs name of a USB device: `<bus>-<port>.<port>…` (e.g. `1-2.4`).
pub fn usb_sysfs_name(bus: u8, ports: &[u8]) -> String {
    let ports: Vec<String> = ports.iter().map(u8::to_string).collect();
    format!("{bus}-{}", ports.join("."))
}

/// Block devices (`sda1`, or `sda` when it has no partitions) whose sysfs
/// device path runs through the USB device `usb_name`.
pub fn block_devices_of(sys_root: &Path, usb_name: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sys_root.join("class/block")) else {
        return Vec::new();
    };
    let mut disks = Vec::new();
    let mut parts = Vec::new();
    for e in entries.flatten() {
        let Ok(real) = std::fs::canonicalize(e.path()) else {
            continue;
        };
        let through = real.components().any(|c| {
            let c = c.as_os_str().to_string_lossy();
            c == usb_name || c.starts_with(&format!("{usb_name}:"))
        });
        if !through {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().join("partition").exists() {
            parts.push(name);
        } else {
            disks.push(name);
        }
    }
    parts.sort();
    disks.sort();
    // A disk with partitions is used through them; one without is used whole.
    let mut out = parts.clone();
    for d in disks {
        if !parts.iter().any(|p| p.starts_with(&d)) {
            out.push(d);
        }
    }
    out
}

/// Block devices udev named after `serial` (`/dev/disk/by-id/usb-…<serial>…`),
/// resolved to their `/dev` nodes, partitions first.
pub fn by_id_devices(dev_root: &Path, serial: &str) -> Vec<PathBuf> {
    if serial.is_empty() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(dev_root.join("disk/by-id")) else {
        return Vec::new();
    };
    let mut found: Vec<(bool, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("usb-") && name.contains(serial)) {
                return None;
            }
            let real = std::fs::canonicalize(e.path()).ok()?;
            Some((!name.contains("-part"), real))
        })
        .collect();
    found.sort();
    found.dedup_by(|a, b| a.1 == b.1);
    found.into_iter().map(|(_, p)| p).collect()
}

/// Where `device` is mounted, per the text of `/proc/self/mountinfo`.
pub fn mount_point_of(mountinfo: &str, device: &Path) -> Option<PathBuf> {
    let device = device.to_string_lossy();
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split(' ').nth(4)?;
        let source = right.split(' ').nth(1)?;
        (unescape(source) == device).then(|| PathBuf::from(unescape(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The real locator: sysfs, by-id, mountinfo, `mount`.
#[derive(Debug)]
pub struct SysfsLocator {
    usb_name: String,
    serial: Option<String>,
    mount_dir: PathBuf,
    mount_options: String,
    sys_root: PathBuf,
    dev_root: PathBuf,
    mountinfo: PathBuf,
    mounted: Option<PathBuf>,
    /// The block device and mount point `locate` found last.
    located: Option<(PathBuf, PathBuf)>,
}

impl SysfsLocator {
    /// A locator for the USB device at `bus`/`ports` with `serial`, mounting
    /// (when needed) on `mount_root/<slot>` with `mount_options`.
    pub fn new(
        bus: u8,
        ports: &[u8],
        serial: Option<String>,
        mount_root: &Path,
        slot: &str,
        mount_options: &str,
    ) -> Self {
        SysfsLocator {
            usb_name: usb_sysfs_name(bus, ports),
            serial,
            mount_dir: mount_root.join(crate::naming::sanitize(slot.as_bytes(), 64)),
            mount_options: mount_options.to_owned(),
            sys_root: PathBuf::from("/sys"),
            dev_root: PathBuf::from("/dev"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            mounted: None,
            located: None,
        }
    }

    /// Look under other roots (tests).
    pub fn with_roots(mut self, sys: &Path, dev: &Path, mountinfo: &Path) -> Self {
        self.sys_root = sys.to_owned();
        self.dev_root = dev.to_owned();
        self.mountinfo = mountinfo.to_owned();
        self
    }

    fn candidates(&self) -> Vec<PathBuf> {
        let via_sysfs: Vec<PathBuf> = block_devices_of(&self.sys_root, &self.usb_name)
            .into_iter()
            .map(|n| self.dev_root.join(n))
            .collect();
        if !via_sysfs.is_empty() {
            return via_sysfs;
        }
        self.serial
            .as_deref()
            .map(|s| by_id_devices(&self.dev_root, s))
            .unwrap_or_default()
    }

    fn mount(&mut self, device: &Path) -> Result<PathBuf, LocateError> {
        let fail = |reason: String| LocateError::Mount {
            device: device.to_owned(),
            target: self.mount_dir.clone(),
            reason,
        };
        std::fs::create_dir_all(&self.mount_dir).map_err(|e| fail(e.to_string()))?;
        let mut options = vec!["nosuid", "nodev", "noexec"];
        options.extend(
            self.mount_options
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty() && !matches!(*o, "suid" | "dev" | "exec" | "defaults")),
        );
        let out = Command::new("mount")
            .arg("-o")
            .arg(options.join(","))
            .arg(device)
            .arg(&self.mount_dir)
            .output()
            .map_err(|e| fail(format!("cannot run mount: {e}")))?;
        if !out.status.success() {
            return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
        }
        self.mounted = Some(self.mount_dir.clone());
        Ok(self.mount_dir.clone())
    }
}

impl VolumeLocator for SysfsLocator {
    fn locate(&mut self, timeout: Duration) -> Result<PathBuf, LocateError> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.present() {
                return Err(LocateError::Gone);
            }
            let mountinfo = std::fs::read_to_string(&self.mountinfo).unwrap_or_default();
            let candidates = self.candidates();
            if let Some((device, mp)) = candidates
                .iter()
                .find_map(|d| mount_point_of(&mountinfo, d).map(|mp| (d.clone(), mp)))
            {
                self.located = Some((device, mp.clone()));
                return Ok(mp);
            }
            if let Some(device) = candidates.first() {
                if device.exists() {
                    // A removable LUN shows up before its medium does (a
                    // recorder inserts it after the unlock): mounting fails
                    // with "no medium" until then, so keep trying until the
                    // deadline and report the last failure.
                    match self.mount(&device.clone()) {
                        Ok(dir) => {
                            self.located = Some((device.clone(), dir.clone()));
                            return Ok(dir);
                        }
                        Err(e) if Instant::now() >= deadline => return Err(e),
                        Err(e) => tracing::debug!(error = %e, "volume not ready yet"),
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(LocateError::Timeout {
                    waited: timeout,
                    looked: format!(
                        "block devices under USB device {} in {}/class/block{}",
                        self.usb_name,
                        self.sys_root.display(),
                        self.serial
                            .as_deref()
                            .map(|s| format!(
                                " and usb-*{s}* in {}/disk/by-id",
                                self.dev_root.display()
                            ))
                            .unwrap_or_default()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn present(&mut self) -> bool {
        self.sys_root
            .join("bus/usb/devices")
            .join(&self.usb_name)
            .exists()
    }

    fn medium(&self) -> Medium {
        let (device, mount_point) = self
            .located
            .clone()
            .unwrap_or_else(|| (PathBuf::new(), self.mount_dir.clone()));
        Arc::new(SysfsMedium::capture(
            &self.sys_root,
            &self.usb_name,
            &device,
            &mount_point,
        ))
    }

    fn release(&mut self) {
        if let Some(dir) = self.mounted.take() {
            match Command::new("umount").arg(&dir).output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    tracing::warn!(dir = %dir.display(), error = %String::from_utf8_lossy(&o.stderr).trim(), "umount failed")
                }
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot run umount"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn finds_partitions_through_the_usb_node() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        let dev = sys.join(
            "devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host3/target3:0:0/3:0:0:0/block/sdb",
        );
        std::fs::create_dir_all(dev.join("sdb1")).unwrap();
        std::fs::write(dev.join("sdb1/partition"), "1").unwrap();
        let other = sys.join(
            "devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/host4/target4:0:0/4:0:0:0/block/sdc",
        );
        std::fs::create_dir_all(&other).unwrap();
        std::fs::create_dir_all(sys.join("class/block")).unwrap();
        symlink(&dev, sys.join("class/block/sdb")).unwrap();
        symlink(dev.join("sdb1"), sys.join("class/block/sdb1")).unwrap();
        symlink(&other, sys.join("class/block/sdc")).unwrap();
        assert_eq!(block_devices_of(&sys, "1-2"), ["sdb1"]);
        assert_eq!(block_devices_of(&sys, "1-3"), ["sdc"]);
        assert!(block_devices_of(&sys, "1-4").is_empty());
        assert!(block_devices_of(&sys, "1-2.1").is_empty());
        assert_eq!(usb_sysfs_name(1, &[2, 4]), "1-2.4");
    }

    #[test]
    fn by_id_and_mountinfo() {
        let t = tempfile::tempdir().unwrap();
        let dev = t.path().join("dev");
        std::fs::create_dir_all(dev.join("disk/by-id")).unwrap();
        std::fs::write(dev.join("sdb"), "").unwrap();
        std::fs::write(dev.join("sdb1"), "").unwrap();
        symlink(
            dev.join("sdb"),
            dev.join("disk/by-id/usb-Custos_Sim_SIM0001-0:0"),
        )
        .unwrap();
        symlink(
            dev.join("sdb1"),
            dev.join("disk/by-id/usb-Custos_Sim_SIM0001-0:0-part1"),
        )
        .unwrap();
        let found = by_id_devices(&dev, "SIM0001");
        assert_eq!(found[0].file_name().unwrap(), "sdb1");
        assert!(by_id_devices(&dev, "").is_empty());

        let info = "36 35 98:0 / /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    40 35 8:17 / /run/custos/media/slot\\0401 rw,nosuid - vfat /dev/sdb1 rw,fmask=0022\n";
        assert_eq!(
            mount_point_of(info, Path::new("/dev/sdb1")),
            Some(PathBuf::from("/run/custos/media/slot 1"))
        );
        assert_eq!(mount_point_of(info, Path::new("/dev/sdc1")), None);
    }

    #[test]
    fn a_volume_whose_medium_comes_late_is_waited_for() {
        // The block device is there but cannot be mounted yet (an empty
        // file is no file system: a removable LUN without its medium);
        // someone mounts it a moment later. locate keeps trying instead of
        // failing on the first attempt.
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        let node = sys.join("devices/usb3/3-1/3-1:1.0/host1/block/sdq");
        std::fs::create_dir_all(&node).unwrap();
        std::fs::create_dir_all(sys.join("class/block")).unwrap();
        std::fs::create_dir_all(sys.join("bus/usb/devices/3-1")).unwrap();
        symlink(&node, sys.join("class/block/sdq")).unwrap();
        let dev = t.path().join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("sdq"), "").unwrap();
        let mi = t.path().join("mountinfo");
        std::fs::write(&mi, "").unwrap();
        let line = format!(
            "51 35 8:64 / /media/late rw - vfat {} rw\n",
            dev.join("sdq").display()
        );
        let writer = {
            let mi = mi.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(700));
                std::fs::write(mi, line).unwrap();
            })
        };
        let mut l = SysfsLocator::new(3, &[1], None, &t.path().join("mnt"), "usb-3-1", "")
            .with_roots(&sys, &dev, &mi);
        let found = l.locate(Duration::from_secs(20));
        writer.join().unwrap();
        assert_eq!(found.unwrap(), PathBuf::from("/media/late"));

        // Never mountable: the mount error, once the time is up.
        std::fs::write(&mi, "").unwrap();
        let start = Instant::now();
        let err = l.locate(Duration::from_millis(600)).unwrap_err();
        assert!(matches!(err, LocateError::Mount { .. }), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(600));
    }

    #[test]
    fn locate_finds_a_mounted_volume_and_notices_unplug() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        let node = sys.join("devices/usb1/1-5/1-5:1.0/host1/block/sdd");
        std::fs::create_dir_all(&node).unwrap();
        std::fs::create_dir_all(sys.join("class/block")).unwrap();
        std::fs::create_dir_all(sys.join("bus/usb/devices/1-5")).unwrap();
        symlink(&node, sys.join("class/block/sdd")).unwrap();
        let dev = t.path().join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("sdd"), "").unwrap();
        let mi = t.path().join("mountinfo");
        std::fs::write(
            &mi,
            format!(
                "50 35 8:48 / /media/rec rw - vfat {} rw\n",
                dev.join("sdd").display()
            ),
        )
        .unwrap();
        let mut l =
            SysfsLocator::new(1, &[5], None, t.path(), "usb-1-5", "").with_roots(&sys, &dev, &mi);
        assert_eq!(
            l.locate(Duration::from_secs(1)).unwrap(),
            PathBuf::from("/media/rec")
        );
        std::fs::remove_dir(sys.join("bus/usb/devices/1-5")).unwrap();
        assert!(matches!(
            l.locate(Duration::from_secs(1)),
            Err(LocateError::Gone)
        ));
    }

    #[test]
    fn the_medium_check_notices_unplug_and_replug() {
        // A fake sysfs: USB device 2-1 (device number 5) with disk sde
        // (8:64), mounted (per mountinfo) on a directory of the test.
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        let node = sys.join("devices/usb2/2-1/2-1:1.0/host1/block/sde");
        std::fs::create_dir_all(&node).unwrap();
        std::fs::write(node.join("dev"), "8:64\n").unwrap();
        std::fs::create_dir_all(sys.join("class/block")).unwrap();
        std::fs::create_dir_all(sys.join("dev/block")).unwrap();
        symlink(&node, sys.join("class/block/sde")).unwrap();
        symlink(&node, sys.join("dev/block/8:64")).unwrap();
        let usb = sys.join("bus/usb/devices/2-1");
        std::fs::create_dir_all(&usb).unwrap();
        std::fs::write(usb.join("devnum"), "5\n").unwrap();
        let dev = t.path().join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("sde"), "").unwrap();
        let mnt = t.path().join("media");
        std::fs::create_dir_all(&mnt).unwrap();
        let mi = t.path().join("mountinfo");
        std::fs::write(
            &mi,
            format!(
                "52 35 8:64 / {} rw - vfat {} rw\n",
                mnt.display(),
                dev.join("sde").display()
            ),
        )
        .unwrap();
        let mut l = SysfsLocator::new(2, &[1], None, &t.path().join("mnt"), "usb-2-1", "")
            .with_roots(&sys, &dev, &mi);
        assert_eq!(l.locate(Duration::from_secs(1)).unwrap(), mnt);
        let medium = l.medium();
        medium.still_attached().unwrap();

        // Replugged: the same port, a new device number.
        std::fs::write(usb.join("devnum"), "6\n").unwrap();
        let e = medium.still_attached().unwrap_err();
        assert!(e.contains("new device"), "{e}");
        std::fs::write(usb.join("devnum"), "5\n").unwrap();
        // The disk gone (the USB node not yet).
        std::fs::remove_file(sys.join("dev/block/8:64")).unwrap();
        let e = medium.still_attached().unwrap_err();
        assert!(e.contains("sde"), "{e}");
        symlink(&node, sys.join("dev/block/8:64")).unwrap();
        medium.still_attached().unwrap();
        // Unplugged.
        std::fs::remove_file(usb.join("devnum")).unwrap();
        std::fs::remove_dir(&usb).unwrap();
        let e = medium.still_attached().unwrap_err();
        assert!(e.contains("unplugged"), "{e}");
    }
}
