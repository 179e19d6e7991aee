//! Properties of the OOM scanner over generated inputs: it never panics, its
//! result does not depend on how the input is chunked or how the reader
//! splits its reads, and a real message placed anywhere among ordinary lines
//! is found once, at its line, with its figures.

use oomguard_core::oom::{scan_reader, OomEvent, ScanOptions, ScanSummary};
use proptest::prelude::*;
use std::io::{self, Read};

const PT2: &str = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated memory 20.12 GiB is allocated by PyTorch, and 1.95 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)";

/// A reader that hands out its bytes in reads of the given sizes, cycling.
struct Choppy<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    i: usize,
}

impl Read for Choppy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() {
            return Ok(0);
        }
        let want = self.sizes[self.i % self.sizes.len()].max(1);
        self.i += 1;
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn try_scan(
    data: &[u8],
    chunk: usize,
    sizes: Vec<usize>,
) -> Result<(Vec<OomEvent>, ScanSummary), String> {
    let options = ScanOptions {
        chunk_bytes: chunk,
        ..ScanOptions::default()
    };
    let mut events = Vec::new();
    let reader = Choppy { data, sizes, i: 0 };
    let summary = scan_reader("-", reader, &options, |e| events.push(e))
        .map_err(|e| format!("{e}: {}", e.io_error()))?;
    Ok((events, summary))
}

fn scan(data: &[u8], chunk: usize, sizes: Vec<usize>) -> (Vec<OomEvent>, ScanSummary) {
    try_scan(data, chunk, sizes).expect("in-memory read")
}

/// Fragments that real logs and OOM messages are made of, so that random
/// sequences of them reach deep into the parsers.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("out of memory".to_string()),
        Just("CUDA out of memory. ".to_string()),
        Just("Tried to allocate ".to_string()),
        Just("RESOURCE_EXHAUSTED: ".to_string()),
        Just("OOM when allocating tensor with shape[".to_string()),
        Just("] and type float on /device:GPU:".to_string()),
        Just("Failed to allocate ".to_string()),
        Just("failed to allocate CUDA0 buffer of size ".to_string()),
        Just("KV cache is needed".to_string()),
        Just("max seq len (".to_string()),
        Just("Process ".to_string()),
        Just(" has ".to_string()),
        Just(" memory in use. ".to_string()),
        Just("GPU 0 has a total capacity of ".to_string()),
        Just(" GiB".to_string()),
        Just(" MiB".to_string()),
        Just(" bytes".to_string()),
        Just("(GPU 1; ".to_string()),
        Just("; ".to_string()),
        Just(")".to_string()),
        Just("(".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\x1b[31m".to_string()),
        Just("Traceback (most recent call last):\n".to_string()),
        Just("  File \"train.py\", line 3, in forward\n".to_string()),
        Just("[rank1]: ".to_string()),
        (0u64..u64::MAX).prop_map(|n| n.to_string()),
        (0u32..100_000, 0u32..100).prop_map(|(a, b)| format!("{a}.{b:02}")),
        "[a-zA-Z ]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_lines_are_counted(data in proptest::collection::vec(any::<u8>(), 0..20_000), chunk in 1usize..5000) {
        let (_, summary) = match try_scan(&data, chunk, vec![chunk]) {
            Ok(result) => result,
            // Bytes that start like gzip but are not: a clear error, no panic.
            Err(e) if data.starts_with(&[0x1f, 0x8b]) => {
                prop_assert!(e.contains("gzip"), "{}", e);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(e)),
        };
        let newlines = data.iter().filter(|&&b| b == b'\n').count() as u64;
        let partial = u64::from(!data.is_empty() && !data.ends_with(b"\n"));
        prop_assert_eq!(summary.lines, newlines + partial);
        prop_assert_eq!(summary.bytes, data.len() as u64);
    }

    #[test]
    fn log_like_text_never_panics_and_chunking_does_not_matter(
        tokens in proptest::collection::vec(token(), 0..300),
        chunk in 1usize..3000,
        sizes in proptest::collection::vec(1usize..700, 1..5),
    ) {
        let text = tokens.concat();
        let (whole, _) = scan(text.as_bytes(), 1 << 20, vec![1 << 20]);
        let (chopped, _) = scan(text.as_bytes(), chunk, sizes);
        prop_assert_eq!(whole, chopped);
    }

    #[test]
    fn a_message_among_ordinary_lines_is_found_once_at_its_line(
        before in 0usize..3000,
        after in 0usize..200,
        chunk in 512usize..70_000,
    ) {
        let mut log = String::new();
        for i in 0..before {
            log.push_str(&format!("2024-03-11 14:02:17,481 INFO step {i} loss=1.87 tok/s=41230\n"));
        }
        log.push_str(PT2);
        log.push('\n');
        for i in 0..after {
            log.push_str(&format!("{i:3}%|#####     | {i}/100 [00:01<00:02]\n"));
        }
        let (events, _) = scan(log.as_bytes(), chunk, vec![chunk]);
        prop_assert_eq!(events.len(), 1);
        prop_assert_eq!(events[0].line, before as u64 + 1);
        prop_assert_eq!(events[0].memory.requested_bytes, Some(2 << 30));
        prop_assert_eq!(events[0].memory.process_bytes, Some(24_245_090_386));
    }
}

#[test]
fn a_broken_gzip_stream_is_a_clear_error() {
    let e = try_scan(&[0x1f, 0x8b, 0, 1, 2, 3], 1 << 20, vec![1 << 20]).unwrap_err();
    assert!(e.contains("gzip"), "{e}");
}

#[test]
fn a_long_line_is_cut_not_held() {
    // 8 MiB without a newline around a message: one event, bounded work.
    let mut data = vec![b'x'; 4 << 20];
    data.extend_from_slice(format!(" {PT2} ").as_bytes());
    data.extend(std::iter::repeat_n(b'y', 4 << 20));
    let (events, summary) = scan(&data, 1 << 20, vec![1 << 16]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].line, 1);
    assert_eq!(summary.lines, 1);
    assert!(events[0].message.len() <= 4100, "message is bounded");
}
