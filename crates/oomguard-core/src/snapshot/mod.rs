//! PyTorch memory snapshots (`torch.cuda.memory._dump_snapshot()`): read
//! safely, replayed, and explained per device.
//!
//! - [`pickle`]: a plain-data pickle reader that refuses anything that would
//!   import or call, in bounded memory.
//! - [`reader`]: the snapshot's structure (segments, blocks, trace), folded
//!   while it streams.
//! - [`frames`]: a stack folded to the user's line.
//! - [`replay`]: the allocator's state at any moment of the trace.
//! - [`analysis`]: the figures at the OOM (or the peak), sites, growth, pools.
//! - [`diagnosis`]: causes and fixes with `explain`'s ids.
//!
//! No terminal, HTML or command-line code: [`explain_snapshot`] returns a
//! [`SnapshotReport`] for the binary to render.

pub mod analysis;
pub mod diagnosis;
pub mod error;
pub mod frames;
pub mod pickle;
pub mod reader;
pub mod replay;

pub use analysis::{DeviceFigures, Moment};
pub use diagnosis::SnapshotCause;
pub use error::{SnapshotError, SnapshotErrorKind};
pub use reader::{read_from, read_snapshot, Snapshot, SnapshotLayout};

use crate::diagnose::Fix;
use crate::oom::OomEvent;
use serde::Serialize;

/// One device: its figures, causes and fixes (the reference's DEVICE).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    #[serde(flatten)]
    pub figures: DeviceFigures,
    pub causes: Vec<SnapshotCause>,
    pub fixes: Vec<Fix>,
}

/// A whole snapshot explained (the reference's `{"source", "devices"}`).
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotReport {
    pub source: String,
    pub devices: Vec<DeviceReport>,
    /// Site labels by id, for the segment map.
    #[serde(skip)]
    pub sites: Vec<String>,
    #[serde(skip)]
    pub layout: SnapshotLayout,
    #[serde(skip)]
    pub gzipped: bool,
}

/// Analyses a decoded snapshot; `top` caps the sites listed per device.
pub fn explain_snapshot(snapshot: Snapshot, source: &str, top: usize) -> SnapshotReport {
    let ctx = diagnosis::AllocatorContext {
        expandable_segments: snapshot.expandable_segments.unwrap_or(false)
            || snapshot.segments.iter().any(|s| s.is_expandable),
        alloc_conf: snapshot.alloc_conf.clone(),
    };
    let devices = analysis::analyse(&snapshot, top)
        .into_iter()
        .map(|figures| {
            let causes = diagnosis::causes(&figures);
            let fixes = diagnosis::fixes(&figures, &causes, &ctx);
            DeviceReport {
                figures,
                causes,
                fixes,
            }
        })
        .collect();
    SnapshotReport {
        source: source.to_string(),
        devices,
        sites: snapshot.sites,
        layout: snapshot.layout,
        gzipped: snapshot.gzipped,
    }
}

impl SnapshotReport {
    /// The device whose figures speak for an OOM event of a log: the device
    /// the event names; else the device whose OOM asked for the event's
    /// request (within 1%, as logs print two decimals); else the only
    /// device. `None` when the snapshot cannot be tied to the event.
    pub fn device_for(&self, event: &OomEvent) -> Option<&DeviceReport> {
        if let Some(i) = event.device.index {
            return self.devices.iter().find(|d| d.figures.device == i);
        }
        if let Some(want) = event.memory.requested_bytes {
            let close = |got: u64| (got as f64 - want as f64).abs() <= 0.01 * want as f64;
            let by_request = self
                .devices
                .iter()
                .find(|d| d.figures.requested_bytes.is_some_and(close));
            if by_request.is_some() {
                return by_request;
            }
        }
        match self.devices.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }
}
