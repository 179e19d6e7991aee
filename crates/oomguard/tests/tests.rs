//! All integration tests, as one test binary (one link on two cores).

mod cases;
mod deploy;
mod explain;
mod plan;
mod snapshots;
mod supervise;
mod util;
mod watch;
