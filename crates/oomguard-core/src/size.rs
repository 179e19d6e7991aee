//! Byte sizes: parsing the figures frameworks print ("512.00 MiB", "17.79G",
//! "1.45 GB"), parsing the sizes users type ("24GB", "80g"), and printing sizes
//! the way PyTorch does.
//!
//! Two parsers exist because the same unit means different things in the two
//! places. In logs, PyTorch's MPS backend, TensorFlow and DeepSpeed print "GB"
//! for 2^30 bytes, so [`parse_log_size`] reads every unit as binary. On the
//! command line docs/reference.md says `24GB` is SI (10^9) and `80g` is binary, so
//! [`parse_user_size`] follows that.

#![deny(missing_docs)]

use std::fmt;

/// Errors from [`parse_user_size`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid size {:?}: {}", self.input, self.reason)
    }
}

impl std::error::Error for SizeError {}

const KIB: f64 = 1024.0;

/// Multiplier of a unit as it appears in logs: binary whatever the spelling.
fn log_unit_multiplier(unit: &str) -> Option<f64> {
    let u = unit.trim().to_ascii_lowercase();
    let m = match u.as_str() {
        "" | "b" | "byte" | "bytes" => 1.0,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => KIB * KIB,
        "g" | "gb" | "gib" => KIB * KIB * KIB,
        "t" | "tb" | "tib" => KIB * KIB * KIB * KIB,
        "p" | "pb" | "pib" => KIB.powi(5),
        "e" | "eb" | "eib" => KIB.powi(6),
        _ => return None,
    };
    Some(m)
}

/// Converts a printed figure and its unit, as found in a log, into bytes.
///
/// Frameworks print two decimals, so the result is the nearest byte to the
/// printed value, not the exact original size. Returns `None` for an unknown
/// unit or a value that is not a finite, non-negative number.
pub fn log_figure_to_bytes(value: &str, unit: &str) -> Option<u64> {
    let v: f64 = value.trim().parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let bytes = (v * log_unit_multiplier(unit)?).round();
    if bytes >= u64::MAX as f64 {
        return None;
    }
    Some(bytes as u64)
}

/// Parses a size as printed in a log ("512.00 MiB", "17.79G", "0 bytes").
pub fn parse_log_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return None;
    }
    log_figure_to_bytes(num, unit)
}

/// Parses a size a user typed: plain bytes, `24GB` (SI: 10^9), `24GiB`,
/// `24576MiB`, `80g` or `80G` (a bare letter is binary, as in `free -g`).
pub fn parse_user_size(text: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError {
        input: text.to_string(),
        reason,
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(err("it is empty"));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num = num.replace('_', "");
    if num.is_empty() {
        return Err(err("it does not start with a number"));
    }
    let v: f64 = num.parse().map_err(|_| err("the number is malformed"))?;
    let unit = unit.trim();
    let si = |p: i32| 1000f64.powi(p);
    let bin = |p: i32| KIB.powi(p);
    let mult = match unit {
        "" | "b" | "B" => 1.0,
        "KB" | "kB" | "kb" => si(1),
        "MB" | "mb" => si(2),
        "GB" | "gb" => si(3),
        "TB" | "tb" => si(4),
        "k" | "K" | "KiB" | "kib" | "Ki" => bin(1),
        "m" | "M" | "MiB" | "mib" | "Mi" => bin(2),
        "g" | "G" | "GiB" | "gib" | "Gi" => bin(3),
        "t" | "T" | "TiB" | "tib" | "Ti" => bin(4),
        _ => {
            return Err(err(
                "unknown unit (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB, k, m, g, t)",
            ))
        }
    };
    let bytes = (v * mult).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(err("it is too large"));
    }
    if unit.is_empty() && num.contains('.') {
        return Err(err("a byte count must be a whole number"));
    }
    Ok(bytes as u64)
}

/// Parses a GPU's memory as people write it: a card sold as "24GB" or
/// "80GB" is counted in binary units by its vendor and by PyTorch (an RTX
/// 4090 "24GB" reports 24564 MiB, an H100 "80GB" 81559 MiB), so here `GB`,
/// `MB` and `TB` are binary, unlike `parse_user_size`. Everything else reads
/// as there.
pub fn parse_gpu_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let binary = ["TB", "tb", "GB", "gb", "MB", "mb"]
        .iter()
        .find_map(|u| t.strip_suffix(u).map(|num| (num, &u[..1])));
    match binary {
        Some((num, unit)) => parse_user_size(&format!("{num}{unit}")).map_err(|e| SizeError {
            input: text.to_string(),
            reason: e.reason,
        }),
        None => parse_user_size(t),
    }
}

/// Formats a size exactly as PyTorch's `c10::format_size` does: "N bytes" up
/// to 1 KiB, then two decimals of KiB, MiB or GiB (source:
/// c10/util/... `format_size` used in CUDACachingAllocator.cpp).
pub fn format_size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes <= 1024 {
        format!("{bytes} bytes")
    } else if bytes <= 1_048_576 {
        format!("{:.2} KiB", b / KIB)
    } else if bytes <= 1_073_741_824 {
        format!("{:.2} MiB", b / (KIB * KIB))
    } else {
        format!("{:.2} GiB", b / (KIB * KIB * KIB))
    }
}

/// Formats a signed difference of sizes, e.g. "-256.00 MiB".
pub fn format_signed_size(bytes: i128) -> String {
    let mag = bytes.unsigned_abs().min(u64::MAX as u128) as u64;
    if bytes < 0 {
        format!("-{}", format_size(mag))
    } else {
        format_size(mag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_sizes_in_gb_are_the_vendors_binary_gigabytes() {
        assert_eq!(parse_gpu_size("24GB").unwrap(), 24 << 30);
        assert_eq!(parse_gpu_size("80 GB").unwrap(), 80 << 30);
        assert_eq!(parse_gpu_size("24GiB").unwrap(), 24 << 30);
        assert_eq!(parse_gpu_size("24576MB").unwrap(), 24 << 30);
        // Elsewhere GB stays SI.
        assert_eq!(parse_user_size("24GB").unwrap(), 24_000_000_000);
        assert!(parse_gpu_size("GB").is_err());
    }

    #[test]
    fn log_sizes_are_binary() {
        assert_eq!(parse_log_size("512.00 MiB"), Some(536_870_912));
        assert_eq!(parse_log_size("7.92 GiB"), Some(8_504_035_246));
        assert_eq!(parse_log_size("1.45 GB"), Some(1_556_925_645));
        assert_eq!(parse_log_size("17.79G"), Some(19_101_867_049));
        assert_eq!(parse_log_size("0 bytes"), Some(0));
        assert_eq!(parse_log_size("179.00 KiB"), Some(183_296));
        assert_eq!(parse_log_size("MiB"), None);
        assert_eq!(parse_log_size("3 parsecs"), None);
    }

    #[test]
    fn user_sizes_follow_spec() {
        assert_eq!(parse_user_size("24GB"), Ok(24_000_000_000));
        assert_eq!(parse_user_size("24GiB"), Ok(24 * (1 << 30)));
        assert_eq!(parse_user_size("24576MiB"), Ok(24 * (1 << 30)));
        assert_eq!(parse_user_size("80g"), Ok(80 * (1 << 30)));
        assert_eq!(parse_user_size("1024"), Ok(1024));
        assert!(parse_user_size("").is_err());
        assert!(parse_user_size("GB").is_err());
        assert!(parse_user_size("12 furlongs").is_err());
        assert!(parse_user_size("1e400GB").is_err());
        assert!(parse_user_size("1.5").is_err());
    }

    #[test]
    fn formats_like_pytorch() {
        assert_eq!(format_size(0), "0 bytes");
        assert_eq!(format_size(1024), "1024 bytes");
        assert_eq!(format_size(1025), "1.00 KiB");
        assert_eq!(format_size(536_870_912), "512.00 MiB");
        assert_eq!(format_size(1 << 30), "1024.00 MiB");
        assert_eq!(format_size(11_993_432_883), "11.17 GiB");
        assert_eq!(format_signed_size(-(1 << 28)), "-256.00 MiB");
    }
}
