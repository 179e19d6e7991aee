//! From a snapshot file to a [`Snapshot`]: the pickle read with
//! [`super::pickle`], while a finisher folds every frame list to its
//! allocation site and turns every trace entry into a 32-byte record as the
//! file streams by, so a multi-gigabyte trace costs a fraction of its size.
//!
//! Structure (PyTorch `torch/cuda/memory.py` `_snapshot` docstring and
//! `torch/csrc/cuda/memory_snapshot.cpp`): a dict with `segments` (each with
//! `device`, `address`, `total_size`, `stream`, `segment_type`,
//! `segment_pool_id`, `is_expandable`, `blocks` of `address`, `size`,
//! `requested_size`, `state`, `frames`), `device_traces` (one list per
//! device of entries with `action`, `addr`, `size`, `stream`, `frames`, and
//! `device_free` instead of `addr` for `oom`) and `allocator_settings`. Older
//! files (`torch.cuda.memory_snapshot()`) are a plain list of segments whose
//! blocks may keep their stack under `history[0]` with `real_size`.

use super::error::{SnapshotError, SnapshotErrorKind};
use super::frames::{self, FrameClass, FrameRef, NO_STACK};
use super::pickle::{self, Finisher, Heap, Obj, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// What the allocator did, as a trace entry's `action` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A block was allocated.
    Alloc,
    /// A free was asked for (another stream may still use the block).
    FreeRequested,
    /// A block was freed.
    FreeCompleted,
    /// A segment was reserved (`cudaMalloc`).
    SegmentAlloc,
    /// A segment was released (`cudaFree`).
    SegmentFree,
    /// Memory was mapped into an expandable segment.
    SegmentMap,
    /// Memory was unmapped from an expandable segment.
    SegmentUnmap,
    /// An allocation failed: out of memory.
    Oom,
    /// The snapshot was taken.
    Snapshot,
    /// An action this reader does not know.
    Other,
}

impl Action {
    fn parse(s: &str) -> Action {
        match s {
            "alloc" => Action::Alloc,
            "free_requested" => Action::FreeRequested,
            // The viewer's own merged name for a request and its completion.
            "free_completed" | "free" => Action::FreeCompleted,
            "segment_alloc" => Action::SegmentAlloc,
            "segment_free" => Action::SegmentFree,
            "segment_map" => Action::SegmentMap,
            "segment_unmap" => Action::SegmentUnmap,
            "oom" => Action::Oom,
            "snapshot" => Action::Snapshot,
            _ => Action::Other,
        }
    }
}

/// One trace entry, compacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEntry {
    /// What the allocator did.
    pub action: Action,
    /// The allocation's or segment's address (0 for `oom`).
    pub addr: u64,
    /// Bytes: requested for allocations and OOMs, whole for segments.
    pub size: u64,
    /// For `oom`: what CUDA reported free on the device.
    pub device_free: u64,
    /// Allocation site (index into [`Snapshot::sites`]).
    pub site: u32,
}

/// A block's state in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    /// Holds a live tensor.
    Allocated,
    /// Freed, waiting for another stream's work before it can be reused.
    PendingFree,
    /// Cached, free for reuse.
    Inactive,
}

/// One block of a segment: an allocation or a cached free range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block's device address.
    pub address: u64,
    /// Its size in bytes, rounded by the allocator.
    pub size: u64,
    /// The bytes the caller asked for.
    pub requested_size: u64,
    /// Live, waiting to be freed, or cached.
    pub state: BlockState,
    /// Allocation site (index into [`Snapshot::sites`]).
    pub site: u32,
}

/// One segment (one cudaMalloc, or one expandable range) at snapshot time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The device index.
    pub device: u32,
    /// The segment's device address.
    pub address: u64,
    /// Its size in bytes.
    pub total_size: u64,
    /// The CUDA stream it belongs to.
    pub stream: i64,
    /// `segment_pool_id`: (0, 0) for the default pool, else a private pool
    /// (CUDA graphs, `torch.cuda.MemPool`).
    pub pool: (i64, i64),
    /// True for an expandable segment.
    pub is_expandable: bool,
    /// Its blocks, in address order.
    pub blocks: Vec<Block>,
}

impl Segment {
    /// True when the segment belongs to a private pool.
    pub fn is_private_pool(&self) -> bool {
        self.pool != (0, 0)
    }
}

/// Which of the two layouts the file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotLayout {
    /// `{"segments", "device_traces", ...}` (`_dump_snapshot`, PyTorch 2.1+).
    Current,
    /// A plain list of segments (`torch.cuda.memory_snapshot()`), no trace.
    SegmentList,
}

/// A memory snapshot, decoded.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Which layout the file has.
    pub layout: SnapshotLayout,
    /// True when the file was gzipped.
    pub gzipped: bool,
    /// Every segment at snapshot time.
    pub segments: Vec<Segment>,
    /// Per device index, its trace (empty when history was not recorded).
    pub device_traces: Vec<Vec<TraceEntry>>,
    /// Site labels; index 0 is the site of allocations without a stack.
    pub sites: Vec<String>,
    /// `allocator_settings["expandable_segments"]`, when the file says.
    pub expandable_segments: Option<bool>,
    /// `allocator_settings["PYTORCH_CUDA_ALLOC_CONF"]`, when set.
    pub alloc_conf: Option<String>,
}

/// Reads a snapshot file (plain or gzipped: its magic bytes decide).
pub fn read_snapshot(path: &Path) -> Result<Snapshot, SnapshotError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| SnapshotError::io(&name, "cannot open", e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let head = reader
        .fill_buf()
        .map_err(|e| SnapshotError::io(&name, "cannot read", e))?;
    let gzipped = head.starts_with(&[0x1f, 0x8b]);
    if gzipped {
        let decoder = flate2::bufread::MultiGzDecoder::new(reader);
        read_from(decoder, &name, true)
    } else {
        read_from(reader, &name, false)
    }
}

/// Reads a snapshot from any byte stream; `name` is used in errors.
pub fn read_from<R: Read>(input: R, name: &str, gzipped: bool) -> Result<Snapshot, SnapshotError> {
    let mut finisher = SnapshotFinisher::default();
    let (heap, root) = pickle::read_pickle(input, &mut finisher)
        .map_err(|e| SnapshotError::from_pickle(name, gzipped, e))?;
    let malformed = |detail: String| SnapshotError::new(SnapshotErrorKind::Malformed, name, detail);
    let mut builder = Builder {
        heap: &heap,
        fin: &mut finisher,
    };
    let (layout, segments_value, traces_value) = match heap.obj(root) {
        Some(Obj::Dict(_)) => {
            let segments = heap.get(root, "segments").ok_or_else(|| {
                malformed(
                    "not a PyTorch memory snapshot: the top-level dict has no 'segments'".into(),
                )
            })?;
            (
                SnapshotLayout::Current,
                segments,
                heap.get(root, "device_traces"),
            )
        }
        Some(Obj::List(_)) => (SnapshotLayout::SegmentList, root, None),
        _ => return Err(malformed(
            "not a PyTorch memory snapshot: the pickle holds neither a dict nor a list of segments"
                .into(),
        )),
    };
    let segments = builder.segments(segments_value).map_err(malformed)?;
    let trace_indexes = match traces_value {
        Some(v) => builder.trace_indexes(v).map_err(malformed)?,
        None => Vec::new(),
    };
    let (expandable_segments, alloc_conf) = match heap.get(root, "allocator_settings") {
        Some(s) => (
            match heap.get(s, "expandable_segments") {
                Some(Value::Bool(b)) => Some(b),
                _ => None,
            },
            heap.get(s, "PYTORCH_CUDA_ALLOC_CONF")
                .and_then(|v| heap.str(v))
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        ),
        None => (None, None),
    };
    drop(heap);
    let entries = std::mem::take(&mut finisher.entries);
    let device_traces = trace_indexes
        .into_iter()
        .map(|idx| idx.into_iter().map(|i| entries[i as usize]).collect())
        .collect();
    Ok(Snapshot {
        layout,
        gzipped,
        segments,
        device_traces,
        sites: finisher.sites,
        expandable_segments,
        alloc_conf,
    })
}

/// Dict keys the finisher looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Key {
    Filename = 2,
    Line,
    Name,
    Action,
    Addr,
    Size,
    DeviceFree,
    Frames,
}

const KEY_UNSEEN: u8 = 0;
const KEY_OTHER: u8 = 1;

/// Record kinds in [`Obj::Done`].
const DONE_FRAME: u8 = 1;
const DONE_STACK: u8 = 2;
const DONE_ENTRY: u8 = 3;

struct FrameRec {
    filename: u32,
    line: i64,
    name: u32,
    class: FrameClass,
}

struct SnapshotFinisher {
    key_of: Vec<u8>,
    class_of_file: HashMap<u32, FrameClass>,
    frames: Vec<FrameRec>,
    sites: Vec<String>,
    site_ids: HashMap<String, u32>,
    /// Site of the stacks whose innermost user frame is this frame index.
    site_of_frame: HashMap<u32, u32>,
    entries: Vec<TraceEntry>,
}

impl Default for SnapshotFinisher {
    fn default() -> Self {
        SnapshotFinisher {
            key_of: Vec::new(),
            class_of_file: HashMap::new(),
            frames: Vec::new(),
            sites: vec![NO_STACK.to_string()],
            site_ids: HashMap::from([(NO_STACK.to_string(), 0)]),
            site_of_frame: HashMap::new(),
            entries: Vec::new(),
        }
    }
}

impl SnapshotFinisher {
    fn key(&mut self, heap: &Heap, v: Value) -> Option<Key> {
        let Value::Str(id) = v else { return None };
        let i = id as usize;
        if self.key_of.len() <= i {
            self.key_of
                .resize(heap.strings.len().max(i + 1), KEY_UNSEEN);
        }
        if self.key_of[i] == KEY_UNSEEN {
            self.key_of[i] = match &*heap.strings[i] {
                "filename" => Key::Filename as u8,
                "line" => Key::Line as u8,
                "name" => Key::Name as u8,
                "action" => Key::Action as u8,
                "addr" => Key::Addr as u8,
                "size" => Key::Size as u8,
                "device_free" => Key::DeviceFree as u8,
                "frames" => Key::Frames as u8,
                _ => KEY_OTHER,
            };
        }
        match self.key_of[i] {
            2 => Some(Key::Filename),
            3 => Some(Key::Line),
            4 => Some(Key::Name),
            5 => Some(Key::Action),
            6 => Some(Key::Addr),
            7 => Some(Key::Size),
            8 => Some(Key::DeviceFree),
            9 => Some(Key::Frames),
            _ => None,
        }
    }

    fn site_id(&mut self, label: String) -> u32 {
        if let Some(&id) = self.site_ids.get(&label) {
            return id;
        }
        let id = self.sites.len() as u32;
        self.sites.push(label.clone());
        self.site_ids.insert(label, id);
        id
    }

    /// The site of a list of compacted frames. A stack with a user frame
    /// folds to that frame, so its site is cached per frame: the label is
    /// built once, not once per trace entry.
    fn fold(&mut self, heap: &Heap, frame_ids: &[u32]) -> u32 {
        let user = frame_ids
            .iter()
            .copied()
            .find(|&i| self.frames[i as usize].class == FrameClass::User);
        if let Some(i) = user {
            if let Some(&site) = self.site_of_frame.get(&i) {
                return site;
            }
        }
        let refs: Vec<FrameRef> = frame_ids
            .iter()
            .map(|&i| {
                let f = &self.frames[i as usize];
                FrameRef {
                    filename: &heap.strings[f.filename as usize],
                    line: f.line,
                    name: &heap.strings[f.name as usize],
                    class: f.class,
                }
            })
            .collect();
        let label = frames::fold(&refs);
        let site = self.site_id(label);
        if let Some(i) = user {
            self.site_of_frame.insert(i, site);
        }
        site
    }
}

/// The site a `frames` value stands for: a folded stack, or none.
fn stack_site(heap: &Heap, v: Option<Value>) -> u32 {
    match v.and_then(|v| heap.obj(v)) {
        Some(Obj::Done {
            kind: DONE_STACK,
            index,
        }) => *index,
        _ => 0,
    }
}

fn as_u64(v: Option<Value>) -> Option<u64> {
    match v? {
        Value::Int(i) => u64::try_from(i).ok(),
        _ => None,
    }
}

impl Finisher for SnapshotFinisher {
    fn finish(&mut self, heap: &mut Heap, id: u32) -> Result<(), String> {
        let done = match &heap.objs[id as usize] {
            Obj::Dict(items) => {
                let mut found: [Option<Value>; 10] = [None; 10];
                for (k, v) in items.iter() {
                    if let Some(key) = self.key(heap, *k) {
                        found[key as usize] = Some(*v);
                    }
                }
                let get = |k: Key| found[k as usize];
                if let (Some(Value::Str(file)), Some(Value::Str(name))) =
                    (get(Key::Filename), get(Key::Name))
                {
                    if get(Key::Action).is_none() {
                        let class = *self
                            .class_of_file
                            .entry(file)
                            .or_insert_with(|| frames::classify(&heap.strings[file as usize]));
                        let line = match get(Key::Line) {
                            Some(Value::Int(l)) => l,
                            _ => 0,
                        };
                        self.frames.push(FrameRec {
                            filename: file,
                            line,
                            name,
                            class,
                        });
                        Some((DONE_FRAME, self.frames.len() as u32 - 1))
                    } else {
                        None
                    }
                } else if let Some(action) = get(Key::Action).and_then(|v| heap.str(v)) {
                    let action = Action::parse(action);
                    let size = match get(Key::Size) {
                        None => 0,
                        Some(v) => as_u64(Some(v))
                            .ok_or("a trace entry whose 'size' is not a non-negative integer")?,
                    };
                    let addr = match get(Key::Addr) {
                        None if matches!(
                            action,
                            Action::Oom | Action::Snapshot | Action::Other
                        ) =>
                        {
                            0
                        }
                        None => return Err(format!("a trace entry {action:?} without 'addr'")),
                        Some(v) => as_u64(Some(v))
                            .ok_or("a trace entry whose 'addr' is not a non-negative integer")?,
                    };
                    let device_free = as_u64(get(Key::DeviceFree)).unwrap_or(0);
                    let site = stack_site(heap, get(Key::Frames));
                    self.entries.push(TraceEntry {
                        action,
                        addr,
                        size,
                        device_free,
                        site,
                    });
                    Some((DONE_ENTRY, self.entries.len() as u32 - 1))
                } else {
                    None
                }
            }
            Obj::List(items) if !items.is_empty() => {
                let mut ids = Vec::with_capacity(items.len().min(256));
                for v in items.iter() {
                    match heap.obj(*v) {
                        Some(Obj::Done {
                            kind: DONE_FRAME,
                            index,
                        }) => ids.push(*index),
                        _ => {
                            ids.clear();
                            break;
                        }
                    }
                }
                if ids.is_empty() {
                    None
                } else {
                    Some((DONE_STACK, self.fold(heap, &ids)))
                }
            }
            _ => None,
        };
        if let Some((kind, index)) = done {
            heap.objs[id as usize] = Obj::Done { kind, index };
        }
        Ok(())
    }
}

struct Builder<'a> {
    heap: &'a Heap,
    fin: &'a mut SnapshotFinisher,
}

impl Builder<'_> {
    fn int(&self, v: Option<Value>, what: &str) -> Result<i64, String> {
        match v {
            Some(Value::Int(i)) => Ok(i),
            Some(Value::BigInt) => Err(format!("{what} is an integer beyond 64 bits")),
            Some(_) => Err(format!("{what} is not an integer")),
            None => Err(format!("{what} is missing")),
        }
    }

    fn size(&self, v: Option<Value>, what: &str) -> Result<u64, String> {
        let i = self.int(v, what)?;
        u64::try_from(i).map_err(|_| format!("{what} is negative ({i})"))
    }

    fn segments(&mut self, v: Value) -> Result<Vec<Segment>, String> {
        let heap = self.heap;
        let items = heap
            .items(v)
            .ok_or("not a PyTorch memory snapshot: 'segments' is not a list")?;
        let mut out = Vec::new();
        for (i, &s) in items.iter().enumerate() {
            out.push(self.segment(s).map_err(|e| format!("segments[{i}]: {e}"))?);
        }
        Ok(out)
    }

    fn segment(&mut self, s: Value) -> Result<Segment, String> {
        let heap = self.heap;
        if !matches!(heap.obj(s), Some(Obj::Dict(_))) {
            return Err("not a dict".into());
        }
        let address = self.size(heap.get(s, "address"), "'address'")?;
        let total_size = self.size(heap.get(s, "total_size"), "'total_size'")?;
        let device = match heap.get(s, "device") {
            None => 0,
            v => u32::try_from(self.int(v, "'device'")?).map_err(|_| "'device' is out of range")?,
        };
        let stream = match heap.get(s, "stream") {
            None => 0,
            v => self.int(v, "'stream'")?,
        };
        let pool = match heap.get(s, "segment_pool_id").and_then(|p| heap.items(p)) {
            Some([a, b]) => (
                self.int(Some(*a), "'segment_pool_id'")?,
                self.int(Some(*b), "'segment_pool_id'")?,
            ),
            _ => (0, 0),
        };
        let is_expandable = matches!(heap.get(s, "is_expandable"), Some(Value::Bool(true)));
        let blocks_value = heap.get(s, "blocks");
        let block_items = match blocks_value {
            None => &[][..],
            Some(b) => heap.items(b).ok_or("'blocks' is not a list")?,
        };
        let mut blocks = Vec::with_capacity(block_items.len().min(1 << 16));
        let mut next = address;
        for (j, &b) in block_items.iter().enumerate() {
            let block = self
                .block(b, next)
                .map_err(|e| format!("blocks[{j}]: {e}"))?;
            next = block.address.saturating_add(block.size);
            blocks.push(block);
        }
        Ok(Segment {
            device,
            address,
            total_size,
            stream,
            pool,
            is_expandable,
            blocks,
        })
    }

    fn block(&mut self, b: Value, at: u64) -> Result<Block, String> {
        let heap = self.heap;
        if !matches!(heap.obj(b), Some(Obj::Dict(_))) {
            return Err("not a dict".into());
        }
        let size = self.size(heap.get(b, "size"), "'size'")?;
        let address = match heap.get(b, "address") {
            None => at,
            v => self.size(v, "'address'")?,
        };
        let state = match heap.get(b, "state").and_then(|v| heap.str(v)) {
            Some("active_allocated") => BlockState::Allocated,
            // The C++ writer says active_pending_free, the docstring
            // active_awaiting_free.
            Some("active_pending_free" | "active_awaiting_free") => BlockState::PendingFree,
            Some("inactive") => BlockState::Inactive,
            Some(other) => return Err(format!("unknown block state {other:?}")),
            None => return Err("'state' is missing".into()),
        };
        let first_history = heap
            .get(b, "history")
            .and_then(|h| heap.items(h))
            .and_then(|h| h.first().copied());
        let requested_size = match heap.get(b, "requested_size") {
            Some(v) => self.size(Some(v), "'requested_size'")?,
            None => match first_history.and_then(|h| heap.get(h, "real_size")) {
                Some(v) => self.size(Some(v), "'history[0].real_size'")?,
                None => size,
            },
        };
        let site = match heap.get(b, "frames") {
            Some(f) => stack_site(heap, Some(f)),
            None => stack_site(heap, first_history.and_then(|h| heap.get(h, "frames"))),
        };
        let _ = &mut self.fin;
        Ok(Block {
            address,
            size,
            requested_size,
            state,
            site,
        })
    }

    /// Per device, the indexes of its compacted trace entries.
    fn trace_indexes(&mut self, v: Value) -> Result<Vec<Vec<u32>>, String> {
        let heap = self.heap;
        let devices = heap.items(v).ok_or("'device_traces' is not a list")?;
        let mut out = Vec::with_capacity(devices.len().min(64));
        for (d, &trace) in devices.iter().enumerate() {
            let entries = heap
                .items(trace)
                .ok_or_else(|| format!("device_traces[{d}] is not a list"))?;
            let mut idx = Vec::with_capacity(entries.len());
            for (i, &e) in entries.iter().enumerate() {
                match heap.obj(e) {
                    Some(Obj::Done {
                        kind: DONE_ENTRY,
                        index,
                    }) => idx.push(*index),
                    _ => {
                        return Err(format!(
                            "device_traces[{d}][{i}] is not a trace entry (a dict with 'action')"
                        ))
                    }
                }
            }
            out.push(idx);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_file_that_cannot_be_opened_keeps_the_io_error_as_the_source() {
        use std::error::Error as _;
        let e = read_snapshot(Path::new("/nonexistent/snap.pickle")).unwrap_err();
        assert_eq!(e.kind, SnapshotErrorKind::Io);
        assert_eq!(e.to_string(), "/nonexistent/snap.pickle: cannot open");
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));
    }

    /// pickle.dumps(protocol=4) of a one-segment snapshot whose trace ends in
    /// an OOM (frame dict shared by the block and two entries).
    const SMALL: &[u8] = b"\x80\x04\x95\xf4\x01\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x08\x73\x65\x67\x6d\x65\x6e\x74\x73\
\x94\x5d\x94\x7d\x94\x28\x8c\x06\x64\x65\x76\x69\x63\x65\x94\x4b\x00\x8c\x07\x61\x64\x64\x72\x65\
\x73\x73\x94\x4d\x00\x10\x8c\x0a\x74\x6f\x74\x61\x6c\x5f\x73\x69\x7a\x65\x94\x4a\x00\x00\x20\x00\
\x8c\x06\x73\x74\x72\x65\x61\x6d\x94\x4b\x00\x8c\x0f\x73\x65\x67\x6d\x65\x6e\x74\x5f\x70\x6f\x6f\
\x6c\x5f\x69\x64\x94\x4b\x00\x4b\x00\x86\x94\x8c\x0d\x69\x73\x5f\x65\x78\x70\x61\x6e\x64\x61\x62\
\x6c\x65\x94\x89\x8c\x06\x62\x6c\x6f\x63\x6b\x73\x94\x5d\x94\x28\x7d\x94\x28\x68\x05\x4d\x00\x10\
\x8c\x04\x73\x69\x7a\x65\x94\x4d\x00\x04\x8c\x0e\x72\x65\x71\x75\x65\x73\x74\x65\x64\x5f\x73\x69\
\x7a\x65\x94\x4d\xe8\x03\x8c\x05\x73\x74\x61\x74\x65\x94\x8c\x10\x61\x63\x74\x69\x76\x65\x5f\x61\
\x6c\x6c\x6f\x63\x61\x74\x65\x64\x94\x8c\x06\x66\x72\x61\x6d\x65\x73\x94\x5d\x94\x7d\x94\x28\x8c\
\x08\x66\x69\x6c\x65\x6e\x61\x6d\x65\x94\x8c\x0c\x2f\x68\x6f\x6d\x65\x2f\x75\x2f\x61\x2e\x70\x79\
\x94\x8c\x04\x6c\x69\x6e\x65\x94\x4b\x03\x8c\x04\x6e\x61\x6d\x65\x94\x8c\x01\x66\x94\x75\x61\x75\
\x7d\x94\x28\x68\x05\x4d\x00\x14\x68\x0e\x4a\x00\xfc\x1f\x00\x68\x0f\x4b\x00\x68\x10\x8c\x08\x69\
\x6e\x61\x63\x74\x69\x76\x65\x94\x68\x12\x5d\x94\x75\x65\x75\x61\x8c\x0d\x64\x65\x76\x69\x63\x65\
\x5f\x74\x72\x61\x63\x65\x73\x94\x5d\x94\x5d\x94\x28\x7d\x94\x28\x8c\x06\x61\x63\x74\x69\x6f\x6e\
\x94\x8c\x0d\x73\x65\x67\x6d\x65\x6e\x74\x5f\x61\x6c\x6c\x6f\x63\x94\x8c\x04\x61\x64\x64\x72\x94\
\x4d\x00\x10\x68\x0e\x4a\x00\x00\x20\x00\x68\x07\x4b\x00\x68\x12\x5d\x94\x75\x7d\x94\x28\x68\x21\
\x8c\x05\x61\x6c\x6c\x6f\x63\x94\x68\x23\x4d\x00\x10\x68\x0e\x4d\xe8\x03\x68\x07\x4b\x00\x68\x12\
\x5d\x94\x68\x14\x61\x75\x7d\x94\x28\x68\x21\x8c\x03\x6f\x6f\x6d\x94\x8c\x0b\x64\x65\x76\x69\x63\
\x65\x5f\x66\x72\x65\x65\x94\x4b\x05\x68\x0e\x4a\x00\x00\x40\x00\x68\x07\x4b\x00\x68\x12\x5d\x94\
\x68\x14\x61\x75\x65\x61\x8c\x12\x61\x6c\x6c\x6f\x63\x61\x74\x6f\x72\x5f\x73\x65\x74\x74\x69\x6e\
\x67\x73\x94\x7d\x94\x8c\x13\x65\x78\x70\x61\x6e\x64\x61\x62\x6c\x65\x5f\x73\x65\x67\x6d\x65\x6e\
\x74\x73\x94\x89\x73\x75\x2e";

    #[test]
    fn small_snapshot_reads_with_shared_frames_folded() {
        let s = read(SMALL).unwrap();
        assert_eq!(s.layout, SnapshotLayout::Current);
        assert_eq!(
            s.sites,
            vec![NO_STACK.to_string(), "/home/u/a.py:3 (f)".to_string()]
        );
        assert_eq!(s.segments[0].blocks[0].site, 1);
        let trace = &s.device_traces[0];
        assert_eq!(trace.len(), 3);
        assert_eq!(trace[2].action, Action::Oom);
        assert_eq!(
            (trace[2].size, trace[2].device_free, trace[2].site),
            (4194304, 5, 1)
        );
        assert_eq!(s.expandable_segments, Some(false));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(s) = read(&bytes) {
                let _ = crate::snapshot::explain_snapshot(s, "x", 10);
            }
        }

        #[test]
        fn opcode_soup_never_panics(ops in prop::collection::vec(prop::sample::select(vec![
            0x80u8, 2, 4, b'}', b']', b')', b'(', b'a', b'e', b'u', b's', b'l', b't', b'd', 0x94, b'h', b'q',
            0x8c, 1, b'K', b'J', 0x8a, b'N', 0x88, 0x85, 0x86, b'.', b'0', b'1', b'2', 0x8f, 0x90, 0x91,
        ]), 0..300)) {
            if let Ok(s) = read(&ops) {
                let _ = crate::snapshot::explain_snapshot(s, "x", 10);
            }
        }

        #[test]
        fn mutated_snapshots_never_panic(edits in prop::collection::vec((0usize..SMALL.len(), any::<u8>()), 1..8),
                                         cut in 0usize..=SMALL.len()) {
            let mut bytes = SMALL.to_vec();
            for (at, b) in edits {
                bytes[at] = b;
            }
            bytes.truncate(cut.max(1));
            if let Ok(s) = read(&bytes) {
                let _ = crate::snapshot::explain_snapshot(s, "x", 10);
            }
        }
    }

    fn read(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        read_from(bytes, "snap.pickle", false)
    }

    #[test]
    fn refusal_names_the_file_and_offset() {
        let e = read(b"\x80\x04cos\nsystem\n.").unwrap_err();
        assert_eq!(e.kind, SnapshotErrorKind::Refused);
        let text = e.to_string();
        assert!(
            text.starts_with("snap.pickle: byte 2: asks for the global"),
            "{text}"
        );
    }

    #[test]
    fn a_pickle_that_is_not_a_snapshot_is_malformed() {
        // pickle.dumps(42, protocol=4) and pickle.dumps({'a': 1}, protocol=2)
        assert_eq!(
            read(b"\x80\x04K*.").unwrap_err().kind,
            SnapshotErrorKind::Malformed
        );
        let e = read(b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.").unwrap_err();
        assert!(e.to_string().contains("no 'segments'"), "{e}");
    }
}
