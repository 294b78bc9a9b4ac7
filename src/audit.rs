//! The audit log: one JSON object per line (`time`, `event`, `requestId`, `workload`, `user`,
//! `provider`, `outcome`, `reason`, `sourceIp`), appended by a writer thread in batches and
//! flushed whenever its queue runs empty (at least every 200 ms under load), and at shutdown. Recording never blocks
//! a request: the queue is bounded, and when it is full the request is refused (503) rather
//! than served unaudited, and that is counted. So is a file that cannot be written (a full disk):
//! from the first failed write until a retry (every second) succeeds, every request is refused.
//! The file is reopened on SIGHUP for log rotation.
//! No secret is ever written: events carry names and ids only.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use prometheus::IntCounter;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::{AuditConfig, AuditSink};

/// Events written per batch at most.
const BATCH: usize = 512;
/// Buffered lines reach the file at least this often (the contract asks for once a second).
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// While the file cannot be written, the writer retries this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Denied,
    Error,
}

/// The user an audited action was for. A user named by id (through the identity API) is written
/// as that id, a string; a JWT user as an object `{"issuer": ..., "id": ...}`. Any string can be
/// a user id (`http://idp.example#alice` too), so only the type tells them apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AuditUser {
    Id(String),
    Jwt { issuer: String, id: String },
}

impl From<&crate::inbound::UserId> for AuditUser {
    fn from(user: &crate::inbound::UserId) -> Self {
        match &user.issuer {
            Some(issuer) => AuditUser::Jwt {
                issuer: issuer.clone(),
                id: user.id.clone(),
            },
            None => AuditUser::Id(user.id.clone()),
        }
    }
}

/// One audited action.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub time: String,
    pub event: &'static str,
    pub request_id: String,
    pub workload: Option<String>,
    pub user: Option<AuditUser>,
    pub provider: Option<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub source_ip: Option<String>,
}

impl AuditEvent {
    pub fn new(event: &'static str, request_id: &str, outcome: Outcome) -> Self {
        AuditEvent {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            event,
            request_id: request_id.to_string(),
            workload: None,
            user: None,
            provider: None,
            outcome,
            reason: None,
            source_ip: None,
        }
    }

    pub fn workload(mut self, workload: Option<&str>) -> Self {
        self.workload = workload.map(str::to_string);
        self
    }

    pub fn user(mut self, user: Option<&crate::inbound::UserId>) -> Self {
        self.user = user.map(AuditUser::from);
        self
    }

    pub fn provider(mut self, provider: Option<&str>) -> Self {
        self.provider = provider.map(str::to_string);
        self
    }

    pub fn reason(mut self, reason: Option<&str>) -> Self {
        self.reason = reason.map(str::to_string);
        self
    }

    pub fn source(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip.to_string());
        self
    }
}

/// The audit log cannot take an event now: its queue is full, or its file cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("the audit log cannot record (queue full or file not writable)")]
pub struct AuditFull;

enum Message {
    Event(Box<AuditEvent>),
    /// Write everything queued so far, then answer.
    Flush(oneshot::Sender<()>),
    /// Reopen the file (after rotation).
    Reopen,
}

/// Room for one event in the queue, reserved ahead.
pub struct AuditSlot {
    permit: mpsc::OwnedPermit<Message>,
}

impl AuditSlot {
    pub fn record(self, event: AuditEvent) {
        self.permit.send(Message::Event(Box::new(event)));
    }
}

/// The handle requests record through. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<Message>,
    refused: Option<IntCounter>,
    /// Set by the writer while its file cannot be written.
    failing: Arc<AtomicBool>,
}

impl Audit {
    /// Starts the writer for `config`; `refused` counts events refused because the queue was full.
    pub fn start(config: &AuditConfig, refused: Option<IntCounter>) -> std::io::Result<Audit> {
        let sink = Sink::open(&config.sink)?;
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let failing = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            sink,
            failing: failing.clone(),
        };
        // File writes block: they happen on a thread of their own, never on the runtime's
        // workers (with one worker, a slow disk would otherwise stall every request).
        std::thread::Builder::new()
            .name("keygate-audit".into())
            .spawn(move || writer.write_until_closed(rx))?;
        Ok(Audit {
            tx,
            refused,
            failing,
        })
    }

    /// Queues an event without waiting; `Err` when the queue is full or the file cannot be
    /// written (refuse the request).
    pub fn record(&self, event: AuditEvent) -> Result<(), AuditFull> {
        self.writable()?;
        self.tx
            .try_send(Message::Event(Box::new(event)))
            .map_err(|_| self.refuse("audit queue full"))
    }

    /// Reserves room for one event, to be recorded once the outcome is known (the identity
    /// API reserves before acting, so an action is never left unaudited); `Err` when full or
    /// when the file cannot be written.
    pub fn reserve(&self) -> Result<AuditSlot, AuditFull> {
        self.writable()?;
        self.tx
            .clone()
            .try_reserve_owned()
            .map(|permit| AuditSlot { permit })
            .map_err(|_| self.refuse("audit queue full"))
    }

    /// `Err` (counted) while the writer cannot write the file.
    fn writable(&self) -> Result<(), AuditFull> {
        if self.failing.load(Ordering::Acquire) {
            return Err(self.refuse("audit file not writable"));
        }
        Ok(())
    }

    fn refuse(&self, why: &str) -> AuditFull {
        if let Some(counter) = &self.refused {
            counter.inc();
        }
        tracing::error!("{why}: refusing the request rather than serving it unaudited");
        AuditFull
    }

    /// Waits until everything recorded so far is written and flushed (at shutdown).
    pub async fn flush(&self, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(timeout, wait).await;
        }
    }

    /// Reopens the file (SIGHUP after rotation).
    pub async fn reopen(&self) {
        let _ = self.tx.send(Message::Reopen).await;
    }
}

/// The writer thread's side: the sink, and the flag that tells requests it cannot write.
struct Writer {
    sink: Sink,
    failing: Arc<AtomicBool>,
}

impl Writer {
    /// Takes what is queued, writes it, and flushes whenever the queue runs empty (so a quiet
    /// log is on disk at once) or, under a steady stream, every [`FLUSH_INTERVAL`]. After a
    /// failed write it retries every [`RETRY_INTERVAL`] (what is buffered is kept) while
    /// requests are refused. Ends, flushing, when every sender is gone.
    fn write_until_closed(mut self, mut rx: mpsc::Receiver<Message>) {
        let mut last_flush = std::time::Instant::now();
        loop {
            let first = if self.failing.load(Ordering::Acquire) {
                match rx.try_recv() {
                    Ok(message) => message,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        std::thread::sleep(RETRY_INTERVAL);
                        self.flush();
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.blocking_recv() {
                    Some(message) => message,
                    None => break,
                }
            };
            let mut next = Some(first);
            let mut handled = 0;
            while let Some(message) = next {
                match message {
                    Message::Event(event) => {
                        let written = self.sink.write(&event);
                        self.note(written);
                    }
                    Message::Flush(done) => {
                        self.flush();
                        last_flush = std::time::Instant::now();
                        let _ = done.send(());
                    }
                    Message::Reopen => self.sink.reopen(),
                }
                handled += 1;
                if handled % BATCH == 0 && last_flush.elapsed() >= FLUSH_INTERVAL {
                    self.flush();
                    last_flush = std::time::Instant::now();
                }
                next = rx.try_recv().ok();
            }
            self.flush();
            last_flush = std::time::Instant::now();
        }
        self.flush();
    }

    fn flush(&mut self) {
        let flushed = self.sink.flush();
        self.note(flushed);
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

/// Where lines go.
enum Sink {
    Stdout,
    File {
        path: PathBuf,
        file: std::io::BufWriter<std::fs::File>,
    },
}

impl Sink {
    fn open(sink: &AuditSink) -> std::io::Result<Sink> {
        match sink {
            AuditSink::Stdout => Ok(Sink::Stdout),
            AuditSink::File(path) => Ok(Sink::File {
                path: path.clone(),
                file: std::io::BufWriter::new(open_append(path)?),
            }),
        }
    }

    fn write(&mut self, event: &AuditEvent) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        match self {
            Sink::Stdout => std::io::stdout().lock().write_all(&line),
            Sink::File { file, .. } => file.write_all(&line),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout => std::io::stdout().lock().flush(),
            Sink::File { file, .. } => file.flush(),
        }
    }

    fn reopen(&mut self) {
        if let Sink::File { path, file } = self {
            let _ = file.flush();
            match open_append(path) {
                Ok(reopened) => *file = std::io::BufWriter::new(reopened),
                Err(error) => {
                    tracing::error!(%error, path = %path.display(), "audit file not reopened; writing to the old one")
                }
            }
        }
    }
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

    #[tokio::test]
    async fn events_are_json_lines_with_the_contract_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let config = AuditConfig {
            sink: AuditSink::File(path.clone()),
            queue_capacity: 10,
        };
        let audit = Audit::start(&config, None).unwrap();
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

    #[test]
    fn a_jwt_user_and_a_user_id_are_never_written_alike() {
        let line = |issuer: Option<&str>, id: &str| {
            let user = crate::inbound::UserId {
                issuer: issuer.map(str::to_string),
                id: id.to_string(),
            };
            let event = AuditEvent::new("E", "r", Outcome::Success).user(Some(&user));
            serde_json::to_value(&event).unwrap()["user"].clone()
        };
        let jwt_user = line(Some("http://idp.example"), "alice");
        let id_user = line(None, "http://idp.example#alice");
        assert_ne!(jwt_user, id_user);
        assert_eq!(id_user, "http://idp.example#alice");
        assert_eq!(jwt_user["issuer"], "http://idp.example");
        assert_eq!(jwt_user["id"], "alice");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_blocking() {
        let (tx, _rx) = mpsc::channel(2);
        let refused = IntCounter::new("t", "t").unwrap();
        let audit = Audit {
            tx,
            refused: Some(refused.clone()),
            failing: Arc::default(),
        };
        let event = || AuditEvent::new("ProxyCredentialUse", "r", Outcome::Success);
        assert!(audit.record(event()).is_ok());
        assert!(audit.record(event()).is_ok());
        assert!(audit.record(event()).is_err());
        assert_eq!(refused.get(), 1);
    }

    #[tokio::test]
    async fn reopen_follows_a_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let config = AuditConfig {
            sink: AuditSink::File(path.clone()),
            queue_capacity: 10,
        };
        let audit = Audit::start(&config, None).unwrap();
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
