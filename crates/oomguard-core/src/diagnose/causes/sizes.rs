//! Size sanity: requests no device or host could serve are sizes computed
//! wrong (an overflow, a negative size, a wrong dimension), not a shortage.

use super::{CauseId, Ranking};
use crate::oom::{DeviceKind, OomEvent};
use crate::size::format_size as fs;

/// A request this large (1 PiB) exceeds any single device or host.
const ABSURD_BYTES: u64 = 1 << 50;
/// No GPU holds a terabyte (the largest, MI325X and B300, hold 256 and
/// 288 GB): a device request this large is a size computed wrong.
const DEVICE_INVALID_BYTES: u64 = 1 << 40;
/// A single host allocation this large (64 GiB) exceeds most machines' RAM
/// and is more often a size computed wrong than a real need.
pub(super) const HOST_SUSPECT_BYTES: u64 = 64 << 30;
/// Up to this many times the device, a request is a real (too large) batch;
/// beyond it, a shape gone wrong is likelier. The largest single tensors of
/// a step grow with the square of its length (attention scores over a
/// sequence, a feature map over an image's side): an input four times too
/// long asks for sixteen times the memory. Reports of 5-7x requests were
/// settled by a shorter input or a smaller tile (an unbounded sentence, a
/// super-resolution chop size, a simulation grid).
const PLAUSIBLE_DEVICE_MULTIPLE: f64 = 16.0;

/// The message's own guard (PyTorch prints `1EB` and more for a negative
/// or overflowed size), or a stated request of a petabyte or more.
pub(super) fn absurd_request(r: &mut Ranking, event: &OomEvent) {
    if event.facts.absurd_request {
        r.add(
            CauseId::InvalidSize,
            0.95,
            "the size asked for is negative or over 1 EB: a size computed upstream overflowed, not a capacity problem",
        );
        return;
    }
    if let Some(q) = event.memory.requested_bytes.filter(|&q| q >= ABSURD_BYTES) {
        r.add(
            CauseId::InvalidSize,
            0.95,
            format!("the request of {} is larger than any device or host: a size computed wrong (overflow, corrupted shape)", fs(q)),
        );
    }
}

/// One device allocation of a terabyte or more (below the absurd bound).
pub(super) fn device_request_invalid(r: &mut Ranking, event: &OomEvent) {
    if event.device.kind == DeviceKind::Cpu {
        return;
    }
    if let Some(q) = event
        .memory
        .requested_bytes
        .filter(|q| (DEVICE_INVALID_BYTES..ABSURD_BYTES).contains(q))
    {
        r.add(
            CauseId::InvalidSize,
            0.9,
            format!("one device allocation of {} is more than any GPU holds: a size computed wrong (an overflowed shape, a wrong dimension)", fs(q)),
        );
    }
}

/// One host allocation larger than most machines' RAM. A numpy array's
/// shape is the one the program asked for: real data sets that large are as
/// common as wrong shapes, so the size only comes second to host memory.
/// A size an inference engine computed from the model (its pre-load check,
/// a ggml buffer for the weights or the context) is a real need, never a
/// shape gone wrong.
pub(super) fn host_request_suspect(r: &mut Ranking, event: &OomEvent) {
    if super::host::sized_by_the_engine(event) {
        return;
    }
    if let Some(q) = event
        .memory
        .requested_bytes
        .filter(|&q| q >= HOST_SUSPECT_BYTES)
    {
        let asked = event.message.contains(super::host::NUMPY_ARRAY);
        r.add(
            CauseId::InvalidSize,
            if asked { 0.6 } else { 0.9 },
            format!("one host allocation of {} is more than most machines' RAM: check the size the failing op computed (an overflowed shape, a huge kernel or stride)", fs(q)),
        );
    }
}

/// A device whose memory the driver reports as 0 bytes in total: the
/// query behind the figure failed (cudaMemGetInfo returns zeros when the
/// context could not be created), so the device or its driver is not
/// working, and no request of any size would be served. A real device
/// always reports its capacity. Returns true when it applied (the other
/// figure rules then stay silent: every comparison with a zero total is
/// meaningless).
pub(super) fn device_reports_no_memory(r: &mut Ranking, event: &OomEvent) -> bool {
    if event.memory.total_bytes != Some(0) || event.device.kind == DeviceKind::Cpu {
        return false;
    }
    r.add_checked(
        CauseId::NotMemory,
        0.9,
        "the driver reports 0 bytes in total for the device: it could not read the device's memory at all, so the device or the driver failed to initialise (a driver older than the CUDA runtime, a GPU in a bad state), not a lack of memory",
        Some("run nvidia-smi: if it errors or lists no memory for the GPU, reload or reinstall the driver; then compare the driver's CUDA version with the one the framework was built for"),
    );
    true
}

/// A single request larger than the whole device can never fit: a batch a
/// few times too large, or, far beyond the device, a shape gone wrong.
/// Returns true when it applied (the other figure rules then stay silent).
pub(super) fn request_exceeds_device(r: &mut Ranking, event: &OomEvent) -> bool {
    let (Some(q), Some(t)) = (event.memory.requested_bytes, event.memory.total_bytes) else {
        return false;
    };
    // A total of 0 is no device size to compare with (see above).
    if q <= t || t == 0 || event.facts.absurd_request {
        return false;
    }
    let ratio = q as f64 / t as f64;
    let ev = format!(
        "one request of {} is {:.1}x the device's {}: it can never fit",
        fs(q),
        ratio,
        fs(t)
    );
    if ratio <= PLAUSIBLE_DEVICE_MULTIPLE {
        r.add(CauseId::BatchTooLarge, 0.85, ev.clone());
        r.add(
            CauseId::InvalidSize,
            0.5,
            format!("{ev}; check the tensor's shape"),
        );
    } else {
        r.add(CauseId::InvalidSize, 0.85, format!("{ev}; a shape this far off is usually a bug (wrong dimension, unbounded sequence or image size)"));
        r.add(CauseId::BatchTooLarge, 0.5, ev);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn a_device_with_no_memory_at_all_is_a_broken_device_not_a_shortage() {
        let mut r = Ranking::new();
        let mut e = pytorch(0, 24, 0);
        assert!(device_reports_no_memory(&mut r, &e));
        assert_eq!(r.top(), Some(CauseId::NotMemory));
        let mut r = Ranking::new();
        e.memory.total_bytes = Some(GIB);
        assert!(!device_reports_no_memory(&mut r, &e));
        assert_eq!(r.top(), None);
    }

    #[test]
    fn the_printed_guard_and_a_petabyte_request_are_invalid_sizes() {
        let mut r = Ranking::new();
        let mut e = pytorch(24 * GIB, 1 << 60, GIB);
        e.facts.absurd_request = true;
        absurd_request(&mut r, &e);
        assert_eq!(r.score(CauseId::InvalidSize), Some(0.95));
        let mut r = Ranking::new();
        absurd_request(&mut r, &pytorch(24 * GIB, ABSURD_BYTES, GIB));
        assert_eq!(r.score(CauseId::InvalidSize), Some(0.95));
        let mut r = Ranking::new();
        absurd_request(&mut r, &pytorch(24 * GIB, 2 * GIB, GIB));
        assert!(r.0.is_empty());
    }

    #[test]
    fn a_terabyte_on_a_gpu_is_invalid_but_not_on_the_host() {
        let mut r = Ranking::new();
        device_request_invalid(&mut r, &pytorch(80 * GIB, 2 << 40, GIB));
        assert_eq!(r.score(CauseId::InvalidSize), Some(0.9));
        let mut r = Ranking::new();
        let mut cpu = pytorch(80 * GIB, 2 << 40, GIB);
        cpu.device.kind = DeviceKind::Cpu;
        device_request_invalid(&mut r, &cpu);
        assert!(r.0.is_empty());
    }

    #[test]
    fn a_host_request_beyond_most_ram_is_suspect() {
        let mut r = Ranking::new();
        host_request_suspect(&mut r, &pytorch(0, 100 * GIB, 0));
        assert_eq!(r.score(CauseId::InvalidSize), Some(0.9));
        let mut r = Ranking::new();
        host_request_suspect(&mut r, &pytorch(0, 8 * GIB, 0));
        assert!(r.0.is_empty());
    }

    #[test]
    fn a_request_beyond_the_device_is_the_batch_near_it_and_a_bug_far_beyond() {
        let mut r = Ranking::new();
        assert!(request_exceeds_device(
            &mut r,
            &pytorch(24 * GIB, 30 * GIB, GIB)
        ));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        // An input a few times too long: its attention asks the square.
        let mut r = Ranking::new();
        assert!(request_exceeds_device(
            &mut r,
            &pytorch(24 * GIB, 128 * GIB, GIB)
        ));
        assert_eq!(r.top(), Some(CauseId::BatchTooLarge));
        let mut r = Ranking::new();
        assert!(request_exceeds_device(
            &mut r,
            &pytorch(24 * GIB, 500 * GIB, GIB)
        ));
        assert_eq!(r.top(), Some(CauseId::InvalidSize));
        let mut r = Ranking::new();
        assert!(!request_exceeds_device(
            &mut r,
            &pytorch(24 * GIB, 2 * GIB, GIB)
        ));
        assert!(r.0.is_empty());
    }
}
