//! PyTorch memory snapshots (`torch.cuda.memory._dump_snapshot()`): read
//! safely, replayed, and explained per device.
//!
//! Inside, `pickle` is a plain-data pickle reader that refuses anything that
//! would import or call, in bounded memory; `reader` folds the snapshot's
//! structure (segments, blocks, trace) while it streams; `frames` folds a
//! stack to the user's line; `replay` rebuilds the allocator's state at any
//! moment of the trace; `analysis` computes the figures at the OOM (or the
//! peak), sites, growth and pools; `diagnosis` gives causes and fixes with
//! `explain`'s ids.
//!
//! [`read_snapshot`] (or [`read_from`] for any reader) decodes a file into a
//! [`Snapshot`]; [`explain_snapshot`] turns it into a [`SnapshotReport`] for
//! the caller to render. No terminal, HTML or command-line code here.

#![deny(missing_docs)]

mod analysis;
mod diagnosis;
mod error;
mod frames;
mod pickle;
mod reader;
mod replay;

pub use analysis::{
    DeviceFigures, GrowingSite, LiveSplit, MapPiece, MapSegment, Moment, PoolKind, PoolUsage,
    SiteBytes, Timeline,
};
pub use diagnosis::SnapshotCause;
pub use error::{SnapshotError, SnapshotErrorKind};
pub use reader::{
    read_from, read_snapshot, Action, Block, BlockState, Segment, Snapshot, SnapshotLayout,
    TraceEntry,
};

use crate::diagnose::Fix;
use crate::oom::OomEvent;
use serde::Serialize;

/// One device: its figures, causes and fixes (the reference's DEVICE).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    /// The device's figures.
    #[serde(flatten)]
    pub figures: DeviceFigures,
    /// Causes, the likeliest first.
    pub causes: Vec<SnapshotCause>,
    /// Fixes for the top causes.
    pub fixes: Vec<Fix>,
}

/// A whole snapshot explained (the reference's `{"source", "devices"}`).
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotReport {
    /// The file as the caller named it.
    pub source: String,
    /// One report per device.
    pub devices: Vec<DeviceReport>,
    /// Site labels by id, for the segment map.
    #[serde(skip)]
    pub sites: Vec<String>,
    /// Which layout the file has.
    #[serde(skip)]
    pub layout: SnapshotLayout,
    /// True when the file was gzipped.
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
