//! The engine of `watch`: folds each sample into per-GPU history, the
//! time-to-full forecast and the alert state, and keeps the health of the
//! source (when the last sample succeeded, the last failure) so that a
//! failed or hung sample makes the data stale instead of ending the watch.
//!
//! It neither samples nor prints: the caller hands it samples and failures
//! and renders what it returns.

use super::alert::{AlertReason, AlertState};
use super::forecast::seconds_until_full;
use super::sample::GpuSample;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Samples of history kept per GPU for the forecast: two minutes at the
/// default one-second interval.
pub const HISTORY: usize = 120;

/// Seconds until full per GPU index; `None` where usage is not rising.
pub type Etas = HashMap<u32, Option<f64>>;

/// An alert that fires with a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alert {
    /// Index of the GPU.
    pub gpu: u32,
    /// Threshold crossed or forecast under the horizon.
    pub reason: AlertReason,
}

/// What one sample tells beyond its own figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// The time-to-full forecast per GPU.
    pub etas: Etas,
    /// Alerts that fire with this sample, in GPU order.
    pub alerts: Vec<Alert>,
}

/// The health of the sample source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Health {
    /// UNIX time of the last sample that succeeded.
    pub last_success: Option<f64>,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// Samples that succeeded in all.
    pub samples: u64,
    /// Samples that failed or timed out in all.
    pub failures: u64,
}

impl Health {
    /// True while the latest attempt to sample failed: the figures on hand
    /// are older than one interval and must not be shown as current.
    pub fn is_stale(&self) -> bool {
        self.consecutive_failures > 0
    }
}

/// History, forecast, alerts and health across samples.
#[derive(Debug, Clone)]
pub struct Monitor {
    history: BTreeMap<u32, VecDeque<(f64, u64)>>,
    alerts: Option<AlertState>,
    health: Health,
}

impl Monitor {
    /// A monitor; `alert_percent` arms the threshold and forecast alerts.
    pub fn new(alert_percent: Option<f64>) -> Monitor {
        Monitor {
            history: BTreeMap::new(),
            alerts: alert_percent.map(AlertState::new),
            health: Health::default(),
        }
    }

    /// Folds a successful sample in.
    pub fn observe(&mut self, sample: &GpuSample) -> Observation {
        self.health.last_success = Some(sample.time);
        self.health.last_error = None;
        self.health.consecutive_failures = 0;
        self.health.samples += 1;
        let mut etas = Etas::new();
        for g in &sample.gpus {
            let Some(used) = g.used_bytes else {
                // An unknown reading neither extends nor breaks the trend.
                continue;
            };
            let h = self.history.entry(g.index).or_default();
            if h.back().is_some_and(|&(t, _)| sample.time <= t) {
                // A clock that went back (or a repeated sample) would make
                // the fitted slope meaningless: start the trend again.
                h.clear();
            }
            h.push_back((sample.time, used));
            while h.len() > HISTORY {
                h.pop_front();
            }
            let points: Vec<(f64, u64)> = h.iter().copied().collect();
            etas.insert(
                g.index,
                g.total_bytes.and_then(|t| seconds_until_full(&points, t)),
            );
        }
        let mut alerts = Vec::new();
        if let Some(a) = self.alerts.as_mut() {
            alerts.extend(a.update(sample).into_iter().map(|gpu| Alert {
                gpu,
                reason: AlertReason::Threshold,
            }));
            alerts.extend(a.update_forecast(&etas).into_iter().map(|gpu| Alert {
                gpu,
                reason: AlertReason::Forecast,
            }));
        }
        Observation { etas, alerts }
    }

    /// Records a failed or timed-out sample. Returns true for the first
    /// failure after a success (or ever), the one worth reporting: a source
    /// that stays down is said once, not every interval.
    pub fn failed(&mut self, error: impl Into<String>) -> bool {
        self.health.consecutive_failures += 1;
        self.health.failures += 1;
        self.health.last_error = Some(error.into());
        self.health.consecutive_failures == 1
    }

    /// The source's health so far.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The used-memory history of a GPU, oldest first.
    pub fn history(&self, gpu: u32) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.history.get(&gpu).into_iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::sample::GpuState;

    const GIB: u64 = 1 << 30;

    fn sample(time: f64, used_gib: Option<u64>) -> GpuSample {
        GpuSample {
            time,
            gpus: vec![GpuState {
                index: 0,
                uuid: None,
                name: None,
                total_bytes: Some(20 * GIB),
                used_bytes: used_gib.map(|u| u * GIB),
                free_bytes: None,
            }],
            processes: vec![],
        }
    }

    #[test]
    fn a_rising_trend_forecasts_and_fires_once() {
        let mut m = Monitor::new(Some(90.0));
        let mut fired = Vec::new();
        let mut last = Observation::default();
        for i in 0..8u64 {
            last = m.observe(&sample(i as f64 * 10.0, Some(10 + i)));
            fired.extend(last.alerts.iter().map(|a| (i, a.reason)));
        }
        // 1 GiB per 10 s, at 17 GiB of 20: 30 s to full, under the horizon.
        let eta = last.etas[&0].unwrap();
        assert!((eta - 30.0).abs() < 1e-6, "{eta}");
        // The forecast alert fires once, when it first drops under 300 s;
        // 90% of 20 GiB is never reached.
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].1, AlertReason::Forecast);
        assert_eq!(m.history(0).count(), 8);
    }

    #[test]
    fn failures_make_the_data_stale_and_are_said_once() {
        let mut m = Monitor::new(None);
        assert!(!m.health().is_stale());
        m.observe(&sample(1.0, Some(1)));
        assert!(m.failed("nvidia-smi timed out after 5s"));
        assert!(!m.failed("nvidia-smi timed out after 5s"));
        assert!(m.health().is_stale());
        assert_eq!(m.health().consecutive_failures, 2);
        assert_eq!(m.health().last_success, Some(1.0));
        m.observe(&sample(9.0, Some(1)));
        assert!(!m.health().is_stale());
        assert_eq!(m.health().last_error, None);
        assert_eq!((m.health().samples, m.health().failures), (2, 2));
        // After recovery the next failure is said again.
        assert!(m.failed("NVML: GPU is lost"));
    }

    #[test]
    fn unknown_readings_and_clock_jumps_do_not_make_a_trend() {
        let mut m = Monitor::new(None);
        for i in 0..5u64 {
            m.observe(&sample(i as f64, Some(1 + i)));
        }
        let o = m.observe(&sample(5.0, None));
        assert!(!o.etas.contains_key(&0));
        assert_eq!(m.history(0).count(), 5);
        // The clock goes back: the history restarts with the new point.
        let o = m.observe(&sample(2.0, Some(3)));
        assert_eq!(m.history(0).count(), 1);
        assert_eq!(o.etas[&0], None);
    }

    #[test]
    fn history_is_bounded() {
        let mut m = Monitor::new(None);
        for i in 0..(HISTORY as u64 * 3) {
            m.observe(&sample(i as f64, Some(1)));
        }
        assert_eq!(m.history(0).count(), HISTORY);
    }
}
