//! The real USB side, through rusb (libusb): watching for recorders coming
//! and going (hotplug where libusb supports it, polling otherwise), reading
//! a device's ids and serial number, and carrying the profile's control
//! transfers ([`RusbChannel`]).
//!
//! Where there is no USB stack at all (containers, CI machines, kernels
//! built without USB), libusb fails to initialise: [`UsbWatcher::start`]
//! and [`enumerate`] return [`UsbError::Unavailable`], a clean error the
//! daemon logs once before carrying on with its directory slots. Nothing
//! here panics on a missing stack.
//!
//! This module never claims an interface the kernel's mass-storage driver
//! holds: control transfers to the device need no claim.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusb::{Context, Device, DeviceHandle, UsbContext as _};
use tokio::sync::mpsc;

use super::protocol::{ChannelError, ControlChannel, Setup};

/// Why the USB side could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsbError {
    /// libusb could not start: no USB stack, or no permission to it.
    #[error("USB is unavailable on this machine ({0}); only directory slots are served")]
    Unavailable(String),
    /// The device is no longer there.
    #[error("USB device {0} is gone")]
    Gone(String),
    /// Opening or reading the device failed.
    #[error("USB device {device}: {what}: {source}")]
    Device {
        /// `bus-port` of the device.
        device: String,
        /// What was being done.
        what: &'static str,
        /// libusb's error.
        #[source]
        source: rusb::Error,
    },
}

/// A USB device as seen on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsbDeviceInfo {
    /// Bus number.
    pub bus: u8,
    /// Address on the bus (changes on every plug).
    pub address: u8,
    /// Port path from the root hub (stable per physical port: the slot).
    pub ports: Vec<u8>,
    /// `idVendor`.
    pub vendor_id: u16,
    /// `idProduct`.
    pub product_id: u16,
}

impl UsbDeviceInfo {
    /// The slot name: `usb-<bus>-<port>.<port>…`, stable per physical port.
    pub fn slot(&self) -> String {
        format!(
            "usb-{}",
            super::locate::usb_sysfs_name(self.bus, &self.ports)
        )
    }

    fn of(device: &Device<Context>) -> Option<UsbDeviceInfo> {
        let d = device.device_descriptor().ok()?;
        Some(UsbDeviceInfo {
            bus: device.bus_number(),
            address: device.address(),
            ports: device.port_numbers().unwrap_or_default(),
            vendor_id: d.vendor_id(),
            product_id: d.product_id(),
        })
    }
}

/// A device arrived or left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsbEvent {
    /// A device was plugged in (or was there at start).
    Arrived(UsbDeviceInfo),
    /// A device was unplugged.
    Left(UsbDeviceInfo),
}

fn context() -> Result<Context, UsbError> {
    Context::new().map_err(|e| UsbError::Unavailable(e.to_string()))
}

/// The devices on the bus now. An unavailable USB stack is an error, never
/// a panic.
pub fn enumerate() -> Result<Vec<UsbDeviceInfo>, UsbError> {
    let ctx = context()?;
    let list = ctx
        .devices()
        .map_err(|e| UsbError::Unavailable(e.to_string()))?;
    let mut out: Vec<UsbDeviceInfo> = list.iter().filter_map(|d| UsbDeviceInfo::of(&d)).collect();
    out.sort();
    Ok(out)
}

/// Watches the bus and sends [`UsbEvent`]s until stopped or dropped.
#[derive(Debug)]
pub struct UsbWatcher {
    /// Set to stop the thread; the thread checks it at least every poll
    /// interval (or every event-handling timeout with hotplug).
    stop: Arc<AtomicBool>,
    /// The watching thread; joined on drop.
    thread: Option<JoinHandle<()>>,
    hotplug: bool,
}

impl UsbWatcher {
    /// Start watching. With libusb hotplug support the events come from
    /// libusb's callbacks; without, the bus is listed every `poll` and
    /// compared with the last listing.
    pub fn start(
        events: mpsc::UnboundedSender<UsbEvent>,
        poll: Duration,
    ) -> Result<UsbWatcher, UsbError> {
        let ctx = context()?;
        // Listing once proves the stack works before a thread is spent on it.
        ctx.devices()
            .map_err(|e| UsbError::Unavailable(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let hotplug = rusb::has_hotplug();
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("custos-usb-watch".into())
            .spawn(move || {
                if hotplug {
                    hotplug_loop(ctx, events, thread_stop, poll);
                } else {
                    poll_loop(ctx, events, thread_stop, poll);
                }
            })
            .map_err(|e| UsbError::Unavailable(format!("cannot start the USB thread: {e}")))?;
        Ok(UsbWatcher {
            stop,
            thread: Some(thread),
            hotplug,
        })
    }

    /// Whether libusb hotplug is used (else polling).
    pub fn uses_hotplug(&self) -> bool {
        self.hotplug
    }
}

impl Drop for UsbWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct HotplugSink {
    events: mpsc::UnboundedSender<UsbEvent>,
    /// Devices seen arriving, by (bus, address): a device that left may no
    /// longer answer for its descriptor.
    known: BTreeMap<(u8, u8), UsbDeviceInfo>,
}

impl rusb::Hotplug<Context> for HotplugSink {
    fn device_arrived(&mut self, device: Device<Context>) {
        if let Some(info) = UsbDeviceInfo::of(&device) {
            self.known.insert((info.bus, info.address), info.clone());
            let _ = self.events.send(UsbEvent::Arrived(info));
        }
    }

    fn device_left(&mut self, device: Device<Context>) {
        let key = (device.bus_number(), device.address());
        if let Some(info) = self
            .known
            .remove(&key)
            .or_else(|| UsbDeviceInfo::of(&device))
        {
            let _ = self.events.send(UsbEvent::Left(info));
        }
    }
}

fn hotplug_loop(
    ctx: Context,
    events: mpsc::UnboundedSender<UsbEvent>,
    stop: Arc<AtomicBool>,
    tick: Duration,
) {
    let sink = HotplugSink {
        events: events.clone(),
        known: BTreeMap::new(),
    };
    let registration = rusb::HotplugBuilder::new()
        .enumerate(true)
        .register(&ctx, Box::new(sink));
    let _registration = match registration {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "libusb hotplug registration failed; polling instead");
            return poll_loop(ctx, events, stop, tick);
        }
    };
    while !stop.load(Ordering::Relaxed) && !events.is_closed() {
        if let Err(e) = ctx.handle_events(Some(tick)) {
            tracing::warn!(error = %e, "libusb event handling failed");
            std::thread::sleep(tick);
        }
    }
}

fn poll_loop(
    ctx: Context,
    events: mpsc::UnboundedSender<UsbEvent>,
    stop: Arc<AtomicBool>,
    every: Duration,
) {
    let mut seen: BTreeMap<(u8, u8), UsbDeviceInfo> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) && !events.is_closed() {
        match ctx.devices() {
            Ok(list) => {
                let now: BTreeMap<(u8, u8), UsbDeviceInfo> = list
                    .iter()
                    .filter_map(|d| UsbDeviceInfo::of(&d))
                    .map(|i| ((i.bus, i.address), i))
                    .collect();
                for (k, info) in &seen {
                    if !now.contains_key(k) {
                        let _ = events.send(UsbEvent::Left(info.clone()));
                    }
                }
                for (k, info) in &now {
                    if !seen.contains_key(k) {
                        let _ = events.send(UsbEvent::Arrived(info.clone()));
                    }
                }
                seen = now;
            }
            Err(e) => tracing::warn!(error = %e, "listing USB devices failed"),
        }
        std::thread::sleep(every);
    }
}

/// An opened recorder: its handle, serial number and strings.
pub struct RusbDevice {
    handle: DeviceHandle<Context>,
    /// Where it is.
    pub info: UsbDeviceInfo,
    /// The serial number string, if it has one.
    pub serial: Option<String>,
    /// The product string, if it has one.
    pub product: Option<String>,
    /// The manufacturer string, if it has one.
    pub manufacturer: Option<String>,
}

impl std::fmt::Debug for RusbDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RusbDevice")
            .field("info", &self.info)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// Longest string descriptor kept (USB allows 126 UTF-16 units).
const MAX_STRING: usize = 126;

impl RusbDevice {
    /// Open the device now at `info.bus`/`info.address` (blocking).
    pub fn open(info: &UsbDeviceInfo) -> Result<RusbDevice, UsbError> {
        let name = info.slot();
        let ctx = context()?;
        let list = ctx
            .devices()
            .map_err(|e| UsbError::Unavailable(e.to_string()))?;
        let device = list
            .iter()
            .find(|d| d.bus_number() == info.bus && d.address() == info.address)
            .ok_or_else(|| UsbError::Gone(name.clone()))?;
        let descriptor = device
            .device_descriptor()
            .map_err(|source| UsbError::Device {
                device: name.clone(),
                what: "reading the device descriptor",
                source,
            })?;
        let handle = device.open().map_err(|source| UsbError::Device {
            device: name.clone(),
            what: "opening",
            source,
        })?;
        let text = |index: Option<u8>| {
            index
                .and_then(|i| handle.read_string_descriptor_ascii(i).ok())
                .map(|s| {
                    s.chars()
                        .filter(|c| !c.is_control())
                        .take(MAX_STRING)
                        .collect::<String>()
                })
                .filter(|s| !s.trim().is_empty())
        };
        let serial = text(descriptor.serial_number_string_index());
        let product = text(descriptor.product_string_index());
        let manufacturer = text(descriptor.manufacturer_string_index());
        Ok(RusbDevice {
            handle,
            info: info.clone(),
            serial,
            product,
            manufacturer,
        })
    }

    /// The control channel over this device.
    pub fn channel(self) -> RusbChannel {
        RusbChannel { device: self }
    }
}

/// Control transfers over rusb.
#[derive(Debug)]
pub struct RusbChannel {
    device: RusbDevice,
}

fn channel_error(e: rusb::Error) -> ChannelError {
    match e {
        rusb::Error::NoDevice => ChannelError::NoDevice,
        rusb::Error::Timeout => ChannelError::Timeout,
        rusb::Error::Pipe => ChannelError::Stall,
        rusb::Error::Access => ChannelError::Access,
        other => ChannelError::Other(other.to_string()),
    }
}

impl ControlChannel for RusbChannel {
    fn control_in(
        &mut self,
        setup: Setup,
        length: u16,
        timeout: Duration,
    ) -> Result<Vec<u8>, ChannelError> {
        let mut buf = vec![0u8; usize::from(length)];
        let n = self
            .device
            .handle
            .read_control(
                setup.request_type_byte(true),
                setup.request,
                setup.value,
                setup.index,
                &mut buf,
                timeout.max(Duration::from_millis(1)),
            )
            .map_err(channel_error)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn control_out(
        &mut self,
        setup: Setup,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), ChannelError> {
        let n = self
            .device
            .handle
            .write_control(
                setup.request_type_byte(false),
                setup.request,
                setup.value,
                setup.index,
                data,
                timeout.max(Duration::from_millis(1)),
            )
            .map_err(channel_error)?;
        if n != data.len() {
            return Err(ChannelError::Other(format!(
                "sent {n} of {} bytes",
                data.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_usb_stack_is_a_clean_answer() {
        // This machine may or may not have a USB stack; either answer is
        // fine, a panic is not.
        match enumerate() {
            Ok(devices) => {
                for d in devices {
                    assert!(d.slot().starts_with("usb-"));
                }
            }
            Err(e) => assert!(e.to_string().contains("USB is unavailable"), "{e}"),
        }
        let (tx, _rx) = mpsc::unbounded_channel();
        match UsbWatcher::start(tx, Duration::from_millis(50)) {
            Ok(w) => drop(w),
            Err(e) => assert!(matches!(e, UsbError::Unavailable(_)), "{e}"),
        }
    }

    #[test]
    fn slot_names_follow_the_port_path() {
        let i = UsbDeviceInfo {
            bus: 1,
            address: 9,
            ports: vec![2, 4],
            vendor_id: 0x1209,
            product_id: 0x0001,
        };
        assert_eq!(i.slot(), "usb-1-2.4");
    }
}
