//! A sync's stop signal. Pause and shutdown set it; it ends every wait of
//! the source at once (rate limits, backoff) and interrupts the request in
//! flight by shutting the source's HTTP agents down, so a stop never waits
//! for a server or a timer. The engine reads the same flag between pages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Stop {
    flag: AtomicBool,
    /// The agents of the running source; taken (and shut down) by `set`.
    agents: Mutex<Vec<ureq::Agent>>,
    woken: Condvar,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Stops: wakes every wait and interrupts every request in flight.
    pub fn set(&self) {
        let agents = {
            let mut agents = self.lock();
            self.flag.store(true, Ordering::SeqCst);
            std::mem::take(&mut *agents)
        };
        self.woken.notify_all();
        for agent in agents {
            agent.shutdown();
        }
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag itself, for the engine's checks between pages.
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// Sleeps for `wait` unless stopped first; true when stopped.
    pub fn sleep(&self, wait: Duration) -> bool {
        let deadline = Instant::now().checked_add(wait);
        let mut guard = self.lock();
        loop {
            if self.is_set() {
                return true;
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => wait,
            };
            if left.is_zero() {
                return false;
            }
            guard = match self.woken.wait_timeout(guard, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Has `set` shut `agent` down; at once when already stopped.
    pub(crate) fn register(&self, agent: &ureq::Agent) {
        let mut agents = self.lock();
        if self.is_set() {
            drop(agents);
            agent.clone().shutdown();
        } else {
            agents.push(agent.clone());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<ureq::Agent>> {
        self.agents.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn set_ends_a_sleep_at_once() {
        let stop = Arc::new(Stop::new());
        let sleeper = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || stop.sleep(Duration::from_secs(3600)))
        };
        stop.set();
        assert!(sleeper.join().unwrap());
        assert!(stop.sleep(Duration::from_secs(3600)), "a set stop never sleeps");
        assert!(!Stop::new().sleep(Duration::from_millis(1)));
    }
}
