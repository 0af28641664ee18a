//! Firmware profiles: the shipped ones load and mean what they say; a bad
//! one is refused with its file, line and reason.

use std::path::{Path, PathBuf};

use custos_dock::profile::{
    ClockSet, Direction, IdSource, Payload, Profile, ProfileError, Profiles, StorageKind,
};
use custos_dock::usb::protocol;
use custos_dock::usb::simulated::SimulatedRecorder;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware-profiles")
}

#[test]
fn shipped_profiles_load() {
    let p = Profiles::load_dir(&shipped()).unwrap();
    let names: Vec<_> = p.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["gat947", "generic-mass-storage", "simulated"]);

    let sim = p.get("simulated").unwrap();
    let usb = sim.usb.as_ref().unwrap();
    assert!(usb.matches(0x1209, 0x0001));
    assert_eq!(usb.id_from, IdSource::Serial);
    assert!(usb.needs_password());
    assert_eq!(usb.unlock.len(), 2);
    assert!(matches!(
        usb.unlock[0].direction,
        Direction::Out(Payload::Password)
    ));
    assert_eq!(sim.clock.set, ClockSet::Usb);
    assert_eq!(sim.storage.kind, StorageKind::UsbMassStorage);
    assert_eq!(p.for_usb(0x1209, 0x0001).unwrap().name, "simulated");
    assert!(
        p.for_usb(0x46f4, 0x0001).is_none(),
        "QEMU's usb-storage matches no profile"
    );

    let gat = p.get("gat947").unwrap();
    let names = gat.names.as_ref().unwrap();
    let f = names.fields(
        b"DSJ1A2B3C_012345_20240501163000_0001.MP4",
        gat.clock.time_zone,
    );
    assert_eq!(f.device.as_deref(), Some("DSJ1A2B3C"));
    assert_eq!(f.officer.as_deref(), Some("012345"));
    assert_eq!(
        f.start.unwrap(),
        time::macros::datetime!(2024-05-01 08:30:00 UTC)
    );
    assert!(gat.storage.is_footage(Path::new("Event/2024/A.mp4")));
    assert!(gat.storage.is_footage(Path::new("DCIM/100MEDIA/A.MP4")));
    assert!(!gat.storage.is_footage(Path::new("System/log.txt")));
    // A bad time in a matching name gives no start, not an error.
    let f = names.fields(b"DSJ1_012345_20241345163000_0001.MP4", gat.clock.time_zone);
    assert_eq!((f.start, f.device.as_deref()), (None, Some("DSJ1")));
    assert_eq!(
        names.fields(b"\xff\xfe.MP4", gat.clock.time_zone),
        Default::default()
    );

    let generic = p.get("generic-mass-storage").unwrap();
    assert!(generic.storage.is_footage(Path::new("a/b/c.MOV")));
    assert!(generic.names.is_none());
}

#[test]
fn the_simulated_profile_speaks_the_simulated_protocol() {
    let p = Profiles::load_dir(&shipped()).unwrap();
    let sim = p.get("simulated").unwrap();
    let usb = sim.usb.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rec = SimulatedRecorder::new("SIM0042", "100234", b"s3cret", dir.path().to_owned(), 3600);
    let mut ch = rec.channel();
    let info = protocol::identify(&mut ch, usb).unwrap();
    assert_eq!(info.device_id.as_deref(), Some("SIM0042"));
    assert_eq!(info.officer_id.as_deref(), Some("100234"));

    let wrong = protocol::unlock(&mut ch, usb, Some(b"guess")).unwrap_err();
    assert!(
        wrong.to_string().contains("wrong unlock password"),
        "{wrong}"
    );
    assert!(!rec.is_unlocked());
    assert!(matches!(
        protocol::unlock(&mut ch, usb, None),
        Err(protocol::ProtocolError::NoPassword)
    ));
    protocol::unlock(&mut ch, usb, Some(b"s3cret")).unwrap();
    assert!(rec.is_unlocked());

    let t = protocol::read_clock(&mut ch, usb, sim.clock.time_zone).unwrap();
    let skew = (t - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((3598..=3602).contains(&skew), "{skew}");
    protocol::set_clock(
        &mut ch,
        usb,
        sim.clock.time_zone,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert!(rec.clock_skew().abs() <= 1);

    rec.set_plugged(false);
    assert!(protocol::identify(&mut ch, usb)
        .unwrap_err()
        .to_string()
        .contains("gone"));
}

/// Parse `text` as `t.toml`; expect a refusal at `line` whose reason contains `reason`.
fn refused(text: &str, line: usize, reason: &str) {
    match Profile::parse(text, Path::new("t.toml")) {
        Err(ProfileError::Invalid {
            file,
            line: l,
            reason: r,
        }) => {
            assert_eq!(file, Path::new("t.toml"));
            assert_eq!(l, Some(line), "line of {r:?} in:\n{text}");
            assert!(r.contains(reason), "{r:?} should mention {reason:?}");
            let shown = ProfileError::Invalid {
                file,
                line: l,
                reason: r,
            }
            .to_string();
            assert!(shown.starts_with(&format!("t.toml:{line}: ")), "{shown}");
        }
        other => panic!("expected a refusal for:\n{text}\ngot {other:?}"),
    }
}

const OK: &str =
    "name = \"t\"\nmodel = \"m\"\n[storage]\nkind = \"directory\"\nglobs = [\"*.MP4\"]\n";

#[test]
fn bad_profiles_are_refused_with_line_and_reason() {
    Profile::parse(OK, Path::new("t.toml")).unwrap();
    refused(
        "name = \"t\"\nmodel = \"m\"\n[storage]\nkind = \"directory\"\nglobs = [\"*.MP4\"\n",
        6,
        "expected `]`",
    );
    refused("name = \"t\"\nmodel = \"m\"\ncolour = 1\n[storage]\nkind = \"directory\"\nglobs = [\"*\"]\n", 3, "colour");
    refused(
        "name = \"other\"\nmodel = \"m\"\n[storage]\nkind = \"directory\"\nglobs = [\"*\"]\n",
        1,
        "differs from the file name",
    );
    refused(
        "name = \"T!\"\nmodel = \"m\"\n[storage]\nkind = \"directory\"\nglobs = [\"*\"]\n",
        1,
        "use 1-64 of",
    );
    refused(
        "name = \"t\"\nmodel = \"m\"\n[storage]\nkind = \"floppy\"\nglobs = [\"*\"]\n",
        4,
        "expected \"usb-mass-storage\" or \"directory\"",
    );
    refused("name = \"t\"\nmodel = \"m\"\n[storage]\nkind = \"directory\"\nmedia_root = \"../etc\"\nglobs = [\"*\"]\n", 5, "relative path inside the volume");
    refused("name = \"t\"\nmodel = \"m\"\n[storage]\nkind = \"directory\"\nmedia_root = \"/etc\"\nglobs = [\"*\"]\n", 5, "relative path");
    refused(
        "name = \"t\"\nmodel = \"m\"\n[storage]\nkind = \"directory\"\nglobs = [\"a[\"]\n",
        5,
        "glob",
    );
    refused(
        "name = \"t\"\nmodel = \"m\"\n[storage]\nkind = \"directory\"\nglobs = []\n",
        5,
        "globs is empty",
    );
    refused(
        &format!("{OK}[names]\npattern = \"(?P<start>[0-9]+\"\nstart_format = \"[year]\"\n"),
        7,
        "not a valid regex",
    );
    refused(
        &format!("{OK}[names]\npattern = \"(?P<when>[0-9]+)\"\n"),
        7,
        "the groups are start, device and officer",
    );
    refused(
        &format!("{OK}[names]\npattern = \"(?P<start>[0-9]+)\"\n"),
        7,
        "no start_format",
    );
    refused(
        &format!(
            "{OK}[names]\npattern = \"(?P<start>[0-9]+)\"\nstart_format = \"[year][month]\"\n"
        ),
        8,
        "whole date and time",
    );
    refused(
        &format!("{OK}[names]\npattern = \"(?P<start>[0-9]+)\"\nstart_format = \"[yeer]\"\n"),
        8,
        "time format",
    );
    refused(
        &format!("{OK}[clock]\ntime_zone = \"Asia/Shanghai\"\n"),
        7,
        "fixed offset",
    );
    refused(
        &format!("{OK}[clock]\nset = \"usb\"\n"),
        7,
        "needs [usb.clock_set]",
    );
    refused(
        &format!("{OK}[clock]\nset = \"file\"\nfile = \"../t.txt\"\nfile_format = \"[year]\"\n"),
        8,
        "plain file name",
    );
    refused(
        "name = \"t\"\nmodel = \"m\"\n[storage]\nkind = \"usb-mass-storage\"\nglobs = [\"*\"]\n",
        4,
        "needs a [usb] section",
    );
    let usb = "[usb]\nvendor_id = 0x1209\nproduct_ids = [1]\n";
    refused(
        &format!("{OK}{usb}[usb.identify]\nrequest = 1\ndata = \"x\"\nlength = 4\n"),
        9,
        "not both",
    );
    refused(
        &format!("{OK}{usb}[[usb.unlock]]\nrequest = 300\n"),
        10,
        "u8",
    );
    refused(
        &format!("{OK}{usb}[[usb.unlock]]\nrequest = 1\nlength = 5000\n"),
        9,
        "length 5000",
    );
    refused(
        &format!("{OK}{usb}[[usb.unlock]]\nrequest = 1\nlength = 1\nexpect = \"zz\"\n"),
        9,
        "not hex",
    );
    refused(
        &format!("{OK}{usb}[[usb.unlock]]\nrequest = 1\ndata = \"{{clock}}\"\n"),
        9,
        "only meaningful in clock_set",
    );
    refused(
        &format!("{OK}{usb}[[usb.unlock]]\nrequest = 1\ndata = \"{{pass}}\"\n"),
        9,
        "placeholders",
    );
    refused(
        &format!("{OK}{usb}[usb.clock_read]\nrequest = 4\nlength = 8\n"),
        9,
        "needs clock_encoding",
    );
    refused(
        &format!("{OK}[usb]\nvendor_id = 0x1209\nproduct_ids = []\n"),
        8,
        "product_ids is empty",
    );
    refused(
        &format!("{OK}[usb]\nvendor_id = 70000\nproduct_ids = [1]\n"),
        7,
        "u16",
    );
    refused(
        &format!("{OK}{usb}id_from = \"identify\"\n"),
        9,
        "needs [usb.identify]",
    );
}

#[test]
fn a_bad_file_in_the_directory_refuses_the_set_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.toml"), OK).unwrap();
    Profiles::load_dir(dir.path()).unwrap();
    std::fs::write(dir.path().join("u.toml"), "name = \"u\"\nmodel = 3\n").unwrap();
    let e = Profiles::load_dir(dir.path()).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("u.toml:2:"), "{shown}");
    let e = Profiles::load_dir(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, ProfileError::Io { .. }));
    let set = Profiles::load_dir(&shipped()).unwrap();
    assert!(matches!(
        set.get("nope"),
        Err(ProfileError::NotFound { .. })
    ));
}
