//! The bounded queue between requests and the writer thread, built for group commit: a request
//! appends its event under a short lock and wakes the writer only when it is asleep on an empty
//! queue or the batch is full, so a busy gateway pays no thread wake-up per event. The writer
//! lingers a few milliseconds after waking so one write carries many events.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::AuditEvent;

/// A batch this large is written at once, without waiting out the linger.
pub(super) const BATCH: usize = 256;

/// The queue is at capacity (events queued plus slots reserved).
#[derive(Debug)]
pub(super) struct Full;

/// What the writer takes in one go.
#[derive(Default)]
pub(super) struct Batch {
    pub(crate) events: Vec<AuditEvent>,
    /// Answered once this batch (and everything before it) is on disk.
    pub(crate) flushes: Vec<oneshot::Sender<()>>,
    pub(crate) reopen: bool,
    /// Every handle is gone: write this batch and stop.
    pub(crate) closed: bool,
}

#[derive(Default)]
struct State {
    pending: Batch,
    /// Slots promised to callers that have not recorded yet.
    reserved: usize,
    /// The writer sleeps until woken (it found the queue empty).
    writer_idle: bool,
}

pub(super) struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    capacity: usize,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::default(),
            wake: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends an event; `Err` when the queue is full.
    pub(crate) fn push(&self, event: AuditEvent) -> Result<(), Full> {
        let mut state = self.lock();
        if state.pending.events.len() + state.reserved >= self.capacity {
            return Err(Full);
        }
        self.append(&mut state, event);
        Ok(())
    }

    /// Promises room for one event later.
    pub(crate) fn reserve(&self) -> Result<(), Full> {
        let mut state = self.lock();
        if state.pending.events.len() + state.reserved >= self.capacity {
            return Err(Full);
        }
        state.reserved += 1;
        Ok(())
    }

    /// Fills a reserved slot (never refused).
    pub(crate) fn push_reserved(&self, event: AuditEvent) {
        let mut state = self.lock();
        state.reserved = state.reserved.saturating_sub(1);
        self.append(&mut state, event);
    }

    /// Gives back a reserved slot that was not used.
    pub(crate) fn release(&self) {
        let mut state = self.lock();
        state.reserved = state.reserved.saturating_sub(1);
    }

    fn append(&self, state: &mut State, event: AuditEvent) {
        state.pending.events.push(event);
        if state.writer_idle || state.pending.events.len() == BATCH {
            self.wake.notify_one();
        }
    }

    /// Asks the writer to write and flush everything queued so far, then answer `done`.
    pub(crate) fn flush(&self, done: oneshot::Sender<()>) {
        self.lock().pending.flushes.push(done);
        self.wake.notify_one();
    }

    pub(crate) fn reopen(&self) {
        self.lock().pending.reopen = true;
        self.wake.notify_one();
    }

    pub(crate) fn close(&self) {
        self.lock().pending.closed = true;
        self.wake.notify_one();
    }

    /// The writer's side: waits for work (at most `idle` when nothing comes), then lingers up
    /// to `linger` for a fuller batch unless one is full, a flush is asked for, or the queue
    /// closes. Hands over everything pending.
    pub(crate) fn next_batch(&self, idle: Duration, linger: Duration) -> Batch {
        let mut state = self.lock();
        if is_empty(&state.pending) {
            state.writer_idle = true;
            state = self
                .wake
                .wait_timeout_while(state, idle, |s| is_empty(&s.pending))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.writer_idle = false;
        }
        let until = Instant::now() + linger;
        while !urgent(&state.pending) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .wake
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::take(&mut state.pending)
    }
}

fn is_empty(batch: &Batch) -> bool {
    batch.events.is_empty() && batch.flushes.is_empty() && !batch.reopen && !batch.closed
}

/// Work that should not wait out the linger.
fn urgent(batch: &Batch) -> bool {
    batch.events.len() >= BATCH || !batch.flushes.is_empty() || batch.closed || batch.reopen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Outcome;

    fn event() -> AuditEvent {
        AuditEvent::new("E", "r", Outcome::Success)
    }

    #[test]
    fn events_and_reserved_slots_share_the_capacity() {
        let queue = Queue::new(3);
        queue.push(event()).unwrap();
        queue.reserve().unwrap();
        queue.push(event()).unwrap();
        assert!(queue.push(event()).is_err());
        assert!(queue.reserve().is_err());
        // A reserved slot is always filled, even at capacity.
        queue.push_reserved(event());
        let batch = queue.next_batch(Duration::ZERO, Duration::ZERO);
        assert_eq!(batch.events.len(), 3);
        queue.push(event()).unwrap();
    }

    #[test]
    fn a_released_slot_is_room_again() {
        let queue = Queue::new(1);
        queue.reserve().unwrap();
        assert!(queue.push(event()).is_err());
        queue.release();
        queue.push(event()).unwrap();
    }

    #[test]
    fn an_idle_writer_gives_up_waiting_with_an_empty_batch() {
        let queue = Queue::new(4);
        let batch = queue.next_batch(Duration::from_millis(1), Duration::ZERO);
        assert!(batch.events.is_empty() && !batch.closed);
    }

    #[test]
    fn the_writer_wakes_for_the_first_event_and_takes_what_came_during_the_linger() {
        let queue = std::sync::Arc::new(Queue::new(100));
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    queue.push(event()).unwrap();
                }
            })
        };
        let mut got = 0;
        while got < 10 {
            got += queue
                .next_batch(Duration::from_secs(10), Duration::from_millis(5))
                .events
                .len();
        }
        producer.join().unwrap();
        assert_eq!(got, 10);
    }

    #[test]
    fn close_and_flush_end_the_wait_at_once() {
        let queue = Queue::new(4);
        let (done, _wait) = oneshot::channel();
        queue.flush(done);
        queue.close();
        let batch = queue.next_batch(Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(batch.flushes.len(), 1);
        assert!(batch.closed);
    }
}
