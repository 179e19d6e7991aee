//! All integration tests, as one test binary (one link on two cores).

mod cases;
mod explain;
mod plan;
mod snapshot;
mod supervise;
mod util;
mod watch;
