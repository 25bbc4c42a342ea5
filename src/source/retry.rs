//! Retries and rate-limit waits for any `Source`, in one place. Unavailable
//! servers are retried with bounded exponential backoff; a rate limit is
//! waited out while the total wait stays under a bound. Everything else is
//! returned at once for the engine to decide on. Every wait ends at once
//! when the stop signal is set, and nothing is sent after it.

use super::http::MAX_WAIT;
use super::{ErrorKind, Order, Page, Position, Present, Source, SourceError, Stop, WaitObserver};
use crate::model::{Kind, LibraryInfo};
use std::sync::Arc;
use std::time::Duration;

const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The shortest rate-limit wait: a server answering 429 with
/// `Retry-After: 0` (or a date past) is not asked again in a busy loop.
const MIN_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub retries: u32,
    pub delay: Duration,
    pub max_rate_limit_wait: Duration,
}

pub struct Retrying<S> {
    inner: S,
    policy: RetryPolicy,
    observer: std::sync::Mutex<Option<WaitObserver>>,
    stop: Arc<Stop>,
}

impl<S: Source> Retrying<S> {
    /// Wraps `inner`; `stop` is the signal its requests are stopped by too.
    pub fn new(inner: S, policy: RetryPolicy, stop: &Arc<Stop>) -> Retrying<S> {
        Retrying { inner, policy, observer: std::sync::Mutex::new(None), stop: Arc::clone(stop) }
    }

    fn call<T>(&self, mut attempt_once: impl FnMut() -> Result<T, SourceError>) -> Result<T, SourceError> {
        let mut failures = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            if self.stop.is_set() {
                return Err(SourceError::stopped(&self.inner.describe()));
            }
            let err = match attempt_once() {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let pause = match err.kind {
                ErrorKind::Unavailable if failures < self.policy.retries => {
                    let factor = 1u32.checked_shl(failures).unwrap_or(u32::MAX);
                    self.policy.delay.saturating_mul(factor).min(MAX_BACKOFF)
                }
                ErrorKind::RateLimited(wait) => {
                    let wait = wait.clamp(MIN_RATE_LIMIT_WAIT, MAX_WAIT);
                    if waited.saturating_add(wait) > self.policy.max_rate_limit_wait {
                        return Err(err);
                    }
                    wait
                }
                _ => return Err(err),
            };
            failures = failures.saturating_add(1);
            waited = waited.saturating_add(pause);
            log::warn!("{err}; trying again in {:.1}s", pause.as_secs_f64());
            if let Some(observer) = self.observer.lock().ok().and_then(|observer| observer.clone()) {
                observer(&err, pause);
            }
            if self.stop.sleep(pause) {
                return Err(SourceError::stopped(&self.inner.describe()));
            }
        }
    }
}

/// Every method is spelled out (the trait has no default bodies): the ones
/// that ask the server go through `call`, the others ask the inner source.
impl<S: Source> Source for Retrying<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn libraries(&self) -> Result<Vec<LibraryInfo>, SourceError> {
        self.call(|| self.inner.libraries())
    }

    fn page(
        &self,
        library: &LibraryInfo,
        kind: Kind,
        order: Order,
        position: Position<'_>,
        size: u32,
    ) -> Result<Page, SourceError> {
        self.call(|| self.inner.page(library, kind, order, position, size))
    }

    fn children(&self, library: &LibraryInfo, parent: &str, start: u64, size: u32) -> Result<Page, SourceError> {
        self.call(|| self.inner.children(library, parent, start, size))
    }

    fn count(&self, library: &LibraryInfo, kind: Kind) -> Result<Option<u64>, SourceError> {
        self.call(|| self.inner.count(library, kind))
    }

    fn changed(&self, library: &LibraryInfo, since: i64, start: u64, size: u32) -> Result<Page, SourceError> {
        self.call(|| self.inner.changed(library, since, start, size))
    }

    fn count_library(&self, library: &LibraryInfo, saved_since: Option<i64>) -> Result<Option<u64>, SourceError> {
        self.call(|| self.inner.count_library(library, saved_since))
    }

    fn lookup(
        &self,
        library: &LibraryInfo,
        kind: Kind,
        ids: &[String],
        anchor: Option<&str>,
    ) -> Result<Vec<Present>, SourceError> {
        self.call(|| self.inner.lookup(library, kind, ids, anchor))
    }

    fn requests(&self) -> u64 {
        self.inner.requests()
    }

    fn server_time(&self) -> Option<i64> {
        self.inner.server_time()
    }

    /// Kept here, where the waits happen; the inner source never waits.
    fn observe_waits(&self, observer: WaitObserver) {
        if let Ok(mut slot) = self.observer.lock() {
            *slot = Some(observer);
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, reason = "test code: a call count cannot overflow")]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A source whose `libraries` answers from a script of outcomes.
    struct Scripted {
        outcomes: Mutex<Vec<Result<(), SourceError>>>,
        calls: Mutex<u32>,
    }

    impl Source for Scripted {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn libraries(&self) -> Result<Vec<LibraryInfo>, SourceError> {
            *self.calls.lock().unwrap() += 1;
            self.outcomes.lock().unwrap().remove(0).map(|()| Vec::new())
        }
        fn page(&self, _: &LibraryInfo, _: Kind, _: Order, _: Position<'_>, _: u32) -> Result<Page, SourceError> {
            unreachable!()
        }
        fn children(&self, _: &LibraryInfo, _: &str, _: u64, _: u32) -> Result<Page, SourceError> {
            unreachable!()
        }
        fn count(&self, _: &LibraryInfo, _: Kind) -> Result<Option<u64>, SourceError> {
            unreachable!()
        }
        fn changed(&self, _: &LibraryInfo, _: i64, _: u64, _: u32) -> Result<Page, SourceError> {
            unreachable!()
        }
        fn count_library(&self, _: &LibraryInfo, _: Option<i64>) -> Result<Option<u64>, SourceError> {
            unreachable!()
        }
        fn lookup(&self, _: &LibraryInfo, _: Kind, _: &[String], _: Option<&str>) -> Result<Vec<Present>, SourceError> {
            unreachable!()
        }
        fn requests(&self) -> u64 {
            0
        }
        fn server_time(&self) -> Option<i64> {
            None
        }
        fn observe_waits(&self, _: WaitObserver) {}
    }

    fn run(outcomes: Vec<Result<(), SourceError>>, retries: u32) -> (Result<(), SourceError>, u32) {
        run_with(outcomes, retries, Duration::from_millis(50), &Arc::default())
    }

    fn run_with(
        outcomes: Vec<Result<(), SourceError>>,
        retries: u32,
        max_rate_limit_wait: Duration,
        stop: &Arc<Stop>,
    ) -> (Result<(), SourceError>, u32) {
        let source = Retrying::new(
            Scripted { outcomes: Mutex::new(outcomes), calls: Mutex::new(0) },
            RetryPolicy { retries, delay: Duration::from_millis(1), max_rate_limit_wait },
            stop,
        );
        let result = source.libraries().map(|_| ());
        let calls = *source.inner.calls.lock().unwrap();
        (result, calls)
    }

    fn unavailable() -> Result<(), SourceError> {
        Err(SourceError::new(ErrorKind::Unavailable, "down"))
    }

    #[test]
    fn unavailable_is_retried_then_succeeds() {
        let (result, calls) = run(vec![unavailable(), unavailable(), Ok(())], 3);
        assert!(result.is_ok());
        assert_eq!(calls, 3);
    }

    #[test]
    fn retries_are_bounded() {
        let (result, calls) = run(vec![unavailable(), unavailable(), unavailable(), Ok(())], 2);
        assert_eq!(result.unwrap_err().kind, ErrorKind::Unavailable);
        assert_eq!(calls, 3);
    }

    #[test]
    fn unauthorized_is_not_retried() {
        let (result, calls) = run(vec![Err(SourceError::new(ErrorKind::Unauthorized, "no")), Ok(())], 3);
        assert_eq!(result.unwrap_err().kind, ErrorKind::Unauthorized);
        assert_eq!(calls, 1);
    }

    #[test]
    fn rate_limit_waits_within_bound_only() {
        let limited = |ms| Err(SourceError::new(ErrorKind::RateLimited(Duration::from_millis(ms)), "slow"));
        let limit = Duration::from_millis(2500);
        let (result, calls) = run_with(vec![limited(10), limited(10), Ok(())], 0, limit, &Arc::default());
        assert!(result.is_ok(), "each wait counts as the one second minimum");
        assert_eq!(calls, 3);
        let (result, calls) = run_with(vec![limited(10), limited(10), limited(10), Ok(())], 0, limit, &Arc::default());
        assert!(matches!(result.unwrap_err().kind, ErrorKind::RateLimited(_)));
        assert_eq!(calls, 3);
    }

    /// The regression of issue 12: `Retry-After: 1` then the largest number
    /// overflowed the total wait and panicked the sync. Now the second wait
    /// is a day (`MAX_WAIT`), which the stop signal ends.
    #[test]
    fn extreme_waits_neither_overflow_nor_outlast_a_day() {
        let limited = |wait| Err(SourceError::new(ErrorKind::RateLimited(wait), "slow"));
        let stop = Arc::new(Stop::new());
        let source = Retrying::new(
            Scripted {
                outcomes: Mutex::new(vec![limited(Duration::from_secs(1)), limited(Duration::MAX), Ok(())]),
                calls: Mutex::new(0),
            },
            RetryPolicy { retries: 0, delay: Duration::ZERO, max_rate_limit_wait: Duration::MAX },
            &stop,
        );
        let waits = Arc::new(Mutex::new(Vec::new()));
        let (seen, stopper) = (Arc::clone(&waits), Arc::clone(&stop));
        source.observe_waits(Arc::new(move |_, pause| {
            seen.lock().unwrap().push(pause);
            if pause == MAX_WAIT {
                stopper.set();
            }
        }));
        assert_eq!(source.libraries().unwrap_err().kind, ErrorKind::Stopped);
        assert_eq!(*waits.lock().unwrap(), [Duration::from_secs(1), MAX_WAIT]);
        assert_eq!(*source.inner.calls.lock().unwrap(), 2);
        let (result, calls) = run(vec![limited(Duration::MAX), Ok(())], 0);
        assert!(matches!(result.unwrap_err().kind, ErrorKind::RateLimited(_)), "past max_rate_limit_wait");
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_stop_ends_the_wait_and_sends_nothing_more() {
        let stop = stop_soon();
        let hour = Err(SourceError::new(ErrorKind::RateLimited(Duration::from_secs(3600)), "slow"));
        let (result, calls) = run_with(vec![hour, Ok(())], 0, Duration::from_secs(7200), &stop);
        assert_eq!(result.unwrap_err().kind, ErrorKind::Stopped);
        assert_eq!(calls, 1, "no request after the stop");
        let (result, calls) = run_with(vec![Ok(())], 0, Duration::ZERO, &stop);
        assert_eq!((result.unwrap_err().kind, calls), (ErrorKind::Stopped, 0));
    }

    /// A stop signal another thread sets a moment from now.
    fn stop_soon() -> Arc<Stop> {
        let stop = Arc::new(Stop::new());
        let setter = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            setter.set();
        });
        stop
    }
}
