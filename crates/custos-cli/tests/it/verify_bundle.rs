//! `custos verify bundle` as an auditor runs it: the real binary on honest
//! and tampered bundles, checking exit codes (0 valid, 1 invalid, 2 cannot
//! read) and the one line that names the file or entry at fault.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::bundle_support::*;
use custos_core::checkpoint::Checkpoint;
use custos_core::keys::SigningKey;

use crate::util::*;

struct Case {
    dir: tempfile::TempDir,
    fixture: Fixture,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Fixture::new();
        std::fs::write(
            dir.path().join("ledger.pub"),
            format!("{}\n", fixture.ledger.verifier_key()),
        )
        .unwrap();
        Case { dir, fixture }
    }

    fn write(&self, name: &str, tar: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, tar).unwrap();
        path
    }

    fn tampered(&self, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> PathBuf {
        let mut members = unpack(&self.fixture.bundle());
        edit(&mut members);
        self.write("tampered.tar", &pack(&members))
    }

    fn verify(&self, tar: &Path, pinned: bool) -> Output {
        let mut cmd = custos();
        cmd.args(["verify", "bundle"]).arg(tar);
        if pinned {
            cmd.arg("--ledger-key")
                .arg(self.dir.path().join("ledger.pub"));
        }
        cmd.output().unwrap()
    }
}

/// Exit code 1 and exactly one line on stderr, naming `location`.
fn assert_invalid(out: &Output, tar: &Path, location: &str, says: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let want = format!("custos: {}: INVALID: {location}: {says}", tar.display());
    assert!(stderr.starts_with(&want), "want {want:?}, got {stderr:?}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn honest_bundle_is_valid_with_a_short_report() {
    let case = Case::new();
    let tar = case.write("export.tar", &case.fixture.bundle());
    let out = case.verify(&tar, true);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        out.stderr.is_empty(),
        "no progress bar when stderr is not a terminal"
    );
    let ledger = case.fixture.ledger.verifier_key().key_id();
    let dock = case.fixture.dock.verifier_key().key_id();
    for want in [
        format!("{}: valid", tar.display()),
        "segments    2 (2800000 bytes of footage".to_owned(),
        format!("seg-a  {FOOTAGE_A}  300000 bytes  sha256:"),
        format!("seg-b  {FOOTAGE_B}  2500000 bytes"),
        "entries     7 (export entry seq 9)".to_owned(),
        format!(
            "checkpoint  {ORIGIN} size 10 root {}",
            case.fixture.tree.root()
        ),
        format!("ledger key  {ledger} (pinned)"),
        format!("dock keys   {dock}"),
    ] {
        assert!(stdout.contains(&want), "no {want:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("warning"), "{stdout}");
    let bundle = tar.display().to_string();
    insta::assert_snapshot!("valid_bundle_report", stdout.replace(&bundle, "<bundle>"));

    // Without a pin: not valid. Everything else is checked and shown, the
    // origin is unverified, exit 1.
    let out = case.verify(&tar, false);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains(": valid"), "{stdout}");
    assert!(stdout.contains("origin unverified"), "{stdout}");
    assert!(stdout.contains("ledger key  NOT PINNED"), "{stdout}");
    insta::assert_snapshot!(
        "unpinned_bundle_report",
        format!("{stdout}--- stderr\n{stderr}").replace(&bundle, "<bundle>")
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("custos: {}: origin unverified", tar.display())),
        "{stderr}"
    );

    // --trusted-keys DIR: the .pub files in it; one of them signed.
    let keys = case.dir.path().join("trusted");
    std::fs::create_dir(&keys).unwrap();
    let other = SigningKey::from_seed("other-ledger", &[8; 32]).unwrap();
    std::fs::write(
        keys.join("other.pub"),
        format!("{}\n", other.verifier_key()),
    )
    .unwrap();
    let out = custos()
        .args(["verify", "bundle"])
        .arg(&tar)
        .arg("--trusted-keys")
        .arg(&keys)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("not signed by the pinned ledger key other-ledger+"));
    std::fs::copy(case.dir.path().join("ledger.pub"), keys.join("ledger.pub")).unwrap();
    let out = custos()
        .args(["verify", "bundle"])
        .arg(&tar)
        .arg("--trusted-keys")
        .arg(&keys)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // --ledger-key twice: the same rule.
    let out = custos()
        .args(["verify", "bundle"])
        .arg(&tar)
        .arg("--ledger-key")
        .arg(keys.join("other.pub"))
        .arg("--ledger-key")
        .arg(keys.join("ledger.pub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // An empty directory is a usage error, not "no key".
    let empty = case.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = custos()
        .args(["verify", "bundle"])
        .arg(&tar)
        .arg("--trusted-keys")
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn a_bundle_forged_with_a_fresh_key_pair_is_not_valid_without_a_pin() {
    // The third break: anyone can make a self-consistent bundle.
    let case = Case::new();
    let forger = SigningKey::from_seed("ledger", &[66; 32]).unwrap();
    let mut f = Fixture::new();
    f.checkpoint = Checkpoint::new(ORIGIN, f.tree.size(), f.tree.root())
        .unwrap()
        .sign(&forger);
    f.ledger = forger;
    let tar = case.write("forged.tar", &f.bundle());
    let out = case.verify(&tar, false);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("origin unverified"), "{stderr}");
    assert!(!stdout.contains(": valid"), "{stdout}");
    // Against the real key: invalid, the checkpoint named.
    assert_invalid(
        &case.verify(&tar, true),
        &tar,
        "checkpoint",
        "not signed by the pinned ledger key",
    );
}

#[test]
fn a_checkpoint_not_at_the_export_entry_is_invalid() {
    let case = Case::new();
    let f = &case.fixture;
    let (second, _) = f.second_export();
    let tar = case.write("second.tar", &second);
    let out = case.verify(&tar, true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The second break: the later export entry and the hold it
    // covers dropped with their proofs.
    let mut m = unpack(&second);
    let mut lines = entry_lines(&mut m);
    lines.truncate(lines.len() - 2);
    set_entry_lines(&mut m, &lines);
    remove(&mut m, "proofs/11.json");
    remove(&mut m, "proofs/12.json");
    let tar = case.write("doctored.tar", &pack(&m));
    assert_invalid(
        &case.verify(&tar, true),
        &tar,
        "checkpoint",
        "the checkpoint is for tree size 13, but the bundle's export entry is seq 9: it must be exactly 10",
    );
}

#[test]
fn control_characters_in_member_names_do_not_reach_the_terminal() {
    let case = Case::new();
    let evil = "footage/\u{1b}]0;owned\u{7}\u{1b}[2K\rexport.tar: valid\n  segments    0";
    let tar = case.tampered(|m| m.push((evil.to_owned(), b"x".to_vec())));
    let out = case.verify(&tar, true);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    assert!(stderr.contains("footage/\\u{1b}]0;owned"), "{stderr:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn tampered_bundles_are_invalid() {
    let case = Case::new();
    let f = &case.fixture;

    let tar = case.tampered(|m| member(m, FOOTAGE_A)[4242] ^= 1);
    assert_invalid(
        &case.verify(&tar, true),
        &tar,
        FOOTAGE_A,
        "SHA-256 does not match manifest",
    );

    let tar = case.tampered(|m| member(m, "manifests/seg-b.dsse.json")[40] ^= 1);
    assert_invalid(
        &case.verify(&tar, true),
        &tar,
        "manifests/seg-b.dsse.json",
        "",
    );

    let tar = case.tampered(|m| {
        let mut lines = entry_lines(m);
        lines[4] = lines[4].replace("sup-1", "sup-2");
        set_entry_lines(m, &lines);
    });
    assert_invalid(
        &case.verify(&tar, true),
        &tar,
        "entries.jsonl line 5 (seq 7)",
        "",
    );

    let tar = case.tampered(|m| {
        let mut lines = entry_lines(m);
        lines.remove(2);
        set_entry_lines(m, &lines);
    });
    assert_invalid(
        &case.verify(&tar, true),
        &tar,
        "proofs/4.json",
        "proves seq 4, which entries.jsonl does not hold",
    );

    let tar = case.tampered(|m| {
        let mut lines = entry_lines(m);
        lines.remove(2);
        set_entry_lines(m, &lines);
        remove(m, "proofs/4.json");
    });
    assert_invalid(
        &case.verify(&tar, true),
        &tar,
        "entries.jsonl",
        "seq 4, listed by the export entry (seq 9), is missing",
    );

    let tar = case.tampered(|m| {
        let mut lines = entry_lines(m);
        lines.swap(2, 3);
        set_entry_lines(m, &lines);
    });
    assert_invalid(
        &case.verify(&tar, true),
        &tar,
        "entries.jsonl line 4 (seq 4)",
        "out of order",
    );

    let tar = case.tampered(|m| remove(m, FOOTAGE_B));
    assert_invalid(
        &case.verify(&tar, true),
        &tar,
        FOOTAGE_B,
        "missing from the bundle",
    );

    let forger = SigningKey::from_seed("ledger", &[99; 32]).unwrap();
    let forged = Checkpoint::new(ORIGIN, f.tree.size(), f.tree.root())
        .unwrap()
        .sign(&forger);
    let tar = case.tampered(|m| *member(m, "checkpoint") = forged.into_bytes());
    assert_invalid(
        &case.verify(&tar, true),
        &tar,
        "checkpoint",
        "not signed by the pinned ledger key",
    );
    // Without a pin a checkpoint no key in the bundle signed is just as
    // unverified: exit 1.
    let out = case.verify(&tar, false);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("origin unverified"));
}

#[test]
fn unreadable_bundles_exit_2() {
    let case = Case::new();
    let honest = case.fixture.bundle();

    for (name, cut) in [
        ("inside-footage", honest.len() - 100_000),
        ("no-end-marker", honest.len() - 1024),
    ] {
        let tar = case.write(&format!("{name}.tar"), &honest[..cut]);
        let out = case.verify(&tar, true);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("truncated"), "{name}: {stderr}");
        assert!(
            stderr.starts_with(&format!("custos: {}: ", tar.display())),
            "{stderr}"
        );
    }

    let tar = case.write("text.tar", b"this is not a tar archive\n");
    let out = case.verify(&tar, true);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a readable tar archive"),
        "{}",
        text(&out.stderr)
    );

    let missing = case.dir.path().join("missing.tar");
    let out = case.verify(&missing, true);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("missing.tar"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // A directory cannot be read as a tar: an I/O error, exit 2.
    let out = case.verify(case.dir.path(), true);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // A bad --ledger-key file is a usage error.
    std::fs::write(case.dir.path().join("bad.pub"), "not a key\n").unwrap();
    let tar = case.write("export.tar", &honest);
    let out = custos()
        .args(["verify", "bundle"])
        .arg(&tar)
        .arg("--ledger-key")
        .arg(case.dir.path().join("bad.pub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("bad.pub"),
        "{}",
        text(&out.stderr)
    );
}
