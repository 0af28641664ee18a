//! `custos-recorder-sim`: a simulated 执法记录仪 (GA/T 947-style body camera)
//! presented as a real USB device through the Linux gadget framework
//! (configfs, on any UDC — `dummy_hcd` in the rig of `tests/usb/`).
//!
//! The gadget has the vendor and product id of a firmware profile
//! (`[usb] vendor_id`, the first of `product_ids`), the profile's model as
//! its product string, and a serial number of its own. It has two
//! functions:
//!
//! - mass storage, one removable LUN backed by a FAT image (which must be
//!   writable: the dock wipes what it ingested). The LUN has no medium until
//!   the vendor unlock succeeds, so the storage stays hidden from the host;
//! - a FunctionFS vendor interface that answers the simulated recorder's
//!   control requests (vendor, to the device), the protocol of
//!   `firmware-profiles/simulated.toml` and `custos_dock::usb::simulated`:
//!   `0x01` identify, `0x02` unlock (the password), `0x03` unlock status,
//!   `0x04` clock read and `0x05` clock set (Unix seconds, little-endian
//!   u64). Anything else stalls.
//!
//! Signals: `SIGUSR1` unplugs (unbinds the gadget from its UDC), `SIGUSR2`
//! plugs it back in; `SIGTERM`/`SIGINT` remove the gadget and exit. An
//! unplugged recorder locks itself again, as a real one powers down.
//!
//! Each request is logged on standard error as one line (never the
//! password).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use serde::Deserialize;
use usb_gadget::function::custom::{Custom, Event, Interface};
use usb_gadget::function::msd::{Lun, Msd};
use usb_gadget::{Class, Config, Gadget, Id, Strings};

/// `bRequest` of identify (IN).
const REQ_IDENTIFY: u8 = 0x01;
/// `bRequest` of unlock (OUT, the password).
const REQ_UNLOCK: u8 = 0x02;
/// `bRequest` of the unlock status (IN, one byte).
const REQ_UNLOCK_STATUS: u8 = 0x03;
/// `bRequest` of clock read (IN, 8 bytes).
const REQ_CLOCK_READ: u8 = 0x04;
/// `bRequest` of clock set (OUT, 8 bytes).
const REQ_CLOCK_SET: u8 = 0x05;
/// bmRequestType type bits of a vendor request.
const TYPE_VENDOR: u8 = 0x40;
const TYPE_MASK: u8 = 0x60;

#[derive(Debug, Parser)]
#[command(
    name = "custos-recorder-sim",
    about = "A simulated body-worn camera as a USB gadget (configfs + FunctionFS)"
)]
struct Args {
    /// The firmware profile whose [usb] ids and model the gadget takes.
    #[arg(long)]
    profile: PathBuf,
    /// The FAT image behind the mass-storage LUN (absolute, writable).
    #[arg(long)]
    image: PathBuf,
    /// USB serial number (the recorder id of profiles with id_from = "serial").
    #[arg(long)]
    serial: String,
    /// identify's device_id (default: the serial number).
    #[arg(long)]
    device_id: Option<String>,
    /// identify's officer_id.
    #[arg(long)]
    officer_id: String,
    /// identify's firmware.
    #[arg(long, default_value = "SIM-1.0.0")]
    firmware: String,
    /// The unlock password this recorder accepts.
    #[arg(long, env = "CUSTOS_SIM_PASSWORD", hide_env_values = true)]
    password: String,
    /// How far the recorder's clock runs ahead of real time, in seconds
    /// (negative: behind).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    clock_skew_secs: i64,
    /// The UDC to bind to (e.g. dummy_udc.0); default: the first one.
    #[arg(long)]
    udc: Option<String>,
    /// Write the gadget's configfs path to this file once it is bound.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct ProfileFile {
    name: String,
    model: String,
    usb: Option<ProfileUsb>,
}

#[derive(Debug, Deserialize)]
struct ProfileUsb {
    vendor_id: u16,
    product_ids: Vec<u16>,
}

/// The recorder's state behind its vendor interface.
#[derive(Debug)]
struct Recorder {
    identify: String,
    password: Vec<u8>,
    unlocked: bool,
    /// Recorder clock minus real time, seconds.
    skew: i64,
    image: PathBuf,
}

#[expect(
    clippy::disallowed_methods,
    reason = "a simulated recorder's clock is the wall clock plus its skew"
)]
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custos-recorder-sim: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.profile)
        .with_context(|| format!("reading {}", args.profile.display()))?;
    let profile: ProfileFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", args.profile.display()))?;
    let Some(usb) = profile.usb else {
        bail!(
            "{}: the profile has no [usb] section",
            args.profile.display()
        );
    };
    let Some(&product_id) = usb.product_ids.first() else {
        bail!("{}: [usb] product_ids is empty", args.profile.display());
    };
    if !args.image.is_absolute() || !args.image.is_file() {
        bail!(
            "--image {}: must be an existing file, given by an absolute path",
            args.image.display()
        );
    }
    let device_id = args
        .device_id
        .clone()
        .unwrap_or_else(|| args.serial.clone());
    let recorder = Arc::new(Mutex::new(Recorder {
        identify: format!(
            "device_id={device_id};officer_id={};firmware={};model={}",
            args.officer_id, args.firmware, profile.model
        ),
        password: args.password.as_bytes().to_vec(),
        unlocked: false,
        skew: args.clock_skew_secs,
        image: args.image.clone(),
    }));

    let udc = match &args.udc {
        Some(name) => usb_gadget::udcs()
            .context("listing UDCs")?
            .into_iter()
            .find(|u| u.name() == name.as_str())
            .with_context(|| format!("no UDC named {name}"))?,
        None => usb_gadget::default_udc().context("no USB device controller (load dummy_hcd)")?,
    };

    // Mass storage: one removable LUN with no medium until unlocked.
    let mut lun = Lun::empty();
    lun.removable = true;
    lun.inquiry_string = "Custos  SimRecorder     1.00".into();
    let mut msd_builder = Msd::builder();
    msd_builder.add_lun(lun);
    let (msd, msd_handle) = msd_builder.build();

    // The vendor interface: no endpoints, control requests to the device.
    let mut custom_builder = Custom::builder().with_interface(Interface::new(
        Class::vendor_specific(0x01, 0x01),
        "Custos recorder control",
    ));
    custom_builder.all_ctrl_recipient = true;
    let (mut custom, custom_handle) = custom_builder.build();

    let gadget = Gadget::new(
        Class::INTERFACE_SPECIFIC,
        Id::new(usb.vendor_id, product_id),
        Strings::new("Custos", &profile.model, &args.serial),
    )
    .with_config(
        Config::new("recorder")
            .with_function(msd_handle)
            .with_function(custom_handle),
    );
    let reg = gadget
        .bind(&udc)
        .context("registering and binding the gadget")?;
    let gadget_path = reg.path().to_owned();
    eprintln!(
        "custos-recorder-sim: {} serial {} ({:04x}:{:04x}, profile {}) on {}",
        gadget_path.display(),
        args.serial,
        usb.vendor_id,
        product_id,
        profile.name,
        udc.name().to_string_lossy()
    );
    if let Some(f) = &args.ready_file {
        std::fs::write(f, format!("{}\n", gadget_path.display()))
            .with_context(|| format!("writing {}", f.display()))?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let thread_rec = recorder.clone();
    let control = std::thread::Builder::new()
        .name("ffs-ep0".into())
        .spawn(move || serve_ep0(&mut custom, &msd, &thread_rec, &thread_stop))
        .context("starting the control thread")?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal runtime")?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut unplug = signal(SignalKind::user_defined1())?;
        let mut plug = signal(SignalKind::user_defined2())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = unplug.recv() => {
                    eprintln!("custos-recorder-sim: unplugged");
                    if let Err(e) = reg.bind(None) {
                        eprintln!("custos-recorder-sim: unplugging failed: {e}");
                    }
                    lock(&recorder);
                }
                _ = plug.recv() => {
                    eprintln!("custos-recorder-sim: plugged in");
                    if let Err(e) = reg.bind(Some(&udc)) {
                        eprintln!("custos-recorder-sim: plugging in failed: {e}");
                    }
                }
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .context("waiting for signals")?;

    stop.store(true, Ordering::Relaxed);
    reg.remove().context("removing the gadget")?;
    match control.join() {
        Ok(r) => r,
        Err(_) => bail!("the control thread panicked"),
    }
}

/// An unplugged recorder is locked again when it next comes up.
fn lock(recorder: &Mutex<Recorder>) {
    if let Ok(mut r) = recorder.lock() {
        r.unlocked = false;
    }
}

/// Answer the vendor interface's control requests until `stop`.
fn serve_ep0(
    custom: &mut Custom,
    msd: &Msd,
    recorder: &Mutex<Recorder>,
    stop: &AtomicBool,
) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let event = match custom.event_timeout(Duration::from_millis(200)) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) if stop.load(Ordering::Relaxed) => {
                eprintln!("custos-recorder-sim: ep0 closed: {e}");
                break;
            }
            Err(e) => return Err(e).context("reading FunctionFS events"),
        };
        match event {
            Event::SetupDeviceToHost(sender) => {
                let req = sender.ctrl_req().clone();
                if req.request_type & TYPE_MASK != TYPE_VENDOR {
                    sender.halt().ok();
                    continue;
                }
                let answer = {
                    let r = recorder
                        .lock()
                        .map_err(|_| anyhow::anyhow!("state poisoned"))?;
                    match req.request {
                        REQ_IDENTIFY => Some(r.identify.as_bytes().to_vec()),
                        REQ_UNLOCK_STATUS => Some(vec![u8::from(r.unlocked)]),
                        REQ_CLOCK_READ => {
                            let t = u64::try_from(now_secs() + r.skew).unwrap_or(0);
                            Some(t.to_le_bytes().to_vec())
                        }
                        _ => None,
                    }
                };
                match answer {
                    Some(mut data) => {
                        data.truncate(usize::from(req.length));
                        eprintln!(
                            "custos-recorder-sim: request {:#04x} IN: {} bytes",
                            req.request,
                            data.len()
                        );
                        if let Err(e) = sender.send(&data) {
                            eprintln!("custos-recorder-sim: answering {:#04x}: {e}", req.request);
                        }
                    }
                    None => {
                        eprintln!(
                            "custos-recorder-sim: request {:#04x} IN: stall",
                            req.request
                        );
                        sender.halt().ok();
                    }
                }
            }
            Event::SetupHostToDevice(receiver) => {
                let req = receiver.ctrl_req().clone();
                if req.request_type & TYPE_MASK != TYPE_VENDOR
                    || !matches!(req.request, REQ_UNLOCK | REQ_CLOCK_SET)
                {
                    eprintln!(
                        "custos-recorder-sim: request {:#04x} OUT: stall",
                        req.request
                    );
                    receiver.halt().ok();
                    continue;
                }
                let data = match receiver.recv_all() {
                    Ok(d) => d,
                    Err(e) => {
                        eprintln!("custos-recorder-sim: receiving {:#04x}: {e}", req.request);
                        continue;
                    }
                };
                let mut r = recorder
                    .lock()
                    .map_err(|_| anyhow::anyhow!("state poisoned"))?;
                if req.request == REQ_UNLOCK {
                    let ok = data == r.password;
                    eprintln!(
                        "custos-recorder-sim: unlock {}",
                        if ok {
                            "accepted"
                        } else {
                            "refused: wrong password"
                        }
                    );
                    if ok && !r.unlocked {
                        // The medium appears only now.
                        if let Err(e) = msd.set_file(0, Some(&r.image)) {
                            eprintln!("custos-recorder-sim: inserting the medium: {e}");
                        } else {
                            r.unlocked = true;
                        }
                    } else if !ok {
                        r.unlocked = false;
                        if let Err(e) = msd.force_eject(0) {
                            eprintln!("custos-recorder-sim: ejecting the medium: {e}");
                        }
                    }
                } else {
                    match <[u8; 8]>::try_from(data.as_slice()) {
                        Ok(b) => {
                            let t = i64::try_from(u64::from_le_bytes(b)).unwrap_or(i64::MAX);
                            r.skew = t - now_secs();
                            eprintln!("custos-recorder-sim: clock set (skew now {} s)", r.skew);
                        }
                        Err(_) => eprintln!(
                            "custos-recorder-sim: clock set with {} bytes ignored",
                            data.len()
                        ),
                    }
                }
            }
            Event::Disable | Event::Unbind => {
                let was = recorder.lock().map(|r| r.unlocked).unwrap_or(false);
                lock(recorder);
                if was {
                    eprintln!("custos-recorder-sim: disconnected: locked, medium removed");
                    if let Err(e) = msd.force_eject(0) {
                        eprintln!("custos-recorder-sim: ejecting the medium: {e}");
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}
