//! The standard-tools instructions of VERIFY.txt work: the commands of its
//! section 3 are taken from the text itself and run with `sh` against an
//! extracted honest bundle (every check prints its "OK"), and against
//! tampered copies (the check concerned stays silent).
//!
//! Needs tar, jq, openssl 3, xxd, sha256sum, base64 and awk; the test says
//! so and passes without running when one is missing.

use std::path::Path;
use std::process::Command;

use crate::bundle_support::*;
use custos_core::bundle::{VERIFY_TXT, VERIFY_ZH_TXT};

const TOOLS: [&str; 7] = ["tar", "jq", "openssl", "xxd", "sha256sum", "base64", "awk"];

fn have_tools() -> bool {
    let missing: Vec<_> = TOOLS
        .iter()
        .filter(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
        })
        .collect();
    if !missing.is_empty() {
        eprintln!("skipping: {missing:?} not installed");
    }
    missing.is_empty()
}

/// Section 3's commands, with the fill-in lines set to `vars`.
fn script(vars: &[(&str, String)]) -> String {
    script_of(VERIFY_TXT, "3. With standard tools", vars)
}

/// The commands of `text` after `heading`, with the fill-in lines set.
pub(crate) fn script_of(text: &str, heading: &str, vars: &[(&str, String)]) -> String {
    let section = text
        .split_once(heading)
        .expect("the text has its section")
        .1;
    // Up to the next numbered section (section 4, SM2, needs an SM2 bundle).
    let section = match section.find("\n4. ") {
        Some(end) if heading.starts_with("3.") => &section[..end],
        _ => section,
    };
    let mut out = String::from("set -u\n");
    let mut filled = Vec::new();
    for line in section.lines() {
        let Some(command) = line.strip_prefix("    ") else {
            continue;
        };
        let var = vars
            .iter()
            .find(|(name, _)| command.starts_with(&format!("{name}=")) && command.contains('<'));
        match var {
            Some((name, value)) => {
                out.push_str(&format!("{name}='{value}'\n"));
                filled.push(*name);
            }
            None => {
                out.push_str(command);
                out.push('\n');
            }
        }
    }
    assert_eq!(
        filled.len(),
        vars.len(),
        "every variable has its fill-in line in VERIFY.txt"
    );
    out
}

fn run(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    format!("{stdout}\n--- stderr\n{stderr}")
}

fn setup(tar: &[u8], f: &Fixture) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("THIS.tar"), tar).unwrap();
    std::fs::write(
        dir.path().join("ledger.pub"),
        format!("{}\n", f.ledger.verifier_key()),
    )
    .unwrap();
    dir
}

fn vars(seg: &str, seq: u64) -> Vec<(&'static str, String)> {
    vec![
        ("SEG", seg.to_owned()),
        ("DOCK", "keys/dock-01.pub".to_owned()),
        ("LEDGER", "../ledger.pub".to_owned()),
        ("SEQ", seq.to_string()),
    ]
}

#[test]
fn verify_txt_commands_verify_an_honest_bundle() {
    if !have_tools() {
        return;
    }
    let f = Fixture::new();
    let tar = f.bundle();
    for (i, seq) in BUNDLE_SEQS.into_iter().enumerate() {
        let seg = if i % 2 == 0 { SEG_A } else { SEG_B };
        let dir = setup(&tar, &f);
        let out = run(dir.path(), &script(&vars(seg, seq)));
        for want in [
            "footage OK: sha256:",
            "proof is for this entry and checkpoint",
            &format!("inclusion OK: entry {seq} is in the log of size 10"),
            "manifest OK: it is the one in the log",
            "checkpoint OK: it ends with the export entry",
            "\"segments\":[\"seg-a\",\"seg-b\"]",
        ] {
            assert!(
                out.contains(want),
                "seq {seq}, {seg}: no {want:?} in:\n{out}"
            );
        }
        assert_eq!(
            out.matches("Signature Verified Successfully").count(),
            2,
            "manifest and checkpoint signatures, seq {seq}:\n{out}"
        );
        // The leaf hash printed is the next entry's prev, when the bundle
        // holds the next entry.
        let leaf = f.log[seq as usize].leaf_hash().unwrap().to_string();
        assert!(
            out.contains(&format!("leaf hash of {seq}: {leaf}")),
            "{out}"
        );
        if BUNDLE_SEQS.contains(&(seq + 1)) {
            assert!(out.contains(&format!("prev of next: {leaf}")), "{out}");
        }
    }
}

/// The Chinese instructions run exactly the English commands (so the
/// tests of the English ones cover them), fill-in lines aside.
#[test]
fn verify_zh_txt_has_the_same_commands() {
    let vars = vars(SEG_A, 4);
    assert_eq!(
        script_of(VERIFY_ZH_TXT, "3. 用标准工具", &vars),
        script(&vars)
    );
}

#[test]
fn verify_txt_commands_notice_tampering() {
    if !have_tools() {
        return;
    }
    let f = Fixture::new();
    let mut members = unpack(&f.bundle());
    member(&mut members, FOOTAGE_A)[1000] ^= 1;
    let mut proof = f.proof(4);
    proof.hashes[1] = custos_core::merkle::leaf_hash(b"x");
    *member(&mut members, "proofs/4.json") = serde_json::to_vec(&proof).unwrap();
    member(&mut members, "manifests/seg-b.dsse.json")[30] ^= 1;
    let tar = pack(&members);

    let dir = setup(&tar, &f);
    let out = run(dir.path(), &script(&vars(SEG_A, 4)));
    assert!(!out.contains("footage OK"), "{out}");
    assert!(!out.contains("inclusion OK"), "{out}");
    assert!(out.contains("manifest OK"), "{out}");

    let dir = setup(&tar, &f);
    let out = run(dir.path(), &script(&vars(SEG_B, 5)));
    assert!(out.contains("inclusion OK"), "{out}");
    assert!(!out.contains("manifest OK"), "{out}");
    assert_eq!(
        out.matches("Signature Verified Successfully").count(),
        1,
        "{out}"
    );
}
