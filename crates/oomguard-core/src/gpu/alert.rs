//! Memory alerts that fire once per crossing: a GPU's usage going above the
//! threshold fires; it re-arms only after usage falls 2 points below, so a
//! value flapping around the threshold does not fire again and again.

use super::sample::GpuSample;
use std::collections::BTreeSet;

/// Points below the threshold usage must fall to re-arm.
pub const HYSTERESIS: f64 = 0.02;

/// Alert state across samples.
#[derive(Debug, Clone)]
pub struct AlertState {
    threshold: f64,
    fired: BTreeSet<u32>,
}

impl AlertState {
    /// `percent` of total memory, 0 to 100.
    pub fn new(percent: f64) -> AlertState {
        AlertState {
            threshold: percent / 100.0,
            fired: BTreeSet::new(),
        }
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
