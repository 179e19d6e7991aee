//! Sampling with a deadline. NVML calls and `nvidia-smi` can hang (a GPU
//! fallen off the bus, a driver being reloaded, a stuck persistence
//! daemon); the caller of a monitor must stay responsive through that. The
//! source lives on a thread of its own; each request waits at most the
//! timeout, and while a sample hangs no second one is started, so one hung
//! call costs one thread, never one per interval.

use super::sample::GpuSample;
use super::source::{GpuSource, SourceError};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

/// What one request for a sample gave.
#[derive(Debug)]
pub enum Sampled {
    /// A sample.
    Sample(GpuSample),
    /// A recording has ended.
    Ended,
    /// The source answered with an error.
    Failed(SourceError),
    /// The source has not answered within the timeout (and is still busy).
    TimedOut(Duration),
    /// The source's thread is gone (it panicked).
    Gone,
}

/// A source on its own thread, asked for samples with a deadline.
pub struct TimedSampler {
    name: &'static str,
    timeout: Duration,
    requests: SyncSender<()>,
    replies: Receiver<Result<Option<GpuSample>, SourceError>>,
    in_flight: bool,
    asked: Instant,
}

impl TimedSampler {
    /// Moves `source` onto a thread; each [`TimedSampler::sample`] waits at
    /// most `timeout` for its answer.
    pub fn spawn(source: Box<dyn GpuSource + Send>, timeout: Duration) -> TimedSampler {
        let name = source.name();
        let (requests, inbox) = mpsc::sync_channel::<()>(1);
        let (outbox, replies) = mpsc::sync_channel(1);
        // If the thread cannot start, the closure and its receiver are
        // dropped, and every request then reports `Gone`.
        let _ = thread::Builder::new()
            .name("oomguard-sampler".into())
            .spawn(move || {
                let mut source = source;
                while inbox.recv().is_ok() {
                    if outbox.send(source.sample()).is_err() {
                        break;
                    }
                }
            });
        TimedSampler {
            name,
            timeout,
            requests,
            replies,
            in_flight: false,
            asked: Instant::now(),
        }
    }

    /// The source's short name ("NVML", "nvidia-smi", "replay").
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The next sample, or why there is none, waiting up to the timeout.
    /// When the previous request is still running, this waits for it again
    /// rather than queueing another.
    pub fn sample(&mut self) -> Sampled {
        loop {
            if let Some(s) = self.poll(self.timeout) {
                return s;
            }
        }
    }

    /// Like [`TimedSampler::sample`], but returns `None` after `wait` when
    /// the request is still within its timeout, so that an interactive
    /// caller can handle keys meanwhile. A request that passes its timeout
    /// gives `TimedOut` once per timeout while it stays hung.
    pub fn poll(&mut self, wait: Duration) -> Option<Sampled> {
        if !self.in_flight {
            if self.requests.send(()).is_err() {
                return Some(Sampled::Gone);
            }
            self.in_flight = true;
            self.asked = Instant::now();
        }
        let deadline = self.asked + self.timeout;
        let budget = deadline.saturating_duration_since(Instant::now()).min(wait);
        match self.replies.recv_timeout(budget) {
            Ok(reply) => {
                self.in_flight = false;
                Some(match reply {
                    Ok(Some(s)) => Sampled::Sample(s),
                    Ok(None) => Sampled::Ended,
                    Err(e) => Sampled::Failed(e),
                })
            }
            Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                self.asked = Instant::now();
                Some(Sampled::TimedOut(self.timeout))
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Sampled::Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Answers a script of outcomes: `Some(ms)` sleeps that long then gives
    /// a sample, `None` fails.
    struct Scripted {
        steps: Vec<Option<u64>>,
        calls: Arc<AtomicUsize>,
    }

    impl GpuSource for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn sample(&mut self) -> Result<Option<GpuSample>, SourceError> {
            let i = self.calls.fetch_add(1, Ordering::SeqCst);
            match self.steps.get(i) {
                None => Ok(None),
                Some(None) => Err(SourceError::NvidiaSmi("exit status 15".into())),
                Some(Some(ms)) => {
                    thread::sleep(Duration::from_millis(*ms));
                    Ok(Some(GpuSample {
                        time: i as f64,
                        gpus: vec![],
                        processes: vec![],
                    }))
                }
            }
        }
    }

    #[test]
    fn a_hung_sample_times_out_without_starting_another() {
        let calls = Arc::new(AtomicUsize::new(0));
        let source = Scripted {
            steps: vec![Some(0), Some(400), None],
            calls: calls.clone(),
        };
        let mut s = TimedSampler::spawn(Box::new(source), Duration::from_millis(100));
        assert_eq!(s.name(), "scripted");
        assert!(matches!(s.sample(), Sampled::Sample(_)));
        // The second sample hangs for 400 ms: two timeouts, one call.
        assert!(matches!(s.sample(), Sampled::TimedOut(_)));
        assert!(matches!(s.sample(), Sampled::TimedOut(_)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Then its answer arrives, and the next request fails cleanly.
        let mut got = s.sample();
        while matches!(got, Sampled::TimedOut(_)) {
            got = s.sample();
        }
        assert!(matches!(got, Sampled::Sample(ref x) if x.time == 1.0));
        assert!(matches!(s.sample(), Sampled::Failed(_)));
        assert!(matches!(s.sample(), Sampled::Ended));
    }

    #[test]
    fn polling_returns_while_a_sample_is_within_its_timeout() {
        let calls = Arc::new(AtomicUsize::new(0));
        let source = Scripted {
            steps: vec![Some(300)],
            calls,
        };
        let mut s = TimedSampler::spawn(Box::new(source), Duration::from_secs(5));
        let started = Instant::now();
        assert!(s.poll(Duration::from_millis(20)).is_none());
        assert!(started.elapsed() < Duration::from_millis(250));
        let mut got = None;
        while got.is_none() {
            got = s.poll(Duration::from_millis(20));
        }
        assert!(matches!(got, Some(Sampled::Sample(_))));
    }
}
