//! Dock event signatures of concurrent requests verified in one batch
//! (src/verify.rs): a forged signature among good ones is refused with the
//! error a lone request gets, and every good one is admitted.
//!
//! The tests run on a current-thread runtime and send their requests as
//! one `join_all`: the first request opens a batch and yields, and the
//! others join it before it is verified, every time.

use axum::http::StatusCode;
use custos_ledger::auth::Caller;
use futures::future::join_all;
use serde_json::Map;

use crate::util::*;

fn batches(t: &TestLedger, result: &str) -> u64 {
    let needle = format!("custos_ledger_signature_batches_total{{result=\"{result}\"}} ");
    t.ledger
        .metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(needle.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn a_forged_signature_in_a_batch_is_refused_alone_over_http() {
    let t = TestLedger::with_options(|o| o.batch_signatures = true).await;
    let mut envelopes: Vec<_> = (0..24)
        .map(|i| docked_event(&format!("rec-{i:02}")))
        .collect();
    let forged = 9;
    envelopes[forged].signatures[0].sig[40] ^= 0x01;

    // What a lone request with the forged envelope gets (not batched).
    let alone = t.post_event(&envelopes[forged]).await;
    assert_eq!(alone.status, StatusCode::FORBIDDEN, "{}", alone.text());
    assert_eq!(alone.error().error, "bad_signature");
    assert_eq!(batches(&t, "failed") + batches(&t, "passed"), 0);

    let before = t.size();
    let answers = join_all(envelopes.iter().map(|e| t.post_event(e))).await;
    for (i, answer) in answers.iter().enumerate() {
        if i == forged {
            assert_eq!(answer.status, alone.status);
            assert_eq!(answer.body, alone.body, "{}", answer.text());
        } else {
            assert_eq!(
                answer.status,
                StatusCode::CREATED,
                "request {i}: {}",
                answer.text()
            );
        }
    }
    assert_eq!(
        t.size(),
        before + 23,
        "the 23 good events, not the forged one"
    );
    assert_eq!(
        batches(&t, "failed"),
        1,
        "the 24 went through one batch, which failed"
    );
    assert_eq!(batches(&t, "passed"), 0);
    let entries = t.ledger.entries(before, None).unwrap();
    let subjects: Vec<_> = entries
        .iter()
        .map(|e| {
            let entry: serde_json::Value = serde_json::from_str(e.entry.get()).unwrap();
            entry["subject"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(
        !subjects.contains(&format!("rec-{forged:02}")),
        "{subjects:?}"
    );
    assert_eq!(subjects.len(), 23);

    // The same events again (without the forged one): a batch that passes,
    // and every one answered as a duplicate of its first entry.
    envelopes.remove(forged);
    let answers = join_all(envelopes.iter().map(|e| t.post_event(e))).await;
    for answer in &answers {
        assert!(answer.status.is_success(), "{}", answer.text());
        assert_eq!(answer.json()["duplicate"], true, "{}", answer.text());
    }
    assert_eq!(batches(&t, "passed"), 1);
    assert_eq!(t.size(), before + 23);
}

#[tokio::test]
async fn batched_and_lone_refusals_are_the_same_error() {
    // Through the ledger's own API, for each way a signature can be bad:
    // a flipped bit in R, in s, s not reduced, and a signature by another
    // key that claims the dock's key id.
    let t = TestLedger::with_options(|o| o.batch_signatures = true).await;
    let dock = Caller::in_process_dock("dock-01", dock_key().verifier_key());
    let other = custos_core::keys::SigningKey::from_seed("dock-01", &[99; 32]).unwrap();
    let mut bad = Vec::new();
    for (i, tamper) in ["r", "s", "unreduced", "other_key"].into_iter().enumerate() {
        let mut env = if tamper == "other_key" {
            event_by(&other, "recorder.docked", &format!("bad-{i}"), Map::new())
        } else {
            docked_event(&format!("bad-{i}"))
        };
        let sig = &mut env.signatures[0];
        match tamper {
            "r" => sig.sig[3] ^= 0x80,
            "s" => sig.sig[33] ^= 0x02,
            "unreduced" => sig.sig[63] |= 0xf0,
            _ => sig.keyid = dock.key.as_ref().unwrap().key_id(),
        }
        bad.push(env);
    }
    let mut alone = Vec::new();
    for env in &bad {
        let e = t
            .ledger
            .append_envelope(&dock, env.clone())
            .await
            .unwrap_err();
        alone.push(e.to_string());
    }
    let before = t.size();
    let mut all: Vec<_> = (0..12)
        .map(|i| docked_event(&format!("good-{i}")))
        .collect();
    for (n, env) in bad.iter().enumerate() {
        all.insert(2 + 3 * n, env.clone());
    }
    let results = join_all(
        all.iter()
            .map(|env| t.ledger.append_envelope(&dock, env.clone())),
    )
    .await;
    let mut refused = Vec::new();
    for (env, result) in all.iter().zip(results) {
        match result {
            Ok(receipt) => assert!(!receipt.duplicate),
            Err(e) => {
                assert!(bad.contains(env), "a good event was refused: {e}");
                refused.push(e.to_string());
            }
        }
    }
    assert_eq!(refused, alone);
    assert_eq!(t.size(), before + 12);
    assert_eq!(batches(&t, "failed"), 1);
}

#[tokio::test]
async fn by_default_every_signature_is_checked_alone() {
    // Batching is off unless `[ledger] batch_signatures` turns it on: the
    // same concurrent requests, with the forged one refused, go through no
    // batch at all.
    let t = TestLedger::new().await;
    let mut envelopes: Vec<_> = (0..12)
        .map(|i| docked_event(&format!("solo-{i:02}")))
        .collect();
    envelopes[5].signatures[0].sig[40] ^= 0x01;
    let before = t.size();
    let answers = join_all(envelopes.iter().map(|e| t.post_event(e))).await;
    for (i, answer) in answers.iter().enumerate() {
        let expected = if i == 5 {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::CREATED
        };
        assert_eq!(answer.status, expected, "request {i}: {}", answer.text());
    }
    assert_eq!(t.size(), before + 11);
    assert_eq!(batches(&t, "failed") + batches(&t, "passed"), 0);
}
