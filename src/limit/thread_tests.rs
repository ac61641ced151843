//! Real threads on the semaphore and on the per-host entries (remembered entries, sweeps,
//! queueing, cancels racing hand-offs), with strict wake-up detection: a waiter polls again
//! only once its waker fired, so a lost wake-up fails the test.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::config::Config;
use super::per_host::{Entry, Host, HostKey, Hosts};
use super::sem::{Queued, Sem};

struct Flag(AtomicBool, std::thread::Thread);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, SeqCst);
        self.1.unpark();
    }
}

/// Waits for `id` re-polling only once woken; panics on a lost wake-up.
fn wait(sem: &Sem, id: u64) {
    let flag = Arc::new(Flag(AtomicBool::new(false), std::thread::current()));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        flag.0.store(false, SeqCst);
        if sem.poll_acquire(id, &mut cx).is_ready() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !flag.0.load(SeqCst) {
            assert!(Instant::now() < deadline, "lost wake-up");
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn hosts_threads_stress() {
    for (limit, max_idle) in [(1, 0), (2, 0), (1, 1), (3, 2)] {
        let mut config = Config::new("x", limit);
        config.max_waiting = usize::MAX;
        config.max_idle_hosts = max_idle;
        let hosts = Arc::new(Hosts::new(config));
        const KEYS: usize = 4;
        let active: Arc<Vec<AtomicUsize>> =
            Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
        let keys: Vec<HostKey> = (0..KEYS)
            .map(|k| HostKey::of_uri(&format!("http://h{k}.example/").parse().unwrap()))
            .collect();
        let threads: Vec<_> = (0..6u64)
            .map(|t| {
                let (hosts, active, keys) = (hosts.clone(), active.clone(), keys.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t + 1) * 0x123_4567));
                    let mut last: HashMap<usize, Arc<Host>> = HashMap::new();
                    for _ in 0..20_000 {
                        let k = (rng.next() % KEYS as u64) as usize;
                        let held: Option<Arc<Host>> = 'adm: {
                            let entry = if let Some(h) = last.get(&k) {
                                if hosts.try_enter(h) {
                                    break 'adm Some(h.clone());
                                }
                                match hosts.enter_known(h) {
                                    Some(e) => e,
                                    None => hosts.enter(&keys[k]),
                                }
                            } else {
                                hosts.enter(&keys[k])
                            };
                            last.insert(k, entry.host().clone());
                            match entry {
                                Entry::Permit(h) => Some(h),
                                Entry::Full(..) => unreachable!(),
                                Entry::Queued(h, id) => {
                                    if rng.next() % 4 == 0 {
                                        if rng.next() % 2 == 0 {
                                            std::thread::yield_now();
                                        }
                                        if h.sem.cancel(id) {
                                            hosts.give_back(&h);
                                        }
                                        hosts.gave_up(&h);
                                        None
                                    } else {
                                        wait(&h.sem, id);
                                        hosts.waited_in(&h);
                                        Some(h)
                                    }
                                }
                            }
                        };
                        if let Some(h) = held {
                            let n = active[k].fetch_add(1, SeqCst) + 1;
                            assert!(n <= limit, "{n} in flight to host {k}, limit {limit}");
                            if rng.next() % 2 == 0 {
                                std::thread::yield_now();
                            }
                            active[k].fetch_sub(1, SeqCst);
                            hosts.left(&h);
                            hosts.give_back(&h);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            (hosts.in_flight(), hosts.waiting(), hosts.hosts()),
            (0, 0, 0)
        );
        let e = hosts.entries();
        assert!(
            e <= max_idle.max(1),
            "{e} idle entries kept, bound {max_idle} (limit {limit})"
        );
    }
}

#[test]
fn sem_threads_strict_wakeups() {
    for permits in [1, 2, 3] {
        let sem = Arc::new(Sem::new(permits));
        let held = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (sem, held) = (sem.clone(), held.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng(0xDEAD_BEEF ^ ((t + 7) * 0x987_6543));
                    for _ in 0..20_000 {
                        let got = match sem.try_acquire() {
                            Ok(_) => true,
                            Err(_) => match sem.acquire_or_queue() {
                                Queued::Got(_) => true,
                                Queued::Waiting(id) if rng.next() % 5 == 0 => {
                                    std::thread::yield_now();
                                    if sem.cancel(id) {
                                        sem.release();
                                    }
                                    false
                                }
                                Queued::Waiting(id) => {
                                    wait(&sem, id);
                                    true
                                }
                                Queued::Closed => unreachable!(),
                            },
                        };
                        if got {
                            let n = held.fetch_add(1, SeqCst) + 1;
                            assert!(n <= permits);
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
        assert_eq!(sem.available(), permits);
        assert!(sem.close_if_idle());
    }
}
