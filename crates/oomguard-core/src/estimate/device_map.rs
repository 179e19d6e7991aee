//! Where Hugging Face `from_pretrained(..., device_map="auto", max_memory=...)`
//! puts each part of a model, as accelerate's `infer_auto_device_map` decides
//! it (`accelerate/utils/modeling.py`), and what the first GPU then holds.
//!
//! The rule, from accelerate's source:
//! - the model is cut into the parts no split may cross: the embeddings, each
//!   decoder or encoder layer (transformers' `_no_split_modules`), the final
//!   norm and the output head; a head tied to the embeddings goes with them;
//! - parts are placed in order on the GPUs by index, then the CPU (only when
//!   `max_memory` names it), then the disk (always, without limit);
//! - on the first GPU and on the CPU ("main devices") the largest part still
//!   to place is kept free, so an offloaded part can be brought back to run;
//!   a part that does not fit moves everything after it to the next device;
//! - with several GPUs, `device_map="auto"` first balances them
//!   (`get_balanced_memory`): every GPU but the last gets at most the model
//!   over the GPU count plus 1.25 times the largest layer;
//! - a bitsandbytes-quantized model (`--quant nf4|int8`) keeps 10% of every
//!   budget free (transformers' bitsandbytes quantizers, `adjust_max_memory`).
//!
//! Parts placed on the CPU or the disk run on the first GPU: accelerate's
//! hooks copy their weights there for their forward pass, one part at a time.

use super::weights::weights_bytes;
use super::workload::{Quant, Workload};
use super::{allocator, MemoryBreakdown};
use crate::model::{Dtype, ModelShape};
use crate::size::{parse_user_size, SizeError};
use serde::{Serialize, Serializer};
use std::fmt;

/// A device of a device map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Device {
    /// A CUDA device by index.
    Gpu(u32),
    /// Host memory.
    Cpu,
    /// The offload folder on disk.
    Disk,
}

impl Device {
    /// The name accelerate and `max_memory` use: `0`, `1`, `cpu`, `disk`.
    pub fn as_str(&self) -> String {
        match self {
            Device::Gpu(i) => i.to_string(),
            Device::Cpu => "cpu".into(),
            Device::Disk => "disk".into(),
        }
    }
}

impl Serialize for Device {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

/// A `max_memory` dictionary: bytes per device, in accelerate's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxMemory {
    /// Budgets by device, GPUs by index first, then `cpu`, then `disk`.
    pub budgets: Vec<(Device, u64)>,
}

impl MaxMemory {
    /// Parses `0=20GiB,1=20GiB,cpu=64GiB` (sizes as `--gpu` sizes are typed
    /// elsewhere: `GB` is 10^9 bytes, as accelerate reads it, `GiB` 2^30).
    pub fn parse(text: &str) -> Result<MaxMemory, MaxMemoryError> {
        let err = |problem| MaxMemoryError {
            spec: text.to_string(),
            problem,
        };
        let mut budgets: Vec<(Device, u64)> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| err(MaxMemoryProblem::NotDeviceSize(item.to_string())))?;
            let device = match key.trim() {
                "cpu" => Device::Cpu,
                "disk" => Device::Disk,
                k => Device::Gpu(
                    k.parse()
                        .map_err(|_| err(MaxMemoryProblem::UnknownDevice(k.to_string())))?,
                ),
            };
            let bytes = parse_user_size(value).map_err(|e| err(MaxMemoryProblem::Size(e)))?;
            if budgets.iter().any(|(d, _)| *d == device) {
                return Err(err(MaxMemoryProblem::DeviceTwice(device)));
            }
            budgets.push((device, bytes));
        }
        if !budgets.iter().any(|(d, _)| matches!(d, Device::Gpu(_))) {
            return Err(err(MaxMemoryProblem::NoGpu));
        }
        budgets.sort_by_key(|(d, _)| *d);
        Ok(MaxMemory { budgets })
    }
}

/// A memory budget per device ([`MaxMemory::parse`]) that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxMemoryError {
    /// The whole text given.
    pub spec: String,
    /// What is wrong with it.
    pub problem: MaxMemoryProblem,
}

/// What is wrong with a [`MaxMemory`] text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MaxMemoryProblem {
    /// An item is not `DEVICE=SIZE`.
    NotDeviceSize(String),
    /// A device is not a GPU index, `cpu` or `disk`.
    UnknownDevice(String),
    /// A size could not be read (the error is the [`source`](std::error::Error::source)).
    Size(SizeError),
    /// A device is given twice.
    DeviceTwice(Device),
    /// No GPU is named.
    NoGpu,
}

impl MaxMemoryProblem {
    /// The problem in words, the same as [`MaxMemoryError`]'s text after
    /// the spec; a size error is given in full here.
    pub fn describe(&self) -> String {
        match self {
            MaxMemoryProblem::Size(e) => e.to_string(),
            p => p.words(),
        }
    }

    fn words(&self) -> String {
        match self {
            MaxMemoryProblem::NotDeviceSize(item) => {
                format!("{item:?} is not DEVICE=SIZE (e.g. 0=20GiB,cpu=64GiB)")
            }
            MaxMemoryProblem::UnknownDevice(k) => {
                format!("device {k:?} is not a GPU index, cpu or disk")
            }
            MaxMemoryProblem::Size(_) => "a size is not valid".to_string(),
            MaxMemoryProblem::DeviceTwice(d) => format!("device {} is given twice", d.as_str()),
            MaxMemoryProblem::NoGpu => "names no GPU (e.g. 0=20GiB,cpu=64GiB)".to_string(),
        }
    }
}

impl fmt::Display for MaxMemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory budget {:?}: {}", self.spec, self.problem.words())
    }
}

impl std::error::Error for MaxMemoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            MaxMemoryProblem::Size(e) => Some(e),
            _ => None,
        }
    }
}

/// What one device holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceShare {
    /// The device.
    pub device: Device,
    /// The budget the placement used (after balancing and the quantizers'
    /// 10%); null for the disk.
    pub max_memory_bytes: Option<u64>,
    /// Bytes of weights placed on it.
    pub weights_bytes: u64,
    /// The parts placed on it, consecutive layers written as a range.
    pub modules: Vec<String>,
}

/// A device map and what it means for the first GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceMap {
    /// Devices in placement order, only those that hold something.
    pub devices: Vec<DeviceShare>,
    /// What accelerate kept free on the first GPU for the largest part.
    pub reserved_bytes: u64,
    /// The largest part left on the CPU or the disk, which the first GPU
    /// holds while it runs (0 when nothing is offloaded).
    pub offload_transient_bytes: u64,
    /// Bytes of weights on the CPU and the disk.
    pub offloaded_bytes: u64,
}

/// One part no split may cross.
#[derive(Debug, Clone)]
struct Part {
    name: String,
    bytes: u64,
    /// Index of the layer, for ranges.
    layer: Option<u64>,
}

/// The model cut into parts, in module order, with their bytes at the
/// workload's dtype and quantization.
fn parts(s: &ModelShape, w: &Workload) -> Vec<Part> {
    let total = weights_bytes(s, w);
    // Embeddings and head stay in 16 bits under quantization (fp32 if the
    // model is fp32), as `weights_bytes` counts them.
    let elem = if w.quant.is_some() && w.dtype != Dtype::Fp32 {
        2
    } else {
        w.dtype.bytes()
    };
    let embed = s
        .vocab_size
        .saturating_mul(s.hidden_size)
        .saturating_mul(elem);
    let head = if s.tie_word_embeddings { 0 } else { embed };
    let norm = s.hidden_size.saturating_mul(elem);
    let layers = (s.layers + s.encoder_layers.unwrap_or(0)).max(1);
    let per_layer = total.saturating_sub(embed + head + norm) / layers;
    let mut out = vec![Part {
        name: "embeddings".into(),
        bytes: embed,
        layer: None,
    }];
    out.extend((0..layers).map(|i| Part {
        name: format!("layers.{i}"),
        bytes: per_layer,
        layer: Some(i),
    }));
    out.push(Part {
        name: "norm".into(),
        bytes: norm,
        layer: None,
    });
    if !s.tie_word_embeddings {
        out.push(Part {
            name: "lm_head".into(),
            bytes: head,
            layer: None,
        });
    }
    out
}

/// bitsandbytes' quantizers leave 10% of each budget free
/// (transformers `Bnb4BitHfQuantizer.adjust_max_memory`, and the 8-bit one).
fn bitsandbytes_share(q: Option<Quant>) -> f64 {
    match q {
        Some(Quant::Nf4) | Some(Quant::Int8) => 0.9,
        _ => 1.0,
    }
}

/// The budgets `device_map="auto"` places against: several GPUs are
/// balanced first (accelerate `get_balanced_memory`: the model over the GPU
/// count plus 1.25 times the largest layer, on every GPU but the last), and
/// a bitsandbytes model keeps 10% free; the user's figure is never exceeded.
fn effective_budgets(max: &MaxMemory, parts: &[Part], quant: Option<Quant>) -> Vec<(Device, u64)> {
    let gpus: Vec<usize> = (0..max.budgets.len())
        .filter(|&i| matches!(max.budgets[i].0, Device::Gpu(_)) && max.budgets[i].1 > 0)
        .collect();
    let mut out = max.budgets.clone();
    if gpus.len() > 1 {
        let total: u64 = parts.iter().map(|p| p.bytes).sum();
        let layer = parts
            .iter()
            .filter(|p| p.layer.is_some())
            .map(|p| p.bytes)
            .max()
            .unwrap_or(0);
        let per_gpu = total / gpus.len() as u64 + layer + layer / 4;
        for &i in &gpus[..gpus.len() - 1] {
            out[i].1 = out[i].1.min(per_gpu);
        }
    }
    let share = bitsandbytes_share(quant);
    for (_, b) in out.iter_mut() {
        *b = (*b as f64 * share) as u64;
    }
    out
}

/// Places the model as accelerate's `infer_auto_device_map` does.
pub fn infer_auto_device_map(s: &ModelShape, w: &Workload, max: &MaxMemory) -> DeviceMap {
    let parts = parts(s, w);
    let mut devices = effective_budgets(max, &parts, w.quant);
    if !devices.iter().any(|(d, _)| *d == Device::Disk) {
        devices.push((Device::Disk, u64::MAX));
    }
    let first_gpu = devices
        .iter()
        .find_map(|(d, _)| matches!(d, Device::Gpu(_)).then_some(*d));
    let is_main = |d: Device| Some(d) == first_gpu || d == Device::Cpu;
    let mut used = vec![0u64; devices.len()];
    let mut placed: Vec<Vec<&Part>> = vec![Vec::new(); devices.len()];
    let mut reserved_first = 0;
    let mut current = 0;
    let mut next = 0;
    // The largest part still to place and the parts of that size;
    // accelerate recomputes it over the parts after the current one once
    // every part of that size has been taken up.
    let largest_of = |from: usize| -> (u64, Vec<usize>) {
        let size = parts[from.min(parts.len())..]
            .iter()
            .map(|p| p.bytes)
            .max()
            .unwrap_or(0);
        let names = (from..parts.len())
            .filter(|&i| parts[i].bytes == size)
            .collect();
        (size, names)
    };
    let (mut largest, mut largest_names) = largest_of(0);
    while next < parts.len() {
        let part = &parts[next];
        largest_names.retain(|&i| i != next);
        if largest_names.is_empty() {
            (largest, largest_names) = largest_of(next + 1);
        }
        let (device, budget) = devices[current];
        let (cap, reserve) = if device == Device::Disk {
            (u64::MAX, 0)
        } else if is_main(device) {
            (budget.saturating_sub(largest), largest)
        } else {
            (budget, 0)
        };
        if used[current].saturating_add(part.bytes) <= cap || current + 1 == devices.len() {
            used[current] += part.bytes;
            placed[current].push(part);
            next += 1;
            continue;
        }
        if Some(device) == first_gpu {
            reserved_first = reserve;
        }
        current += 1;
    }
    if reserved_first == 0 {
        // Everything fit: the reserve was the largest part of the whole model.
        reserved_first = parts.iter().map(|p| p.bytes).max().unwrap_or(0);
    }
    let offloaded: Vec<&Part> = devices
        .iter()
        .zip(&placed)
        .filter(|((d, _), _)| matches!(d, Device::Cpu | Device::Disk))
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    DeviceMap {
        devices: devices
            .iter()
            .zip(&placed)
            .zip(&used)
            .filter(|((_, p), _)| !p.is_empty())
            .map(|(((d, b), p), u)| DeviceShare {
                device: *d,
                max_memory_bytes: (*d != Device::Disk).then_some(*b),
                weights_bytes: *u,
                modules: ranges(p),
            })
            .collect(),
        reserved_bytes: reserved_first,
        offload_transient_bytes: offloaded.iter().map(|p| p.bytes).max().unwrap_or(0),
        offloaded_bytes: offloaded.iter().map(|p| p.bytes).sum(),
    }
}

/// Part names with consecutive layers folded: `layers.0-27`.
fn ranges(parts: &[&Part]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(u64, u64)> = None;
    let flush = |run: &mut Option<(u64, u64)>, out: &mut Vec<String>| {
        if let Some((a, b)) = run.take() {
            out.push(if a == b {
                format!("layers.{a}")
            } else {
                format!("layers.{a}-{b}")
            });
        }
    };
    for p in parts {
        match (p.layer, run) {
            (Some(i), Some((a, b))) if i == b + 1 => run = Some((a, i)),
            (Some(i), _) => {
                flush(&mut run, &mut out);
                run = Some((i, i));
            }
            (None, _) => {
                flush(&mut run, &mut out);
                out.push(p.name.clone());
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The first GPU's breakdown under a device map: its share of the weights,
/// and the largest offloaded part as a temporary copied in and freed at
/// every forward pass (churn for the caching allocator).
pub fn with_device_map(b: MemoryBreakdown, map: &DeviceMap) -> MemoryBreakdown {
    let own = map
        .devices
        .iter()
        .find(|d| matches!(d.device, Device::Gpu(_)))
        .map_or(0, |d| d.weights_bytes);
    let temporary = b
        .temporary_bytes
        .saturating_add(map.offload_transient_bytes);
    let allocated = b
        .allocated_peak_bytes
        .saturating_sub(b.weights_bytes)
        .saturating_add(own)
        .saturating_add(map.offload_transient_bytes);
    let churn = b
        .activations_bytes
        .saturating_add(temporary)
        .saturating_add(b.kv_cache_bytes);
    let reserved = allocator::reserved_peak(allocated, churn);
    MemoryBreakdown {
        weights_bytes: own,
        temporary_bytes: temporary,
        allocated_peak_bytes: allocated,
        reserved_peak_bytes: reserved,
        device_used_bytes: reserved.saturating_add(b.cuda_context_bytes),
        ..b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::WorkloadRequest;
    use crate::model::catalog;

    fn map(model: &str, spec: &str, quant: Option<Quant>) -> DeviceMap {
        let s = catalog::shape(model).unwrap();
        let req = WorkloadRequest {
            quant,
            ..WorkloadRequest::default()
        };
        let w = Workload::resolve(&req, &s).unwrap();
        infer_auto_device_map(&s, &w, &MaxMemory::parse(spec).unwrap())
    }

    #[test]
    fn parses_accelerates_spelling_and_refuses_the_rest() {
        let m = MaxMemory::parse("cpu=64GiB, 0=20GiB,1=10GB").unwrap();
        assert_eq!(
            m.budgets,
            vec![
                (Device::Gpu(0), 20 << 30),
                (Device::Gpu(1), 10_000_000_000),
                (Device::Cpu, 64 << 30)
            ]
        );
        for bad in [
            "",
            "cpu=64GiB",
            "0:20GiB",
            "gpu0=1GiB",
            "0=lots",
            "0=1GiB,0=2GiB",
        ] {
            let e = MaxMemory::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("--"), "{e}");
        }
        let e = MaxMemory::parse("0=lots").unwrap_err();
        let source = std::error::Error::source(&e).expect("the size error is kept");
        assert!(source.to_string().contains("lots"), "{source}");
    }

    #[test]
    fn a_model_that_fits_stays_whole_on_the_gpu() {
        // Llama-3.1-8B in bf16 is 14.96 GiB; 20 GiB leave room for the
        // reserve of its 0.98 GiB embedding.
        let m = map("Llama-3.1-8B", "0=20GiB,cpu=64GiB", None);
        assert_eq!(m.devices.len(), 1);
        assert_eq!(
            m.devices[0].modules,
            ["embeddings", "layers.0-31", "norm", "lm_head"]
        );
        assert_eq!(m.offloaded_bytes, 0);
    }

    #[test]
    fn the_layers_that_do_not_fit_go_to_the_cpu_then_the_disk() {
        let m = map("Llama-3.1-8B", "0=8GiB,cpu=4GiB", None);
        let names: Vec<String> = m.devices.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["0", "cpu", "disk"]);
        let gpu = &m.devices[0];
        // The GPU keeps the embeddings' size free as accelerate does.
        assert!(gpu.weights_bytes + m.reserved_bytes <= 8 << 30);
        assert!(gpu.weights_bytes + m.reserved_bytes + (436 << 20) > 8 << 30);
        assert_eq!(gpu.modules[0], "embeddings");
        assert!(m.devices[2].modules.contains(&"lm_head".to_string()));
        let s = catalog::shape("Llama-3.1-8B").unwrap();
        let w = Workload::resolve(&WorkloadRequest::default(), &s).unwrap();
        let whole = crate::estimate::estimate(&s, &w);
        let mapped = with_device_map(whole, &m);
        assert_eq!(mapped.weights_bytes, gpu.weights_bytes);
        assert_eq!(
            mapped.temporary_bytes,
            whole.temporary_bytes + m.offload_transient_bytes
        );
        assert!(mapped.device_used_bytes < whole.device_used_bytes);
    }

    #[test]
    fn several_gpus_are_balanced_and_bitsandbytes_keeps_ten_percent() {
        let m = map("Llama-3.1-8B", "0=40GiB,1=40GiB", None);
        assert_eq!(m.devices.len(), 2);
        let (a, b) = (m.devices[0].weights_bytes, m.devices[1].weights_bytes);
        assert!(a.abs_diff(b) < 3 << 30, "{a} {b}");
        let q = map("Llama-3.1-8B", "0=4GiB,cpu=64GiB", Some(Quant::Nf4));
        assert_eq!(q.devices[0].max_memory_bytes, Some((4u64 << 30) * 9 / 10));
    }
}
