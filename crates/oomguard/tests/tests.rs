//! All integration tests, as one test binary (one link on two cores).

mod cases;
mod deploy;
mod explain;
mod pinned;
mod plan;
mod snapshot;
mod supervise;
mod util;
mod watch;
