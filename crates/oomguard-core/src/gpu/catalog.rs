//! The built-in GPU catalog (`data/gpus.json`): each device's memory as
//! `nvidia-smi` (or `rocm-smi`) reports it, with the source of the figure, so
//! `--gpu rtx-4090` means the 24564 MiB the driver gives, not the 24 GB on
//! the box.

use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Where a card is sold: people move up within their class first (a gaming
/// card's owner to a larger gaming or workstation card, a cloud renter to a
/// larger data-center card).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuClass {
    /// A gaming card.
    Consumer,
    /// A workstation card.
    Workstation,
    /// A data-center card.
    Datacenter,
}

impl GpuClass {
    /// The class's id, as JSON prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            GpuClass::Consumer => "consumer",
            GpuClass::Workstation => "workstation",
            GpuClass::Datacenter => "datacenter",
        }
    }
}

/// One GPU as `data/gpus.json` writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GpuSpec {
    /// Stable id (`rtx-3080`).
    pub id: String,
    /// The name as the vendor writes it.
    pub name: String,
    /// Other names users type for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The vendor (`nvidia`, `amd`, ...).
    pub vendor: String,
    /// Total memory in bytes (see `memory_source`).
    pub memory_bytes: u64,
    /// Where `memory_bytes` comes from (a driver's report, a datasheet).
    pub memory_source: String,
    /// True when it computes in bfloat16.
    #[serde(default)]
    pub bf16: bool,
    /// True when it computes in FP8.
    #[serde(default)]
    pub fp8: bool,
    /// The architecture (`Ampere`, `Hopper`, ...), when known.
    #[serde(default)]
    pub architecture: Option<String>,
    /// Which class of user buys it.
    pub class: GpuClass,
    /// Total memory as CUDA reports it to the process
    /// (`torch.cuda.mem_get_info`, what vLLM multiplies by
    /// `--gpu-memory-utilization`), when a log gives it: a few hundred MiB
    /// less than `nvidia-smi`'s total.
    #[serde(default)]
    pub cuda_total_bytes: Option<u64>,
    /// Where `cuda_total_bytes` comes from.
    #[serde(default)]
    pub cuda_total_source: Option<String>,
}

static GPUS: LazyLock<Vec<GpuSpec>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../data/gpus.json"))
        .expect("data/gpus.json is valid (checked by tests)")
});

/// Every catalog GPU, in file order.
pub fn gpus() -> &'static [GpuSpec] {
    &GPUS
}

fn simplify(s: &str) -> String {
    s.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// Finds a GPU by id, nvidia-smi name or alias, ignoring case, spaces and
/// dashes (`a100-80gb`, `A100 80GB`, `NVIDIA A100-SXM4-80GB`).
pub fn find(name: &str) -> Option<&'static GpuSpec> {
    let n = simplify(name);
    let n_plain = n.strip_prefix("nvidia").unwrap_or(&n).to_string();
    GPUS.iter().find(|g| {
        let candidates = std::iter::once(&g.id)
            .chain(std::iter::once(&g.name))
            .chain(g.aliases.iter());
        candidates
            .map(|c| simplify(c))
            .any(|c| c == n || c == n_plain || c.strip_prefix("nvidia") == Some(n_plain.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_has_sourced_sizes() {
        assert!(gpus().len() >= 30);
        for g in gpus() {
            assert!(g.memory_bytes >= 4 << 30, "{}", g.id);
            assert!(!g.memory_source.is_empty(), "{}", g.id);
        }
    }

    #[test]
    fn rented_cards_are_there() {
        for id in [
            "a40", "l4", "l40s", "a10g", "h200", "b200", "mi300x", "rtx-4090", "rtx-3090",
        ] {
            assert!(find(id).is_some(), "{id}");
        }
        assert_eq!(find("a40").unwrap().memory_bytes, 46068 << 20);
        assert_eq!(find("rtx-4090").unwrap().class, GpuClass::Consumer);
    }

    #[test]
    fn names_resolve_in_any_spelling() {
        assert_eq!(find("rtx-4090").unwrap().memory_bytes, 24564 << 20);
        assert_eq!(find("V100-16GB").unwrap().id, "v100-16gb");
        assert_eq!(find("a100-80gb").unwrap().id, "a100-80gb");
        assert!(find("voodoo-2").is_none());
    }
}
