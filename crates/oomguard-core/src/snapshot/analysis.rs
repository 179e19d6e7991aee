//! Per device, the moment that matters (the last OOM in the trace, else the
//! peak of allocated memory) and what the memory held then: allocated,
//! reserved, cached but free, the largest free hole against the request, the
//! allocation sites by live bytes, the pools, and the sites that grew from
//! one iteration to the next.
//!
//! Iterations are found in the allocated-memory curve itself: a training or
//! serving loop rises (activations) and falls back (freed after backward or
//! after the step) once per iteration. A fall-and-rise by at least half the
//! typical large swing marks a boundary (a zigzag filter); a site whose live
//! bytes at the boundaries rise step after step grew across iterations.

use super::reader::{Action, Snapshot, TraceEntry};
use super::replay::State;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Timeline samples kept for the page.
const TIMELINE_POINTS: usize = 600;
/// Sites drawn on the timeline; the rest are summed as "other".
const TIMELINE_SITES: usize = 8;
/// Iteration boundaries sampled per site, at most (evenly spread).
const MAX_BOUNDARIES: usize = 256;
/// Segments drawn in the segment map, largest first.
const MAP_SEGMENTS: usize = 400;

/// Which moment a device's figures describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Moment {
    /// At the last OOM of the trace.
    Oom,
    /// At the peak of live memory (no OOM in the trace).
    Peak,
}

impl Moment {
    /// The moment's id, as JSON prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Moment::Oom => "oom",
            Moment::Peak => "peak",
        }
    }
}

/// Live bytes held by one allocation site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteBytes {
    /// The site: `file:line (function)` of the first frame in the user's code.
    pub frame: String,
    /// Live bytes allocated there.
    pub bytes: u64,
    /// Live blocks allocated there.
    pub blocks: u64,
}

/// A site whose live bytes grew over the trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrowingSite {
    /// The site, as in [`SiteBytes::frame`].
    pub frame: String,
    /// Its live bytes at the first iteration boundary.
    pub first_bytes: u64,
    /// Its live bytes at the moment analysed.
    pub last_bytes: u64,
}

/// What kind of pool a group of segments belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PoolKind {
    /// The default pool.
    Default,
    /// A private pool (CUDA graph capture, `torch.cuda.MemPool`), by id.
    Private(i64, i64),
}

/// Reserved memory of one pool, split by segment kind.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolUsage {
    /// The pool.
    pub pool: PoolKind,
    /// True for expandable segments.
    pub expandable: bool,
    /// Segments in the pool.
    pub segments: u64,
    /// Bytes the pool reserved from the device.
    pub reserved_bytes: u64,
    /// Bytes of live allocations in the pool.
    pub allocated_bytes: u64,
}

/// How the live bytes at the moment split by the life of their site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveSplit {
    /// Sites whose allocations come and go (some were freed in the trace):
    /// activations, temporaries.
    pub transient_bytes: u64,
    /// Sites never freed in the trace and not growing: weights, optimizer
    /// states, caches.
    pub persistent_bytes: u64,
    /// Sites that grew across iterations.
    pub growing_bytes: u64,
}

/// The active-memory timeline, for drawing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// Trace event index of each sample.
    pub events: Vec<u64>,
    /// Site labels of the series drawn; the last is "other" when present.
    pub labels: Vec<String>,
    /// `bytes[series][sample]`.
    pub bytes: Vec<Vec<u64>>,
    /// Sample index of the moment analysed.
    pub moment_sample: Option<usize>,
    /// Sample indexes of the iteration boundaries.
    pub boundary_samples: Vec<usize>,
}

/// A block or hole of the segment map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapPiece {
    /// Bytes from the segment's start.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// Site of a live allocation; `None` for a free hole.
    pub site: Option<u32>,
}

/// One segment of the segment map.
#[derive(Debug, Clone, PartialEq)]
pub struct MapSegment {
    /// The segment's device address.
    pub address: u64,
    /// Size in bytes.
    pub size: u64,
    /// The pool it belongs to.
    pub pool: PoolKind,
    /// True for an expandable segment.
    pub expandable: bool,
    /// Its blocks and free holes, in address order.
    pub pieces: Vec<MapPiece>,
}

/// The figures of one device. Serialized, the fields of the reference's DEVICE
/// (without `causes` and `fixes`); the rest is for human output and the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceFigures {
    /// The device index.
    pub device: u32,
    /// Which moment the figures describe.
    pub at: Moment,
    /// The request that failed (from the OOM entry).
    pub requested_bytes: Option<u64>,
    /// What CUDA reported free at the OOM.
    pub device_free_bytes: Option<u64>,
    /// Bytes of live allocations.
    pub allocated_bytes: u64,
    /// Bytes the allocator reserved from the device.
    pub reserved_bytes: u64,
    /// Reserved bytes not allocated: cached for reuse.
    pub cached_free_bytes: u64,
    /// The largest cached free block, in bytes.
    pub largest_free_block_bytes: u64,
    /// Segments reserved.
    pub segments: u64,
    /// The sites holding the most live bytes.
    pub top_sites: Vec<SiteBytes>,
    /// The sites that grew over the trace.
    pub growing_sites: Vec<GrowingSite>,
    /// Trace entries recorded for the device.
    #[serde(skip)]
    pub trace_entries: usize,
    /// OOM entries in the trace (the last one is analysed).
    #[serde(skip)]
    pub oom_entries: usize,
    /// Free holes in the cache at the moment.
    #[serde(skip)]
    pub free_holes: u64,
    /// Iteration boundaries found in the trace.
    #[serde(skip)]
    pub iteration_boundaries: usize,
    /// Live bytes split by the life of their site.
    #[serde(skip)]
    pub split: LiveSplit,
    /// Reserved memory per pool.
    #[serde(skip)]
    pub pools: Vec<PoolUsage>,
    /// The active-memory timeline.
    #[serde(skip)]
    pub timeline: Timeline,
    /// The segments and their blocks, for drawing (the largest first, capped).
    #[serde(skip)]
    pub segment_map: Vec<MapSegment>,
}

/// Analyses every device with a segment or a trace entry.
pub fn analyse(snapshot: &Snapshot, top: usize) -> Vec<DeviceFigures> {
    let mut devices: Vec<u32> = snapshot.segments.iter().map(|s| s.device).collect();
    for (d, t) in snapshot.device_traces.iter().enumerate() {
        if !t.is_empty() {
            devices.push(d as u32);
        }
    }
    devices.sort_unstable();
    devices.dedup();
    devices
        .into_iter()
        .map(|d| analyse_device(snapshot, d, top))
        .collect()
}

fn analyse_device(snapshot: &Snapshot, device: u32, top: usize) -> DeviceFigures {
    let trace: &[TraceEntry] = snapshot
        .device_traces
        .get(device as usize)
        .map(|t| t.as_slice())
        .unwrap_or(&[]);
    let end = State::at_end(snapshot.segments.iter().filter(|s| s.device == device));
    let mut start = end.clone();
    for e in trace.iter().rev() {
        start.undo(e);
    }

    // Pass 1: the allocated curve, the peak, the OOMs, which sites free.
    let mut state = start.clone();
    let mut curve = Vec::with_capacity(trace.len());
    let mut peak = (state.allocated, None::<usize>);
    let mut ooms = Vec::new();
    let mut freed_sites: Vec<bool> = Vec::new();
    for (i, e) in trace.iter().enumerate() {
        if e.action == Action::Oom {
            ooms.push(i);
        }
        if e.action == Action::FreeCompleted || e.action == Action::FreeRequested {
            if let Some(l) = state.live.get(&e.addr) {
                let s = l.site as usize;
                if freed_sites.len() <= s {
                    freed_sites.resize(s + 1, false);
                }
                freed_sites[s] = true;
            }
        }
        state.apply(e);
        curve.push(state.allocated);
        if state.allocated > peak.0 {
            peak = (state.allocated, Some(i));
        }
    }
    let (at, moment) = match ooms.last() {
        // The OOM entry changes nothing: the state before it is the state at it.
        Some(&i) => (Moment::Oom, Some(i)),
        None => (Moment::Peak, peak.1),
    };
    let boundaries = iteration_boundaries(&curve);

    // Pass 2: per-site bytes at the boundaries, the timeline, the moment.
    let sampled: Vec<usize> = spread(&boundaries, MAX_BOUNDARIES);
    let samples = timeline_indexes(trace.len(), moment);
    let mut at_boundary: Vec<Vec<u64>> = Vec::with_capacity(sampled.len());
    let mut timeline_raw: Vec<Vec<(u32, u64)>> = Vec::with_capacity(samples.len());
    let mut moment_state = match moment {
        None if trace.is_empty() => Some(end.clone()),
        None => Some(start.clone()),
        Some(_) => None,
    };
    let mut state = start;
    let (mut bi, mut si) = (0, 0);
    for (i, e) in trace.iter().enumerate() {
        state.apply(e);
        if Some(i) == moment {
            moment_state = Some(state.clone());
        }
        while bi < sampled.len() && sampled[bi] == i {
            at_boundary.push(state.by_site.clone());
            bi += 1;
        }
        while si < samples.len() && samples[si] == i {
            timeline_raw.push(
                state
                    .by_site
                    .iter()
                    .enumerate()
                    .filter(|(_, &b)| b > 0)
                    .map(|(s, &b)| (s as u32, b))
                    .collect(),
            );
            si += 1;
        }
    }
    let m = moment_state.unwrap_or(end);

    let growing = growing_sites(&at_boundary, snapshot, m.allocated);
    let oom = moment.and_then(|i| (at == Moment::Oom).then(|| trace[i]));
    let holes = m.holes();
    let largest = holes.iter().map(|h| h.2).max().unwrap_or(0);

    let mut per_site: HashMap<u32, (u64, u64)> = HashMap::new();
    for l in m.live.values().filter(|l| !l.pending) {
        let e = per_site.entry(l.site).or_default();
        e.0 = e.0.saturating_add(l.bytes);
        e.1 += 1;
    }
    let mut split = LiveSplit::default();
    for (&site, &(bytes, _)) in &per_site {
        if growing.iter().any(|(s, _)| *s == site) {
            split.growing_bytes = split.growing_bytes.saturating_add(bytes);
        } else if freed_sites.get(site as usize).copied().unwrap_or(false) {
            split.transient_bytes = split.transient_bytes.saturating_add(bytes);
        } else {
            split.persistent_bytes = split.persistent_bytes.saturating_add(bytes);
        }
    }
    let mut sites: Vec<(u32, u64, u64)> =
        per_site.into_iter().map(|(s, (b, n))| (s, b, n)).collect();
    sites.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top_sites = sites
        .iter()
        .take(top)
        .map(|&(s, bytes, blocks)| SiteBytes {
            frame: snapshot.sites[s as usize].clone(),
            bytes,
            blocks,
        })
        .collect();

    let timeline = build_timeline(snapshot, &samples, timeline_raw, moment, &sampled);
    DeviceFigures {
        device,
        at,
        trace_entries: trace.len(),
        oom_entries: ooms.len(),
        requested_bytes: oom.map(|e| e.size),
        device_free_bytes: oom.map(|e| e.device_free),
        allocated_bytes: m.allocated,
        reserved_bytes: m.reserved,
        cached_free_bytes: m.reserved.saturating_sub(m.allocated),
        largest_free_block_bytes: largest,
        free_holes: holes.len() as u64,
        segments: m.segments.len() as u64,
        top_sites,
        growing_sites: growing.into_iter().map(|(_, g)| g).collect(),
        iteration_boundaries: boundaries.len(),
        split,
        pools: pools(&m),
        timeline,
        segment_map: segment_map(&m),
    }
}

/// Evenly spread picks of at most `n` items, first and last kept.
fn spread(items: &[usize], n: usize) -> Vec<usize> {
    if items.len() <= n {
        return items.to_vec();
    }
    (0..n)
        .map(|k| items[k * (items.len() - 1) / (n - 1)])
        .collect()
}

fn timeline_indexes(len: usize, moment: Option<usize>) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let mut v: Vec<usize> = (0..TIMELINE_POINTS.min(len))
        .map(|k| k * (len - 1) / (TIMELINE_POINTS.min(len) - 1).max(1))
        .collect();
    if let Some(m) = moment {
        v.push(m);
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// Event indexes where an iteration ends: the low points of the allocated
/// curve between large rises and falls.
pub fn iteration_boundaries(curve: &[u64]) -> Vec<usize> {
    let (Some(&lo), Some(&hi)) = (curve.iter().min(), curve.iter().max()) else {
        return Vec::new();
    };
    if hi == lo {
        return Vec::new();
    }
    // Swings with a small threshold first, to learn how large the
    // iteration-sized swings are.
    let fine = zigzag(curve, (hi - lo) / 50);
    let mut swings: Vec<u64> = fine
        .windows(2)
        .map(|w| curve[w[0]].abs_diff(curve[w[1]]))
        .collect();
    if swings.is_empty() {
        return Vec::new();
    }
    swings.sort_unstable();
    let p90 = swings[(swings.len() * 9 / 10).min(swings.len() - 1)];
    let turns = zigzag(curve, (p90 / 2).max(1));
    // Turning points alternate; the lows are those below their neighbours.
    turns
        .iter()
        .enumerate()
        .filter(|&(k, &i)| {
            let before = k.checked_sub(1).map(|p| curve[turns[p]]);
            let after = turns.get(k + 1).map(|&n| curve[n]);
            before.is_some_and(|b| b > curve[i]) && after.is_some_and(|a| a > curve[i])
        })
        .map(|(_, &i)| i)
        .collect()
}

/// Turning points of `curve` that reverse by more than `threshold`.
fn zigzag(curve: &[u64], threshold: u64) -> Vec<usize> {
    let mut turns = Vec::new();
    if curve.is_empty() {
        return turns;
    }
    // Direction: 0 unknown, 1 rising, -1 falling.
    let mut dir = 0i8;
    let mut ext = 0usize;
    let mut anchor = 0usize;
    for i in 1..curve.len() {
        let v = curve[i];
        match dir {
            0 => {
                if v > curve[anchor].saturating_add(threshold) {
                    turns.push(anchor);
                    dir = 1;
                    ext = i;
                } else if v.saturating_add(threshold) < curve[anchor] {
                    turns.push(anchor);
                    dir = -1;
                    ext = i;
                }
            }
            1 => {
                if v >= curve[ext] {
                    ext = i;
                } else if v.saturating_add(threshold) < curve[ext] {
                    turns.push(ext);
                    dir = -1;
                    ext = i;
                }
            }
            _ => {
                if v <= curve[ext] {
                    ext = i;
                } else if v > curve[ext].saturating_add(threshold) {
                    turns.push(ext);
                    dir = 1;
                    ext = i;
                }
            }
        }
        if dir == 0 && (curve[anchor] == v) {
            anchor = i;
        }
    }
    if dir != 0 {
        turns.push(ext);
    }
    turns
}

/// Sites whose bytes at the iteration boundaries rose step after step (at
/// least two steps and 60% of them), by at least 1 MiB and 0.5% of the
/// allocated memory at the moment.
fn growing_sites(
    at_boundary: &[Vec<u64>],
    snapshot: &Snapshot,
    allocated: u64,
) -> Vec<(u32, GrowingSite)> {
    let k = at_boundary.len();
    if k < 3 {
        return Vec::new();
    }
    let min_growth = (1u64 << 20).max(allocated / 200);
    let sites = at_boundary.iter().map(|v| v.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for s in 0..sites {
        let series: Vec<u64> = at_boundary
            .iter()
            .map(|v| v.get(s).copied().unwrap_or(0))
            .collect();
        let (first, last) = (series[0], series[k - 1]);
        if last < first.saturating_add(min_growth) {
            continue;
        }
        let rises = series.windows(2).filter(|w| w[1] > w[0]).count();
        let falls = series.windows(2).filter(|w| w[1] < w[0]).count();
        if rises >= 2 && rises * 10 >= (k - 1) * 6 && falls * 4 < k {
            out.push((
                s as u32,
                GrowingSite {
                    frame: snapshot.sites[s].clone(),
                    first_bytes: first,
                    last_bytes: last,
                },
            ));
        }
    }
    out.sort_by_key(|g| std::cmp::Reverse(g.1.last_bytes - g.1.first_bytes));
    out
}

fn pool_kind(pool: (i64, i64)) -> PoolKind {
    if pool == (0, 0) {
        PoolKind::Default
    } else {
        PoolKind::Private(pool.0, pool.1)
    }
}

fn pools(m: &State) -> Vec<PoolUsage> {
    let mut groups: BTreeMap<(PoolKind, bool), PoolUsage> = BTreeMap::new();
    let mut live: Vec<(u64, u64)> = m
        .live
        .iter()
        .filter(|(_, l)| !l.pending)
        .map(|(&a, l)| (a, l.bytes))
        .collect();
    live.sort_unstable();
    for (&start, r) in &m.segments {
        let end = start.saturating_add(r.size);
        let from = live.partition_point(|&(a, _)| a < start);
        let to = live.partition_point(|&(a, _)| a < end);
        let allocated = live[from..to]
            .iter()
            .fold(0u64, |t, &(_, n)| t.saturating_add(n));
        let kind = pool_kind(r.pool);
        let g = groups.entry((kind, r.expandable)).or_insert(PoolUsage {
            pool: kind,
            expandable: r.expandable,
            segments: 0,
            reserved_bytes: 0,
            allocated_bytes: 0,
        });
        g.segments += 1;
        g.reserved_bytes = g.reserved_bytes.saturating_add(r.size);
        g.allocated_bytes = g.allocated_bytes.saturating_add(allocated);
    }
    groups.into_values().collect()
}

fn segment_map(m: &State) -> Vec<MapSegment> {
    let mut blocks: Vec<(u64, u64, u32)> =
        m.live.iter().map(|(&a, l)| (a, l.bytes, l.site)).collect();
    blocks.sort_unstable();
    let mut segs: Vec<MapSegment> = m
        .segments
        .iter()
        .map(|(&start, r)| {
            let end = start.saturating_add(r.size);
            let from = blocks.partition_point(|&(a, _, _)| a < start);
            let to = blocks.partition_point(|&(a, _, _)| a < end);
            let mut pieces = Vec::new();
            let mut at = start;
            for &(a, n, site) in &blocks[from..to] {
                if a > at {
                    pieces.push(MapPiece {
                        offset: at - start,
                        size: a - at,
                        site: None,
                    });
                }
                let n = n.min(end - a);
                pieces.push(MapPiece {
                    offset: a - start,
                    size: n,
                    site: Some(site),
                });
                at = at.max(a.saturating_add(n));
            }
            if at < end {
                pieces.push(MapPiece {
                    offset: at - start,
                    size: end - at,
                    site: None,
                });
            }
            MapSegment {
                address: start,
                size: r.size,
                pool: pool_kind(r.pool),
                expandable: r.expandable,
                pieces,
            }
        })
        .collect();
    segs.sort_by(|a, b| b.size.cmp(&a.size).then(a.address.cmp(&b.address)));
    segs.truncate(MAP_SEGMENTS);
    segs
}

fn build_timeline(
    snapshot: &Snapshot,
    samples: &[usize],
    raw: Vec<Vec<(u32, u64)>>,
    moment: Option<usize>,
    boundaries: &[usize],
) -> Timeline {
    if samples.is_empty() {
        return Timeline::default();
    }
    let mut peak_of: HashMap<u32, u64> = HashMap::new();
    for sample in &raw {
        for &(s, b) in sample {
            let p = peak_of.entry(s).or_default();
            *p = (*p).max(b);
        }
    }
    let mut ranked: Vec<(u32, u64)> = peak_of.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let drawn: Vec<u32> = ranked
        .iter()
        .take(TIMELINE_SITES)
        .map(|&(s, _)| s)
        .collect();
    let has_other = ranked.len() > drawn.len();
    let mut bytes = vec![vec![0u64; raw.len()]; drawn.len() + usize::from(has_other)];
    for (k, sample) in raw.iter().enumerate() {
        for &(s, b) in sample {
            match drawn.iter().position(|&d| d == s) {
                Some(row) => bytes[row][k] = b,
                None => bytes[drawn.len()][k] = bytes[drawn.len()][k].saturating_add(b),
            }
        }
    }
    let mut labels: Vec<String> = drawn
        .iter()
        .map(|&s| snapshot.sites[s as usize].clone())
        .collect();
    if has_other {
        labels.push("other sites".to_string());
    }
    let nearest = |i: usize| samples.partition_point(|&s| s < i).min(samples.len() - 1);
    Timeline {
        events: samples.iter().map(|&i| i as u64).collect(),
        labels,
        bytes,
        moment_sample: moment.map(nearest),
        boundary_samples: boundaries.iter().map(|&b| nearest(b)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_the_lows_between_iterations() {
        // Three iterations rising to 100 over a floor of 10, with noise.
        let mut curve = Vec::new();
        for _ in 0..4 {
            curve.extend([10, 40, 35, 70, 100, 60, 65, 30, 10]);
        }
        let b = iteration_boundaries(&curve);
        assert_eq!(b.len(), 3, "{b:?}");
        assert!(b.iter().all(|&i| curve[i] == 10));
    }

    #[test]
    fn a_monotone_curve_has_no_boundaries() {
        let curve: Vec<u64> = (0..100).collect();
        assert!(iteration_boundaries(&curve).is_empty());
        assert!(iteration_boundaries(&[]).is_empty());
    }

    #[test]
    fn spread_keeps_first_and_last() {
        let items: Vec<usize> = (0..1000).collect();
        let s = spread(&items, 5);
        assert_eq!(s, vec![0, 249, 499, 749, 999]);
    }
}
