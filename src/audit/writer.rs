//! The writer thread: takes a batch from the [`Queue`], serialises it into one buffer, and
//! writes that buffer with one `write` (and, for stdout, one flush), so each batch costs one
//! syscall. Bytes a write could not place (a full disk) stay buffered and are retried every
//! [`RETRY_INTERVAL`]; meanwhile requests are refused (see [`super::Audit`]).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::queue::Queue;
use crate::config::AuditSink;

/// How long the writer waits after waking, so one write carries many events. Also the most an
/// event waits before it reaches the file, and so what a crash of keygate can lose.
pub(super) const LINGER: Duration = Duration::from_millis(5);
/// While the file cannot be written, the writer retries this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// With nothing to do, the writer sleeps this long before it looks again (any event wakes it).
const IDLE_WAIT: Duration = Duration::from_secs(60);
/// A buffer grown past this by a burst is given back once written.
const BUFFER_KEEP: usize = 1 << 20;

pub(super) struct Writer {
    pub(crate) sink: Sink,
    pub(crate) queue: Arc<Queue>,
    /// Set while the file cannot be written.
    pub(crate) failing: Arc<AtomicBool>,
}

impl Writer {
    /// Writes batches until every handle is gone, then writes what is left and returns.
    pub(crate) fn run(mut self) {
        loop {
            let idle = if self.failing.load(Ordering::Acquire) {
                RETRY_INTERVAL
            } else {
                IDLE_WAIT
            };
            let batch = self.queue.next_batch(idle, LINGER);
            if batch.reopen {
                let leftover = self.sink.write_pending();
                self.note(leftover);
                self.sink.reopen();
            }
            for event in &batch.events {
                if let Err(error) = event.write_line(&mut self.sink.pending) {
                    tracing::error!(%error, event = event.event, "audit event not serialisable");
                }
            }
            let written = self.sink.write_pending();
            self.note(written);
            for done in batch.flushes {
                let _ = done.send(());
            }
            if batch.closed {
                if !self.sink.pending.is_empty() {
                    tracing::error!(
                        bytes = self.sink.pending.len(),
                        "audit lines could not be written before exit"
                    );
                }
                return;
            }
        }
    }

    /// Records whether the file could be written, logging each change once.
    fn note(&self, result: std::io::Result<()>) {
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!("the audit log is writable again; requests are served again");
                }
            }
            Err(error) => {
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::error!(%error, "audit write failed: refusing requests until it can write");
                }
            }
        }
    }
}

/// Where lines go, and the bytes not yet written there.
pub(super) struct Sink {
    target: Target,
    pending: Vec<u8>,
}

enum Target {
    Stdout,
    File { path: PathBuf, file: std::fs::File },
}

impl Sink {
    pub(crate) fn open(sink: &AuditSink) -> std::io::Result<Sink> {
        let target = match sink {
            AuditSink::Stdout => Target::Stdout,
            AuditSink::File(path) => Target::File {
                path: path.clone(),
                file: open_append(path)?,
            },
        };
        Ok(Sink {
            target,
            pending: Vec::with_capacity(64 * 1024),
        })
    }

    /// Writes the pending bytes; what could not be written stays pending.
    fn write_pending(&mut self) -> std::io::Result<()> {
        let mut written = 0;
        let result = match &mut self.target {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                write_some(&mut out, &self.pending, &mut written).and_then(|()| out.flush())
            }
            Target::File { file, .. } => write_some(file, &self.pending, &mut written),
        };
        self.pending.drain(..written);
        if self.pending.is_empty() && self.pending.capacity() > BUFFER_KEEP {
            self.pending.shrink_to(64 * 1024);
        }
        result
    }

    fn reopen(&mut self) {
        if let Target::File { path, file } = &mut self.target {
            match open_append(path) {
                Ok(reopened) => *file = reopened,
                Err(error) => {
                    tracing::error!(%error, path = %path.display(), "audit file not reopened; writing to the old one")
                }
            }
        }
    }
}

/// Writes `bytes` from `*written` on, advancing `*written` past what the target took.
fn write_some(out: &mut impl Write, bytes: &[u8], written: &mut usize) -> std::io::Result<()> {
    while *written < bytes.len() {
        match out.write(&bytes[*written..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn open_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then fails like a full disk.
    struct Disk {
        room: usize,
        got: Vec<u8>,
    }

    impl Write for Disk {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::other("no space left on device"));
            }
            let n = bytes.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&bytes[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_short_write_keeps_the_rest_for_the_retry() {
        let mut disk = Disk {
            room: 4,
            got: Vec::new(),
        };
        let mut written = 0;
        assert!(write_some(&mut disk, b"line one\n", &mut written).is_err());
        assert_eq!(written, 4);
        disk.room = 100;
        write_some(&mut disk, b"line one\n", &mut written).unwrap();
        assert_eq!(disk.got, b"line one\n");
    }
}
