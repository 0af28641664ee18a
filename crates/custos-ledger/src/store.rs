//! The sled store: typed reads over the key layout of [`crate::layout`].
//!
//! Anyone may read through a [`Store`]; only the append writer
//! ([`crate::append`]) writes the log's keys, and it writes them in one
//! `apply_batch` per batch. Reads of the log here return what sled holds,
//! which may include a batch that is applied but not yet flushed: callers
//! that serve the log (the [`crate::Ledger`]) bound every read by the
//! *published* tree size, which only counts durable entries.
//!
//! This module must never write a log key (`E`, `N`, `M`, `D`) outside the
//! writer's batch, and never hold a sled lock across an `await`.

use std::path::{Path, PathBuf};

use custos_core::merkle::{Hash, NodeId, NodeSource};
use sled::IVec;

use crate::error::{ReadError, StoreError, TamperError};
use crate::layout;

/// The ledger's sled database and its one tree.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
}

impl Store {
    /// Open (or create) the database in directory `path`. A database held by
    /// another process is [`StoreError::Locked`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new().path(path).open().map_err(|e| match e {
            sled::Error::Io(ref io) if io.to_string().contains("could not acquire lock") => {
                StoreError::Locked {
                    path: path.to_owned(),
                }
            }
            other => StoreError::Sled(other),
        })?;
        let tree = db.open_tree(layout::TREE_NAME)?;
        Ok(Store {
            db,
            tree,
            path: path.to_owned(),
        })
    }

    /// The sled directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tree that holds everything (for the writer and for tests that
    /// tamper with it).
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Flush every write to disk (fsync); returns once they are durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The raw bytes under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        Ok(self.tree.get(key)?)
    }

    /// Entry `seq`'s bytes, if stored.
    pub fn entry(&self, seq: u64) -> Result<Option<IVec>, StoreError> {
        self.get(&layout::entry_key(seq))
    }

    /// The highest stored entry index, if any.
    pub fn last_entry_seq(&self) -> Result<Option<u64>, StoreError> {
        let Some((key, _)) = self.tree.get_lt([layout::ENTRY + 1])? else {
            return Ok(None);
        };
        Ok(layout::entry_seq(&key))
    }

    /// Tree node `id`, if stored. A chunk whose length is not a whole
    /// number of hashes is a [`TamperError::Node`].
    pub fn node(&self, id: NodeId) -> Result<Option<Hash>, ReadError> {
        let (key, offset) = layout::node_chunk(id);
        let Some(chunk) = self.get(&key)? else {
            return Ok(None);
        };
        if chunk.len() % custos_core::merkle::HASH_LEN != 0 {
            return Err(ReadError::Tampered(TamperError::Node {
                node: id,
                first_entry: id.first_leaf(),
                reason: format!(
                    "its chunk is {} bytes, not a whole number of hashes",
                    chunk.len()
                ),
            }));
        }
        let Some(bytes) = chunk.get(offset..offset + custos_core::merkle::HASH_LEN) else {
            return Ok(None);
        };
        Hash::try_from(bytes).map(Some).map_err(|e| {
            ReadError::Tampered(TamperError::Node {
                node: id,
                first_entry: id.first_leaf(),
                reason: e.to_string(),
            })
        })
    }

    /// The seq of the entry carrying the envelope with this canonical-JSON digest.
    pub fn dedup(&self, digest: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        let Some(bytes) = self.get(&layout::dedup_key(digest))? else {
            return Ok(None);
        };
        let seq: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| StoreError::Malformed {
                what: "envelope de-duplication record".into(),
                why: format!("{} bytes, expected 8", bytes.len()),
            })?;
        Ok(Some(u64::from_be_bytes(seq)))
    }

    /// Row `key` of state table `table`.
    pub fn table_get(&self, table: &str, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        self.get(&layout::table_key(table, key))
    }

    /// Row `key` of `table`, decoded from JSON.
    pub fn table_get_json<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.table_get(table, key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Malformed {
                what: format!("row {:?} of table {table}", String::from_utf8_lossy(key)),
                why: e.to_string(),
            })
    }

    /// The rows of `table` whose key starts with `prefix`, in key order, as
    /// `(row key without the table prefix, value)`.
    pub fn table_scan(
        &self,
        table: &str,
        prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<(Vec<u8>, IVec), StoreError>> + use<> {
        let skip = layout::table_prefix(table).len();
        self.tree
            .scan_prefix(layout::table_key(table, prefix))
            .map(move |row| {
                let (k, v) = row?;
                Ok((k[skip..].to_vec(), v))
            })
    }

    /// The rows of `table` with keys in `[start, end)`, in key order.
    pub fn table_range(
        &self,
        table: &str,
        start: &[u8],
        end: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<(Vec<u8>, IVec), StoreError>> + use<> {
        let skip = layout::table_prefix(table).len();
        self.tree
            .range(layout::table_key(table, start)..layout::table_key(table, end))
            .map(move |row| {
                let (k, v) = row?;
                Ok((k[skip..].to_vec(), v))
            })
    }

    /// The stored nodes as a [`NodeSource`]; a missing node is a
    /// [`TamperError::Node`] (every node below the tree size is written with
    /// the entry that completes it).
    pub fn nodes(&self) -> StoredNodes<'_> {
        StoredNodes(self)
    }
}

/// [`Store::nodes`].
#[derive(Debug, Clone, Copy)]
pub struct StoredNodes<'a>(&'a Store);

impl NodeSource for StoredNodes<'_> {
    type Error = ReadError;

    fn node(&self, id: NodeId) -> Result<Hash, ReadError> {
        self.0.node(id)?.ok_or_else(|| {
            ReadError::Tampered(TamperError::Node {
                node: id,
                first_entry: id.first_leaf(),
                reason: "the node is missing".into(),
            })
        })
    }
}
