//! The workspace's architecture invariants (ARCHITECTURE.md), checked on
//! its manifests and sources rather than trusted to review.
//!
//! Each rule names the crates that may hold a dependency or a call. Where
//! the code does not keep a rule yet, the breach is listed in
//! [`KNOWN_BREACHES`] with the step that will end it (issue 17, the
//! structural step); the test fails on any breach not listed, and on any
//! listed one that has gone, so the list only ever shrinks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Who may depend (normally, not as a dev-dependency) on what.
const DEPENDENCY_RULES: &[(&str, &[&str], &str)] = &[
    (
        "sled",
        &["custos-ledger", "custos-dock"],
        "the ledger's store and the dock's journal are the only databases",
    ),
    (
        "axum",
        &["custos-server", "custos-dock"],
        "HTTP serving is custos-server's and the dock's read-only status page's",
    ),
    (
        "hyper",
        &["custos-server"],
        "HTTP serving is custos-server's",
    ),
    (
        "reqwest",
        &["custos-client"],
        "one HTTP client: custos-client",
    ),
    (
        "rusb",
        &["custos-dock"],
        "only the dock talks USB as a host",
    ),
    (
        "ffmpeg-next",
        &["custos-media"],
        "only custos-media links FFmpeg",
    ),
    (
        "custos-ledger",
        &["custos-server", "custos-cli"],
        "the dock sees the ledger only through its outbox and client; the server and the binary are the ledger's only users",
    ),
    (
        "custos-server",
        &["custos-cli"],
        "the binary is the only one that runs the server",
    ),
];

/// Calls that custos-core's code (outside its tests) must not make: it
/// reads no clock and draws no randomness of its own.
const CORE_FORBIDDEN_CALLS: &[&str] = &[
    "SystemTime::now",
    "OffsetDateTime::now",
    "Instant::now",
    "OsRng",
    "thread_rng",
    "getrandom",
];

/// Breaches of the rules above that the code still has, each with what
/// ends it. `(crate, dependency or "file: call")`.
const KNOWN_BREACHES: &[(&str, &str, &str)] = &[];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo metadata` of the workspace's own packages.
fn packages() -> Vec<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(workspace())
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"].as_array().unwrap().clone()
}

/// Every breach found: `(crate, what)`.
fn breaches() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for package in packages() {
        let name = package["name"].as_str().unwrap().to_owned();
        for dep in package["dependencies"].as_array().unwrap() {
            if !dep["kind"].is_null() {
                continue; // dev- and build-dependencies
            }
            let dep_name = dep["name"].as_str().unwrap();
            for (rule_dep, allowed, _why) in DEPENDENCY_RULES {
                if dep_name == *rule_dep && !allowed.contains(&name.as_str()) {
                    found.insert((name.clone(), dep_name.to_owned()));
                }
            }
        }
    }
    let core = workspace().join("crates/custos-core");
    for file in rust_files(&core.join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        // Only the code before the file's test module counts.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let rel = file.strip_prefix(&core).unwrap().display().to_string();
        for line in code.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for call in CORE_FORBIDDEN_CALLS {
                if line.contains(call) {
                    found.insert(("custos-core".into(), format!("{rel}: {call}")));
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn the_crate_graph_and_core_purity_hold_but_for_the_known_breaches() {
    let found = breaches();
    let known: BTreeSet<(String, String)> = KNOWN_BREACHES
        .iter()
        .map(|(c, w, _)| ((*c).to_owned(), (*w).to_owned()))
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    let why = |dep: &str| {
        DEPENDENCY_RULES
            .iter()
            .find(|(d, _, _)| *d == dep)
            .map_or("custos-core reads no clock and draws no randomness", |r| {
                r.2
            })
    };
    assert!(
        new.is_empty(),
        "new architecture breaches (ARCHITECTURE.md): {}",
        new.iter()
            .map(|(c, w)| format!("{c} uses {w} ({})", why(w)))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        gone.is_empty(),
        "breaches listed in KNOWN_BREACHES no longer happen; remove them: {gone:?}"
    );
}

#[test]
fn the_rules_are_checked_against_real_dependencies() {
    // A rule naming a crate no package depends on would pass forever.
    let mut used = BTreeSet::new();
    for package in packages() {
        for dep in package["dependencies"].as_array().unwrap() {
            used.insert(dep["name"].as_str().unwrap().to_owned());
        }
    }
    for (dep, _, _) in DEPENDENCY_RULES {
        assert!(used.contains(*dep), "no package depends on {dep}");
    }
}
