//! Log lines on stderr as a group commit: a thread that logs appends its formatted line to one
//! shared buffer under a short lock, and a writer thread writes the buffer with one `write`
//! each few milliseconds. Under load that is one syscall per batch instead of one per line (the
//! access log writes a line per request); a quiet gateway's lines are out within [`LINGER`].
//! The buffer is bounded: past [`MAX_BUFFERED`] the logging thread writes it itself, so a stalled
//! stderr slows logging down instead of growing memory. [`LogGuard`] writes what is left when
//! the program ends.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer gathers lines after the first one of a batch.
const LINGER: Duration = Duration::from_millis(5);
/// Bytes buffered before a logging thread writes them itself.
const MAX_BUFFERED: usize = 1 << 20;

struct State {
    buffer: Vec<u8>,
    /// stderr, or what a test reads.
    out: Box<dyn Write + Send>,
    /// The writer waits for the first line of the next batch.
    writer_idle: bool,
    closed: bool,
    /// No writer thread (it could not start): every line is written at once.
    direct: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, bytes: &[u8]) {
        let mut state = self.lock();
        state.buffer.extend_from_slice(bytes);
        if state.buffer.len() >= MAX_BUFFERED || state.direct {
            let full = std::mem::take(&mut state.buffer);
            // Written under the lock, so lines keep their order.
            let _ = state.out.write_all(&full);
        } else if state.writer_idle {
            self.wake.notify_one();
        }
    }

    /// Writes everything buffered now.
    fn write_out(&self) {
        let mut state = self.lock();
        let batch = std::mem::take(&mut state.buffer);
        let _ = state.out.write_all(&batch);
        let _ = state.out.flush();
    }

    /// The writer thread: waits for a first line, gathers for [`LINGER`], writes the batch.
    fn run(&self) {
        let mut batch = Vec::new();
        loop {
            let mut state = self.lock();
            state.writer_idle = true;
            state = self
                .wake
                .wait_while(state, |s| s.buffer.is_empty() && !s.closed)
                .unwrap_or_else(PoisonError::into_inner);
            state.writer_idle = false;
            if state.closed {
                return;
            }
            drop(state);
            std::thread::sleep(LINGER);
            let mut state = self.lock();
            std::mem::swap(&mut state.buffer, &mut batch);
            // Written under the lock, so a line a logging thread writes itself (buffer full)
            // never overtakes this batch.
            let _ = state.out.write_all(&batch);
            let _ = state.out.flush();
            drop(state);
            batch.clear();
        }
    }
}

/// A `MakeWriter` for `tracing_subscriber::fmt`: each event's formatted line goes to the shared
/// buffer in one append.
#[derive(Clone)]
pub struct BatchedStderr {
    shared: Arc<Shared>,
}

/// Writes the buffered lines when dropped (hold it in `main`) and stops the writer thread.
pub struct LogGuard {
    shared: Arc<Shared>,
}

impl BatchedStderr {
    /// Starts the writer thread; without one (it could not start) lines go straight to stderr.
    pub fn start() -> (BatchedStderr, LogGuard) {
        Self::start_with(Box::new(std::io::stderr()))
    }

    fn start_with(out: Box<dyn Write + Send>) -> (BatchedStderr, LogGuard) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buffer: Vec::new(),
                out,
                writer_idle: false,
                closed: false,
                direct: false,
            }),
            wake: Condvar::new(),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("keygate-log".into())
                .spawn(move || shared.run())
        };
        if thread.is_err() {
            shared.lock().direct = true;
        }
        (
            BatchedStderr {
                shared: shared.clone(),
            },
            LogGuard { shared },
        )
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        self.shared.write_out();
    }
}

/// One event's line, appended when the formatter is done with it.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.shared.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::Captured;

    #[test]
    fn lines_from_many_threads_come_out_whole_and_in_each_threads_order() {
        let captured = Captured::default();
        let (sink, guard) = BatchedStderr::start_with(Box::new(captured.clone()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let line = format!("thread {t} line {i}\n");
                        sink.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let text = captured.text();
        assert_eq!(text.lines().count(), 2000);
        for t in 0..4 {
            let mine: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> = (0..500).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, expected);
        }
    }

    #[test]
    fn a_quiet_line_is_written_without_more_lines_or_the_guard() {
        let captured = Captured::default();
        let (sink, _guard) = BatchedStderr::start_with(Box::new(captured.clone()));
        sink.make_writer().write_all(b"alone\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while captured.0.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was never written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(captured.0.lock().unwrap().as_slice(), b"alone\n");
    }
}
