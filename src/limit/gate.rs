//! Admission, shared by both limiters: turns the state of a limit ([`Global`], or a host's entry
//! in [`Hosts`]) into the two tokens that keep the counts honest — [`Ticket`] (a place in the
//! queue) and [`Permit`] (a place in flight). Both undo their count on drop, whatever drops them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Request;
use tokio::sync::AcquireError;

use super::config::Config;
use super::global::Global;
use super::per_host::{Entry, Host, Hosts};
use super::sem::{Queued, Sem};
use crate::error::Error;

/// How a limiter admits a request: the one thing that differs between the global and the
/// per-host limiter, which share one service type (see `service.rs`).
pub(crate) trait Admit {
    fn admit<B>(&mut self, req: &Request<B>) -> Admission;
}

/// The wait for one permit. Boxed, as it was when it held tokio's `acquire_owned` future: it is
/// only made when a request has to wait (the fast path takes a permit at once). Never fails:
/// the semaphores of this crate are never closed to a waiter.
pub(crate) type AcquireFuture = Pin<Box<Acquire>>;

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
    #[inline]
    pub(crate) fn global(gate: &Arc<Global>) -> Admission {
        if gate.try_enter() {
            return Admission::entered(Scope::Global(gate.clone()));
        }
        Admission::global_queue(gate)
    }

    #[cold]
    fn global_queue(gate: &Arc<Global>) -> Admission {
        if let Err(waiting) = gate.try_queue() {
            return Admission::Refused(gate.config.refuse(waiting, &"global"));
        }
        match gate.sem.acquire_or_queue() {
            Queued::Waiting(id) => Admission::queued(Scope::Global(gate.clone()), id),
            // A permit came free since the first look: no wait after all.
            Queued::Got(_) => {
                gate.waited_in();
                Admission::entered(Scope::Global(gate.clone()))
            }
            Queued::Closed => unreachable!("the global semaphore is never closed"),
        }
    }

    /// Admits a request to the limit of its host.
    #[inline]
    pub(crate) fn host(gate: &Arc<Hosts>, entry: Entry) -> Admission {
        match entry {
            Entry::Permit(host) => Admission::entered(Scope::Host(gate.clone(), host)),
            Entry::Queued(host, id) => Admission::queued(Scope::Host(gate.clone(), host), id),
            Entry::Full(host, waiting) => {
                Admission::Refused(gate.config.refuse(waiting, host.key()))
            }
        }
    }

    /// A permit of `host` was taken and counted in flight ([`Hosts::try_enter`]).
    #[inline]
    pub(crate) fn host_entered(gate: &Arc<Hosts>, host: &Arc<Host>) -> Admission {
        Admission::entered(Scope::Host(gate.clone(), host.clone()))
    }

    /// A permit was taken (and is counted in the limit's own state): count it in the stats.
    #[inline]
    fn entered(scope: Scope) -> Admission {
        if let Some(stats) = scope.config().in_flight_stats() {
            stats.in_flight_add(1);
        }
        Admission::Now(Permit { scope })
    }

    /// A place in the queue was taken, and the waiter registered with the semaphore as `id`, so
    /// the order of service is the order of `call`, not the order of first poll (both counted
    /// in the limit's own state): count it in the stats.
    fn queued(scope: Scope, id: u64) -> Admission {
        if let Some(stats) = &scope.config().stats {
            stats.waiting_add(1);
        }
        let acquire = Box::pin(Acquire {
            scope: Some(scope.clone()),
            id,
        });
        Admission::Wait(Ticket { scope: Some(scope) }, acquire)
    }
}

/// Which limiter a ticket or permit belongs to.
#[derive(Clone)]
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

    fn sem(&self) -> &Sem {
        match self {
            Scope::Global(g) => &g.sem,
            Scope::Host(_, host) => &host.sem,
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
    #[inline]
    fn left(&self) {
        match self {
            Scope::Global(g) => g.left(),
            Scope::Host(h, host) => h.left(host),
        }
        if let Some(stats) = self.config().in_flight_stats() {
            stats.in_flight_add(-1);
        }
    }

    /// A semaphore permit goes back: to the first waiter, or free (an entry of a host that this
    /// made idle is counted so).
    #[inline]
    fn give_back(&self) {
        match self {
            Scope::Global(g) => {
                g.sem.release();
            }
            Scope::Host(h, host) => h.give_back(host),
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

/// The wait of one queued request for its permit: ready with a [`Granted`] permit once a
/// release hands it one. Dropped before that, it leaves the queue; dropped after a permit was
/// handed to it, unpolled, it gives that permit back (to the next waiter).
pub(crate) struct Acquire {
    scope: Option<Scope>,
    id: u64,
}

impl Future for Acquire {
    type Output = Result<Granted, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let scope = self
            .scope
            .as_ref()
            .expect("Acquire polled after completion");
        ready!(scope.sem().poll_acquire(self.id, cx));
        Poll::Ready(Ok(Granted {
            scope: self.scope.take(),
        }))
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.take() {
            if scope.sem().cancel(self.id) {
                scope.give_back();
            }
        }
    }
}

/// A permit handed to a waiter, not yet counted in flight: [`Ticket::admit`] counts it, and
/// dropped instead, it goes back (to the next waiter).
pub(crate) struct Granted {
    scope: Option<Scope>,
}

impl Drop for Granted {
    fn drop(&mut self) {
        if let Some(scope) = self.scope.take() {
            scope.give_back();
        }
    }
}

/// A place in a waiting queue. Dropped without [`Ticket::admit`], it gives the place back.
pub(crate) struct Ticket {
    scope: Option<Scope>,
}

impl Ticket {
    /// Turns the place in the queue into a place in flight.
    pub(crate) fn admit(mut self, mut permit: Granted) -> Permit {
        let scope = self.scope.take().expect("a ticket is admitted once");
        scope.waited_in();
        drop(permit.scope.take());
        Permit { scope }
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

/// A place in flight: a permit of its limit's semaphore plus the counts it keeps. Released on
/// drop.
pub(crate) struct Permit {
    scope: Scope,
}

impl Permit {
    /// The host of a host's permit, for a log line: host and port as the request that made
    /// the host's entry spelled them, without userinfo (the entry is shared by every request
    /// to the host, so it must not name another request's credentials).
    #[cfg(feature = "preset")]
    pub(crate) fn host_authority(&self) -> Option<http::uri::Authority> {
        let Scope::Host(_, host) = &self.scope else {
            return None;
        };
        let authority = host.key().authority()?;
        match authority.as_str().rsplit_once('@') {
            None => Some(authority.clone()),
            Some((_, host)) => http::uri::Authority::try_from(host).ok(),
        }
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        // In this order: the counts first, so a waiter woken by the release is never counted
        // while this one still is (the in-flight count never exceeds the limit); then the
        // semaphore permit (which leaves a host's entry idle once its last user is gone).
        self.scope.left();
        self.scope.give_back();
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permit({})", self.scope)
    }
}
