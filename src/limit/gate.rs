//! Admission, shared by both limiters: turns the state of a limit ([`Global`], or a host's entry
//! in [`Hosts`]) into the two tokens that keep the counts honest — [`Ticket`] (a place in the
//! queue) and [`Permit`] (a place in flight). Both undo their count on drop, whatever drops them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use super::config::Config;
use super::global::Global;
use super::per_host::{Entry, Host, Hosts};
use crate::error::Error;

/// How a limiter admits a request: the one thing that differs between the global and the
/// per-host limiter, which share one service type (see `service.rs`).
pub(crate) trait Admit {
    fn admit<B>(&mut self, req: &Request<B>) -> Admission;
}

/// The wait for one permit. Boxed because tokio's `acquire_owned` future cannot be named; it is
/// only made when a request has to wait (the fast path takes a permit with `try_acquire`).
pub(crate) type AcquireFuture =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send + Sync>>;

/// What a request gets when it arrives.
pub(crate) enum Admission {
    /// A permit was free: go.
    Now(Permit),
    /// In the queue (already registered with the semaphore, so in arrival order).
    Wait(Ticket, AcquireFuture),
    /// The queue was full.
    Refused(Error),
}

impl Admission {
    /// Admits a request to the global limit.
    pub(crate) fn global(gate: &Arc<Global>) -> Admission {
        if let Some(permit) = gate.try_enter() {
            return Admission::entered(Scope::Global(gate.clone()), permit);
        }
        if let Err(waiting) = gate.try_queue() {
            return Admission::Refused(gate.config.refuse(waiting, &"global"));
        }
        Admission::queued(Scope::Global(gate.clone()), gate.semaphore())
    }

    /// Admits a request to the limit of its host.
    pub(crate) fn host(gate: &Arc<Hosts>, entry: Entry) -> Admission {
        match entry {
            Entry::Permit(host, permit) => {
                Admission::entered(Scope::Host(gate.clone(), host), permit)
            }
            Entry::Queued(host) => {
                let sem = host.semaphore().clone();
                Admission::queued(Scope::Host(gate.clone(), host), &sem)
            }
            Entry::Full(host, waiting) => {
                Admission::Refused(gate.config.refuse(waiting, host.key()))
            }
        }
    }

    /// A permit was free (and is counted in the limit's own state): count it in the stats.
    fn entered(scope: Scope, permit: OwnedSemaphorePermit) -> Admission {
        if let Some(stats) = scope.config().in_flight_stats() {
            stats.in_flight_add(1);
        }
        Admission::Now(Permit::new(scope, permit))
    }

    /// A place in the queue was taken (and is counted in the limit's own state): count it in the
    /// stats, and register the waiter with the semaphore at once (a first poll with a no-op
    /// waker), so the order of service is the order of `call`, not the order of first poll. If
    /// a permit became free in between, the request goes at once.
    fn queued(scope: Scope, sem: &Arc<Semaphore>) -> Admission {
        if let Some(stats) = &scope.config().stats {
            stats.waiting_add(1);
        }
        let mut acquire: AcquireFuture = Box::pin(sem.clone().acquire_owned());
        let ticket = Ticket { scope: Some(scope) };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match acquire.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(permit)) => Admission::Now(ticket.admit(permit)),
            // The semaphores of this crate are never closed.
            Poll::Ready(Err(_)) => unreachable!("limiter semaphore closed"),
            Poll::Pending => Admission::Wait(ticket, acquire),
        }
    }
}

/// Which limiter a ticket or permit belongs to.
pub(crate) enum Scope {
    Global(Arc<Global>),
    Host(Arc<Hosts>, Arc<Host>),
}

impl Scope {
    pub(crate) fn config(&self) -> &Config {
        match self {
            Scope::Global(g) => &g.config,
            Scope::Host(h, _) => &h.config,
        }
    }

    /// A waiter got its permit.
    fn waited_in(&self) {
        match self {
            Scope::Global(g) => g.waited_in(),
            Scope::Host(h, host) => h.waited_in(host),
        }
        if let Some(stats) = &self.config().stats {
            stats.waiting_add(-1);
        }
        if let Some(stats) = self.config().in_flight_stats() {
            stats.in_flight_add(1);
        }
    }

    /// A waiter left without a permit (cancelled, timed out).
    fn gave_up(&self) {
        match self {
            Scope::Global(g) => g.gave_up(),
            Scope::Host(h, host) => h.gave_up(host),
        }
        if let Some(stats) = &self.config().stats {
            stats.waiting_add(-1);
        }
    }

    /// A permit is being released: its counts go first.
    fn left(&self) {
        match self {
            Scope::Global(g) => g.left(),
            Scope::Host(h, host) => h.left(host),
        }
        if let Some(stats) = self.config().in_flight_stats() {
            stats.in_flight_add(-1);
        }
    }

    /// A permit's semaphore permit is back: it no longer uses its host's entry.
    fn gone(&self) {
        if let Scope::Host(h, host) = self {
            h.release(host);
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global(_) => f.write_str("global"),
            Scope::Host(_, host) => fmt::Display::fmt(host.key(), f),
        }
    }
}

/// A place in a waiting queue. Dropped without [`Ticket::admit`], it gives the place back.
pub(crate) struct Ticket {
    scope: Option<Scope>,
}

impl Ticket {
    /// Turns the place in the queue into a place in flight.
    pub(crate) fn admit(mut self, permit: OwnedSemaphorePermit) -> Permit {
        let scope = self.scope.take().expect("a ticket is admitted once");
        scope.waited_in();
        Permit::new(scope, permit)
    }

    pub(crate) fn scope(&self) -> &Scope {
        self.scope.as_ref().expect("ticket in use")
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.take() {
            scope.gave_up();
        }
    }
}

/// A place in flight: a semaphore permit plus the counts it keeps. Released on drop.
pub(crate) struct Permit {
    scope: Scope,
    permit: Option<OwnedSemaphorePermit>,
}

impl Permit {
    /// A permit whose counts are already raised.
    fn new(scope: Scope, permit: OwnedSemaphorePermit) -> Permit {
        Permit {
            scope,
            permit: Some(permit),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // In this order: the counts first, so a waiter woken by the release is never counted
        // while this one still is (the in-flight count never exceeds the limit); then the
        // semaphore permit; then the use of the host's entry, so an entry seen idle has all its
        // permits back (a request finding it idle is never refused for a permit on its way).
        self.scope.left();
        drop(self.permit.take());
        self.scope.gone();
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permit({})", self.scope)
    }
}
