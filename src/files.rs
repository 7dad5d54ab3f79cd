//! Files the relay writes are private to its user: directories `0700`, files `0600`, and a
//! file is replaced through a temporary file that is created exclusively (so a symlink planted
//! in its place is never followed) in the same directory, then renamed over it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Creates `dir` (and missing parents) readable by the relay's user only. An existing
/// directory is left as it is.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Options that create a file readable and writable by the relay's user only.
pub fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Creates a new file that did not exist (fails on anything in its place, a symlink too).
pub fn create_new_private(path: &Path) -> io::Result<File> {
    private_options().write(true).create_new(true).open(path)
}

/// Replaces `path` with `body` atomically: write a uniquely named temporary file beside it,
/// then rename it over `path`. With `sync`, the data reaches the device before the rename.
pub fn replace_atomically(path: &Path, body: &[u8], sync: bool) -> io::Result<()> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut last = None;
    for _ in 0..8 {
        let tmp: PathBuf = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        match create_new_private(&tmp) {
            Ok(mut f) => {
                let written = f
                    .write_all(body)
                    .and_then(|_| if sync { f.sync_all() } else { Ok(()) });
                let r = written.and_then(|_| std::fs::rename(&tmp, path));
                if r.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                return r;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_modes_and_no_symlink_followed() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let f = dir.join("state.json");
        replace_atomically(&f, b"one", false).unwrap();
        assert_eq!(mode(&f), 0o600);
        // A symlink planted where a temporary file could go is never written through.
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("planted")).unwrap();
        assert!(create_new_private(&dir.join("planted")).is_err());
        replace_atomically(&f, b"two", true).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty());
    }
}
