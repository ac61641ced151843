//! The semaphore's own guarantees, including the two races its fast paths must win: a release
//! and a waiter queueing at the same moment, put exactly into the window with `hooks`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use super::sem::{hooks, Busy, Point, Queued, Sem};

fn waiting(q: Queued) -> u64 {
    match q {
        Queued::Waiting(id) => id,
        other => panic!("expected to wait, got {other:?}"),
    }
}

/// A waker that records that it was woken.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, SeqCst);
    }
}

fn poll(sem: &Sem, id: u64, flag: &Arc<Flag>) -> Poll<()> {
    let waker = Waker::from(flag.clone());
    sem.poll_acquire(id, &mut Context::from_waker(&waker))
}

#[test]
fn a_release_while_a_waiter_is_about_to_queue_gives_it_that_permit() {
    // The waiter saw no permit free, then the holder released before the waiter marked the
    // queue as used: the waiter must take that permit, not queue behind a free one (where no
    // release would ever come to wake it).
    let sem = Arc::new(Sem::new(1));
    assert_eq!(sem.try_acquire(), Ok(true));
    let s = sem.clone();
    hooks::at(Point::Queue, move || {
        assert!(s.release(), "released to idle")
    });
    assert_eq!(sem.acquire_or_queue(), Queued::Got(true));
    assert!(hooks::ran(), "the release ran inside the window");
    assert_eq!(sem.available(), 0);
    assert_eq!(sem.try_acquire(), Err(Busy::Full), "one permit, held");
    assert!(sem.release());
    assert_eq!(sem.available(), 1);
}

#[test]
fn a_waiter_queueing_while_a_release_is_about_to_free_its_permit_gets_it() {
    // The holder saw nobody waiting, then a waiter queued before the release added its permit
    // to the free ones: the permit must go to the waiter, and wake it.
    let sem = Arc::new(Sem::new(1));
    assert_eq!(sem.try_acquire(), Ok(true));
    let id = Arc::new(AtomicUsize::new(usize::MAX));
    let (s, i) = (sem.clone(), id.clone());
    hooks::at(Point::Release, move || {
        i.store(waiting(s.acquire_or_queue()) as usize, SeqCst);
    });
    assert!(!sem.release(), "handed over, not idle");
    assert!(hooks::ran(), "the waiter queued inside the window");
    let id = id.load(SeqCst) as u64;
    assert_eq!(poll(&sem, id, &Arc::default()), Poll::Ready(()));
    assert_eq!(sem.available(), 0, "the waiter holds it");
    assert_eq!(sem.try_acquire(), Err(Busy::Full));
    assert!(sem.release());
    assert_eq!(sem.available(), 1);
}

#[test]
fn a_queued_waiter_is_woken_with_its_permit_and_never_overtaken() {
    let sem = Sem::new(1);
    assert_eq!(sem.try_acquire(), Ok(true));
    let (a, b) = (
        waiting(sem.acquire_or_queue()),
        waiting(sem.acquire_or_queue()),
    );
    let (fa, fb) = (Arc::<Flag>::default(), Arc::<Flag>::default());
    // B polls first: the order of queueing decides, not the order of polls.
    assert_eq!(poll(&sem, b, &fb), Poll::Pending);
    assert_eq!(poll(&sem, a, &fa), Poll::Pending);
    assert!(!sem.release(), "handed to A");
    assert!(fa.0.load(SeqCst) && !fb.0.load(SeqCst), "A woken, B not");
    // A new arrival finds nothing free while anyone waits, even right after a release.
    assert_eq!(sem.try_acquire(), Err(Busy::Full));
    assert_eq!(sem.available(), 0);
    assert_eq!(poll(&sem, a, &fa), Poll::Ready(()));
    assert!(!sem.release(), "handed to B");
    assert!(fb.0.load(SeqCst));
    assert_eq!(sem.try_acquire(), Err(Busy::Full));
    assert_eq!(poll(&sem, b, &fb), Poll::Ready(()));
    assert!(sem.release(), "nobody waits: free, idle");
    assert_eq!(sem.try_acquire(), Ok(true), "free again for new arrivals");
}

#[test]
fn a_waiter_that_leaves_is_skipped_and_one_handed_a_permit_gives_it_on() {
    let sem = Sem::new(1);
    assert_eq!(sem.try_acquire(), Ok(true));
    let ids: Vec<u64> = (0..3).map(|_| waiting(sem.acquire_or_queue())).collect();
    // The first leaves before any release: the release skips it.
    assert!(!sem.cancel(ids[0]), "it had no permit");
    assert!(!sem.release());
    let flag = Arc::<Flag>::default();
    assert_eq!(poll(&sem, ids[1], &flag), Poll::Ready(()));
    // The second's permit is handed to the third; the third leaves unpolled: it owns the
    // permit, and gives it back (to nobody: free).
    assert!(!sem.release());
    assert!(sem.cancel(ids[2]), "it had been handed a permit");
    assert_eq!(sem.available(), 0);
    assert!(sem.release());
    assert_eq!(sem.available(), 1);
    assert_eq!(sem.try_acquire(), Ok(true), "not queued any more");
}

#[test]
fn the_last_waiter_leaving_frees_the_queue_for_new_arrivals() {
    let sem = Sem::new(2);
    assert_eq!(sem.try_acquire(), Ok(true));
    assert_eq!(sem.try_acquire(), Ok(false));
    let id = waiting(sem.acquire_or_queue());
    assert!(!sem.cancel(id));
    // Nobody waits: a release frees its permit, which a new arrival takes at once.
    assert!(!sem.release());
    assert_eq!(sem.available(), 1);
    assert_eq!(sem.try_acquire(), Ok(false));
}

#[test]
fn waiters_that_leave_do_not_pile_up() {
    let sem = Sem::new(1);
    assert_eq!(sem.try_acquire(), Ok(true));
    let keep = waiting(sem.acquire_or_queue());
    for _ in 0..10_000 {
        let id = waiting(sem.acquire_or_queue());
        assert!(!sem.cancel(id));
        assert!(sem.queue_len() <= 2 * 2 + 8, "{} entries", sem.queue_len());
    }
    assert!(!sem.release());
    assert_eq!(poll(&sem, keep, &Arc::default()), Poll::Ready(()));
    assert!(sem.release());
    assert_eq!(sem.queue_len(), 0);
}

#[test]
fn closed_only_when_idle_and_then_for_good() {
    let sem = Sem::new(2);
    assert_eq!(sem.try_acquire(), Ok(true));
    assert!(!sem.close_if_idle(), "a permit is held");
    assert!(sem.release());
    assert!(sem.close_if_idle());
    assert_eq!(sem.try_acquire(), Err(Busy::Closed));
    assert_eq!(sem.acquire_or_queue(), Queued::Closed);
    assert!(sem.is_closed());
}

#[test]
fn a_permit_taken_while_the_close_looks_keeps_it_open() {
    // The close saw the semaphore idle, then a request took a permit before it closed it: the
    // close must fail (the entry stays in use), not shut out a permit holder's entry.
    let sem = Arc::new(Sem::new(1));
    let s = sem.clone();
    hooks::at(Point::Close, move || assert_eq!(s.try_acquire(), Ok(true)));
    assert!(!sem.close_if_idle());
    assert!(hooks::ran());
    assert!(!sem.is_closed());
    assert!(sem.release());
}

/// Wakes a parked thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

#[test]
fn threads_never_exceed_the_limit_and_every_waiter_is_served() {
    // Real threads racing acquires, queueing and releases (with some waiters leaving): never
    // more holders than permits, and every waiter served (each wait is bounded, so the test
    // cannot hang; it polls again on a timer too, so `thread_tests` checks the wake-ups).
    const THREADS: usize = 6;
    const ROUNDS: usize = 3_000;
    for permits in [1, 2] {
        let sem = Arc::new(Sem::new(permits));
        let held = Arc::new(AtomicUsize::new(0));
        let waits = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (sem, held, waits) = (sem.clone(), held.clone(), waits.clone());
                std::thread::spawn(move || {
                    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
                    let mut cx = Context::from_waker(&waker);
                    for round in 0..ROUNDS {
                        let got = match sem.try_acquire() {
                            Ok(_) => true,
                            Err(_) => match sem.acquire_or_queue() {
                                Queued::Got(_) => true,
                                Queued::Waiting(id) if (t + round) % 7 == 0 => {
                                    // Leaves the queue; gives back a permit handed over meanwhile.
                                    if sem.cancel(id) {
                                        sem.release();
                                    }
                                    false
                                }
                                Queued::Waiting(id) => {
                                    waits.fetch_add(1, SeqCst);
                                    let deadline =
                                        tokio::time::Instant::now() + Duration::from_secs(30);
                                    while sem.poll_acquire(id, &mut cx).is_pending() {
                                        assert!(
                                            tokio::time::Instant::now() < deadline,
                                            "a waiter was never woken"
                                        );
                                        std::thread::park_timeout(Duration::from_millis(100));
                                    }
                                    true
                                }
                                Queued::Closed => unreachable!(),
                            },
                        };
                        if got {
                            let now = held.fetch_add(1, SeqCst) + 1;
                            assert!(now <= permits, "{now} holders of {permits} permits");
                            // Hold it a moment, so the others find it taken and queue.
                            std::thread::yield_now();
                            held.fetch_sub(1, SeqCst);
                            sem.release();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(waits.load(SeqCst) > 0, "the threads never had to wait");
        assert_eq!(sem.available(), permits, "every permit back");
        assert_eq!(sem.queue_len(), 0, "nobody left queued");
    }
}
