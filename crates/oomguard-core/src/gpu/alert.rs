//! Memory alerts that fire once per crossing: a GPU's usage going above the
//! threshold fires; it re-arms only after usage falls 2 points below, so a
//! value flapping around the threshold does not fire again and again. A
//! forecast alert fires, once per crossing too, when the time-to-full
//! forecast drops under five minutes.

use super::sample::GpuSample;
use std::collections::BTreeSet;

/// Points below the threshold usage must fall to re-arm.
pub const HYSTERESIS: f64 = 0.02;

/// A forecast of full within this many seconds fires the forecast alert; it
/// re-arms when the forecast goes past twice that, or away.
pub const FORECAST_HORIZON_S: f64 = 300.0;

/// Why an alert fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertReason {
    /// Memory in use crossed the alert percentage.
    Threshold,
    /// The time-to-full forecast fell under the horizon.
    Forecast,
}

impl AlertReason {
    /// The reason's id, as JSON and metrics print it.
    pub fn name(self) -> &'static str {
        match self {
            AlertReason::Threshold => "threshold",
            AlertReason::Forecast => "forecast",
        }
    }
}

/// Alert state across samples.
#[derive(Debug, Clone)]
pub struct AlertState {
    threshold: f64,
    fired: BTreeSet<u32>,
    forecast_fired: BTreeSet<u32>,
}

impl AlertState {
    /// `percent` of total memory, 0 to 100.
    pub fn new(percent: f64) -> AlertState {
        AlertState {
            threshold: percent / 100.0,
            fired: BTreeSet::new(),
            forecast_fired: BTreeSet::new(),
        }
    }

    /// The forecast alerts that fire with these forecasts (seconds until
    /// full per GPU).
    pub fn update_forecast(
        &mut self,
        etas: &std::collections::HashMap<u32, Option<f64>>,
    ) -> Vec<u32> {
        let mut firing = Vec::new();
        for (&gpu, eta) in etas {
            match eta {
                Some(s) if *s <= FORECAST_HORIZON_S => {
                    if self.forecast_fired.insert(gpu) {
                        firing.push(gpu);
                    }
                }
                Some(s) if *s <= 2.0 * FORECAST_HORIZON_S => {}
                _ => {
                    self.forecast_fired.remove(&gpu);
                }
            }
        }
        firing.sort();
        firing
    }

    /// The GPUs whose alert fires with this sample.
    pub fn update(&mut self, sample: &GpuSample) -> Vec<u32> {
        let mut firing = Vec::new();
        for g in &sample.gpus {
            let Some(f) = g.used_fraction() else { continue };
            if f >= self.threshold {
                if self.fired.insert(g.index) {
                    firing.push(g.index);
                }
            } else if f < self.threshold - HYSTERESIS {
                self.fired.remove(&g.index);
            }
        }
        firing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::sample::GpuState;

    fn sample(used: u64) -> GpuSample {
        GpuSample {
            time: 0.0,
            gpus: vec![GpuState {
                index: 0,
                uuid: None,
                name: None,
                total_bytes: Some(100),
                used_bytes: Some(used),
                free_bytes: Some(100 - used),
            }],
            processes: vec![],
        }
    }

    #[test]
    fn forecast_fires_once_until_the_trend_eases() {
        use std::collections::HashMap;
        let mut a = AlertState::new(90.0);
        let seq = [
            Some(900.0),
            Some(250.0),
            Some(120.0),
            Some(400.0),
            None,
            Some(200.0),
        ];
        let fired: Vec<usize> = seq
            .iter()
            .map(|e| a.update_forecast(&HashMap::from([(0, *e)])).len())
            .collect();
        assert_eq!(fired, vec![0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn fires_once_per_crossing() {
        let mut a = AlertState::new(90.0);
        let fired: Vec<usize> = [80, 91, 89, 92, 95, 87, 93]
            .iter()
            .map(|u| a.update(&sample(*u)).len())
            .collect();
        // 91 fires; 89 and 92 flap within the hysteresis; 87 re-arms; 93 fires.
        assert_eq!(fired, vec![0, 1, 0, 0, 0, 0, 1]);
    }
}
