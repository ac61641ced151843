//! Each layer alone, through the public API only: `tower_test::mock` services, scripted
//! bodies and paused tokio time, so every limit is checked to the millisecond. (Tests that need
//! a layer's private state stay in `src/`; tests against real servers are the other files of
//! `tests/`.)

mod util;

#[cfg(feature = "limit")]
mod body_limit;
#[cfg(feature = "timeout")]
mod connect;
mod deadline;
#[cfg(feature = "timeout")]
mod timeout;
#[cfg(feature = "timeout")]
mod tls;
