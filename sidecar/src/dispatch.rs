//! Back-pressure: each backend (worker or upstream) takes at most `executor_threads` requests at
//! once; the next ones wait, first come first served, in a queue of at most `max_queue`; beyond
//! that the request is refused. A [`Permit`] is a claimed slot on one backend, released when
//! dropped (after the response body ends), which hands the slot to the oldest waiter.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, oneshot};

/// Why a slot could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    /// Every slot busy and the queue full.
    #[error("all workers are busy and the queue is full")]
    QueueFull,
    /// The dispatcher dropped the waiter (only when shutting down).
    #[error("the sidecar is shutting down")]
    Closed,
}

/// A backend's load, as `/status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendLoad {
    /// Answers its readiness path.
    pub ready: bool,
    /// Requests it holds.
    pub in_flight: usize,
}

/// Load over all backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSnapshot {
    /// Per backend.
    pub backends: Vec<BackendLoad>,
    /// Requests waiting.
    pub queued: usize,
    /// Every backend has been ready at the same time at least once (startup is over).
    pub started: bool,
}

impl LoadSnapshot {
    /// Requests held by backends.
    pub fn in_flight(&self) -> usize {
        self.backends.iter().map(|b| b.in_flight).sum()
    }

    /// Backends that are ready.
    pub fn ready_count(&self) -> usize {
        self.backends.iter().filter(|b| b.ready).count()
    }

    /// Every backend is ready (and there is at least one).
    #[cfg(test)]
    pub fn all_ready(&self) -> bool {
        !self.backends.is_empty() && self.backends.iter().all(|b| b.ready)
    }
}

struct Slot {
    ready: bool,
    in_flight: usize,
}

struct State {
    slots: Vec<Slot>,
    /// Latched once every backend was ready at the same time.
    started: bool,
    waiters: VecDeque<oneshot::Sender<Permit>>,
    /// Rotates the starting point so equally loaded backends share the work.
    next: usize,
}

struct Inner {
    state: Mutex<State>,
    /// Per backend: woken when a request to it ran past the request timeout.
    stuck: Vec<Notify>,
    per_backend: usize,
    max_queue: usize,
}

/// Assigns requests to the least-loaded ready backend, or queues them.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

/// One claimed slot on a backend; dropping it frees the slot.
pub struct Permit {
    inner: Arc<Inner>,
    backend: usize,
    armed: bool,
}

impl Permit {
    /// The backend index this request goes to.
    pub fn backend(&self) -> usize {
        self.backend
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            let mut state = lock(&self.inner.state);
            if let Some(slot) = state.slots.get_mut(self.backend) {
                slot.in_flight = slot.in_flight.saturating_sub(1);
            }
            hand_off(&self.inner, &mut state);
        }
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("backend", &self.backend)
            .finish()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state stays consistent even if a holder panicked: every update is a few integer ops.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The least-loaded ready backend with a free slot, ties broken round-robin.
fn pick(inner: &Inner, state: &mut State) -> Option<usize> {
    let n = state.slots.len();
    let mut best: Option<(usize, usize)> = None;
    for k in 0..n {
        let i = (state.next + k) % n;
        let slot = &state.slots[i];
        if slot.ready
            && slot.in_flight < inner.per_backend
            && best.is_none_or(|(_, load)| slot.in_flight < load)
        {
            best = Some((i, slot.in_flight));
        }
    }
    let (i, _) = best?;
    state.next = (i + 1) % n;
    Some(i)
}

/// Gives free slots to waiters, oldest first. Called with the lock held.
fn hand_off(inner: &Arc<Inner>, state: &mut State) {
    while !state.waiters.is_empty() {
        let Some(backend) = pick(inner, state) else {
            return;
        };
        let Some(waiter) = state.waiters.pop_front() else {
            return;
        };
        state.slots[backend].in_flight += 1;
        let permit = Permit {
            inner: inner.clone(),
            backend,
            armed: true,
        };
        if let Err(mut unused) = waiter.send(permit) {
            // The waiter gave up (timeout or client gone): take the slot back without re-locking.
            unused.armed = false;
            state.slots[backend].in_flight -= 1;
        }
    }
}

/// Removes the queue entry of a waiter that gave up, so the queue bound counts live waiters only.
struct QueuedWaiter {
    inner: Arc<Inner>,
    rx: Option<oneshot::Receiver<Permit>>,
}

impl Drop for QueuedWaiter {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            // A permit sent just before close is still in the channel: dropping it frees its slot,
            // and that takes the lock, so do it before locking here.
            drop(rx);
            let mut state = lock(&self.inner.state);
            state.waiters.retain(|w| !w.is_closed());
            hand_off(&self.inner, &mut state);
        }
    }
}

impl Dispatcher {
    /// A dispatcher over `backends` backends, none ready yet.
    pub fn new(backends: usize, per_backend: usize, max_queue: usize) -> Self {
        let slots = (0..backends)
            .map(|_| Slot {
                ready: false,
                in_flight: 0,
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                stuck: (0..backends).map(|_| Notify::new()).collect(),
                state: Mutex::new(State {
                    started: false,
                    slots,
                    waiters: VecDeque::new(),
                    next: 0,
                }),
                per_backend: per_backend.max(1),
                max_queue,
            }),
        }
    }

    /// Waits for a slot: at once when a ready backend has one, otherwise in the queue (which
    /// also holds requests while no backend is ready). Dropping the future leaves the queue.
    pub async fn acquire(&self) -> Result<Permit, AcquireError> {
        let rx = {
            let mut state = lock(&self.inner.state);
            if !state.waiters.is_empty() {
                state.waiters.retain(|w| !w.is_closed());
            }
            if state.waiters.is_empty()
                && let Some(backend) = pick(&self.inner, &mut state)
            {
                state.slots[backend].in_flight += 1;
                return Ok(Permit {
                    inner: self.inner.clone(),
                    backend,
                    armed: true,
                });
            }
            if state.waiters.len() >= self.inner.max_queue {
                return Err(AcquireError::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            state.waiters.push_back(tx);
            rx
        };
        let mut waiter = QueuedWaiter {
            inner: self.inner.clone(),
            rx: Some(rx),
        };
        let result = match waiter.rx.as_mut() {
            Some(rx) => rx.await.map_err(|_| AcquireError::Closed),
            None => Err(AcquireError::Closed),
        };
        // Received (or closed): nothing left to clean up in the queue.
        waiter.rx = None;
        result
    }

    /// Marks a backend ready or not; a backend turning ready takes waiting requests.
    pub fn set_ready(&self, backend: usize, ready: bool) {
        let mut state = lock(&self.inner.state);
        if let Some(slot) = state.slots.get_mut(backend) {
            slot.ready = ready;
        }
        if ready {
            if state.slots.iter().all(|s| s.ready) {
                state.started = true;
            }
            hand_off(&self.inner, &mut state);
        }
    }

    /// Reports that a request to `backend` got no response head within the request timeout: a
    /// sign the backend may hang, which its supervisor checks at once ([`Self::stuck`]).
    pub fn report_stuck(&self, backend: usize) {
        if let Some(notify) = self.inner.stuck.get(backend) {
            notify.notify_one();
        }
    }

    /// Resolves when a request to `backend` was reported stuck (never for an unknown backend).
    pub async fn stuck(&self, backend: usize) {
        match self.inner.stuck.get(backend) {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Current load of every backend and the queue.
    pub fn snapshot(&self) -> LoadSnapshot {
        let state = lock(&self.inner.state);
        LoadSnapshot {
            backends: state
                .slots
                .iter()
                .map(|s| BackendLoad {
                    ready: s.ready,
                    in_flight: s.in_flight,
                })
                .collect(),
            queued: state.waiters.iter().filter(|w| !w.is_closed()).count(),
            started: state.started,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn least_loaded_then_queue_then_full() {
        let d = Dispatcher::new(2, 1, 1);
        d.set_ready(0, true);
        d.set_ready(1, true);
        let a = d.acquire().await.unwrap();
        let b = d.acquire().await.unwrap();
        assert_ne!(
            a.backend(),
            b.backend(),
            "second request goes to the idle backend"
        );

        let d2 = d.clone();
        let queued = tokio::spawn(async move { d2.acquire().await });
        tokio::time::timeout(Duration::from_secs(5), async {
            while d.snapshot().queued != 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert_eq!(d.acquire().await.unwrap_err(), AcquireError::QueueFull);

        let freed = a.backend();
        drop(a);
        let c = queued.await.unwrap().unwrap();
        assert_eq!(c.backend(), freed, "the waiter takes the freed slot");
        assert_eq!(d.snapshot().in_flight(), 2);
        drop((b, c));
        assert_eq!(d.snapshot().in_flight(), 0);
    }

    #[tokio::test]
    async fn abandoned_waiters_leave_the_queue_and_free_nothing_twice() {
        let d = Dispatcher::new(1, 1, 1);
        d.set_ready(0, true);
        let held = d.acquire().await.unwrap();
        let r = tokio::time::timeout(Duration::from_millis(20), d.acquire()).await;
        assert!(r.is_err(), "times out in the queue");
        assert_eq!(d.snapshot().queued, 0);
        drop(held);
        let snap = d.snapshot();
        assert_eq!((snap.in_flight(), snap.queued), (0, 0));
        let again = d.acquire().await.unwrap();
        assert_eq!(again.backend(), 0);
    }

    #[tokio::test]
    async fn waits_for_a_backend_to_become_ready() {
        let d = Dispatcher::new(1, 2, 4);
        let d2 = d.clone();
        let waiting = tokio::spawn(async move { d2.acquire().await });
        tokio::task::yield_now().await;
        d.set_ready(0, true);
        let p = waiting.await.unwrap().unwrap();
        assert_eq!(p.backend(), 0);
        assert!(d.snapshot().all_ready());
    }

    #[test]
    fn started_latches_once_every_backend_was_ready() {
        let d = Dispatcher::new(2, 1, 1);
        d.set_ready(0, true);
        assert!(!d.snapshot().started, "one of two is still starting");
        d.set_ready(1, true);
        d.set_ready(0, false);
        let snap = d.snapshot();
        assert!(snap.started && !snap.all_ready() && snap.ready_count() == 1);
    }
}
