//! Store health: the breaker that fails store calls fast while the database cannot be
//! reached, and whether the store accepts writes (a full disk, a read-only database), which
//! readiness reports. Every store call of the vault goes through [`Vault::guarded`] or
//! [`Vault::written`].

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use super::Vault;
use super::store::{StoreError, now_ms};

/// After the store could not be reached, calls fail at once for this long, then one call
/// probes it (the change watcher probes every second) while the others keep failing fast.
const BREAKER_OPEN_MS: i64 = 1000;

/// How long a probe may take before another caller may probe.
const BREAKER_PROBE_MS: i64 = 5000;

/// Fails store calls fast while the database is unreachable, instead of every request
/// waiting out the pool's connect timeout.
#[derive(Default)]
pub(super) struct Breaker {
    tripped: AtomicBool,
    /// Unix milliseconds before which calls fail without trying.
    closed_from: AtomicI64,
}

impl Breaker {
    /// Runs a store call behind the breaker: refused at once while the store is known to be
    /// unreachable (but one caller at a time probes it), and trips it when the store cannot
    /// be reached.
    /// `saturated` tells a busy pool (every connection in use: not an outage, so it must not
    /// trip the breaker) from a database that cannot be reached.
    async fn guard<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
        saturated: impl Fn() -> bool,
    ) -> Result<T, StoreError> {
        let b = self;
        if b.tripped.load(Ordering::Acquire) {
            let now = now_ms();
            let from = b.closed_from.load(Ordering::Acquire);
            let may_probe = now >= from
                && b.closed_from
                    .compare_exchange(
                        from,
                        now + BREAKER_PROBE_MS,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok();
            if !may_probe {
                return Err(StoreError::Unreachable(
                    "the database could not be reached moments ago; failing fast until it answers"
                        .into(),
                ));
            }
        }
        let result = match call.await {
            Err(StoreError::Unreachable(detail)) if saturated() => {
                Err(StoreError::Unavailable(detail))
            }
            other => other,
        };
        match &result {
            Err(StoreError::Unreachable(_)) => {
                if !b.tripped.swap(true, Ordering::AcqRel) {
                    tracing::error!(
                        "vault store unreachable: failing fast and probing every second"
                    );
                }
                b.closed_from
                    .store(now_ms() + BREAKER_OPEN_MS, Ordering::Release);
            }
            _ => {
                if b.tripped.swap(false, Ordering::AcqRel) {
                    tracing::info!("vault store reachable again");
                }
            }
        }
        result
    }
}

impl Vault {
    /// Runs a store call behind the breaker (see [`Breaker::guard`]).
    pub(super) async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.breaker.guard(call, || self.store.saturated()).await
    }

    /// Runs a store write behind the breaker and notes whether the store can write.
    pub(super) async fn written<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = self.guarded(call).await;
        self.note_write(result.is_ok());
        result
    }

    fn note_write(&self, ok: bool) {
        let was_failing = self.writes_failing.swap(!ok, Ordering::AcqRel);
        if was_failing && ok {
            tracing::info!("the vault store accepts writes again");
        } else if !was_failing && !ok {
            tracing::error!("a vault store write failed: not ready until writes succeed again");
        }
    }

    /// Whether the last write to the store failed (and no probe has succeeded since).
    pub(crate) fn writes_failing(&self) -> bool {
        self.writes_failing.load(Ordering::Acquire)
    }

    /// While writes fail, tries a write that changes nothing, so readiness recovers on its own
    /// once the store can write again (no traffic reaches a pod that is not ready).
    pub(super) async fn probe_writes(&self) {
        if self.writes_failing() {
            let ok = self.guarded(self.store.probe_write()).await.is_ok();
            if ok {
                self.note_write(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    async fn call(b: &Breaker, ran: &AtomicUsize, up: bool) -> Result<(), StoreError> {
        call_busy(b, ran, up, false).await
    }

    async fn call_busy(
        b: &Breaker,
        ran: &AtomicUsize,
        up: bool,
        saturated: bool,
    ) -> Result<(), StoreError> {
        let work = async {
            ran.fetch_add(1, Ordering::SeqCst);
            if up {
                Ok(())
            } else {
                Err(StoreError::Unreachable("pool timed out".into()))
            }
        };
        b.guard(work, || saturated).await
    }

    #[tokio::test]
    async fn trips_on_unreachable_fails_fast_then_one_probe_recovers() {
        let b = Breaker::default();
        let ran = AtomicUsize::new(0);
        assert!(call(&b, &ran, false).await.is_err());
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        // Open: calls fail without touching the store.
        for _ in 0..10 {
            assert!(matches!(
                call(&b, &ran, true).await,
                Err(StoreError::Unreachable(_))
            ));
        }
        assert_eq!(
            ran.load(Ordering::SeqCst),
            1,
            "an open breaker let a call through"
        );
        // Once the open period is over, one probe goes through; it succeeds and closes it.
        b.closed_from.store(now_ms() - 1, Ordering::SeqCst);
        assert!(call(&b, &ran, true).await.is_ok());
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        assert!(call(&b, &ran, true).await.is_ok());
        assert_eq!(ran.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_store_errors_and_a_busy_pool_do_not_trip_it() {
        let b = Breaker::default();
        let r: Result<(), StoreError> = b
            .guard(
                async { Err(StoreError::Unavailable("lock timeout".into())) },
                || false,
            )
            .await;
        assert!(r.is_err());
        let ran = AtomicUsize::new(0);
        // Every connection busy: the timeout is load, not an outage.
        let busy = call_busy(&b, &ran, false, true).await;
        assert!(matches!(busy, Err(StoreError::Unavailable(_))), "{busy:?}");
        assert!(call(&b, &ran, true).await.is_ok());
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    }
}
