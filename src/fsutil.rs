//! Small file helpers shared by modules that write secrets to disk.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path`, replacing it; with `private`, the file is created with mode 0600.
pub(crate) fn write_file(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Creates `path` holding `bytes` (mode 0600) only if it does not exist yet, atomically: the
/// content is written to a temporary file first and linked into place, so a process racing
/// this one either creates the file itself or finds it complete. False when it existed.
pub(crate) fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent)?;
    }
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = path.with_file_name(format!(
        ".{file_name}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    write_file(&temporary, bytes, true)?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            if let Some(parent) = parent {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_private_never_replaces_and_racers_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key");
        let winners: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let path = &path;
                    s.spawn(move || create_private(path, format!("{i}").as_bytes()).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
        let kept = std::fs::read_to_string(&path).unwrap();
        assert!(!create_private(&path, b"later").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), kept);
        let leftovers = std::fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1, "temporary files left behind");
    }
}
