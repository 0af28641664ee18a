//! `custos keygen` and `custos hash` as a user runs them, checked against
//! the reference tools (sha256sum) and the key-file rules.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::*;

fn sha256sum(args: &[&Path], stdin: Option<&[u8]>) -> Vec<u8> {
    run(Command::new("sha256sum").args(args), stdin)
}

fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(data) = stdin {
            input.write_all(data).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed");
    out.stdout
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn hash_matches_sha256sum_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [0usize, 1, (1 << 20) + 1, 300 << 20];
    let mut paths = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let p = dir.path().join(format!("f{i} with space.bin"));
        std::fs::write(&p, pseudo_random(*size, i as u64 + 7)).unwrap();
        paths.push(p);
    }
    for p in &paths {
        let ours = run(custos().arg("hash").arg(p), None);
        assert_eq!(ours, sha256sum(&[p], None), "{}", p.display());
    }
    // Several files at once: same order, same bytes.
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    assert_eq!(
        run(custos().arg("hash").args(&refs), None),
        sha256sum(&refs, None)
    );
}

#[test]
fn hash_reads_standard_input() {
    let data = pseudo_random(3 << 20, 99);
    let ours = run(custos().args(["hash", "-"]), Some(&data));
    assert_eq!(ours, sha256sum(&[Path::new("-")], Some(&data)));
    let ours = run(custos().arg("hash"), Some(&data));
    assert_eq!(ours, sha256sum(&[], Some(&data)));
}

#[test]
fn hash_missing_file_is_one_line_and_exit_2() {
    let out = custos()
        .args(["hash", "/nonexistent/custos-missing"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/custos-missing"), "{err}");
}

#[test]
fn keygen_writes_0600_seed_and_verifier_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dock-07.key");
    let out = custos()
        .arg("keygen")
        .arg("--out")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let seed = std::fs::metadata(&key).unwrap();
    assert_eq!(seed.len(), 32);
    assert_eq!(seed.permissions().mode() & 0o777, 0o600);
    let pubtext = std::fs::read_to_string(dir.path().join("dock-07.key.pub")).unwrap();
    let vk: custos_core::keys::VerifierKey = pubtext.trim().parse().unwrap();
    assert_eq!(vk.name(), "dock-07");
    // The key loads and matches its .pub.
    let sk = custos_core::keys::SigningKey::load(&key).unwrap();
    assert_eq!(sk.verifier_key(), vk);
    // Never overwrites an existing key.
    let again = custos()
        .arg("keygen")
        .arg("--out")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&again.stderr).lines().count(), 1);
}
