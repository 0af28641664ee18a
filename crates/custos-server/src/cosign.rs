//! The ledger's side of C2SP tlog-witness: submitting each checkpoint it
//! publishes to the witnesses of `[[ledger.witnesses]]` and collecting
//! their cosignatures ([`custos_ledger::tiles::Cosigner`]).
//!
//! For each witness the submitter remembers the size it believes the
//! witness last cosigned (0 at start). A request carries that old size and
//! the consistency proof from it, which the ledger can make from any older
//! size. A `409` answer names the witness's size: the request is made again
//! once from that size (a restarted ledger learns it this way). Every
//! witness is asked at once, each within `[ledger] witness_timeout`; one
//! that fails or does not answer is left out of this checkpoint with a
//! `warn` naming it (its URL and name: nothing secret crosses this path),
//! and asked again at the next one.
//!
//! A cosignature is added only after it verified under the witness's
//! configured key.
//!
//! # What this module must never do
//!
//! Hold up an append (it runs on the publisher's task only) or add a
//! cosignature that does not verify.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use custos_client::WitnessAnswer;
use custos_core::config::Config;
use custos_core::cosignature::CosignerKey;
use custos_core::note::{NoteSignature, SignedNote};
use custos_core::witness::AddCheckpoint;
use custos_ledger::Ledger;
use futures::future::BoxFuture;

/// One witness: where to submit and its key.
#[derive(Debug, Clone)]
pub struct Witness {
    /// The submission prefix (`/add-checkpoint` is appended).
    pub url: String,
    /// Its cosigner key.
    pub key: CosignerKey,
}

/// Submits checkpoints to witnesses over HTTP.
#[derive(Debug)]
pub struct WitnessSubmitter {
    witnesses: Vec<Witness>,
    quorum: usize,
    timeout: Duration,
    client: custos_client::WitnessClient,
    /// Per witness name, the size it last cosigned, as far as known.
    sizes: Mutex<HashMap<String, u64>>,
}

/// What one submission came to.
enum Outcome {
    Cosigned(Vec<NoteSignature>),
    /// 409: the witness's size.
    Conflict(u64),
    Failed(String),
}

impl WitnessSubmitter {
    /// A submitter for `witnesses`, each asked within `timeout`; `quorum`
    /// is what exports' policy files require.
    pub fn new(
        witnesses: Vec<Witness>,
        quorum: usize,
        timeout: Duration,
    ) -> Result<Self, custos_client::ClientError> {
        let client = custos_client::WitnessClient::new(timeout)?;
        Ok(WitnessSubmitter {
            witnesses,
            quorum,
            timeout,
            client,
            sizes: Mutex::new(HashMap::new()),
        })
    }

    /// The `[[ledger.witnesses]]` of `config` (`None`: no witness).
    pub fn from_config(config: &Config) -> Result<Option<Self>, String> {
        let l = &config.ledger;
        if l.witnesses.is_empty() {
            return Ok(None);
        }
        let witnesses = l
            .witnesses
            .iter()
            .map(|w| {
                Ok(Witness {
                    url: w.url.trim_end_matches('/').to_owned(),
                    key: w.key.parse().map_err(|e| format!("{e}"))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let timeout = l.witness_wait().map_err(|e| e.to_string())?;
        WitnessSubmitter::new(witnesses, l.witness_quorum as usize, timeout)
            .map(Some)
            .map_err(|e| format!("the witnesses' HTTP client: {e}"))
    }

    /// The witnesses.
    pub fn witnesses(&self) -> &[Witness] {
        &self.witnesses
    }

    /// The quorum exports' policies require.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    fn known_size(&self, name: &str) -> u64 {
        self.sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    fn set_size(&self, name: &str, size: u64) {
        self.sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), size);
    }

    /// One `add-checkpoint` request from `old` to the note's size.
    async fn submit(
        &self,
        ledger: &Ledger,
        witness: &Witness,
        note: &SignedNote,
        size: u64,
        old: u64,
    ) -> Outcome {
        if old > size {
            return Outcome::Failed(format!(
                "the witness has cosigned size {old}, more than this ledger's {size} (another ledger with this origin and key?)"
            ));
        }
        let proof = match ledger.consistency_proof(old, size) {
            Ok(p) => p.hashes,
            Err(e) => return Outcome::Failed(format!("consistency proof {old}..{size}: {e}")),
        };
        let request = AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: note.clone(),
        };
        let text = match self.client.add_checkpoint(&witness.url, &request).await {
            Ok(WitnessAnswer::Cosigned(text)) => text,
            Ok(WitnessAnswer::Conflict(size)) => return Outcome::Conflict(size),
            Ok(WitnessAnswer::Refused { status, why }) => {
                return Outcome::Failed(format!("{status}: {why}"))
            }
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let text = text.as_str();
        let lines = match NoteSignature::parse_lines(text) {
            Ok(l) => l,
            Err(e) => return Outcome::Failed(format!("the answer: {e}")),
        };
        let mut valid = Vec::new();
        for sig in lines.into_iter().filter(|s| witness.key.matches(s)) {
            match witness.key.verify(note.text(), &sig) {
                Ok(_) => valid.push(sig),
                Err(e) => return Outcome::Failed(e.to_string()),
            }
        }
        if valid.is_empty() {
            return Outcome::Failed("no cosignature by the configured key in the answer".into());
        }
        Outcome::Cosigned(valid)
    }

    /// Ask one witness, once more from its size after a 409.
    async fn ask(
        &self,
        ledger: &Ledger,
        witness: &Witness,
        note: &SignedNote,
        size: u64,
    ) -> Option<Vec<NoteSignature>> {
        let name = witness.key.name();
        let mut old = self.known_size(name);
        for attempt in 0..2 {
            let outcome =
                tokio::time::timeout(self.timeout, self.submit(ledger, witness, note, size, old))
                    .await
                    .unwrap_or_else(|_| {
                        Outcome::Failed(format!("no answer within {:?}", self.timeout))
                    });
            match outcome {
                Outcome::Cosigned(sigs) => {
                    self.set_size(name, size);
                    return Some(sigs);
                }
                Outcome::Conflict(theirs) if attempt == 0 && theirs != old => {
                    self.set_size(name, theirs);
                    old = theirs;
                }
                Outcome::Conflict(theirs) => {
                    tracing::warn!(witness = %name, url = %witness.url, size, their_size = theirs, "witness refused the checkpoint (409): it has cosigned another tree at its size");
                    return None;
                }
                Outcome::Failed(why) => {
                    tracing::warn!(witness = %name, url = %witness.url, size, error = %why, "witness did not cosign; publishing without its cosignature");
                    return None;
                }
            }
        }
        None
    }
}

impl custos_ledger::tiles::Cosigner for WitnessSubmitter {
    fn cosign<'a>(&'a self, ledger: &'a Ledger, note: &'a str) -> BoxFuture<'a, String> {
        Box::pin(async move {
            let Ok(mut parsed) = SignedNote::parse(note.as_bytes()) else {
                return note.to_owned();
            };
            let Some(size) = custos_core::checkpoint::Checkpoint::parse(parsed.text())
                .ok()
                .map(|c| c.size())
            else {
                return note.to_owned();
            };
            let asked = self
                .witnesses
                .iter()
                .map(|w| self.ask(ledger, w, &parsed, size));
            let answers = futures::future::join_all(asked).await;
            for sig in answers.into_iter().flatten().flatten() {
                if parsed.push_signature(sig).is_err() {
                    break;
                }
            }
            parsed.to_string()
        })
    }

    fn witnesses(&self) -> (Vec<CosignerKey>, usize) {
        (
            self.witnesses.iter().map(|w| w.key.clone()).collect(),
            self.quorum,
        )
    }
}
