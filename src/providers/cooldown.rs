//! Failed token requests are remembered per vault entry for a short, growing cool-down (1 s,
//! doubling to 60 s, forgotten on success), so a provider answering `invalid_client`, 5xx or
//! nothing is not called once per request: meanwhile requests get 502 at once, counted as
//! `keygate_token_requests_total{result="cooldown"}`.

use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::ProviderError;
use crate::vault::Owner;

const FIRST: Duration = Duration::from_secs(1);
const LONGEST: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
struct Backoff {
    until: Instant,
    delay: Duration,
}

pub(crate) struct Cooldown {
    entries: Cache<Owner, Backoff>,
}

impl Default for Cooldown {
    fn default() -> Self {
        Cooldown {
            entries: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(LONGEST * 2)
                .build(),
        }
    }
}

impl Cooldown {
    /// `Err` while `owner`'s last token request failed less than its cool-down ago.
    pub(crate) fn check(&self, provider: &str, owner: &Owner) -> Result<(), ProviderError> {
        match self.entries.get(owner) {
            Some(b) if Instant::now() < b.until => Err(ProviderError::CoolingDown {
                provider: provider.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Remembers the outcome of a token request for `owner`.
    pub(crate) fn record<T>(&self, owner: &Owner, result: &Result<T, ProviderError>) {
        match result {
            Ok(_) => self.entries.invalidate(owner),
            Err(_) => {
                let delay = self
                    .entries
                    .get(owner)
                    .map_or(FIRST, |b| (b.delay * 2).min(LONGEST));
                self.entries.insert(
                    owner.clone(),
                    Backoff {
                        until: Instant::now() + delay,
                        delay,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner::m2m_token("w", "p", String::new())
    }

    #[test]
    fn a_failure_cools_down_growing_and_a_success_forgets_it() {
        let c = Cooldown::default();
        let o = owner();
        assert!(c.check("p", &o).is_ok());
        let failed: Result<(), ProviderError> = Err(ProviderError::NoToken {
            provider: "p".into(),
        });
        c.record(&o, &failed);
        assert!(c.check("p", &o).is_err());
        c.record(&o, &failed);
        assert_eq!(c.entries.get(&o).map(|b| b.delay), Some(FIRST * 2));
        c.record(&o, &Ok::<(), ProviderError>(()));
        assert!(c.check("p", &o).is_ok());
    }
}
