//! What is at an unfinished record's path when this docking did not list
//! its file ([`AtPath`]), and the words for a record that is therefore not
//! counted as wiped. Looks only (`lstat`, never following a link, never
//! leaving the volume's file system); never reads or removes anything.

use crate::journal::SegmentRecord;

/// Why an unlisted record's file is not counted wiped (or gone).
pub(super) fn not_listed(name: &str, at: &AtPath) -> String {
    match at {
        AtPath::Unknown(why) => format!(
            "{name} was not listed and what is at its path cannot be told ({why}); not counted as wiped, left for the next docking"
        ),
        _ => format!(
            "{name} is still on the recorder but was not listed (past a listing limit, or outside what the profile lists); not counted as wiped, left for the next docking"
        ),
    }
}

/// What is at an unlisted record's path, looked at (`lstat`, component by
/// component from the volume root, never following a link) right after
/// the listing. Nothing is read or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AtPath {
    /// Nothing: the file is gone from the recorder.
    Nothing,
    /// A regular file with the record's size and time: still there.
    TheFile,
    /// Something else holds its name.
    Another,
    /// Cannot be told (a link or another file system on the way, an I/O
    /// error).
    Unknown(String),
}

/// See [`AtPath`]. The path is the record's original name (relative to the
/// volume root as it was discovered), so a change of profile or media root
/// does not make a file look gone.
pub(super) fn at_path(root: &std::path::Path, rec: &SegmentRecord) -> AtPath {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::MetadataExt as _;
    let original = rec.original();
    let parts: Vec<&[u8]> = original
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b"." && *c != b"..")
        .collect();
    if parts.is_empty() {
        return AtPath::Unknown("the journal has no path for it".into());
    }
    let root_dev = match std::fs::symlink_metadata(root) {
        Ok(m) => m.dev(),
        Err(e) => return AtPath::Unknown(format!("{}: {e}", root.display())),
    };
    let mut at = root.to_path_buf();
    for (i, c) in parts.iter().enumerate() {
        at.push(std::ffi::OsStr::from_bytes(c));
        let last = i + 1 == parts.len();
        match std::fs::symlink_metadata(&at) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return AtPath::Nothing,
            Err(e) => return AtPath::Unknown(format!("{}: {e}", at.display())),
            Ok(m) if m.file_type().is_symlink() => {
                return AtPath::Unknown("a symbolic link is on its path".into())
            }
            Ok(m) if m.dev() != root_dev => {
                return AtPath::Unknown("another file system is mounted on its path".into())
            }
            Ok(m) if !last && !m.is_dir() => return AtPath::Nothing,
            Ok(m) if last => {
                let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
                let same =
                    m.is_file() && m.len() == rec.source.size && mtime == rec.source.mtime_ns;
                return if same {
                    AtPath::TheFile
                } else {
                    AtPath::Another
                };
            }
            Ok(_) => {}
        }
    }
    AtPath::Unknown("unreachable: the walk ends at the last component".into())
}
