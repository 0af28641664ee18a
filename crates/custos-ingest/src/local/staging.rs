//! The staging file and the link that gives it its name: how every object
//! of the local filesystem store reaches its key.
//!
//! An object is written to a staging file `KEY#N` created with `O_EXCL`
//! next to the final name (the name `object_store` gives unfinished
//! uploads; its listings skip it), flushed to the device (`fdatasync`),
//! then **linked** to the final name with `link(2)`, which fails when the
//! name exists, even against a concurrent writer (no overwrite, invariant
//! 2); the staging name is removed and the directories are synced, so the
//! name is durable before the caller records the object anywhere.
//!
//! Crash safety: the final name only ever points at a complete, synced
//! file. A crash before the link leaves at most a staging file, which no
//! listing shows and a later attempt does not reuse (it takes the next
//! free `#N`). This module must never write to the final name other than
//! by linking a synced file to it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path as FsPath, PathBuf};

/// A staging file that is removed when dropped, unless it was linked into
/// place.
#[derive(Debug)]
pub(crate) struct Staging {
    path: Option<PathBuf>,
    /// Directories created for it, outermost first; their parents are
    /// synced with the final directory.
    created: Vec<PathBuf>,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            // Best effort: a left-over staging file is invisible garbage.
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `dest#n`: object_store's name for an unfinished upload to `dest`.
fn staging_path(dest: &FsPath, n: u32) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(format!("#{n}"));
    PathBuf::from(s)
}

/// Create a fresh staging file next to `dest` (and the directories it
/// needs), never opening an existing one.
pub(crate) fn create_staging(dest: &FsPath) -> io::Result<(File, Staging)> {
    let mut created = Vec::new();
    let mut n = 1u32;
    loop {
        let path = staging_path(dest, n);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => {
                return Ok((
                    f,
                    Staging {
                        path: Some(path),
                        created,
                    },
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound && created.is_empty() => {
                let parent = dest.parent().ok_or(e)?;
                let mut missing = Vec::new();
                let mut p = Some(parent);
                while let Some(d) = p.filter(|d| !d.exists()) {
                    missing.push(d.to_path_buf());
                    p = d.parent();
                }
                std::fs::create_dir_all(parent)?;
                missing.reverse();
                // At least the parent, so that the branch runs only once.
                created = if missing.is_empty() {
                    vec![parent.to_path_buf()]
                } else {
                    missing
                };
            }
            Err(e) => return Err(e),
        }
    }
}

/// Store `chunks`, in order, as the whole object `dest` the same durable
/// way: a staging file, `fdatasync`, then [`link_into_place`]. For objects
/// that come whole from memory (a segment shorter than one part, a
/// manifest), which `object_store`'s `LocalFileSystem` would write without
/// a sync and rename over whatever the key held.
pub(crate) fn write_whole<'a>(
    dest: &FsPath,
    root: &FsPath,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> io::Result<()> {
    let (mut out, staging) = create_staging(dest)?;
    for chunk in chunks {
        out.write_all(chunk)?;
    }
    out.sync_data()?;
    drop(out);
    link_into_place(staging, dest, root)
}

/// Give the synced staging file its final name `dest`, without replacing
/// anything there (`AlreadyExists` when the name is taken), then drop the
/// staging name and sync the directories whose entries changed.
pub(crate) fn link_into_place(
    mut staging: Staging,
    dest: &FsPath,
    root: &FsPath,
) -> io::Result<()> {
    let Some(path) = staging.path.clone() else {
        return Err(io::Error::other("staging file already gone"));
    };
    std::fs::hard_link(&path, dest)?;
    // The object is complete under its name; the staging name is only a
    // second link to it now.
    staging.path = None;
    std::fs::remove_file(&path)?;
    let parent = dest.parent().unwrap_or(root);
    File::open(parent)?.sync_all()?;
    // New directories are entries in their own parents.
    for d in &staging.created {
        if let Some(p) = d.parent() {
            if p.starts_with(root) {
                File::open(p)?.sync_all()?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linking_never_replaces_and_staging_files_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("obj");
        let (_a, sa) = create_staging(&dest).unwrap();
        let (_b, sb) = create_staging(&dest).unwrap();
        assert_ne!(sa.path, sb.path, "each attempt gets its own staging file");
        std::fs::write(&dest, b"taken").unwrap();
        let err = link_into_place(sa, &dest, dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&dest).unwrap(), b"taken");
        drop(sb);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "staging files are removed when dropped");
    }

    #[test]
    fn a_whole_object_lands_in_order_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b/manifest.json");
        let parts: [&[u8]; 3] = [b"{\"payload\":", b"", b"\"x\"}"];
        write_whole(&dest, dir.path(), parts).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"{\"payload\":\"x\"}");
        let err = write_whole(&dest, dir.path(), [&b"other"[..]]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&dest).unwrap(), b"{\"payload\":\"x\"}");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec!["manifest.json"], "no staging file is left");
    }
}
