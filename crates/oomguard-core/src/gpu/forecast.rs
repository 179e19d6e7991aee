//! When will a GPU be full? A least-squares line through its recent used
//! memory; when the line rises, the time until it reaches the total.

/// Seconds until `total` is reached, from `(time, used)` points, when usage
/// is rising; `None` when flat or falling, or with fewer than 3 points.
pub fn seconds_until_full(points: &[(f64, u64)], total: u64) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_u = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for &(t, u) in points {
        num += (t - mean_t) * (u as f64 - mean_u);
        den += (t - mean_t) * (t - mean_t);
    }
    if den <= 0.0 {
        return None;
    }
    let slope = num / den; // bytes per second
                           // Below one MiB a minute is noise, not a trend.
    if slope < (1u64 << 20) as f64 / 60.0 {
        return None;
    }
    let (last_t, _) = points[points.len() - 1];
    let fitted_now = mean_u + slope * (last_t - mean_t);
    let remaining = total as f64 - fitted_now;
    Some((remaining / slope).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rising_usage_gives_a_time_and_flat_usage_none() {
        let gib = 1u64 << 30;
        // 1 GiB per 10 s, at 14 GiB by the last point, on a 20 GiB card:
        // 6 GiB to go, full in 60 s.
        let rising: Vec<(f64, u64)> = (0..5)
            .map(|i| (i as f64 * 10.0, 10 * gib + i * gib))
            .collect();
        let eta = seconds_until_full(&rising, 20 * gib).unwrap();
        assert!((eta - 60.0).abs() < 1e-6, "{eta}");
        let flat: Vec<(f64, u64)> = (0..5).map(|i| (i as f64, 10 * gib)).collect();
        assert_eq!(seconds_until_full(&flat, 20 * gib), None);
        assert_eq!(seconds_until_full(&rising[..2], 20 * gib), None);
    }
}
