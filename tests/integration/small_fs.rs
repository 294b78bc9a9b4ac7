//! A small filesystem for fault tests: a tmpfs of a few megabytes mounted in a temporary folder
//! (or, where tmpfs mounts are refused, an ext4 image on a loop device), which a test fills to
//! the last byte and frees again. Tests that need one fail loudly when neither can be mounted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct SmallFs {
    /// Holds the mount point (and a loop image); removed after unmounting.
    dir: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallFs {
    /// Mounts a filesystem of `megabytes` MB; panics (the test fails) if nothing can be mounted.
    pub fn mount(megabytes: u32) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let tmpfs = run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={megabytes}m,mode=0700"),
                "tmpfs",
                &mount.display().to_string(),
            ],
        );
        if let Err(tmpfs_error) = tmpfs {
            let image = dir.path().join("fs.img");
            let loop_fs = std::fs::File::create(&image)
                .and_then(|f| f.set_len(u64::from(megabytes.max(2)) * 1024 * 1024))
                .map_err(|e| e.to_string())
                .and_then(|()| run("mkfs.ext4", &["-q", &image.display().to_string()]))
                .and_then(|()| {
                    run(
                        "mount",
                        &[
                            "-o",
                            "loop",
                            &image.display().to_string(),
                            &mount.display().to_string(),
                        ],
                    )
                });
            if let Err(loop_error) = loop_fs {
                panic!(
                    "this test needs a small filesystem and none could be mounted \
                     (tmpfs: {tmpfs_error}; loop file: {loop_error}); run it as root"
                );
            }
        }
        SmallFs { dir, mount }
    }

    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Fills every free byte with a filler file.
    pub fn fill(&self) {
        let mut filler = std::fs::File::create(self.filler()).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            if filler.write_all(&block).is_err() {
                break;
            }
        }
        let small = [0u8; 512];
        while filler.write_all(&small).is_ok() {}
        while filler.write_all(&[0u8]).is_ok() {}
        let _ = filler.flush();
    }

    /// Deletes the filler: the space is free again.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }

    fn filler(&self) -> PathBuf {
        self.mount.join("filler")
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", &self.mount.display().to_string()]);
        let _ = &self.dir;
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
