//! The audit log: one JSON object per line (`time`, `event`, `requestId`, `workload`, `user`,
//! `provider`, `outcome`, `reason`, `sourceIp`), written as a group commit: requests append to a
//! bounded queue without waking anyone per event, and a writer thread writes what came in each
//! few milliseconds ([`writer::LINGER`]) with one `write`, so lines are in the file within
//! milliseconds of the action (well inside the contract's 200 ms) and at shutdown.
//!
//! Recording never blocks a request: when the queue is full the request is refused (503) rather
//! than served unaudited, and that is counted. So is a file that cannot be written (a full disk):
//! from the first failed write until a retry (every second) succeeds, every request is refused.
//! A crash of keygate loses at most the events of the last linger window (their requests were
//! answered); a crash of the machine also what the OS had not written back. The file is reopened
//! on SIGHUP for log rotation. No secret is ever written: events carry names and ids only.

mod event;
mod queue;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::IntCounter;
use tokio::sync::oneshot;

pub(crate) use event::{AuditEvent, Outcome};
use queue::Queue;
use writer::{Sink, Writer};

use crate::config::AuditConfig;

/// The audit log cannot take an event now: its queue is full, or its file cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("the audit log cannot record (queue full or file not writable)")]
pub struct AuditFull;

/// Room for one event in the queue, reserved ahead; given back if dropped unused.
pub(crate) struct AuditSlot {
    handle: Arc<Handle>,
    filled: bool,
}

impl AuditSlot {
    pub(crate) fn record(mut self, event: AuditEvent) {
        self.filled = true;
        self.handle.queue.push_reserved(event);
    }
}

impl Drop for AuditSlot {
    fn drop(&mut self) {
        if !self.filled {
            self.handle.queue.release();
        }
    }
}

/// The handle requests record through. Cheap to clone; the writer stops, after writing
/// everything, when the last clone is gone.
#[derive(Clone)]
pub struct Audit {
    handle: Arc<Handle>,
}

struct Handle {
    queue: Arc<Queue>,
    refused: Option<IntCounter>,
    /// Set by the writer while its file cannot be written.
    failing: Arc<AtomicBool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl Audit {
    /// Starts the writer for `config`; `refused` counts events refused because the queue was full.
    pub(crate) fn start(
        config: &AuditConfig,
        refused: Option<IntCounter>,
    ) -> std::io::Result<Audit> {
        let queue = Arc::new(Queue::new(config.queue_capacity));
        let failing = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            sink: Sink::open(&config.sink)?,
            queue: queue.clone(),
            failing: failing.clone(),
        };
        // File writes block: they happen on a thread of their own, never on the runtime's
        // workers (with one worker, a slow disk would otherwise stall every request).
        std::thread::Builder::new()
            .name("keygate-audit".into())
            .spawn(move || writer.run())?;
        Ok(Audit {
            handle: Arc::new(Handle {
                queue,
                refused,
                failing,
            }),
        })
    }

    /// Queues an event without waiting; `Err` when the queue is full or the file cannot be
    /// written (refuse the request).
    pub(crate) fn record(&self, event: AuditEvent) -> Result<(), AuditFull> {
        self.writable()?;
        self.handle
            .queue
            .push(event)
            .map_err(|_| self.refuse("audit queue full"))
    }

    /// Reserves room for one event, to be recorded once the outcome is known (the identity
    /// API reserves before acting, so an action is never left unaudited); `Err` when full or
    /// when the file cannot be written.
    pub(crate) fn reserve(&self) -> Result<AuditSlot, AuditFull> {
        self.writable()?;
        self.handle
            .queue
            .reserve()
            .map_err(|_| self.refuse("audit queue full"))?;
        Ok(AuditSlot {
            handle: self.handle.clone(),
            filled: false,
        })
    }

    /// `Err` (counted) while the writer cannot write the file.
    fn writable(&self) -> Result<(), AuditFull> {
        if self.handle.failing.load(Ordering::Acquire) {
            return Err(self.refuse("audit file not writable"));
        }
        Ok(())
    }

    fn refuse(&self, why: &str) -> AuditFull {
        if let Some(counter) = &self.handle.refused {
            counter.inc();
        }
        tracing::error!("{why}: refusing the request rather than serving it unaudited");
        AuditFull
    }

    /// Waits until everything recorded so far is written (at shutdown).
    pub async fn flush(&self, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        self.handle.queue.flush(done);
        let _ = tokio::time::timeout(timeout, wait).await;
    }

    /// Reopens the file (SIGHUP after rotation); events recorded from now on go to the new one.
    pub(crate) async fn reopen(&self) {
        self.handle.queue.reopen();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuditSink;

    #[tokio::test]
    async fn events_are_json_lines_with_the_contract_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = audit_to(&path, 10);
        let user = crate::inbound::UserId {
            issuer: Some("https://idp".into()),
            id: "alice".into(),
        };
        audit
            .record(
                AuditEvent::new("ProxyCredentialUse", "req-1", Outcome::Success)
                    .workload(Some("agent"))
                    .user(Some(&user))
                    .provider(Some("docs"))
                    .source("127.0.0.1".parse().unwrap()),
            )
            .unwrap();
        audit.flush(Duration::from_secs(5)).await;
        let text = std::fs::read_to_string(&path).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        for key in [
            "time",
            "event",
            "requestId",
            "workload",
            "user",
            "provider",
            "outcome",
            "sourceIp",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
        assert_eq!(
            line["user"],
            serde_json::json!({ "issuer": "https://idp", "id": "alice" })
        );
        assert_eq!(line["outcome"], "success");
        assert!(line.get("reason").is_none());
        assert!(humantime::parse_rfc3339(line["time"].as_str().unwrap()).is_ok());
    }

    fn audit_to(path: &std::path::Path, queue_capacity: usize) -> Audit {
        let config = AuditConfig {
            sink: AuditSink::File(path.to_path_buf()),
            queue_capacity,
        };
        Audit::start(&config, None).unwrap()
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_blocking() {
        let refused = IntCounter::new("t", "t").unwrap();
        // No writer: the queue only fills.
        let audit = Audit {
            handle: Arc::new(Handle {
                queue: Arc::new(Queue::new(2)),
                refused: Some(refused.clone()),
                failing: Arc::default(),
            }),
        };
        let event = || AuditEvent::new("ProxyCredentialUse", "r", Outcome::Success);
        assert!(audit.record(event()).is_ok());
        assert!(audit.record(event()).is_ok());
        assert!(audit.record(event()).is_err());
        assert!(audit.reserve().is_err());
        assert_eq!(refused.get(), 2);
    }

    #[tokio::test]
    async fn an_unused_slot_is_given_back() {
        let audit = Audit {
            handle: Arc::new(Handle {
                queue: Arc::new(Queue::new(1)),
                refused: None,
                failing: Arc::default(),
            }),
        };
        let slot = audit.reserve().unwrap();
        assert!(
            audit
                .record(AuditEvent::new("A", "1", Outcome::Success))
                .is_err()
        );
        drop(slot);
        assert!(
            audit
                .record(AuditEvent::new("A", "1", Outcome::Success))
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_last_handle_gone_writes_everything_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = audit_to(&path, 1000);
        for i in 0..600 {
            audit
                .record(AuditEvent::new("A", &i.to_string(), Outcome::Success))
                .unwrap();
        }
        drop(audit);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&path).unwrap().lines().count() < 600 {
            assert!(std::time::Instant::now() < deadline, "lines lost at close");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[tokio::test]
    async fn reopen_follows_a_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = audit_to(&path, 10);
        audit
            .record(AuditEvent::new("A", "1", Outcome::Success))
            .unwrap();
        audit.flush(Duration::from_secs(5)).await;
        std::fs::rename(&path, dir.path().join("audit.jsonl.1")).unwrap();
        audit.reopen().await;
        audit
            .record(AuditEvent::new("B", "2", Outcome::Success))
            .unwrap();
        audit.flush(Duration::from_secs(5)).await;
        assert!(
            std::fs::read_to_string(dir.path().join("audit.jsonl.1"))
                .unwrap()
                .contains("\"A\"")
        );
        let fresh = std::fs::read_to_string(&path).unwrap();
        assert!(fresh.contains("\"B\"") && !fresh.contains("\"A\""));
    }
}
