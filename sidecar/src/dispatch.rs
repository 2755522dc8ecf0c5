//! Back-pressure: each backend (worker or upstream) takes at most `executor_threads` requests at
//! once; the next ones wait, first come first served. A [`Permit`] is a claimed slot on one
//! backend, released when dropped (after the response body ends), which hands the slot to the
//! oldest waiter.
//!
//! The queue is bounded by time, not only by a count: with `max_queue_wait` set, a request is
//! refused at once (503) when the wait it would have, estimated from the queue ahead of it and
//! the backends' recent service time, is over the bound, and a request that has waited the bound
//! anyway leaves the queue with a 503. A burst the backends can serve within the bound is
//! served, whatever its size; a sustained overload is refused at arrival. Once a request has been
//! refused the queue counts as overloaded until it runs empty, and meanwhile a request may only
//! wait about two service slots' time ([`overload_wait`]), so the requests that are accepted
//! keep a latency close to the unloaded one and the refused ones are answered at once.
//! `max_queue` stays as a bound on the memory the queue may hold.
//!
//! Worker recycling: each backend has a generation (the run of the worker behind it) and,
//! optionally, a request limit for it. A permit remembers the generation it was granted in and
//! [`Permit::target`] names that generation's address (generations alternate between two
//! addresses per backend), so when the backend moves to a new generation the requests already
//! sent finish on the old process, counted apart ([`Dispatcher::held`]) until they are done, while
//! new requests go to the new one. Both count against the backend's slots.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// The least a request may wait in an overloaded queue (a timer's resolution, about).
const OVERLOAD_WAIT_FLOOR: Duration = Duration::from_millis(1);
/// How often [`Dispatcher::drained`] looks at a generation's requests.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// The recent service time is the mean over the last one to two windows this long.
const SERVICE_WINDOW: Duration = Duration::from_millis(500);

/// Why a slot could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    /// Every slot busy and the queue full.
    #[error("all workers are busy and the queue is full")]
    QueueFull,
    /// The estimated wait is over what the queue allows now.
    #[error(
        "all workers are busy: the wait would be about {estimate:?}, over the {limit:?} allowed"
    )]
    Overloaded {
        /// The wait this request would have had.
        estimate: Duration,
        /// What the queue allows now (`max_queue_wait`, or less while overloaded).
        limit: Duration,
    },
    /// The request waited in the queue as long as allowed.
    #[error("waited {waited:?} in the queue without a free worker")]
    QueueWait {
        /// How long it waited.
        waited: Duration,
    },
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
    /// Requests sent to its current generation (worker run).
    pub requests: u64,
    /// The current generation's request limit (`None`: no limit). While `requests` is at or
    /// over it, the worker is due for recycling or its replacement is loading.
    pub request_limit: Option<u64>,
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
    /// Requests held by the current generation.
    in_flight: usize,
    /// The current generation (worker run) behind the backend.
    generation: u64,
    /// Requests still held by the previous generation.
    draining: usize,
    /// Requests granted to the current generation.
    sent: u64,
    /// After this many requests the current generation is due for recycling.
    limit: Option<u64>,
}

impl Slot {
    /// Requests held by either generation.
    fn held(&self) -> usize {
        self.in_flight + self.draining
    }
}

/// A request waiting for a slot.
struct Waiter {
    tx: oneshot::Sender<Result<Permit, AcquireError>>,
    since: Instant,
}

struct State {
    slots: Vec<Slot>,
    /// Latched once every backend was ready at the same time.
    started: bool,
    waiters: VecDeque<Waiter>,
    /// Rotates the starting point so equally loaded backends share the work.
    next: usize,
    /// A request was refused since the queue was last empty.
    overloaded: bool,
    /// How long requests hold their slots, recently.
    service: ServiceTime,
}

/// How long requests have held their slots recently: the mean of the samples of the current
/// window and the one before ([`SERVICE_WINDOW`] each), so that every sample of the last half
/// second to second counts the same. A few slow requests among many then move it a little,
/// however close together they end; a running average over a fixed number of samples forgot
/// everything else within milliseconds at a thousand requests a second, and a short stall of
/// the workers could make a queue they drain in 200 ms look a second long.
#[derive(Debug, Default)]
struct ServiceTime {
    /// When the current window began (`None` before the first sample).
    started: Option<Instant>,
    current: Window,
    previous: Window,
}

/// The samples of one window.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    nanos: u64,
    count: u64,
}

impl ServiceTime {
    /// Adds a request that held its slot `held` nanoseconds and ended `now`.
    fn record(&mut self, held: u64, now: Instant) {
        match self.started {
            Some(started) if now.saturating_duration_since(started) < SERVICE_WINDOW => {}
            Some(_) => {
                self.previous = self.current;
                self.current = Window::default();
                self.started = Some(now);
            }
            None => self.started = Some(now),
        }
        self.current.nanos = self.current.nanos.saturating_add(held);
        self.current.count = self.current.count.saturating_add(1);
    }

    /// The mean, in nanoseconds (at least 1), or 0 before the first sample.
    fn mean_nanos(&self) -> u64 {
        let count = self.current.count.saturating_add(self.previous.count);
        if count == 0 {
            return 0;
        }
        (self.current.nanos.saturating_add(self.previous.nanos) / count).max(1)
    }
}

struct Inner {
    state: Mutex<State>,
    /// Per backend: woken when a request to it ran past the request timeout.
    stuck: Vec<Notify>,
    /// Per backend: woken when its current generation was sent its request limit.
    recycle: Vec<Notify>,
    per_backend: usize,
    max_queue: usize,
    max_queue_wait: Option<Duration>,
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
    generation: u64,
    armed: bool,
    since: Instant,
}

impl Permit {
    /// The backend index this request goes to.
    pub fn backend(&self) -> usize {
        self.backend
    }

    /// The address index to send it to: [`target`] of its backend and generation.
    pub fn target(&self) -> usize {
        target(self.backend, self.generation, self.inner.stuck.len())
    }
}

/// The address index of `backend`'s `generation` among `backends` backends: generations alternate
/// between the address `backend` (even) and `backends + backend` (odd).
pub fn target(backend: usize, generation: u64, backends: usize) -> usize {
    if generation.is_multiple_of(2) {
        backend
    } else {
        backends + backend
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            let now = Instant::now();
            let held = u64::try_from(now.saturating_duration_since(self.since).as_nanos())
                .unwrap_or(u64::MAX);
            let mut state = lock(&self.inner.state);
            if let Some(slot) = state.slots.get_mut(self.backend) {
                if slot.generation == self.generation {
                    slot.in_flight = slot.in_flight.saturating_sub(1);
                } else {
                    slot.draining = slot.draining.saturating_sub(1);
                }
            }
            state.service.record(held, now);
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
            && slot.held() < inner.per_backend
            && best.is_none_or(|(_, load)| slot.held() < load)
        {
            best = Some((i, slot.held()));
        }
    }
    let (i, _) = best?;
    state.next = (i + 1) % n;
    Some(i)
}

/// Claims a slot on `backend` for the current generation, counting the request towards its
/// limit (and waking the backend's supervisor when the limit is reached).
fn grant(inner: &Arc<Inner>, state: &mut State, backend: usize, since: Instant) -> Permit {
    let slot = &mut state.slots[backend];
    slot.in_flight += 1;
    slot.sent = slot.sent.saturating_add(1);
    if slot.limit.is_some_and(|limit| slot.sent >= limit)
        && let Some(notify) = inner.recycle.get(backend)
    {
        notify.notify_one();
    }
    Permit {
        inner: inner.clone(),
        backend,
        generation: slot.generation,
        armed: true,
        since,
    }
}

/// Slots a request can be served by at once: ready backends times slots per backend.
fn capacity(inner: &Inner, state: &State) -> u64 {
    let ready = state.slots.iter().filter(|s| s.ready).count();
    u64::try_from(ready * inner.per_backend).unwrap_or(u64::MAX)
}

/// The wait of a request with `position - 1` requests ahead of it, from the recent service time;
/// `None` before the first sample or while no backend is ready.
fn estimated_wait(inner: &Inner, state: &State, position: usize) -> Option<Duration> {
    let capacity = capacity(inner, state);
    let service_nanos = state.service.mean_nanos();
    if service_nanos == 0 || capacity == 0 {
        return None;
    }
    let ahead = u64::try_from(position).unwrap_or(u64::MAX);
    Some(Duration::from_nanos(
        ahead.saturating_mul(service_nanos) / capacity,
    ))
}

/// How long a request may wait while the queue is overloaded: two slots' worth of service
/// time (a slot frees about every `service / capacity`), at least [`OVERLOAD_WAIT_FLOOR`], at
/// most `bound`.
pub fn overload_wait(service: Duration, capacity: u64, bound: Duration) -> Duration {
    let per_slot = service
        .checked_div(u32::try_from(capacity.max(1)).unwrap_or(u32::MAX))
        .unwrap_or(service);
    per_slot
        .saturating_mul(2)
        .max(OVERLOAD_WAIT_FLOOR)
        .min(bound)
}

/// What a new request may wait now: `max_queue_wait`, or [`overload_wait`] while overloaded.
fn wait_limit(inner: &Inner, state: &State, bound: Duration) -> Duration {
    if state.overloaded {
        overload_wait(
            Duration::from_nanos(state.service.mean_nanos()),
            capacity(inner, state),
            bound,
        )
    } else {
        bound
    }
}

/// While overloaded, refuses the waiters that have waited longer than the overload limit
/// (oldest first), so they hear 503 now rather than after the full bound.
fn shed_stale(inner: &Inner, state: &mut State, now: Instant) {
    let Some(bound) = inner.max_queue_wait else {
        return;
    };
    if !state.overloaded {
        return;
    }
    let limit = wait_limit(inner, state, bound);
    while let Some(waiter) = state.waiters.front() {
        let waited = now.saturating_duration_since(waiter.since);
        if waited <= limit {
            return;
        }
        if let Some(waiter) = state.waiters.pop_front() {
            let _gone = waiter.tx.send(Err(AcquireError::QueueWait { waited }));
        }
    }
}

/// Gives free slots to waiters, oldest first. Called with the lock held.
fn hand_off(inner: &Arc<Inner>, state: &mut State) {
    shed_stale(inner, state, Instant::now());
    while !state.waiters.is_empty() {
        let Some(backend) = pick(inner, state) else {
            return;
        };
        let Some(waiter) = state.waiters.pop_front() else {
            return;
        };
        let permit = grant(inner, state, backend, Instant::now());
        if let Err(Ok(mut unused)) = waiter.tx.send(Ok(permit)) {
            // The waiter gave up (timeout or client gone): take the slot back without re-locking.
            unused.armed = false;
            let slot = &mut state.slots[backend];
            slot.in_flight -= 1;
            slot.sent = slot.sent.saturating_sub(1);
        }
    }
    // The queue ran empty: the overload is over.
    state.overloaded = false;
}

/// Removes the queue entry of a waiter that gave up, so the queue bound counts live waiters only.
struct QueuedWaiter {
    inner: Arc<Inner>,
    rx: Option<oneshot::Receiver<Result<Permit, AcquireError>>>,
}

impl Drop for QueuedWaiter {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            // A permit sent just before close is still in the channel: dropping it frees its slot,
            // and that takes the lock, so do it before locking here.
            drop(rx);
            let mut state = lock(&self.inner.state);
            state.waiters.retain(|w| !w.tx.is_closed());
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
                generation: 0,
                draining: 0,
                sent: 0,
                limit: None,
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                stuck: (0..backends).map(|_| Notify::new()).collect(),
                recycle: (0..backends).map(|_| Notify::new()).collect(),
                state: Mutex::new(State {
                    started: false,
                    slots,
                    waiters: VecDeque::new(),
                    next: 0,
                    overloaded: false,
                    service: ServiceTime::default(),
                }),
                per_backend: per_backend.max(1),
                max_queue,
                max_queue_wait: None,
            }),
        }
    }

    /// A dispatcher whose queue also bounds how long a request waits (see the module's doc).
    /// Call before the dispatcher is cloned.
    pub fn with_max_queue_wait(mut self, bound: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_queue_wait = Some(bound);
        }
        self
    }

    /// Waits for a slot: at once when a ready backend has one, otherwise in the queue (which
    /// also holds requests while no backend is ready). Dropping the future leaves the queue.
    pub async fn acquire(&self) -> Result<Permit, AcquireError> {
        let now = Instant::now();
        // While no backend is ready (start-up, or every worker restarting) a request waits for
        // one as before, up to the request timeout: the time bound is about busy backends.
        let mut bound = self.inner.max_queue_wait;
        let rx = {
            let mut state = lock(&self.inner.state);
            if !state.waiters.is_empty() {
                state.waiters.retain(|w| !w.tx.is_closed());
                shed_stale(&self.inner, &mut state, now);
            }
            if state.waiters.is_empty() {
                state.overloaded = false;
                if let Some(backend) = pick(&self.inner, &mut state) {
                    return Ok(grant(&self.inner, &mut state, backend, now));
                }
            }
            if state.waiters.len() >= self.inner.max_queue {
                state.overloaded = true;
                return Err(AcquireError::QueueFull);
            }
            if let Some(bound) = self.inner.max_queue_wait
                && let Some(estimate) = estimated_wait(&self.inner, &state, state.waiters.len() + 1)
            {
                let limit = wait_limit(&self.inner, &state, bound);
                if estimate > limit {
                    state.overloaded = true;
                    return Err(AcquireError::Overloaded { estimate, limit });
                }
            }
            if capacity(&self.inner, &state) == 0 {
                bound = None;
            }
            let (tx, rx) = oneshot::channel();
            state.waiters.push_back(Waiter { tx, since: now });
            rx
        };
        let mut waiter = QueuedWaiter {
            inner: self.inner.clone(),
            rx: Some(rx),
        };
        let received = async {
            match waiter.rx.as_mut() {
                Some(rx) => rx.await.unwrap_or(Err(AcquireError::Closed)),
                None => Err(AcquireError::Closed),
            }
        };
        let result = match bound {
            None => received.await,
            Some(bound) => match tokio::time::timeout_at(now + bound, received).await {
                Ok(result) => result,
                Err(_) => Err(AcquireError::QueueWait { waited: bound }),
            },
        };
        // Received (or closed): nothing left to clean up in the queue.
        waiter.rx = None;
        result
    }

    /// Sets the recent service time, as if requests had held their slots that long (tests).
    #[cfg(test)]
    pub(crate) fn set_service_time(&self, service: Duration) {
        let nanos = u64::try_from(service.as_nanos()).unwrap_or(u64::MAX);
        let mut state = lock(&self.inner.state);
        state.service = ServiceTime::default();
        state.service.record(nanos, Instant::now());
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

    /// Moves `backend` to `generation`: the requests its previous generation holds finish there,
    /// counted apart until done ([`Self::held`]); new requests go to the new generation, whose
    /// request count starts at 0. Nothing changes when it is already the current one.
    pub fn set_generation(&self, backend: usize, generation: u64) {
        let mut state = lock(&self.inner.state);
        if let Some(slot) = state.slots.get_mut(backend)
            && slot.generation != generation
        {
            slot.draining += slot.in_flight;
            slot.in_flight = 0;
            slot.generation = generation;
            slot.sent = 0;
        }
    }

    /// Sets the request limit of `backend`'s current generation (`None`: no limit) and starts its
    /// count afresh.
    pub fn set_request_limit(&self, backend: usize, limit: Option<u64>) {
        let mut state = lock(&self.inner.state);
        if let Some(slot) = state.slots.get_mut(backend) {
            slot.limit = limit;
            slot.sent = 0;
        }
    }

    /// Requests sent to `backend`'s current generation, and its limit.
    pub fn requests(&self, backend: usize) -> (u64, Option<u64>) {
        let state = lock(&self.inner.state);
        state
            .slots
            .get(backend)
            .map_or((0, None), |slot| (slot.sent, slot.limit))
    }

    /// Resolves once `backend`'s current generation has been sent its request limit (never
    /// without a limit, or for an unknown backend).
    pub async fn recycle_due(&self, backend: usize) {
        let Some(notify) = self.inner.recycle.get(backend) else {
            return std::future::pending().await;
        };
        loop {
            let (sent, limit) = self.requests(backend);
            if limit.is_some_and(|limit| sent >= limit) {
                return;
            }
            // A notification from an earlier generation is checked against the count above.
            notify.notified().await;
        }
    }

    /// Requests `backend`'s `generation` holds: its in-flight requests when it is the current
    /// generation, the draining ones when it is the previous one, none for any other.
    pub fn held(&self, backend: usize, generation: u64) -> usize {
        let state = lock(&self.inner.state);
        match state.slots.get(backend) {
            Some(slot) if slot.generation == generation => slot.in_flight,
            Some(slot) if slot.generation == generation.wrapping_add(1) => slot.draining,
            _ => 0,
        }
    }

    /// Resolves once `backend`'s `generation` holds no request ([`Self::held`]).
    pub async fn drained(&self, backend: usize, generation: u64) {
        while self.held(backend, generation) > 0 {
            tokio::time::sleep(DRAIN_POLL).await;
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
                    in_flight: s.held(),
                    requests: s.sent,
                    request_limit: s.limit,
                })
                .collect(),
            queued: state.waiters.iter().filter(|w| !w.tx.is_closed()).count(),
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
    /// A dispatcher with one backend of `slots` slots whose recent service time is `service`.
    fn with_service(slots: usize, service: Duration, bound: Duration) -> Dispatcher {
        let d = Dispatcher::new(1, slots, 1024).with_max_queue_wait(bound);
        d.set_ready(0, true);
        d.set_service_time(service);
        d
    }

    async fn queue_until(d: &Dispatcher, queued: usize) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while d.snapshot().queued != queued {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_burst_that_fits_the_time_bound_is_queued_whatever_its_count() {
        // 10 ms per request, 2 slots: 100 waiters wait at most 500 ms, inside a 1 s bound.
        let d = with_service(2, Duration::from_millis(10), Duration::from_secs(1));
        let held = (d.acquire().await.unwrap(), d.acquire().await.unwrap());
        let mut waiting = Vec::new();
        for _ in 0..100 {
            let d = d.clone();
            waiting.push(tokio::spawn(async move {
                d.acquire().await.map(|p| p.backend())
            }));
        }
        queue_until(&d, 100).await;
        drop(held);
        for w in waiting {
            assert_eq!(
                w.await.unwrap(),
                Ok(0),
                "every request of the burst is served"
            );
        }
    }

    #[tokio::test]
    async fn a_request_that_would_wait_past_the_bound_is_refused_at_once() {
        // 100 ms per request, 1 slot, 250 ms bound: the third waiter would wait 300 ms.
        let d = with_service(1, Duration::from_millis(100), Duration::from_millis(250));
        let _held = d.acquire().await.unwrap();
        let mut waiting = Vec::new();
        for _ in 0..2 {
            let d = d.clone();
            waiting.push(tokio::spawn(async move {
                d.acquire().await.map(|p| p.backend())
            }));
        }
        queue_until(&d, 2).await;
        let refused = d.acquire().await.unwrap_err();
        assert!(
            matches!(refused, AcquireError::Overloaded { estimate, limit }
                if estimate == Duration::from_millis(300) && limit == Duration::from_millis(250)),
            "{refused:?}"
        );
        // From now on the queue is overloaded: a new request may wait only two slots' time
        // (200 ms here), and the two queued requests, waiting less than that, stay queued.
        assert!(lock(&d.inner.state).overloaded);
        assert_eq!(d.snapshot().queued, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_waited_the_bound_leaves_the_queue_with_its_wait() {
        let d = with_service(1, Duration::from_millis(1), Duration::from_millis(50));
        let _held = d.acquire().await.unwrap();
        let refused = d.acquire().await.unwrap_err();
        assert_eq!(
            refused,
            AcquireError::QueueWait {
                waited: Duration::from_millis(50)
            }
        );
        assert_eq!(d.snapshot().queued, 0, "it left the queue");
    }

    #[tokio::test(start_paused = true)]
    async fn while_overloaded_stale_waiters_are_refused_at_the_next_hand_off_and_the_queue_recovers()
     {
        // 10 ms per request, 1 slot: the overload limit is 20 ms.
        let d = with_service(1, Duration::from_millis(10), Duration::from_secs(1));
        let held = d.acquire().await.unwrap();
        let d2 = d.clone();
        let old = tokio::spawn(async move { d2.acquire().await.map(|p| p.backend()) });
        queue_until(&d, 1).await;
        lock(&d.inner.state).overloaded = true;
        tokio::time::advance(Duration::from_millis(30)).await;
        let d3 = d.clone();
        let fresh = tokio::spawn(async move { d3.acquire().await.map(|p| p.backend()) });
        // The new arrival sweeps the stale waiter out; the fresh one takes the freed slot.
        let stale = old.await.unwrap().unwrap_err();
        assert!(
            matches!(stale, AcquireError::QueueWait { waited } if waited >= Duration::from_millis(30)),
            "{stale:?}"
        );
        drop(held);
        assert_eq!(fresh.await.unwrap(), Ok(0));
        assert!(
            !lock(&d.inner.state).overloaded,
            "the queue ran empty: overload over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_stall_does_not_turn_a_queue_that_drains_within_the_bound_away() {
        // Two workers of 4 slots, a second of requests at 5 ms each.
        let d = Dispatcher::new(2, 4, 1024).with_max_queue_wait(Duration::from_secs(1));
        d.set_ready(0, true);
        d.set_ready(1, true);
        for _ in 0..200 {
            let permit = d.acquire().await.unwrap();
            tokio::time::advance(Duration::from_millis(5)).await;
            drop(permit);
        }
        // A burst: 8 requests in the workers, 192 waiting (at 5 ms a request, 120 ms at most).
        let mut in_workers = Vec::new();
        for _ in 0..8 {
            in_workers.push(d.acquire().await.unwrap());
        }
        let mut waiting = Vec::new();
        for _ in 0..192 {
            let d = d.clone();
            waiting.push(tokio::spawn(async move { d.acquire().await }));
        }
        queue_until(&d, 192).await;
        // The workers stall for 200 ms (a pause, a CPU-starved moment): the eight requests in
        // them end late and together, and eight waiters take their slots.
        tokio::time::advance(Duration::from_millis(200)).await;
        drop(in_workers);
        queue_until(&d, 184).await;
        // A new request would wait about 185 / 8 x 5 ms once the workers run again: it queues
        // (and gives up after a millisecond here) rather than being refused.
        let late = tokio::time::timeout(Duration::from_millis(1), d.acquire()).await;
        assert!(late.is_err(), "queued, not refused: {late:?}");
        // And everyone waiting is served, in order: none was shed.
        for (i, w) in waiting.into_iter().enumerate() {
            let permit = w.await.unwrap();
            assert!(permit.is_ok(), "request {i}: {permit:?}");
        }
    }

    #[test]
    fn the_service_time_is_the_mean_of_the_last_window_or_two() {
        const MS: u64 = 1_000_000;
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut service = ServiceTime::default();
        assert_eq!(service.mean_nanos(), 0);
        // A second at 5 ms a request, then 8 that took 205 ms: they count as 8 of ~60.
        for i in 0..100 {
            service.record(5 * MS, at(i * 10));
        }
        assert_eq!(service.mean_nanos(), 5 * MS);
        for _ in 0..8 {
            service.record(205 * MS, at(1000));
        }
        let mean = service.mean_nanos();
        assert!((25 * MS..35 * MS).contains(&mean), "{mean}");
        // A second at 50 ms: what came before is forgotten.
        for i in 0..100 {
            service.record(50 * MS, at(1010 + i * 10));
        }
        assert_eq!(service.mean_nanos(), 50 * MS);
    }

    #[test]
    fn the_overload_limit_is_two_slots_of_service_within_bounds() {
        let bound = Duration::from_secs(1);
        assert_eq!(
            overload_wait(Duration::from_millis(40), 8, bound),
            Duration::from_millis(10)
        );
        assert_eq!(
            overload_wait(Duration::from_micros(100), 8, bound),
            OVERLOAD_WAIT_FLOOR
        );
        assert_eq!(overload_wait(Duration::from_secs(10), 1, bound), bound);
    }

    #[tokio::test]
    async fn the_service_time_average_follows_the_permits() {
        let d = Dispatcher::new(1, 1, 1);
        d.set_ready(0, true);
        assert_eq!(
            lock(&d.inner.state).service.mean_nanos(),
            0,
            "no sample yet"
        );
        drop(d.acquire().await.unwrap());
        assert!(lock(&d.inner.state).service.mean_nanos() > 0);
    }
    #[tokio::test(start_paused = true)]
    async fn with_no_backend_ready_a_request_waits_past_the_bound_for_one() {
        let d = Dispatcher::new(1, 1, 8).with_max_queue_wait(Duration::from_millis(50));
        d.set_service_time(Duration::from_millis(10));
        let d2 = d.clone();
        let waiting = tokio::spawn(async move { d2.acquire().await.map(|p| p.backend()) });
        queue_until(&d, 1).await;
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            d.snapshot().queued,
            1,
            "still waiting for a worker, not refused"
        );
        d.set_ready(0, true);
        assert_eq!(waiting.await.unwrap(), Ok(0));
    }

    #[tokio::test]
    async fn a_new_generation_takes_new_requests_while_the_old_one_finishes_its_own() {
        let d = Dispatcher::new(2, 2, 8);
        d.set_ready(0, true);
        d.set_request_limit(0, Some(2));
        let first = d.acquire().await.unwrap();
        assert_eq!((first.backend(), first.target()), (0, 0));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), d.recycle_due(0))
                .await
                .is_err(),
            "one request of two: not due"
        );
        let second = d.acquire().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), d.recycle_due(0))
            .await
            .expect("due after its limit");

        d.set_generation(0, 1);
        assert_eq!(d.held(0, 0), 2, "the old generation still holds both");
        assert_eq!(d.requests(0).0, 0, "the new generation starts its count");
        drop(first);
        let third = d.acquire_ready_only(0).await;
        assert_eq!(third.target(), 2, "odd generations use the second address");
        assert_eq!((d.held(0, 0), d.held(0, 1)), (1, 1));
        assert_eq!(d.snapshot().backends[0].in_flight, 2, "both count as load");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), d.drained(0, 0))
            .await
            .expect("the old generation drains");
        drop(third);
        assert_eq!(d.held(0, 1), 0);
    }

    #[tokio::test]
    async fn without_a_limit_no_recycle_is_due() {
        let d = Dispatcher::new(1, 4, 8);
        d.set_ready(0, true);
        for _ in 0..10 {
            drop(d.acquire().await.unwrap());
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(20), d.recycle_due(0))
                .await
                .is_err()
        );
        assert_eq!(d.requests(0), (10, None));
    }

    impl Dispatcher {
        /// A permit that must go to `backend` (the only ready one in the test).
        async fn acquire_ready_only(&self, backend: usize) -> Permit {
            let permit = self.acquire().await.unwrap();
            assert_eq!(permit.backend(), backend);
            permit
        }
    }
}
