//! `custos demo` end to end: real ffmpeg clips, the real dock ingest, export
//! and offline verification, as the README's run command does it (with fewer
//! and shorter clips); its chain-of-custody reports read back with poppler's
//! pdftotext and pdffonts.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;

/// The text of a PDF, laid out as on the page (`pdftotext -layout`).
fn pdf_text(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (Debian's poppler-utils, scripts/install-deps) runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Whether a custody timeline row of `seq` is in `text`: a line that
/// starts with the seq, then the entry's date.
fn has_row(text: &str, seq: u64) -> bool {
    text.lines().any(|l| {
        l.trim_start()
            .strip_prefix(&format!("{seq} "))
            .is_some_and(|rest| rest.trim_start().starts_with("20"))
    })
}

/// The leaf bytes of the entry a tlog-proof names, from `entries.jsonl`'s
/// lines.
fn raw_of(lines: &[serde_json::Value], proof: &[u8]) -> Vec<u8> {
    let index: u64 = String::from_utf8_lossy(proof)
        .lines()
        .find_map(|l| l.strip_prefix("index "))
        .unwrap()
        .parse()
        .unwrap();
    let line = lines
        .iter()
        .find(|l| l["seq"].as_u64() == Some(index))
        .unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(line["raw"].as_str().unwrap())
        .unwrap()
}

/// Every font of `pdf` is embedded (pdffonts' `emb` column), and one is CJK.
fn fonts_are_embedded(pdf: &Path) {
    let out = Command::new("pdffonts").arg(pdf).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let fonts: Vec<&str> = text.lines().skip(2).collect();
    assert!(!fonts.is_empty(), "{text}");
    for font in &fonts {
        let cols: Vec<&str> = font.split_whitespace().collect();
        // name, type (two words), encoding, emb, sub, uni, object id, gen
        assert_eq!(cols[cols.len() - 5], "yes", "not embedded: {font}");
        assert_eq!(cols[cols.len() - 4], "yes", "not a subset: {font}");
    }
    assert!(text.contains("WenQuanYi"), "{text}");
}

#[test]
fn demo_runs_start_to_finish_and_leaves_a_verifiable_bundle() {
    let exe = env!("CARGO_BIN_EXE_custos");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = Command::new(exe)
        .args(["demo", "--clips", "3", "--seconds", "3", "--workdir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Custos demo done"), "{stdout}");
    assert!(
        stdout.contains("explained by the supervisor"),
        "the demo explains its coverage finding:\n{stdout}"
    );
    assert!(dir.join("custos.toml").is_file());
    let bundle = dir.join("export.tar");
    assert!(bundle.is_file());
    // Every clip was wiped from the recorder after verification.
    let left: Vec<_> = std::fs::read_dir(dir.join("recorder/DCIM/100MEDIA"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "clips left on the recorder: {left:?}");

    let ledger_pub = dir.join("keys/ledger.key.pub");
    let verify = |path: &std::path::Path| {
        Command::new(exe)
            .args(["verify", "bundle"])
            .arg(path)
            .arg("--ledger-key")
            .arg(&ledger_pub)
            .output()
            .unwrap()
    };
    let verified = verify(&bundle);
    assert_eq!(verified.status.code(), Some(0));
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(said.contains("document    REPORT.pdf  sha256:"), "{said}");

    // The demo's witness cosigned: the bundle carries tlog-proofs and a
    // policy, and verifies under the auditor's policy; so do the tiles.
    assert!(
        stdout.contains("witness     "),
        "the demo names its witness:\n{stdout}"
    );
    let policy = dir.join("policy.txt");
    let with_policy = Command::new(exe)
        .args(["verify", "bundle"])
        .arg(&bundle)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&with_policy.stdout);
    assert_eq!(with_policy.status.code(), Some(0), "{said}");
    assert!(
        said.contains("cosigned by witness.custos.demo/w1 (the policy's quorum: 1)"),
        "{said}"
    );
    let tiles = Command::new(exe)
        .args(["verify", "log", "--tiles"])
        .arg(dir.join("data/ledger-tiles"))
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(
        tiles.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&tiles.stderr)
    );
    // A policy asking for a witness that did not cosign is not met.
    let stricter = dir.join("policy-2.txt");
    let other = custos_core::keys::SigningKey::from_seed("court.example/w1", &[3; 32]).unwrap();
    std::fs::write(
        &stricter,
        std::fs::read_to_string(&policy).unwrap().replace(
            "\nquorum 1\n",
            &format!(
                "\nwitness {}\nquorum 2\n",
                custos_core::cosignature::CosignerKey::of(&other).unwrap()
            ),
        ),
    )
    .unwrap();
    let refused = Command::new(exe)
        .args(["verify", "bundle"])
        .arg(&bundle)
        .arg("--policy")
        .arg(&stricter)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("INVALID") && err.contains("requires 2"),
        "{err}"
    );

    // The reports: REPORT.pdf in the bundle (made just before its export
    // entry) and DIR/report.pdf (made after it, from the same tree).
    let mut entries = String::new();
    let mut checkpoint = String::new();
    let mut sha256s = Vec::new();
    let mut tlog_proofs = Vec::new();
    let report_in_bundle = tmp.path().join("REPORT.pdf");
    let mut archive = tar::Archive::new(std::fs::File::open(&bundle).unwrap());
    for member in archive.entries().unwrap() {
        let mut member = member.unwrap();
        let path = member.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut member, &mut bytes).unwrap();
        match path.as_str() {
            "entries.jsonl" => entries = String::from_utf8(bytes).unwrap(),
            "checkpoint" => checkpoint = String::from_utf8(bytes).unwrap(),
            p if p.starts_with("tlog-proofs/") => tlog_proofs.push(bytes),
            "REPORT.pdf" => std::fs::write(&report_in_bundle, bytes).unwrap(),
            p if p.starts_with("manifests/") => {
                let envelope: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let payload = base64::engine::general_purpose::STANDARD
                    .decode(envelope["payload"].as_str().unwrap())
                    .unwrap();
                let manifest: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                let sha = manifest["digests"]["sha256"].as_str().unwrap();
                sha256s.push(sha.strip_prefix("sha256:").unwrap().to_owned());
            }
            _ => {}
        }
    }
    assert_eq!(sha256s.len(), 2);
    let lines: Vec<serde_json::Value> = entries
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    let export_seq = *seqs.last().unwrap();
    let root = checkpoint.lines().nth(2).unwrap();

    // Interoperability: every tlog-proof of the bundle, and the published
    // cosigned checkpoint, read by signed_note and tlog_tiles.
    let policy_text = std::fs::read_to_string(dir.join("policy.txt")).unwrap();
    let key_of = |word: &str| {
        policy_text
            .lines()
            .find_map(|l| l.strip_prefix(word))
            .unwrap()
            .to_owned()
    };
    let (ledger_vkey, witness_vkey) = (key_of("log "), key_of("witness "));
    assert_eq!(tlog_proofs.len(), seqs.len(), "one tlog-proof per entry");
    for proof in &tlog_proofs {
        let index = crate::interop::check_tlog_proof(
            proof,
            &raw_of(&lines, proof),
            &ledger_vkey,
            &witness_vkey,
        );
        assert!(seqs.contains(&index));
    }
    let published = std::fs::read(dir.join("data/ledger-tiles/checkpoint")).unwrap();
    let cp = crate::interop::check_cosigned(&published, &ledger_vkey, &witness_vkey);
    assert_eq!(cp.origin(), "custos.demo/ledger");
    assert!(cp.size() > export_seq);
    let report = dir.join("report.pdf");
    for pdf in [&report_in_bundle, &report] {
        let text = pdf_text(pdf);
        for sha in &sha256s {
            assert!(
                text.contains(&format!("sha256 {sha}")),
                "{sha} in {pdf:?}:\n{text}"
            );
        }
        for &seq in &seqs {
            // The bundle's report precedes its export entry.
            if pdf != &report_in_bundle || seq != export_seq {
                assert!(has_row(&text, seq), "seq {seq} in {pdf:?}:\n{text}");
            }
        }
        for who in [
            "reviewer:rev-li",
            "supervisor:sup-wang",
            "电子数据提取固定清单",
            // The demo deleted the second of three files on the recorder:
            // the ledger recorded the gap, the supervisor explained it.
            "missing file(s) 0002",
            "已说明",
            "覆盖缺口",
            "中断说明",
        ] {
            assert!(text.contains(who), "{who} in {pdf:?}:\n{text}");
        }
        assert!(text.contains("page 1 of "), "{text}");
        fonts_are_embedded(pdf);
    }
    // DIR/report.pdf is made from the tree the bundle's checkpoint signs.
    let text = pdf_text(&report);
    assert!(text.contains(&format!("root {root}")), "{root}:\n{text}");
    assert!(!pdf_text(&report_in_bundle).contains(&format!("root {root}")));

    // REPORT.pdf changed by one byte: the bundle no longer verifies.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let at = bytes
        .windows(5)
        .position(|w| w == b"%PDF-")
        .expect("the report in the bundle")
        + 200;
    bytes[at] ^= 0x01;
    let tampered = tmp.path().join("tampered-report.tar");
    std::fs::write(&tampered, bytes).unwrap();
    let out = verify(&tampered);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("REPORT.pdf"),
        "{out:?}"
    );

    // One byte of footage changed: the same command now says invalid.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"mdat")
        .expect("an MP4 payload in the bundle")
        + 64;
    bytes[at] ^= 0x01;
    let tampered = tmp.path().join("tampered.tar");
    std::fs::write(&tampered, bytes).unwrap();
    let out = verify(&tampered);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("footage/"));

    // A second demo in the same directory is refused, changing nothing.
    let again = Command::new(exe)
        .args(["demo", "--workdir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(verify(&bundle).status.code(), Some(0));
}
