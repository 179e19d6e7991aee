//! Replaying a device's trace to know its memory at any moment: which
//! allocations were live, which segments were reserved, where the free
//! holes were.
//!
//! The snapshot's segments are the state at the end; the trace is the last
//! `max_entries` events before it. Walking the trace backwards from the end
//! state gives the state when the trace began (as PyTorch's memory viewer,
//! `torch/utils/viz/MemoryViz.js`, does), and walking it forwards again
//! gives every moment in between.
//!
//! Allocation sizes are what the trace records, the requested size, rounded
//! up to the allocator's 512-byte block granularity (`kMinBlockSize` and
//! `round_size` in `c10/cuda/CUDACachingAllocator.cpp`), so allocated bytes
//! match `torch.cuda.memory_allocated()` up to blocks the allocator left
//! unsplit. "Allocated" drops when a free is requested (as PyTorch's
//! `allocated_bytes` statistic does); the block stays occupied until the
//! free completes.

use super::reader::{Action, BlockState, Segment, TraceEntry};
use std::collections::{BTreeMap, HashMap};

/// The allocator's block granularity (`kMinBlockSize`, 512 bytes).
pub const BLOCK_GRANULARITY: u64 = 512;

pub fn block_bytes(requested: u64) -> u64 {
    requested
        .max(1)
        .div_ceil(BLOCK_GRANULARITY)
        .saturating_mul(BLOCK_GRANULARITY)
}

/// One live allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    pub bytes: u64,
    pub site: u32,
    /// Free requested, not completed: not allocated, still occupied.
    pub pending: bool,
}

/// One reserved range (a segment, or a mapped part of an expandable one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    pub size: u64,
    pub pool: (i64, i64),
    pub expandable: bool,
}

/// The allocator's state at one moment.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub live: HashMap<u64, Live>,
    pub segments: BTreeMap<u64, Reserved>,
    pub allocated: u64,
    pub reserved: u64,
    /// Allocated bytes per site (index = site id).
    pub by_site: Vec<u64>,
    /// Pool of each segment address the end state knows: a segment freed
    /// and allocated again in the trace keeps its pool.
    known_pools: HashMap<u64, (i64, i64)>,
}

impl State {
    /// The state the snapshot's segments describe (one device).
    pub fn at_end<'a>(segments: impl Iterator<Item = &'a Segment>) -> State {
        let mut s = State::default();
        for seg in segments {
            let info = Reserved {
                size: seg.total_size,
                pool: seg.pool,
                expandable: seg.is_expandable,
            };
            s.add_range(seg.address, info, false);
            s.known_pools.insert(seg.address, seg.pool);
            for b in &seg.blocks {
                let pending = match b.state {
                    BlockState::Allocated => false,
                    BlockState::PendingFree => true,
                    BlockState::Inactive => continue,
                };
                s.insert(b.address, block_bytes(b.requested_size), b.site, pending);
            }
        }
        s
    }

    fn site_add(&mut self, site: u32, bytes: u64) {
        let i = site as usize;
        if self.by_site.len() <= i {
            self.by_site.resize(i + 1, 0);
        }
        self.by_site[i] = self.by_site[i].saturating_add(bytes);
    }

    fn site_sub(&mut self, site: u32, bytes: u64) {
        if let Some(v) = self.by_site.get_mut(site as usize) {
            *v = v.saturating_sub(bytes);
        }
    }

    fn insert(&mut self, addr: u64, bytes: u64, site: u32, pending: bool) {
        if let Some(old) = self.live.insert(
            addr,
            Live {
                bytes,
                site,
                pending,
            },
        ) {
            if !old.pending {
                self.allocated = self.allocated.saturating_sub(old.bytes);
                self.site_sub(old.site, old.bytes);
            }
        }
        if !pending {
            self.allocated = self.allocated.saturating_add(bytes);
            self.site_add(site, bytes);
        }
    }

    fn remove(&mut self, addr: u64) {
        if let Some(old) = self.live.remove(&addr) {
            if !old.pending {
                self.allocated = self.allocated.saturating_sub(old.bytes);
                self.site_sub(old.site, old.bytes);
            }
        }
    }

    fn set_pending(&mut self, addr: u64, pending: bool) -> bool {
        let Some(l) = self.live.get_mut(&addr) else {
            return false;
        };
        if l.pending == pending {
            return true;
        }
        l.pending = pending;
        let (bytes, site) = (l.bytes, l.site);
        if pending {
            self.allocated = self.allocated.saturating_sub(bytes);
            self.site_sub(site, bytes);
        } else {
            self.allocated = self.allocated.saturating_add(bytes);
            self.site_add(site, bytes);
        }
        true
    }

    /// Adds a reserved range; `merge` joins it to adjacent ranges of the
    /// same kind (mapping pages of an expandable segment).
    fn add_range(&mut self, addr: u64, info: Reserved, merge: bool) {
        if info.size == 0 {
            return;
        }
        self.reserved = self.reserved.saturating_add(info.size);
        let mut start = addr;
        let mut r = info;
        if merge {
            if let Some((&pa, &p)) = self.segments.range(..addr).next_back() {
                if pa.saturating_add(p.size) == addr && p.pool == r.pool {
                    self.segments.remove(&pa);
                    start = pa;
                    r.size = r.size.saturating_add(p.size);
                    r.expandable |= p.expandable;
                }
            }
            let end = addr.saturating_add(info.size);
            if let Some(n) = self.segments.get(&end).copied() {
                if n.pool == r.pool {
                    self.segments.remove(&end);
                    r.size = r.size.saturating_add(n.size);
                }
            }
        }
        self.segments.insert(start, r);
    }

    /// Removes a reserved range; with `split`, a part of a larger range.
    fn remove_range(&mut self, addr: u64, size: u64, split: bool) -> Option<Reserved> {
        if !split {
            let r = self.segments.remove(&addr)?;
            self.reserved = self.reserved.saturating_sub(r.size);
            return Some(r);
        }
        let (&start, &r) = self.segments.range(..=addr).next_back()?;
        let end = start.saturating_add(r.size);
        let cut_end = addr.saturating_add(size).min(end);
        if addr >= end || cut_end <= addr {
            return None;
        }
        self.segments.remove(&start);
        self.reserved = self.reserved.saturating_sub(cut_end - addr);
        if addr > start {
            self.segments.insert(
                start,
                Reserved {
                    size: addr - start,
                    ..r
                },
            );
        }
        if cut_end < end {
            self.segments.insert(
                cut_end,
                Reserved {
                    size: end - cut_end,
                    ..r
                },
            );
        }
        Some(Reserved {
            size: cut_end - addr,
            ..r
        })
    }

    fn default_range(&self, addr: u64, size: u64, expandable: bool) -> Reserved {
        Reserved {
            size,
            pool: self.known_pools.get(&addr).copied().unwrap_or((0, 0)),
            expandable,
        }
    }

    /// Applies one event going forwards.
    pub fn apply(&mut self, e: &TraceEntry) {
        match e.action {
            Action::Alloc => self.insert(e.addr, block_bytes(e.size), e.site, false),
            Action::FreeRequested => {
                if !self.set_pending(e.addr, true) {
                    self.insert(e.addr, block_bytes(e.size), e.site, true);
                }
            }
            Action::FreeCompleted => self.remove(e.addr),
            Action::SegmentAlloc => {
                self.add_range(e.addr, self.default_range(e.addr, e.size, false), false)
            }
            Action::SegmentMap => {
                self.add_range(e.addr, self.default_range(e.addr, e.size, true), true)
            }
            Action::SegmentFree => {
                self.remove_range(e.addr, e.size, false);
            }
            Action::SegmentUnmap => {
                self.remove_range(e.addr, e.size, true);
            }
            Action::Oom | Action::Snapshot | Action::Other => {}
        }
    }

    /// Undoes one event (going backwards from the end state).
    pub fn undo(&mut self, e: &TraceEntry) {
        match e.action {
            Action::Alloc => self.remove(e.addr),
            Action::FreeRequested => {
                if !self.set_pending(e.addr, false) {
                    self.insert(e.addr, block_bytes(e.size), e.site, false);
                }
            }
            Action::FreeCompleted => self.insert(e.addr, block_bytes(e.size), e.site, true),
            Action::SegmentAlloc => {
                self.remove_range(e.addr, e.size, false);
            }
            Action::SegmentMap => {
                self.remove_range(e.addr, e.size, true);
            }
            Action::SegmentFree => {
                self.add_range(e.addr, self.default_range(e.addr, e.size, false), false)
            }
            Action::SegmentUnmap => {
                self.add_range(e.addr, self.default_range(e.addr, e.size, true), true)
            }
            Action::Oom | Action::Snapshot | Action::Other => {}
        }
    }

    /// Free holes: per segment, the ranges no live block occupies, as
    /// (segment start, offset in segment, size).
    pub fn holes(&self) -> Vec<(u64, u64, u64)> {
        let mut blocks: Vec<(u64, u64)> = self.live.iter().map(|(&a, l)| (a, l.bytes)).collect();
        blocks.sort_unstable();
        let mut out = Vec::new();
        let mut i = 0;
        for (&start, r) in &self.segments {
            let end = start.saturating_add(r.size);
            while i < blocks.len() && blocks[i].0 < start {
                i += 1;
            }
            let mut at = start;
            while i < blocks.len() && blocks[i].0 < end {
                let (a, n) = blocks[i];
                if a > at {
                    out.push((start, at - start, a - at));
                }
                at = at.max(a.saturating_add(n).min(end));
                i += 1;
            }
            if at < end {
                out.push((start, at - start, end - at));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(action: Action, addr: u64, size: u64, site: u32) -> TraceEntry {
        TraceEntry {
            action,
            addr,
            size,
            device_free: 0,
            site,
        }
    }

    #[test]
    fn undo_then_apply_returns_to_the_end_state() {
        let mut s = State::default();
        let trace = [
            e(Action::SegmentAlloc, 0, 4096, 0),
            e(Action::Alloc, 0, 1000, 1),
            e(Action::Alloc, 1024, 512, 2),
            e(Action::FreeRequested, 0, 1000, 1),
            e(Action::FreeCompleted, 0, 1000, 1),
        ];
        for t in &trace {
            s.apply(t);
        }
        assert_eq!((s.allocated, s.reserved), (512, 4096));
        assert_eq!(s.holes(), vec![(0, 0, 1024), (0, 1536, 2560)]);
        for t in trace.iter().rev() {
            s.undo(t);
        }
        assert_eq!((s.allocated, s.reserved, s.live.len()), (0, 0, 0));
    }

    #[test]
    fn pending_frees_are_not_allocated_but_occupied() {
        let mut s = State::default();
        s.apply(&e(Action::SegmentAlloc, 0, 2048, 0));
        s.apply(&e(Action::Alloc, 0, 2048, 1));
        s.apply(&e(Action::FreeRequested, 0, 2048, 1));
        assert_eq!(s.allocated, 0);
        assert!(s.holes().is_empty());
    }

    #[test]
    fn expandable_ranges_merge_and_split() {
        let mut s = State::default();
        s.apply(&e(Action::SegmentMap, 0, 2 << 20, 0));
        s.apply(&e(Action::SegmentMap, 2 << 20, 2 << 20, 0));
        assert_eq!(s.segments.len(), 1);
        s.apply(&e(Action::SegmentUnmap, 1 << 20, 1 << 20, 0));
        assert_eq!(s.segments.len(), 2);
        assert_eq!(s.reserved, 3 << 20);
    }

    #[test]
    fn block_sizes_round_to_512() {
        assert_eq!(block_bytes(1), 512);
        assert_eq!(block_bytes(512), 512);
        assert_eq!(block_bytes(513), 1024);
    }
}
