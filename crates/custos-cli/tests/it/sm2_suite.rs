//! The 国密 suite end to end: `custos demo --suite both` (real ffmpeg
//! clips, the real dock ingest, ledger, export) leaves a bundle whose
//! manifests and checkpoint carry Ed25519 and SM2 signatures; `custos
//! verify bundle` checks them with either ledger key and `--require sm2`;
//! the OpenSSL commands of the bundle's own VERIFY.txt (section 4) verify
//! the SM2 manifest signature, the checkpoint's SM2 line and the SM3
//! digest, and fail on a flipped byte; a verifier that knows only the
//! Ed25519 key still accepts the checkpoint. `--suite sm2` signs with SM2
//! only.

use std::path::Path;
use std::process::{Command, Output};

use custos_core::keys::VerifierKey;
use custos_core::note::SignedNote;

fn demo(dir: &Path, suite: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args([
            "demo",
            "--clips",
            "2",
            "--seconds",
            "2",
            "--suite",
            suite,
            "--workdir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn verify(bundle: &Path, args: &[&str], keys: &[&Path]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_custos"));
    c.args(["verify", "bundle"]).arg(bundle);
    for k in keys {
        c.arg("--ledger-key").arg(k);
    }
    c.args(args).output().unwrap()
}

/// Section 4 of VERIFY.txt as a shell script, its fill-in lines set.
fn section_4(text: &str, vars: &[(&str, String)]) -> String {
    let section = text
        .split_once("\n4. SM2")
        .expect("VERIFY.txt has section 4")
        .1;
    let mut out = String::from("set -u\n");
    for line in section.lines() {
        let Some(command) = line.strip_prefix("    ") else {
            continue;
        };
        match vars
            .iter()
            .find(|(n, _)| command.starts_with(&format!("{n}=")) && command.contains('<'))
        {
            Some((name, value)) => out.push_str(&format!("{name}='{value}'\n")),
            None => {
                out.push_str(command);
                out.push('\n');
            }
        }
    }
    out
}

fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    format!(
        "{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `keys/` file of the bundle holding key `id`.
fn key_file_of(dir: &Path, id: &str) -> String {
    for item in std::fs::read_dir(dir.join("keys")).unwrap() {
        let path = item.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if text.starts_with(&format!("{id}+")) {
            return format!("keys/{}", path.file_name().unwrap().to_string_lossy());
        }
    }
    panic!("no key {id} in keys/");
}

#[test]
fn both_suites_verify_with_custos_and_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    demo(&dir, "both");
    let bundle = dir.join("export.tar");
    let ed = dir.join("keys/ledger.key.pub");
    let sm2 = dir.join("keys/ledger-sm2.key.pub");

    // custos: both keys, either key alone, and --require.
    let out = verify(
        &bundle,
        &["--require", "sm2", "--require", "ed25519"],
        &[&ed, &sm2],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(
            "suites      checkpoint: ed25519, sm2; every manifest and event: ed25519, sm2"
        ),
        "{stdout}"
    );
    assert!(verify(&bundle, &["--require", "sm2"], &[&sm2])
        .status
        .success());
    assert!(verify(&bundle, &[], &[&ed]).status.success());
    // The Ed25519 key alone cannot satisfy --require sm2 (the checkpoint's
    // SM2 line is checked only against a pinned SM2 key).
    let out = verify(&bundle, &["--require", "sm2"], &[&ed]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--require sm2"),
        "{out:?}"
    );

    // A standard signed-note verifier that knows only the Ed25519 key
    // accepts the checkpoint (it skips the SM2 line).
    let x = tmp.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&bundle)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(status.success());
    let checkpoint = std::fs::read(x.join("checkpoint")).unwrap();
    let note = SignedNote::parse(&checkpoint).unwrap();
    assert_eq!(note.signatures().len(), 2);
    let ed_key = VerifierKey::load(&ed).unwrap();
    let sm2_key = VerifierKey::load(&sm2).unwrap();
    note.verify(std::slice::from_ref(&ed_key)).unwrap();
    note.verify(std::slice::from_ref(&sm2_key)).unwrap();

    // OpenSSL, with the commands of the bundle's VERIFY.txt.
    let verify_txt = std::fs::read_to_string(x.join("VERIFY.txt")).unwrap();
    let seg = std::fs::read_dir(x.join("manifests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find_map(|n| n.strip_suffix(".dsse.json").map(str::to_owned))
        .unwrap();
    let manifest = std::fs::read(x.join(format!("manifests/{seg}.dsse.json"))).unwrap();
    let envelope = custos_core::dsse::Envelope::parse(&manifest).unwrap();
    assert_eq!(envelope.signatures.len(), 2);
    let sm2_dock_id = envelope
        .signatures
        .iter()
        .map(|s| s.keyid.clone())
        .find(|id| {
            let file = key_file_of(&x, id);
            VerifierKey::load(&x.join(file)).unwrap().algorithm()
                == custos_core::keys::Algorithm::Sm2
        })
        .expect("an SM2 signature on the manifest");
    let vars = vec![
        ("SEG", seg.clone()),
        ("DOCK_SM2", key_file_of(&x, &sm2_dock_id)),
        ("LEDGER_SM2", sm2.display().to_string()),
    ];
    let script = section_4(&verify_txt, &vars);
    let out = sh(&x, &script);
    assert_eq!(
        out.matches("Signature Verified Successfully").count(),
        2,
        "manifest and checkpoint SM2 signatures:\n{out}"
    );
    assert!(out.contains("footage SM3 OK: sm3:"), "{out}");

    // A flipped byte in the signed text fails in OpenSSL and in custos.
    let mut text = std::fs::read(x.join("checkpoint")).unwrap();
    let at = text.iter().position(|&b| b == b'\n').unwrap() + 1; // the size line
    text[at] = if text[at] == b'9' { b'8' } else { b'9' };
    std::fs::write(x.join("checkpoint"), &text).unwrap();
    let out = sh(&x, &script);
    assert_eq!(
        out.matches("Signature Verified Successfully").count(),
        1,
        "{out}"
    );
    assert!(out.contains("Signature Verification Failure"), "{out}");
    let note = SignedNote::parse(&text).unwrap();
    assert!(note.verify(std::slice::from_ref(&sm2_key)).is_err());
}

#[test]
fn an_sm2_only_dock_verifies_with_require_sm2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    demo(&dir, "sm2");
    let bundle = dir.join("export.tar");
    let ed = dir.join("keys/ledger.key.pub");
    let sm2 = dir.join("keys/ledger-sm2.key.pub");
    let out = verify(&bundle, &["--require", "sm2"], &[&ed, &sm2]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("suites      checkpoint: ed25519, sm2; every manifest and event: sm2"),
        "{out:?}"
    );
    // Its envelopes carry no Ed25519 signature.
    let out = verify(&bundle, &["--require", "ed25519"], &[&ed, &sm2]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
