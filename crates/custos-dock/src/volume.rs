//! A recorder's files, as the dock may touch them: listed without following
//! a symbolic link, opened only if they are still the file that was listed,
//! removed only if they are still the file that was verified.
//!
//! A recorder is outside input. Its volume may hold names with `..`,
//! bytes that are not UTF-8, symbolic links pointing anywhere on the dock,
//! device nodes, other mounted file systems. This module:
//!
//! - walks the media root with `lstat` semantics: a symbolic link is
//!   reported as skipped, never followed (not even to a directory), and no
//!   walk crosses into another file system;
//! - refuses a media root whose path from the volume root passes through a
//!   symbolic link;
//! - opens a file with `O_NOFOLLOW` and checks, on the open descriptor,
//!   that device, inode, size and modification time are still those of the
//!   listing (anything else is a different file, refused);
//! - removes a file only after the same check, by its path inside the
//!   media root (never a path the recorder named).
//!
//! What it must never do: read, stat or remove anything outside the media
//! root, or follow a link out of it.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};

use crate::profile::StorageSpec;

/// Deepest directory nesting walked under the media root.
pub const MAX_DEPTH: usize = 16;
/// Most files listed from one volume.
pub const MAX_FILES: usize = 100_000;

/// Why the dock could not use a recorder's volume or one of its files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// Listing or examining the volume failed.
    #[error("cannot read the recorder volume at {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The media root's path leads through a symbolic link or a non-directory.
    #[error("the media root {path} is not a plain directory inside the volume ({reason}); nothing is read from it")]
    UnsafeRoot {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file is no longer the one that was listed (replaced, grown,
    /// turned into a link).
    #[error("{path} changed since it was listed ({what}); it is left alone")]
    Changed {
        /// The file.
        path: PathBuf,
        /// What differs.
        what: String,
    },
    /// The file is gone.
    #[error("{path} is no longer on the recorder")]
    Gone {
        /// The file.
        path: PathBuf,
    },
}

/// One footage file on a recorder, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Its path relative to the media root, `/`-separated, raw bytes.
    pub relative: Vec<u8>,
    /// Its file name's raw bytes (the last component of `relative`).
    pub name: Vec<u8>,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// Device number of its file system.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// Something under the media root that is not ingested, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its path relative to the media root, raw bytes.
    pub relative: Vec<u8>,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// Why something under the media root is not ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// A symbolic link: never followed.
    SymbolicLink,
    /// Another file system is mounted there.
    OtherFileSystem,
    /// A directory deeper than the listing goes.
    NestedTooDeep,
    /// A device, socket or pipe.
    NotRegularFile,
    /// A file the profile's globs do not take as footage.
    NotFootage,
    /// Past the listing's limit on files; listed at a later docking.
    TooManyFiles,
}

impl SkipReason {
    /// The reason in words (what [`std::fmt::Display`] writes).
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::SymbolicLink => "symbolic link (never followed)",
            SkipReason::OtherFileSystem => "another file system mounted inside the volume",
            SkipReason::NestedTooDeep => "directory nested too deep",
            SkipReason::NotRegularFile => "not a regular file (device, socket or pipe)",
            SkipReason::NotFootage => "not footage per the profile's globs",
            SkipReason::TooManyFiles => {
                "too many files on the volume; the rest waits for the next docking"
            }
        }
    }

    /// Whether the operator should hear of it (the dock logs a warning):
    /// everything but what is plainly not footage.
    pub fn worth_a_warning(self) -> bool {
        match self {
            SkipReason::SymbolicLink
            | SkipReason::OtherFileSystem
            | SkipReason::NestedTooDeep
            | SkipReason::TooManyFiles => true,
            SkipReason::NotRegularFile | SkipReason::NotFootage => false,
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Footage files, sorted by path.
    pub files: Vec<SourceFile>,
    /// What was left out on purpose (links, devices, other file systems).
    pub skipped: Vec<Skipped>,
    /// The media root does not exist (a recorder with no footage yet).
    pub no_media_root: bool,
}

/// A recorder's mounted volume and its media root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    root: PathBuf,
    media_root: PathBuf,
}

impl Volume {
    /// The volume mounted (or present) at `root`, with the footage under
    /// `media_root` (relative, as a profile gives it).
    pub fn new(root: &Path, media_root: &Path) -> Volume {
        let media = media_root
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .fold(root.to_path_buf(), |p, c| p.join(c));
        Volume {
            root: root.to_path_buf(),
            media_root: media,
        }
    }

    /// The volume root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The media root (absolute).
    pub fn media_root(&self) -> &Path {
        &self.media_root
    }

    /// The path of a listed file.
    pub fn path_of(&self, relative: &[u8]) -> PathBuf {
        relative
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b"." && *c != b"..")
            .fold(self.media_root.clone(), |p, c| {
                p.join(std::ffi::OsStr::from_bytes(c))
            })
    }

    /// Check the path from the volume root to the media root: every
    /// component a real directory. `Ok(false)` if the media root is missing.
    fn check_root(&self) -> Result<bool, VolumeError> {
        let root_meta =
            std::fs::symlink_metadata(&self.root).map_err(|source| VolumeError::Io {
                path: self.root.clone(),
                source,
            })?;
        if !root_meta.is_dir() {
            return Err(VolumeError::UnsafeRoot {
                path: self.root.clone(),
                reason: "the volume root is not a directory".into(),
            });
        }
        let rest = self
            .media_root
            .strip_prefix(&self.root)
            .unwrap_or(Path::new(""));
        let mut at = self.root.clone();
        for c in rest.components() {
            at.push(c);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(VolumeError::UnsafeRoot {
                        path: at,
                        reason: "a symbolic link".into(),
                    })
                }
                Ok(m) if !m.is_dir() => {
                    return Err(VolumeError::UnsafeRoot {
                        path: at,
                        reason: "not a directory".into(),
                    })
                }
                Ok(m) if m.dev() != root_meta.dev() => {
                    return Err(VolumeError::UnsafeRoot {
                        path: at,
                        reason: "another file system is mounted there".into(),
                    })
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(source) => return Err(VolumeError::Io { path: at, source }),
            }
        }
        Ok(true)
    }

    /// List the footage files (those `storage`'s globs accept) under the
    /// media root.
    pub fn list(&self, storage: &StorageSpec) -> Result<Listing, VolumeError> {
        let mut listing = Listing::default();
        if !self.check_root()? {
            listing.no_media_root = true;
            return Ok(listing);
        }
        let dev = std::fs::symlink_metadata(&self.media_root)
            .map_err(|source| VolumeError::Io {
                path: self.media_root.clone(),
                source,
            })?
            .dev();
        self.walk(
            &self.media_root.clone(),
            Vec::new(),
            0,
            dev,
            storage,
            &mut listing,
        )?;
        listing.files.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(listing)
    }

    fn walk(
        &self,
        dir: &Path,
        prefix: Vec<u8>,
        depth: usize,
        dev: u64,
        storage: &StorageSpec,
        out: &mut Listing,
    ) -> Result<(), VolumeError> {
        let io = |source| VolumeError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().into_vec();
            let mut relative = prefix.clone();
            if !relative.is_empty() {
                relative.push(b'/');
            }
            relative.extend_from_slice(&name);
            // `DirEntry::metadata` does not follow symbolic links.
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(VolumeError::Io {
                        path: entry.path(),
                        source,
                    })
                }
            };
            let kind = meta.file_type();
            let skip = |out: &mut Listing, reason| {
                out.skipped.push(Skipped {
                    relative: relative.clone(),
                    reason,
                })
            };
            if kind.is_symlink() {
                skip(out, SkipReason::SymbolicLink);
            } else if meta.dev() != dev {
                skip(out, SkipReason::OtherFileSystem);
            } else if kind.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    skip(out, SkipReason::NestedTooDeep);
                } else {
                    self.walk(&entry.path(), relative, depth + 1, dev, storage, out)?;
                }
            } else if !kind.is_file() {
                skip(out, SkipReason::NotRegularFile);
            } else if !storage.is_footage(Path::new(std::ffi::OsStr::from_bytes(&relative))) {
                skip(out, SkipReason::NotFootage);
            } else if out.files.len() >= MAX_FILES {
                skip(out, SkipReason::TooManyFiles);
            } else {
                out.files.push(SourceFile {
                    name,
                    relative,
                    size: meta.len(),
                    mtime_ns: mtime_ns(&meta),
                    dev: meta.dev(),
                    ino: meta.ino(),
                });
            }
        }
        Ok(())
    }

    /// Compare what is at `file`'s path now with the listing.
    pub fn check(&self, file: &SourceFile) -> Result<(), VolumeError> {
        let path = self.path_of(&file.relative);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) => same_file(&path, file, &meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(VolumeError::Gone { path }),
            Err(source) => Err(VolumeError::Io { path, source }),
        }
    }

    /// Open a listed file for reading: without following a link, and only
    /// if it is still the file listed.
    pub fn open(&self, file: &SourceFile) -> Result<File, VolumeError> {
        let path = self.path_of(&file.relative);
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
            .open(&path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => VolumeError::Gone { path: path.clone() },
                _ if source.raw_os_error() == Some(libc::ELOOP) => VolumeError::Changed {
                    path: path.clone(),
                    what: "it is now a symbolic link".into(),
                },
                _ => VolumeError::Io {
                    path: path.clone(),
                    source,
                },
            })?;
        let meta = f.metadata().map_err(|source| VolumeError::Io {
            path: path.clone(),
            source,
        })?;
        same_file(&path, file, &meta)?;
        Ok(f)
    }

    /// Remove a listed file, if it is still the file listed, and sync the
    /// removal: the whole file system is synced (`syncfs`), so a recorder
    /// pulled out right after "safe to undock" does not come back with the
    /// file still on it. (A directory fsync is not enough on FAT:
    /// tests/usb/ caught wiped files returning after an unplug.) The
    /// folder is opened before the removal, so that `syncfs` on it reports
    /// any write error of the file system since, not only its own.
    ///
    /// `Ok` says the kernel reported no error; it does not say the medium
    /// was still there (a sync against a recorder that was unplugged can
    /// succeed without reaching it): the caller checks that the medium is
    /// still attached after this returns before it counts the file wiped.
    pub fn remove(&self, file: &SourceFile) -> Result<(), VolumeError> {
        self.check(file)?;
        let path = self.path_of(&file.relative);
        let folder = path.parent().unwrap_or(&self.root).to_owned();
        let dir = File::open(&folder).map_err(|source| VolumeError::Io {
            path: folder.clone(),
            source,
        })?;
        std::fs::remove_file(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => VolumeError::Gone { path: path.clone() },
            _ => VolumeError::Io {
                path: path.clone(),
                source,
            },
        })?;
        rustix::fs::syncfs(&dir).map_err(|e| VolumeError::Io {
            path: folder,
            source: io::Error::from(e),
        })
    }

    /// Write `content` to `name` at the volume root (a clock file), never
    /// through a link.
    pub fn write_root_file(&self, name: &Path, content: &[u8]) -> Result<(), VolumeError> {
        use std::io::Write as _;
        let path = self.root.join(name);
        let io = |source| VolumeError::Io {
            path: path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
            .open(&path)
            .map_err(io)?;
        f.write_all(content).map_err(io)?;
        f.sync_all().map_err(io)
    }
}

fn mtime_ns(meta: &Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

fn same_file(path: &Path, file: &SourceFile, meta: &Metadata) -> Result<(), VolumeError> {
    let what = if meta.file_type().is_symlink() {
        Some("it is now a symbolic link".to_owned())
    } else if !meta.is_file() {
        Some("it is no longer a regular file".to_owned())
    } else if (meta.dev(), meta.ino()) != (file.dev, file.ino) {
        Some("another file now has its name".to_owned())
    } else if meta.len() != file.size {
        Some(format!("size {} became {}", file.size, meta.len()))
    } else if mtime_ns(meta) != file.mtime_ns {
        Some("its modification time changed".to_owned())
    } else {
        None
    };
    match what {
        None => Ok(()),
        Some(what) => Err(VolumeError::Changed {
            path: path.to_owned(),
            what,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    #[test]
    fn skip_reasons_read_as_before_and_warn_as_before() {
        let all = [
            SkipReason::SymbolicLink,
            SkipReason::OtherFileSystem,
            SkipReason::NestedTooDeep,
            SkipReason::NotRegularFile,
            SkipReason::NotFootage,
            SkipReason::TooManyFiles,
        ];
        for r in all {
            let text = r.to_string();
            assert_eq!(text, r.as_str());
            // The dock used to pick the reasons to warn about by these words.
            let by_words =
                text.contains("symbolic") || text.contains("file system") || text.contains("too");
            assert_eq!(r.worth_a_warning(), by_words, "{text}");
        }
    }

    fn storage(globs: &str) -> StorageSpec {
        let text = format!(
            "name = \"t\"\nmodel = \"m\"\n[storage]\nkind = \"directory\"\nmedia_root = \"DCIM\"\nglobs = [{globs}]\n"
        );
        Profile::parse(&text, Path::new("t.toml")).unwrap().storage
    }

    #[test]
    fn links_are_skipped_and_outside_is_untouched() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.MP4"), b"not yours").unwrap();
        let vol = tempfile::tempdir().unwrap();
        let dcim = vol.path().join("DCIM");
        std::fs::create_dir_all(dcim.join("100MEDIA")).unwrap();
        std::fs::write(dcim.join("100MEDIA/A.MP4"), b"aaaa").unwrap();
        std::fs::write(dcim.join("100MEDIA/empty.mp4"), b"").unwrap();
        std::fs::write(dcim.join("notes.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.MP4"), dcim.join("link.MP4"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), dcim.join("linkdir")).unwrap();
        let v = Volume::new(vol.path(), Path::new("DCIM"));
        let l = v.list(&storage("\"**/*.mp4\"")).unwrap();
        let names: Vec<_> = l
            .files
            .iter()
            .map(|f| String::from_utf8_lossy(&f.relative).into_owned())
            .collect();
        assert_eq!(names, ["100MEDIA/A.MP4", "100MEDIA/empty.mp4"]);
        let skipped: Vec<_> = l
            .skipped
            .iter()
            .map(|s| (String::from_utf8_lossy(&s.relative).into_owned(), s.reason))
            .collect();
        assert!(skipped
            .iter()
            .any(|(n, r)| n == "link.MP4" && *r == SkipReason::SymbolicLink));
        assert!(skipped
            .iter()
            .any(|(n, r)| n == "linkdir" && *r == SkipReason::SymbolicLink));
        assert!(skipped.iter().any(|(n, _)| n == "notes.txt"));

        // Replace a listed file by a link: open and remove refuse.
        let a = l.files[0].clone();
        std::fs::remove_file(dcim.join("100MEDIA/A.MP4")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.MP4"),
            dcim.join("100MEDIA/A.MP4"),
        )
        .unwrap();
        assert!(matches!(v.open(&a), Err(VolumeError::Changed { .. })));
        assert!(matches!(v.remove(&a), Err(VolumeError::Changed { .. })));
        assert!(outside.path().join("secret.MP4").exists());
        assert!(std::fs::symlink_metadata(dcim.join("100MEDIA/A.MP4")).is_ok());
    }

    #[test]
    fn a_linked_media_root_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let vol = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), vol.path().join("DCIM")).unwrap();
        let v = Volume::new(vol.path(), Path::new("DCIM"));
        assert!(matches!(
            v.list(&storage("\"**/*\"")),
            Err(VolumeError::UnsafeRoot { .. })
        ));
        let empty = tempfile::tempdir().unwrap();
        let v = Volume::new(empty.path(), Path::new("DCIM"));
        assert!(v.list(&storage("\"**/*\"")).unwrap().no_media_root);
    }

    #[test]
    fn changed_files_are_not_removed() {
        let vol = tempfile::tempdir().unwrap();
        std::fs::create_dir(vol.path().join("DCIM")).unwrap();
        std::fs::write(vol.path().join("DCIM/A.MP4"), b"aaaa").unwrap();
        let v = Volume::new(vol.path(), Path::new("DCIM"));
        let l = v.list(&storage("\"*.MP4\"")).unwrap();
        let a = l.files[0].clone();
        v.open(&a).unwrap();
        std::fs::write(vol.path().join("DCIM/A.MP4"), b"aaaaaa").unwrap();
        assert!(matches!(v.remove(&a), Err(VolumeError::Changed { .. })));
        assert!(vol.path().join("DCIM/A.MP4").exists());
        let l = v.list(&storage("\"*.MP4\"")).unwrap();
        v.remove(&l.files[0]).unwrap();
        assert!(!vol.path().join("DCIM/A.MP4").exists());
        assert!(matches!(
            v.remove(&l.files[0]),
            Err(VolumeError::Gone { .. })
        ));
    }
}
