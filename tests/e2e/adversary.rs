//! The adversary (DESIGN.md "Trust model"): every role, no token at all, and
//! a stolen dock credential try what they must not do against a real
//! `custos ledger serve` holding footage a real `custos dock ingest` put
//! there, and each attempt must fail and leave the log unchanged but for
//! its refusal entry (`access.refused`, and `token.used` for an admin token,
//! which is on the record whatever it asks).
//!
//! The routes and who may call them are read from the service's own
//! OpenAPI document (each operation says "Roles: …"), so a route added
//! later is attacked too; the forged events are signed by
//! `checkers/forge_event.py` with Python's `cryptography`, as an attacker
//! holding a dock's seed would.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::harness::{ok, Site, SiteOptions, DOCK_ID};

/// What the service answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    /// The `error` code of a JSON error body.
    fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One request to the site's ledger, blocking.
fn call(site: &Site, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
    let url = format!("{}{path}", site.ledger_url());
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut req = reqwest::Client::new().request(method, &url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_owned());
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            Answer { status, body }
        })
}

/// Every entry from `start` on, decoded (read with the auditor's token,
/// which writes nothing).
fn entries_from(site: &Site, start: u64) -> Vec<Value> {
    let a = call(
        site,
        "GET",
        &format!("/v1/entries?start={start}"),
        Some(&site.tokens.auditor),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["entry"].clone())
        .collect()
}

fn actions(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Run `what` and check that the log grew by nothing but refusal entries
/// (`access.refused`, and `token.used` for an admin token).
fn only_refusals(
    site: &Site,
    what: &str,
    attempt: impl FnOnce() -> Answer,
) -> (Answer, Vec<Value>) {
    let before = site.size();
    let answer = attempt();
    let added = entries_from(site, before);
    for e in &added {
        let action = e["action"].as_str().unwrap_or("?");
        assert!(
            action == "access.refused" || action == "token.used",
            "{what}: answered {} but the log gained {action}: {e}",
            answer.status
        );
    }
    (answer, added)
}

/// The segments the dock ingested, by id (the supervisor may search).
fn segment_ids(site: &Site) -> Vec<String> {
    let a = call(
        site,
        "GET",
        "/v1/segments",
        Some(&site.tokens.supervisor),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    let list = v
        .as_array()
        .or_else(|| v["segments"].as_array())
        .expect("a list of segments");
    list.iter()
        .map(|s| s["segment_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A site with one docked recorder of two clips; its segment ids.
fn docked_site() -> (Site, Vec<String>) {
    let site = Site::start(SiteOptions::default());
    let recorder = site.recorder("ADV0001", "officer7", 2, 3);
    ok(
        "custos dock ingest",
        &site.dock_ingest(&recorder).output().unwrap(),
    );
    let ids = segment_ids(&site);
    assert_eq!(ids.len(), 2, "{ids:?}");
    (site, ids)
}

fn supervisor_case(site: &Site, segment: &str) -> String {
    let a = call(
        site,
        "POST",
        "/v1/cases",
        Some(&site.tokens.supervisor),
        Some(r#"{"title":"adversary case"}"#),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let case = serde_json::from_str::<Value>(&a.body).unwrap()["case"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = call(
        site,
        "POST",
        &format!("/v1/cases/{case}/segments"),
        Some(&site.tokens.supervisor),
        Some(&json!({ "segments": [segment] }).to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    case
}

/// Break 1 of the custody issue: a reviewer without an approval got the
/// footage through an export (by segment and by case) although the content
/// route said 403; HEAD answered 500. Every path to footage now asks the
/// one gate, each refusal is an `access.refused` entry and nothing else,
/// and an approval opens all of them.
#[test]
fn a_reviewer_without_approval_gets_footage_by_no_path() {
    let (site, ids) = docked_site();
    let seg = &ids[0];
    let case = supervisor_case(&site, seg);
    let reviewer = site.tokens.reviewer.clone();
    let content = format!("/v1/segments/{seg}/content");

    let attempts: Vec<(&str, &str, Option<String>)> = vec![
        ("GET", &content, None),
        ("HEAD", &content, None),
        (
            "POST",
            "/v1/exports",
            Some(json!({ "segments": [seg] }).to_string()),
        ),
        (
            "POST",
            "/v1/exports",
            Some(json!({ "case": case }).to_string()),
        ),
    ];
    for (method, path, body) in &attempts {
        let what = format!("reviewer {method} {path} {body:?}");
        let (answer, added) = only_refusals(&site, &what, || {
            call(&site, method, path, Some(&reviewer), body.as_deref())
        });
        assert_eq!(answer.status, 403, "{what}: {}", answer.body);
        if *method != "HEAD" {
            assert_eq!(
                answer.code(),
                "approval_required",
                "{what}: {}",
                answer.body
            );
        }
        let refused: Vec<&Value> = added
            .iter()
            .filter(|e| e["action"] == "access.refused")
            .collect();
        assert_eq!(refused.len(), 1, "{what}: one refusal entry: {added:?}");
        assert_eq!(refused[0]["subject"], json!(seg), "{what}");
        assert_eq!(refused[0]["actor"]["id"], json!("rev-e2e"), "{what}");
    }

    // The supervisor approves the reviewer's request for the case: every
    // path opens, each access is its own entry naming the approval.
    let a = call(
        &site,
        "POST",
        "/v1/access-requests",
        Some(&reviewer),
        Some(&json!({ "case": case, "reason": "hearing" }).to_string()),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let request = serde_json::from_str::<Value>(&a.body).unwrap()["request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Not by the requester's own token.
    let own = call(
        &site,
        "POST",
        &format!("/v1/access-requests/{request}/approve"),
        Some(&reviewer),
        Some("{}"),
    );
    assert_eq!(own.status, 403, "{}", own.body);
    let a = call(
        &site,
        "POST",
        &format!("/v1/access-requests/{request}/approve"),
        Some(&site.tokens.supervisor),
        Some(r#"{"valid_days": 7}"#),
    );
    assert_eq!(a.status, 200, "{}", a.body);

    let before = site.size();
    let head = call(&site, "HEAD", &content, Some(&reviewer), None);
    assert_eq!(head.status, 200, "HEAD with an approval: {}", head.body);
    assert!(head.body.is_empty());
    assert_eq!(site.size(), before, "a HEAD records no view");

    let get = call(&site, "GET", &content, Some(&reviewer), None);
    assert_eq!(get.status, 200);
    let added = entries_from(&site, before);
    assert_eq!(actions(&added), ["segment.viewed"]);
    assert_eq!(added[0]["details"]["request_id"], json!(request));

    let export = call(
        &site,
        "POST",
        "/v1/exports",
        Some(&reviewer),
        Some(&json!({ "case": case }).to_string()),
    );
    assert_eq!(export.status, 200, "{}", export.body);
    let last = entries_from(&site, site.size() - 1);
    assert_eq!(actions(&last), ["export.created"]);
    assert_eq!(last[0]["details"]["requests"][seg.as_str()], json!(request));
    // The other segment is not linked to the case: still closed.
    let other = call(
        &site,
        "GET",
        &format!("/v1/segments/{}/content", ids[1]),
        Some(&reviewer),
        None,
    );
    assert_eq!(other.status, 403);
}

/// The role matrix from the service's own OpenAPI document: for each
/// operation, who may call it.
fn matrix(site: &Site) -> Vec<(String, String, Option<Vec<String>>)> {
    let a = call(site, "GET", "/v1/openapi.json", None, None);
    assert_eq!(a.status, 200);
    let doc: Value = serde_json::from_str(&a.body).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let description = op["description"].as_str().unwrap_or("");
            let roles = description
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("Roles: "))
                .unwrap_or_else(|| panic!("{method} {path} names no roles: {description:?}"));
            let allowed = if roles.starts_with("anyone") {
                None
            } else {
                Some(
                    roles
                        .trim_end_matches('.')
                        .split(", ")
                        .map(str::to_owned)
                        .collect(),
                )
            };
            out.push((method.to_uppercase(), path.clone(), allowed));
        }
    }
    assert!(
        out.len() >= 15,
        "the document lists too few routes: {out:?}"
    );
    out
}

/// A request body that would do something real on `path` if the role
/// check let it through.
fn body_for(method: &str, path: &str, segment: &str) -> Option<String> {
    if method == "GET" || method == "DELETE" {
        return None;
    }
    Some(
        match path {
            "/v1/cases" => json!({ "title": "x" }),
            "/v1/cases/{id}/segments" => json!({ "segments": [segment] }),
            "/v1/segments/{id}/hold" => json!({ "reason": "x" }),
            "/v1/access-requests" => json!({ "segment": segment, "reason": "x" }),
            "/v1/exports" => json!({ "segments": [segment] }),
            "/v1/coverage/{seq}/explanation" => json!({ "reason": "x" }),
            _ => json!({}),
        }
        .to_string(),
    )
}

/// Every route, as every role that must not call it and with no token:
/// refused (401 without a token, 403 with one), and the log unchanged but
/// for the admin's `token.used`. Then a stolen dock credential signs every
/// action a dock must not record: each refused, nothing appended.
#[test]
fn every_role_and_a_stolen_dock_credential_against_every_route() {
    let (site, ids) = docked_site();
    let seg = &ids[0];
    let case = supervisor_case(&site, seg);
    let t = &site.tokens;
    let roles: [(&str, &str); 6] = [
        ("dock", &t.dock),
        ("officer", &t.officer),
        ("reviewer", &t.reviewer),
        ("supervisor", &t.supervisor),
        ("auditor", &t.auditor),
        ("admin", &t.admin),
    ];
    let mut tried = 0;
    for (method, path, allowed) in matrix(&site) {
        let Some(allowed) = allowed else { continue };
        let concrete = path
            .replace("/cases/{id}", &format!("/cases/{case}"))
            .replace("/segments/{id}", &format!("/segments/{seg}"))
            .replace(
                "/access-requests/{id}",
                "/access-requests/ar-0000000000000000",
            )
            .replace("{name}", "rev-e2e")
            .replace("{seq}", "0")
            .replace("{id}", seg);
        let body = body_for(&method, &path, seg);
        let what = format!("no token: {method} {path}");
        let (a, _) = only_refusals(&site, &what, || {
            call(&site, &method, &concrete, None, body.as_deref())
        });
        assert_eq!(a.status, 401, "{what}: {}", a.body);
        for (role, token) in roles {
            if allowed.iter().any(|r| r == role) {
                continue;
            }
            let what = format!("{role}: {method} {path}");
            let (a, _) = only_refusals(&site, &what, || {
                call(&site, &method, &concrete, Some(token), body.as_deref())
            });
            assert_eq!(a.status, 403, "{what}: {}", a.body);
            tried += 1;
        }
    }
    assert!(tried > 40, "only {tried} refused calls were tried");

    // The dock's credential, stolen: token and seed. It may record only
    // its own station's and recorders' events; every other action is
    // refused whatever it says.
    let forbidden = [
        "segment.viewed",
        "segment.downloaded",
        "case.created",
        "case.segment_linked",
        "case.closed",
        "access.requested",
        "access.approved",
        "access.denied",
        "access.refused",
        "export.created",
        "hold.placed",
        "hold.released",
        "retention.changed",
        "retention.deleted",
        "audit.scrubbed",
        "token.created",
        "token.revoked",
        "token.used",
        "key.registered",
    ];
    for action in forbidden {
        let details = json!({ "segment_id": seg, "object_key": "x" }).to_string();
        let envelope = forge(
            &site,
            &site.path(&format!("keys/{DOCK_ID}.key")),
            DOCK_ID,
            action,
            seg,
            &details,
        );
        let what = format!("stolen dock credential signs {action}");
        let (a, _) = only_refusals(&site, &what, || {
            call(&site, "POST", "/v1/events", Some(&t.dock), Some(&envelope))
        });
        assert_eq!(a.status, 403, "{what}: {}", a.body);
    }
    // The same credential cannot pass as another role's token.
    let a = call(
        &site,
        "GET",
        &format!("/v1/segments/{seg}/content"),
        Some(&t.dock),
        None,
    );
    assert_eq!(a.status, 403);
}

/// `checkers/forge_event.py`: an event envelope signed with `key` as `name`.
fn forge(
    site: &Site,
    key: &Path,
    name: &str,
    action: &str,
    subject: &str,
    details: &str,
) -> String {
    let args: Vec<OsString> = vec![
        "--key".into(),
        key.into(),
        "--name".into(),
        name.into(),
        "--action".into(),
        action.into(),
        "--subject".into(),
        subject.into(),
        "--details".into(),
        details.into(),
    ];
    ok("forge_event.py", &site.checker("forge_event.py", &args))
        .trim()
        .to_owned()
}

/// Break 4 of the custody issue: a clip whose media has no creation time
/// and whose file time is 2000-01-01 (a recorder whose clock was reset),
/// docked today, was listed by the retention sweep ("retention ended
/// 2000-06-29"). Retention now counts from the later of the recording's end
/// and the ledger's time of the ingest.
#[test]
fn footage_docked_today_from_a_reset_clock_is_not_swept() {
    let mut site = Site::start(SiteOptions::default());
    let root = site.path("recorders/RESET01");
    let media = root.join("DCIM");
    std::fs::create_dir_all(&media).unwrap();
    let clip = media.join("CLIP0001.MP4");
    custos_media::synth::SyntheticClip::new(2)
        .write(&clip)
        .unwrap();
    let touched = Command::new("touch")
        .args(["-d", "2000-01-01T00:00:00Z"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(touched.success());
    // CLIP0001.MP4 names no device: the operator says which recorder it is.
    ok(
        "custos dock ingest",
        &site
            .dock_ingest(&root)
            .args(["--recorder-id", "RESET01"])
            .output()
            .unwrap(),
    );
    let ids = segment_ids(&site);
    assert_eq!(ids.len(), 1);
    let a = call(
        &site,
        "GET",
        &format!("/v1/segments/{}", ids[0]),
        Some(&site.tokens.supervisor),
        None,
    );
    let detail: Value = serde_json::from_str(&a.body).unwrap();
    assert!(
        detail["manifest"]["recorded"]["end"]
            .as_str()
            .unwrap()
            .starts_with("2000-01-01"),
        "the recorder's clock says 2000: {detail}"
    );
    assert_eq!(detail["retention"]["eligible"], json!(false), "{detail}");
    assert_eq!(
        detail["manifest"]["recorded"]["source"],
        json!("file_time+implausible"),
        "a time before the profile's earliest plausible one is flagged: {detail}"
    );
    // At least 180 days from today (the ingest), whatever the clock said.
    let until = detail["retention"]["until"].as_str().unwrap();
    let floor = (time::OffsetDateTime::now_utc() + time::Duration::days(179)).date();
    let floor = format!(
        "{:04}-{:02}-{:02}",
        floor.year(),
        u8::from(floor.month()),
        floor.day()
    );
    assert!(
        until > floor.as_str(),
        "retention counts from the ingest: {until} (expected after {floor})"
    );

    site.kill_ledger();
    let out = site
        .custos()
        .args(["retention", "sweep", "--dry-run", "--config"])
        .arg(&site.config)
        .output()
        .unwrap();
    let listed = ok("custos retention sweep --dry-run", &out);
    assert!(
        !listed.contains(&ids[0]),
        "the sweep would delete footage docked today: {listed}"
    );
}

/// A second dock's credential (its own token and key, stolen or misused)
/// attests nothing about the first dock's segments: `segment.verified`,
/// `segment.wiped` and `dock.*` events naming them are refused 403
/// `not_own_work` and append nothing. Then the admin revokes that token over
/// the API and the very next request with it is refused 401
/// `revoked_token`.
#[test]
fn another_docks_credential_attests_nothing_and_a_revoked_token_ends_at_once() {
    let (mut site, ids) = docked_site();
    let seg = &ids[0];

    // A second dock, registered like the first (service stopped).
    site.kill_ledger();
    let rogue_key = site.path("keys/dock-rogue.key");
    ok(
        "custos keygen",
        &site
            .custos()
            .args(["keygen", "--name", "dock-rogue", "--out"])
            .arg(&rogue_key)
            .output()
            .unwrap(),
    );
    let rogue = site.token(
        "dock",
        "dock-rogue",
        Some(&site.path("keys/dock-rogue.key.pub")),
    );
    site.start_ledger();

    for action in ["segment.verified", "segment.wiped", "dock.note"] {
        // Well-formed details of each action: the refusal is about whose
        // work it is, not the shape.
        let details = match action {
            "segment.verified" => {
                json!({ "method": "read_back", "object_key": "x", "sha256": "00" })
            }
            "segment.wiped" => {
                json!({ "recorder_id": "rec-x", "original_name": null, "verified_seq": null })
            }
            _ => json!({ "segment_id": seg }),
        }
        .to_string();
        let envelope = forge(&site, &rogue_key, "dock-rogue", action, seg, &details);
        let what = format!("dock-rogue signs {action} about dock-e2e's segment");
        let before = site.size();
        let a = call(&site, "POST", "/v1/events", Some(&rogue), Some(&envelope));
        assert_eq!(
            (a.status, a.code().as_str()),
            (403, "not_own_work"),
            "{what}: {}",
            a.body
        );
        assert_eq!(site.size(), before, "{what}: the log grew");
    }
    let custody = call(
        &site,
        "GET",
        &format!("/v1/segments/{seg}/custody"),
        Some(&site.tokens.auditor),
        None,
    );
    assert_eq!(custody.status, 200, "{}", custody.body);
    assert!(
        !custody.body.contains("dock-rogue"),
        "the rogue dock is in the segment's custody: {}",
        custody.body
    );

    // The rogue token works until the admin revokes it ...
    let probe = || call(&site, "GET", "/v1/checkpoint", Some(&rogue), None);
    assert_eq!(probe().status, 200);
    for who in [
        &site.tokens.dock,
        &site.tokens.supervisor,
        &site.tokens.reviewer,
        &site.tokens.auditor,
        &site.tokens.officer,
    ] {
        let a = call(
            &site,
            "POST",
            "/v1/tokens/dock-rogue/revoke",
            Some(who),
            None,
        );
        assert_eq!(a.status, 403, "only an admin revokes: {}", a.body);
    }
    assert_eq!(probe().status, 200, "a refused revocation revokes nothing");
    let a = call(
        &site,
        "POST",
        "/v1/tokens/dock-rogue/revoke",
        Some(&site.tokens.admin),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let revoked = entries_from(&site, 0)
        .into_iter()
        .filter(|e| e["action"] == json!("token.revoked"))
        .count();
    assert_eq!(revoked, 1, "one token.revoked entry");
    // ... and not one request longer.
    let a = probe();
    assert_eq!(
        (a.status, a.code().as_str()),
        (401, "revoked_token"),
        "{}",
        a.body
    );
    // The first dock's own token is untouched.
    assert_eq!(
        call(
            &site,
            "GET",
            "/v1/checkpoint",
            Some(&site.tokens.dock),
            None
        )
        .status,
        200
    );
}
