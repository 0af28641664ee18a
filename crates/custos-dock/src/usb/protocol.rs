//! A recorder's vendor protocol, as its firmware profile describes it:
//! identify, unlock, read the clock, set the clock — each a short sequence
//! of USB control transfers.
//!
//! The transfers go through a [`ControlChannel`]: the real device through
//! rusb ([`super::rusb_link`]), or an in-process simulation of the same
//! protocol ([`super::simulated`]). So this module, and everything above it,
//! runs the same whether a recorder is plugged in or simulated.
//!
//! Answers are outside input: an identify answer is parsed as bounded
//! `key=value` text, a clock answer must have the profile's encoding, and a
//! mismatched `expect` stops the unlock with the bytes received.
//!
//! This module never logs the unlock password, and never sends a transfer
//! the profile did not describe.

use std::collections::BTreeMap;
use std::time::Duration;

use time::{OffsetDateTime, UtcOffset};

use crate::profile::{
    ClockEncoding, ControlTransfer, Direction, Payload, Recipient, RequestType, UsbSpec,
};

/// The setup fields of one control transfer (USB 2.0 §9.3), without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// `bmRequestType` type bits.
    pub request_type: RequestType,
    /// `bmRequestType` recipient bits.
    pub recipient: Recipient,
    /// `bRequest`.
    pub request: u8,
    /// `wValue`.
    pub value: u16,
    /// `wIndex`.
    pub index: u16,
}

impl Setup {
    /// The `bmRequestType` byte for direction `device_to_host`.
    pub fn request_type_byte(&self, device_to_host: bool) -> u8 {
        let dir = if device_to_host { 0x80 } else { 0x00 };
        let kind = match self.request_type {
            RequestType::Standard => 0x00,
            RequestType::Class => 0x20,
            RequestType::Vendor => 0x40,
        };
        let recipient = match self.recipient {
            Recipient::Device => 0x00,
            Recipient::Interface => 0x01,
            Recipient::Endpoint => 0x02,
            Recipient::Other => 0x03,
        };
        dir | kind | recipient
    }
}

impl From<&ControlTransfer> for Setup {
    fn from(t: &ControlTransfer) -> Setup {
        Setup {
            request_type: t.request_type,
            recipient: t.recipient,
            request: t.request,
            value: t.value,
            index: t.index,
        }
    }
}

/// Why a control transfer failed, as the channel reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The device is gone (unplugged).
    #[error("the device is gone")]
    NoDevice,
    /// The device did not answer in time.
    #[error("the device did not answer in time")]
    Timeout,
    /// The device stalled the request (it does not know it, or refused it).
    #[error("the device refused the request (stall)")]
    Stall,
    /// The dock may not talk to the device (permissions; see deploy/udev).
    #[error("access to the device was denied (is the udev rule installed?)")]
    Access,
    /// Anything else the USB stack reported.
    #[error("USB error: {0}")]
    Other(String),
}

/// Something that carries control transfers to a recorder.
pub trait ControlChannel: Send {
    /// A device-to-host transfer: read up to `length` bytes.
    fn control_in(
        &mut self,
        setup: Setup,
        length: u16,
        timeout: Duration,
    ) -> Result<Vec<u8>, ChannelError>;
    /// A host-to-device transfer: send `data`.
    fn control_out(
        &mut self,
        setup: Setup,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), ChannelError>;
}

/// Why a protocol step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A transfer failed.
    #[error("{step}: request 0x{request:02x}: {source}")]
    Transfer {
        /// The step (`identify`, `unlock step 2`, ...).
        step: String,
        /// `bRequest`.
        request: u8,
        /// The channel's error.
        #[source]
        source: ChannelError,
    },
    /// The device answered, but not what success looks like.
    #[error("{step}: the recorder answered {got} where {expected} means success{hint}")]
    Unexpected {
        /// The step.
        step: String,
        /// The answer, hex.
        got: String,
        /// The expected answer, hex.
        expected: String,
        /// Why that may be.
        hint: &'static str,
    },
    /// The answer cannot be read in the profile's format.
    #[error("{step}: cannot read the recorder's answer ({why})")]
    BadAnswer {
        /// The step.
        step: String,
        /// What is wrong.
        why: String,
    },
    /// The profile needs the unlock password and the dock has none.
    #[error("the profile's unlock sequence needs [dock] unlock_password, which is not set")]
    NoPassword,
    /// The profile has no such request.
    #[error("the profile describes no {0} request")]
    NotDescribed(&'static str),
}

/// What an identify request answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// `device_id`.
    pub device_id: Option<String>,
    /// `officer_id`.
    pub officer_id: Option<String>,
    /// `firmware`.
    pub firmware: Option<String>,
    /// `model`.
    pub model: Option<String>,
    /// Every pair, as answered.
    pub fields: BTreeMap<String, String>,
}

/// Longest value kept from an identify answer.
const MAX_FIELD: usize = 128;

impl DeviceInfo {
    /// Parse `key=value` pairs separated by `;` or newlines; NUL padding and
    /// whitespace are ignored; keys and values must be printable ASCII or
    /// UTF-8 and are cut to 128 bytes.
    pub fn parse(answer: &[u8]) -> Result<DeviceInfo, String> {
        let end = answer.iter().position(|b| *b == 0).unwrap_or(answer.len());
        let text = std::str::from_utf8(&answer[..end])
            .map_err(|_| "the answer is not UTF-8 text".to_owned())?;
        let mut info = DeviceInfo::default();
        for pair in text
            .split([';', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value"))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || k.chars().any(char::is_control) || v.chars().any(char::is_control) {
                return Err(format!("{pair:?} has an empty key or control characters"));
            }
            let cut = |s: &str| {
                let mut end = s.len().min(MAX_FIELD);
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s[..end].to_owned()
            };
            info.fields.insert(cut(k), cut(v));
        }
        let get = |k: &str| info.fields.get(k).filter(|v| !v.is_empty()).cloned();
        info.device_id = get("device_id");
        info.officer_id = get("officer_id");
        info.firmware = get("firmware");
        info.model = get("model");
        Ok(info)
    }
}

/// Encode `t` for a clock transfer.
pub fn encode_clock(
    t: OffsetDateTime,
    encoding: &ClockEncoding,
    zone: UtcOffset,
) -> Result<Vec<u8>, String> {
    let secs = t.unix_timestamp();
    Ok(match encoding {
        ClockEncoding::UnixLeU32 => u32::try_from(secs)
            .map_err(|_| "time out of range")?
            .to_le_bytes()
            .to_vec(),
        ClockEncoding::UnixBeU32 => u32::try_from(secs)
            .map_err(|_| "time out of range")?
            .to_be_bytes()
            .to_vec(),
        ClockEncoding::UnixLeU64 => u64::try_from(secs)
            .map_err(|_| "time out of range")?
            .to_le_bytes()
            .to_vec(),
        ClockEncoding::Text(format) => t
            .to_offset(zone)
            .format(format)
            .map_err(|e| e.to_string())?
            .into_bytes(),
    })
}

/// Decode a clock answer.
pub fn decode_clock(
    bytes: &[u8],
    encoding: &ClockEncoding,
    zone: UtcOffset,
) -> Result<OffsetDateTime, String> {
    let secs: i64 = match encoding {
        ClockEncoding::UnixLeU32 => i64::from(u32::from_le_bytes(fixed(bytes)?)),
        ClockEncoding::UnixBeU32 => i64::from(u32::from_be_bytes(fixed(bytes)?)),
        ClockEncoding::UnixLeU64 => i64::try_from(u64::from_le_bytes(fixed(bytes)?))
            .map_err(|_| "time out of range".to_owned())?,
        ClockEncoding::Text(format) => {
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            let text = std::str::from_utf8(&bytes[..end]).map_err(|_| "not text".to_owned())?;
            return time::PrimitiveDateTime::parse(text.trim(), format)
                .map(|t| t.assume_offset(zone).to_offset(UtcOffset::UTC))
                .map_err(|e| format!("{text:?}: {e}"));
        }
    };
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| "time out of range".to_owned())
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("expected {N} bytes, got {}", bytes.len()))
}

/// Run one transfer of the profile; returns the answer of an IN transfer.
fn run(
    channel: &mut dyn ControlChannel,
    step: &str,
    t: &ControlTransfer,
    password: Option<&[u8]>,
    clock: Option<&[u8]>,
) -> Result<Vec<u8>, ProtocolError> {
    let setup = Setup::from(t);
    let fail = |source| ProtocolError::Transfer {
        step: step.to_owned(),
        request: t.request,
        source,
    };
    match &t.direction {
        Direction::In { length, expect } => {
            let got = channel
                .control_in(setup, *length, t.timeout)
                .map_err(fail)?;
            if let Some(expected) = expect {
                if !got.starts_with(expected) {
                    return Err(ProtocolError::Unexpected {
                        step: step.to_owned(),
                        got: hex::encode(&got),
                        expected: hex::encode(expected),
                        hint: if step.starts_with("unlock") {
                            " (a wrong unlock password?)"
                        } else {
                            ""
                        },
                    });
                }
            }
            Ok(got)
        }
        Direction::Out(payload) => {
            let data: &[u8] = match payload {
                Payload::Bytes(b) => b,
                Payload::Password => password.ok_or(ProtocolError::NoPassword)?,
                Payload::Clock => clock.ok_or(ProtocolError::NotDescribed("clock value"))?,
            };
            channel.control_out(setup, data, t.timeout).map_err(fail)?;
            Ok(Vec::new())
        }
    }
}

/// Ask the recorder who it is (the profile's identify request).
pub fn identify(
    channel: &mut dyn ControlChannel,
    usb: &UsbSpec,
) -> Result<DeviceInfo, ProtocolError> {
    let t = usb
        .identify
        .as_ref()
        .ok_or(ProtocolError::NotDescribed("identify"))?;
    let answer = run(channel, "identify", t, None, None)?;
    DeviceInfo::parse(&answer).map_err(|why| ProtocolError::BadAnswer {
        step: "identify".into(),
        why,
    })
}

/// Run the unlock sequence with `password` (`None` if the dock has none).
pub fn unlock(
    channel: &mut dyn ControlChannel,
    usb: &UsbSpec,
    password: Option<&[u8]>,
) -> Result<(), ProtocolError> {
    if usb.needs_password() && password.is_none() {
        return Err(ProtocolError::NoPassword);
    }
    for (i, t) in usb.unlock.iter().enumerate() {
        run(
            channel,
            &format!("unlock step {}", i + 1),
            t,
            password,
            None,
        )?;
    }
    Ok(())
}

/// Read the recorder's clock.
pub fn read_clock(
    channel: &mut dyn ControlChannel,
    usb: &UsbSpec,
    zone: UtcOffset,
) -> Result<OffsetDateTime, ProtocolError> {
    let (t, encoding) = usb
        .clock_read
        .as_ref()
        .ok_or(ProtocolError::NotDescribed("clock_read"))?;
    let answer = run(channel, "clock read", t, None, None)?;
    decode_clock(&answer, encoding, zone).map_err(|why| ProtocolError::BadAnswer {
        step: "clock read".into(),
        why,
    })
}

/// Set the recorder's clock to `now`.
pub fn set_clock(
    channel: &mut dyn ControlChannel,
    usb: &UsbSpec,
    zone: UtcOffset,
    now: OffsetDateTime,
) -> Result<(), ProtocolError> {
    let (t, encoding) = usb
        .clock_set
        .as_ref()
        .ok_or(ProtocolError::NotDescribed("clock_set"))?;
    let bytes = encode_clock(now, encoding, zone).map_err(|why| ProtocolError::BadAnswer {
        step: "clock set".into(),
        why,
    })?;
    run(channel, "clock set", t, None, Some(&bytes)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_answers() {
        let i =
            DeviceInfo::parse(b"device_id=SIM0001;officer_id=100234\nfirmware=1.2;model=X\0\0\0")
                .unwrap();
        assert_eq!(i.device_id.as_deref(), Some("SIM0001"));
        assert_eq!(i.officer_id.as_deref(), Some("100234"));
        assert_eq!(i.firmware.as_deref(), Some("1.2"));
        for bad in [&b"novalue"[..], b"a=\x01", b"\xff=1", b"=x"] {
            assert!(DeviceInfo::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("device_id={}", "9".repeat(500));
        assert_eq!(
            DeviceInfo::parse(long.as_bytes())
                .unwrap()
                .device_id
                .unwrap()
                .len(),
            MAX_FIELD
        );
    }

    #[test]
    fn clock_encodings_round_trip() {
        let t = time::macros::datetime!(2024-05-01 08:30:00 UTC);
        let zone = time::macros::offset!(+08:00);
        let text = ClockEncoding::Text(
            time::format_description::parse_owned::<2>("[year][month][day][hour][minute][second]")
                .unwrap(),
        );
        for e in [
            ClockEncoding::UnixLeU32,
            ClockEncoding::UnixLeU64,
            ClockEncoding::UnixBeU32,
            text.clone(),
        ] {
            let b = encode_clock(t, &e, zone).unwrap();
            assert_eq!(decode_clock(&b, &e, zone).unwrap(), t, "{e:?}");
        }
        assert_eq!(encode_clock(t, &text, zone).unwrap(), b"20240501163000");
        assert!(decode_clock(b"\x01\x02", &ClockEncoding::UnixLeU32, zone).is_err());
    }

    #[test]
    fn request_type_bytes() {
        let s = Setup {
            request_type: RequestType::Vendor,
            recipient: Recipient::Device,
            request: 1,
            value: 0,
            index: 0,
        };
        assert_eq!(s.request_type_byte(true), 0xC0);
        assert_eq!(s.request_type_byte(false), 0x40);
    }
}
