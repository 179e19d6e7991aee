//! Turning raw log bytes into clean lines: invalid UTF-8 replaced, ANSI colour
//! codes and carriage returns removed, log prefixes (timestamps, log levels,
//! `[rank3]:`, `(EngineCore pid=12)`, `service  |`) taken off, and lines a
//! terminal wrapped joined back into one message.
//!
//! Nothing here decides whether a line is an OOM; that is the family parsers'
//! job. These functions run only around a trigger, never over a whole log.

use regex::{Regex, RegexSet};
use std::sync::LazyLock;

/// Decodes one raw line: lossy UTF-8, ANSI escapes removed, `\r` handled as a
/// terminal would (text after the last carriage return wins, as progress bars
/// redraw the line), the line end dropped.
pub fn clean_line(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    // Most lines have no escape and no carriage return: valid UTF-8 is then
    // the line itself, with no character-by-character rebuild.
    if memchr::memchr2(0x1b, b'\r', raw).is_none() {
        if let Ok(text) = std::str::from_utf8(raw) {
            return without_collector_timestamp(text).to_string();
        }
    }
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            '\r' => {
                // A bare carriage return redraws the line; keep what follows
                // unless nothing does.
                if chars.peek().is_some() {
                    out.clear();
                }
            }
            _ => out.push(c),
        }
    }
    // Trailing white space is kept: where a terminal wrapped a line, the
    // space at its end is the one between two words.
    match without_collector_timestamp(&out).len() {
        n if n == out.len() => out,
        n => out.split_off(out.len() - n),
    }
}

/// The line a log collector stamped, without its stamp: `docker logs -t`,
/// `kubectl logs --timestamps` and GitHub Actions put an RFC 3339 time
/// (`2023-11-16T11:45:51.142376502Z`, or with an offset) and one space
/// before each line as the program wrote it, indentation included. The
/// program's own timestamps (a space, not `T`, between date and time) stay.
fn without_collector_timestamp(line: &str) -> &str {
    let b = line.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    if !shape {
        return line;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    match b.get(i) {
        Some(b'Z') => i += 1,
        Some(b'+' | b'-')
            if digits(i + 1..i + 3) && b.get(i + 3) == Some(&b':') && digits(i + 4..i + 6) =>
        {
            i += 6
        }
        _ => return line,
    }
    match b.get(i) {
        Some(b' ') => &line[i + 1..],
        _ => line,
    }
}

fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.peek() {
        Some('[') => {
            chars.next();
            // CSI: parameters then one final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
        Some(']') => {
            // OSC: until BEL or ESC \
            chars.next();
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    chars.next();
                    break;
                }
            }
        }
        Some(_) => {
            chars.next();
        }
        None => {}
    }
}

/// The prefix glog and absl write at the start of each record.
macro_rules! glog_record {
    () => {
        r"[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+\s+\S+:\d+\]"
    };
}

/// The prefix TensorFlow's logger writes after its timestamp. Its Windows
/// builds write the source file's build path with a drive and backslashes
/// (`E c:\tf_jenkins\...\cuda_driver.cc:1002] `).
macro_rules! tf_record {
    () => {
        r"[IWEF] (?:[A-Za-z]:)?[\w/\\.\-]+:\d+\]"
    };
}

/// Log prefixes, each anchored at the start of the line, tried in order.
const PREFIX_PATTERNS: &[&str] = &[
    // docker compose: `service-1  | `
    r"^[\w.\-]+\s+\|\s?",
    // torchrun / deepspeed rank tags: `[rank3]:`, `[default0]:`, `[1,0]<stderr>:`
    r"^\[(?:rank|Rank|default)?\s*\d+\]\s*:?\s*",
    r"^\[\d+,\d+\]<std(?:out|err)>:\s*",
    // vLLM / Ray: `(EngineCore_0 pid=123)`, `(RayWorkerWrapper pid=1, ip=10.0.0.1)`
    r"^\(\w+ pid=\d+(?:, ip=[\d.]+)?\)\s*",
    // `srun -l` / mpirun: `0: `
    r"^\d{1,4}:\s",
    // ISO-ish timestamps, optionally bracketed, with fractions and zones
    r"^\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?:?\s*",
    // syslog / kernel: `Jan 12 10:11:12 host kernel: [123.456] `
    r"^[A-Z][a-z]{2}\s+\d{1,2} \d{2}:\d{2}:\d{2} \S+ \S+?:\s*",
    r"^\[\s*\d+\.\d+\]\s*",
    // glog / absl: `E0612 10:11:12.123456  1234 file.cc:12] `
    concat!("^", glog_record!(), r"\s*"),
    // TensorFlow after its timestamp: `E tensorflow/core/x.cc:12] `
    concat!("^", tf_record!(), r"\s*"),
    // vLLM style: `ERROR 06-12 10:11:12 [core.py:123] `, `INFO 06-12 10:11:12 file.py:1] `
    r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?\s+\[?[\w./]+:\d+\]\s*",
    // bare or bracketed levels: `ERROR:root:`, `[ERROR]`, `ERROR - `
    r"^\[?(?:DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL)\]?(?::[\w.]+:|\s*[:\-]\s*|\s+)",
    // loguru's `| ERROR    | module:function:12 - ` after its timestamp,
    // and loggers that print the level in lower case between bars
    // (Tenstorrent's `| critical |`)
    r"^\|\s*(?i:trace|debug|info|success|warning|warn|error|critical|fatal)\s*\|\s*(?:[\w.<>]+:[\w.<>]+:\d+\s+-\s+)?",
    // logging module's `[logger.py:12:func]`
    r"^\[[\w./]+:\d+(?::\w+)?\]\s*",
];

static PREFIXES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    PREFIX_PATTERNS
        .iter()
        .map(|p| Regex::new(p).expect("prefix pattern compiles"))
        .collect()
});

/// All prefixes at once: a line that starts with none (most lines) costs one
/// search, not one per prefix.
static ANY_PREFIX: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(PREFIX_PATTERNS).expect("prefix patterns compile"));

/// Removes log prefixes and leading white space, repeatedly, so that
/// `service | [rank0]: 2024-01-01 10:00:00 ERROR torch...` leaves `torch...`.
pub fn strip_log_prefix(line: &str) -> &str {
    let mut s = line.trim_start();
    for _ in 0..8 {
        if !ANY_PREFIX.is_match(s) {
            break;
        }
        let before = s.len();
        for re in PREFIXES.iter() {
            if let Some(m) = re.find(s) {
                s = s[m.end()..].trim_start();
            }
        }
        if s.len() == before {
            break;
        }
    }
    s
}

/// True when `prefix`, the log prefixes [`strip_log_prefix`] removed from a
/// line, puts it at error level or worse: a bare or bracketed `ERROR`,
/// `FATAL` or `CRITICAL`, vLLM's `ERROR 06-12 ...`, glog's and absl's
/// `E0612`/`F0612`, TensorFlow's `E tensorflow/...]`. The level is the
/// log's own word that the line reports a failure; stripping it must not
/// lose that.
pub fn error_level(prefix: &str) -> bool {
    static LEVEL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b(?:ERROR|FATAL|CRITICAL)\b|\|\s*(?i:error|fatal|critical)\s*\||(?:^|\s)[EF]\d{4} |(?:^|\s)[EF] [\w/.\-]+:\d+\]")
            .expect("pattern compiles")
    });
    !prefix.is_empty() && LEVEL.is_match(prefix)
}

/// The rank a launcher tagged the line with: torchrun's `[rank3]:` (its
/// `--tee` and log redirects print `[default3]:`, the local rank), `3: `
/// (`srun --label`), Open MPI's `--tag-output` `[1,3]<stderr>:` (job, rank),
/// possibly behind a docker compose prefix.
pub fn rank_tag(line: &str) -> Option<u32> {
    static RANK: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*(?:[\w.\-]+\s+\|\s*)?(?:\[(?:rank|Rank|default)\s*(\d+)\]|(\d{1,4}):\s|\[\d+,(\d+)\]<std(?:out|err)>:)")
            .expect("pattern compiles")
    });
    let c = RANK.captures(line)?;
    c.get(1).or(c.get(2)).or(c.get(3))?.as_str().parse().ok()
}

/// The process a log line is tagged with (`(EngineCore_0 pid=12)`,
/// `(APIServer pid=1)`, `(RayWorkerWrapper pid=5, ip=...)`).
pub fn process_tag(line: &str) -> Option<String> {
    static PROCESS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*(?:[\w.\-]+\s+\|\s*)?\((\w+) pid=(\d+)").expect("pattern compiles")
    });
    let c = PROCESS.captures(line)?;
    Some(format!("{}:{}", &c[1], &c[2]))
}

/// True when a raw line can continue no message: it begins a new statement
/// and is none of the known tail sentences.
pub fn ends_continuation(raw: &str) -> bool {
    let line = strip_log_prefix(raw);
    (starts_new_statement(line) || starts_log_record(raw)) && !is_known_tail(line)
}

/// True when a line opens a block of a Markdown report: a heading, a code
/// fence, a line in bold alone. What stood above it was a paragraph (an
/// issue's title) of its own.
pub fn opens_markdown_block(raw: &str) -> bool {
    static BLOCK: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s{0,3}(?:#{1,6}\s|```|\*\*[^*]+\*\*:?\s*$)").expect("pattern compiles")
    });
    BLOCK.is_match(raw)
}

/// True when a line opens the reporter's own sentence, in the first person
/// or with a greeting (an issue's body under its title: `I am running:`,
/// `Hi all!`, `We hit this on 4 GPUs`): no program's message wraps onto
/// it, and what stood above it was a paragraph of its own.
pub fn opens_own_words(raw: &str) -> bool {
    static OWN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^\s{0,3}(?:(?:When|While|After|Before|If|Since|Today|Recently|Now|So|Also|Then)\s+(?:\w+,?\s+)?)?",
            r"(?:(?:I|I'm|I've|We|we|We're|We've|My|my|Our|our)\s|(?:Hi|Hello|Hey)\b)"
        ))
            .expect("pattern compiles")
    });
    OWN.is_match(raw)
}

/// True when a raw line opens a record of glog/absl (`E1103 18:23:55.103186
/// 3413767 file.cc:366] `) or of TensorFlow's logger (`E tensorflow/x.cc:12]
/// `, after its timestamp). These loggers write their prefix once per
/// record, at its start (a record's own line breaks carry none), so such a
/// line never continues the record before it, however that one ends.
fn starts_log_record(raw: &str) -> bool {
    static RECORD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^\s*(?:\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?:?\s*)?",
            "(?:",
            glog_record!(),
            "|",
            tf_record!(),
            ")"
        ))
        .expect("pattern compiles")
    });
    RECORD.is_match(raw)
}

/// True when `line` (prefix stripped) clearly begins a new statement rather
/// than continuing a wrapped one.
fn starts_new_statement(line: &str) -> bool {
    static NEW: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^(?:Traceback \(most recent call last\)|File |During handling|The above exception|",
            // Jupyter's rule and traceback heading (`OutOfMemoryError    Traceback (most recent call last)`)
            r"-{8,}\s*$|[\w.]+\s+Traceback \(most recent call last\)|",
            r"[\w.]*(?:Error|Exception|Warning)\b\s*:|>>>|\$ |#|Epoch\b|step\b|\d+%\||\[[EWIF]\]\s|",
            // C function-name prefixes: `llama_model_load: `, `ggml_gallocr_reserve_n: `
            r"[a-z]+_[a-z0-9_]*:\s|",
            // NCCL's record after its `host:pid:tid [dev]` prefix, with the
            // source file on WARN lines (src/debug.cc: `include/shm.h:28 NCCL
            // WARN ...`, `NCCL INFO ...`).
            r"(?:[\w/.\-]+:\d+\s+)?NCCL\s+(?:INFO|WARN|ERROR|TRACE|ABORT)\b)"
        ))
        .expect("pattern compiles")
    });
    // A Markdown block's start (a code fence, a line in bold alone: an
    // issue template's `**command**`) never continues a message either.
    line.is_empty() || NEW.is_match(line) || opens_markdown_block(line) || opens_own_words(line)
}

/// Sentences PyTorch and others print after a figure-bearing message that
/// belong to the same error even when they stand on a line of their own.
fn is_known_tail(line: &str) -> bool {
    const TAILS: &[&str] = &[
        "If reserved",
        "See documentation",
        "Including non-PyTorch",
        "Of the allocated memory",
        "Please use",
        "Use PYTORCH_MPS",
        "Try increasing",
        "Try decreasing",
        "Decrease GPU memory",
        "(https://pytorch.org",
        "Based on the available memory",
        "CUDA kernel errors might",
        "For debugging consider",
        "Compile with `TORCH_USE_CUDA_DSA`",
        // cudaMallocAsync backend's multi-line report
        "Currently allocated",
        "Requested ",
        "Device limit",
        "Free (according to CUDA)",
        // TensorFlow's line after a failed cuDNN handle
        "Memory usage:",
        // ggml's CUDA error (ggml-cuda.cu `ggml_cuda_error`): the device and
        // the function under `CUDA error: out of memory`.
        "current device:",
        "PyTorch limit",
        ": ",
        // ComfyUI's footer under the exception it caught (execution.py:
        // `This error means you ran out of memory on your GPU.` and its
        // TIPS): an explanation of the error above, not a second failure.
        "This error means you ran out of memory",
    ];
    TAILS.iter().any(|t| line.starts_with(t))
        || (line.starts_with("Process ") && line.contains(" memory in use"))
        || pytorch_sentence(line)
}

/// A sentence of PyTorch 2's caching-allocator message on a line of its own,
/// as a report retyped it one sentence per line: the request (`Tried to
/// allocate 66.54 GiB.`) and the device's capacity (`GPU 0 has a total
/// capacity of 96.00 GiB of which ...`; PyTorch 2.1 spelled it `capacty`,
/// c10/cuda/CUDACachingAllocator.cpp).
fn pytorch_sentence(line: &str) -> bool {
    line.starts_with("Tried to allocate ")
        || (line.starts_with("GPU ") && line.contains(" has a total capac"))
}

/// True when the text reads as a finished message: parentheses balanced and
/// ending on a sentence or a closing bracket.
fn looks_complete(text: &str) -> bool {
    let open = text.matches('(').count();
    let close = text.matches(')').count();
    let end = text.trim_end().trim_end_matches('*');
    // A shell's `Killed` ends its line whatever follows.
    end.ends_with("Killed")
        || open <= close && text.trim_end().ends_with([')', '.', '!', ']', '"', '\''])
        || ends_with_numpy_dtype(end)
}

/// numpy's allocation error ends on the array's dtype, with no stop after it
/// (numpy/_core/_exceptions.py, `_ArrayMemoryError.__str__`: `Unable to
/// allocate {size} for an array with shape {shape} and data type {dtype}`;
/// numpy 1.17 printed `Unable to allocate array with shape ... and data type
/// ...`): a line that ends so is finished, and the next line is not a word
/// the terminal split.
fn ends_with_numpy_dtype(text: &str) -> bool {
    static DTYPE_END: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\)\s*and\s+data\s+type\s+[\w<>|:\[\]]+$").expect("pattern compiles")
    });
    DTYPE_END.is_match(text)
}

/// The shortest line a terminal or an editor could have wrapped: a wrapped
/// line fills the width it was wrapped at (80 columns and more; a word wrap
/// leaves a little less). A shorter line ended where its writer ended it (a
/// title, `mkl_malloc: failed to allocate memory`), so the next line is not
/// its continuation unless it is one of the known tail sentences.
const WRAP_MIN: usize = 40;

/// Joins `first` with as many of `next` as continue it: lines a terminal
/// wrapped, and the known tail sentences of OOM messages. Returns the joined
/// text and how many lines of `next` it took. A line break that splits a word
/// (a letter on both sides after a long line) joins without a space, anything
/// else with one.
pub fn join_continuations(first: &str, next: &[String], max_lines: usize) -> (String, usize) {
    let mut text = first.to_string();
    let mut prev_len = first.chars().count();
    let mut taken = 0;
    for raw in next.iter().take(max_lines) {
        let line = strip_log_prefix(raw);
        let tail = is_known_tail(line);
        let new_record = starts_new_statement(line) || starts_log_record(raw);
        if !tail && (new_record || looks_complete(&text) || prev_len < WRAP_MIN) {
            break;
        }
        let spaced = text.ends_with(char::is_whitespace) || raw.starts_with(char::is_whitespace);
        let glue_tight = !spaced
            && prev_len >= 60
            && text.ends_with(|c: char| c.is_alphanumeric())
            && line.starts_with(|c: char| c.is_alphanumeric());
        if !glue_tight && !text.ends_with(char::is_whitespace) {
            text.push(' ');
        }
        text.push_str(line);
        prev_len = raw.chars().count();
        taken += 1;
        if text.len() > 16 * 1024 {
            break;
        }
    }
    let end = text.trim_end().len();
    text.truncate(end);
    (text, taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_markdown_block_never_continues_a_title() {
        for line in [
            "**command**",
            "```",
            "### Describe the bug",
            "**Describe the bug:**",
        ] {
            assert!(opens_markdown_block(line), "{line}");
            let (text, taken) = join_continuations(
                "RuntimeError: CUDA out of memory occurred when testing",
                &[line.to_string()],
                4,
            );
            assert_eq!(taken, 0, "{text}");
        }
        for line in [
            "the **model** is big",
            "#include <x.h>",
            "  reserved in total by PyTorch",
        ] {
            assert!(!opens_markdown_block(line), "{line}");
        }
    }

    #[test]
    fn the_reporter_s_own_sentence_never_continues_a_title() {
        let title = "Failed to allocate memory for requested buffer of size";
        for line in [
            "I am running:",
            "Hi all!",
            "We hit this on 4 GPUs",
            "My setup:",
            "When I run Fooocus, Did not run successfully",
            "After upgrading, we see it on every run",
        ] {
            let (text, taken) = join_continuations(title, &[line.to_string()], 4);
            assert_eq!(taken, 0, "{text}");
        }
        for line in [
            "When memory is short",
            "If reserved but unallocated memory is large",
        ] {
            assert!(!opens_own_words(line), "{line}");
        }
        // A wrapped figure still continues it.
        let (text, taken) = join_continuations(title, &["33554432".to_string()], 4);
        assert_eq!(taken, 1, "{text}");
        assert!(text.ends_with("of size 33554432"), "{text}");
    }

    #[test]
    fn a_glog_record_never_continues_the_one_before() {
        let first = "E1103 18:23:55.103160 3413767 gpu_cudamallocasync_allocator.cc:361] gpu_async_1 cuMemAllocAsync failed to allocate 1225195446464 bytes: RESOURCE_EXHAUSTED: : CUDA_ERROR_OUT_OF_MEMORY: out of memory";
        let next = [
            " Reported by CUDA: Free memory/Total memory: 22635544576/85095874560".to_string(),
            "E1103 18:23:55.103186 3413767 gpu_cudamallocasync_allocator.cc:366] Stats: Limit:                               0".to_string(),
            "InUse:                     61982909300".to_string(),
        ];
        let (text, taken) = join_continuations(strip_log_prefix(first), &next, 8);
        assert_eq!(taken, 1, "{text}");
        assert!(
            text.ends_with("Free memory/Total memory: 22635544576/85095874560"),
            "{text}"
        );
        assert!(ends_continuation(&next[1]));
        assert!(ends_continuation(
            "2024-01-02 10:11:12.123: E tensorflow/core/x.cc:12] next record"
        ));
        assert!(!ends_continuation("Reported by CUDA: Free memory"));
    }

    #[test]
    fn an_nccl_record_never_continues_the_one_before() {
        let first = "[3] include/shm.h:28 NCCL WARN Call to posix_fallocate failed : No space left on device";
        let next = [
            "[3] NCCL INFO include/shm.h:41 -> 2".to_string(),
            "include/shm.h:48 NCCL WARN Error while creating shared memory segment nccl-shm-recv-1 (size 9637888)".to_string(),
        ];
        let (text, taken) = join_continuations(strip_log_prefix(first), &next, 8);
        assert_eq!(taken, 0, "{text}");
        let (text, taken) = join_continuations(strip_log_prefix(first), &next[1..], 8);
        assert_eq!(taken, 0, "{text}");
    }

    #[test]
    fn a_tensorflow_record_from_a_windows_build_never_continues_the_one_before() {
        let record = |file: &str, text: &str| {
            format!(
                r"E c:\tf_jenkins\home\workspace\release-win\device\gpu\os\windows\tensorflow\stream_executor\cuda\{file}] {text}"
            )
        };
        let first = record(
            "cuda_driver.cc:1002",
            "failed to allocate 3.00G (3221225472 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY",
        );
        let next = [record(
            "cuda_driver.cc:1002",
            "failed to allocate 2.70G (2899102720 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY",
        )];
        let stripped = strip_log_prefix(&first);
        assert!(
            stripped.starts_with("failed to allocate 3.00G"),
            "{stripped}"
        );
        let (text, taken) = join_continuations(stripped, &next, 8);
        assert_eq!(taken, 0, "{text}");
    }

    #[test]
    fn cleans_ansi_crlf_and_invalid_utf8() {
        assert_eq!(
            clean_line(b"\x1b[31mRuntimeError\x1b[0m: CUDA out of memory.\r\n"),
            "RuntimeError: CUDA out of memory."
        );
        assert_eq!(clean_line(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(clean_line(b" 10%|#  \r 50%|#####\n"), " 50%|#####");
        assert_eq!(clean_line(b"wrapped at a space \n"), "wrapped at a space ");
        assert_eq!(clean_line(b"\x1b]0;title\x07text"), "text");
    }

    #[test]
    fn a_collector_s_timestamp_goes_and_the_indentation_under_it_stays() {
        assert_eq!(
            clean_line(b"2023-11-16T11:45:51.142378377Z     for segment in segments:\n"),
            "    for segment in segments:"
        );
        assert_eq!(
            clean_line(b"2024-01-02T03:04:05+02:00 File \"x.py\", line 1, in f"),
            "File \"x.py\", line 1, in f"
        );
        assert_eq!(
            clean_line(b"2023-11-16T11:45:51Z \x1b[31mERROR\x1b[0m boom"),
            "ERROR boom"
        );
        // A program's own timestamp stays for the log-prefix reader.
        assert_eq!(
            clean_line(b"2023-11-16 11:45:51.142 ERROR boom"),
            "2023-11-16 11:45:51.142 ERROR boom"
        );
        assert_eq!(
            clean_line(b"2023-11-16T11:45:51Zx"),
            "2023-11-16T11:45:51Zx"
        );
    }

    #[test]
    fn an_error_level_is_read_from_the_stripped_prefix_only() {
        let error_level = |line: &str| {
            let rest = strip_log_prefix(line);
            super::error_level(&line[..line.len() - rest.len()])
        };
        for line in [
            "FATAL ERROR: Reached heap limit Allocation failed",
            "[ERROR] ggml: buffer allocation failed",
            "ERROR 06-12 10:11:12 [core.py:1] worker: allocation failed",
            "E0612 10:11:12.123456  1234 alloc.cc:12] buffer allocation failed",
            "2024-01-01 10:00:00 E tensorflow/core/x.cc:12] allocation failed",
            "2024-01-01 10:00:00.123 | ERROR    | app.server:load:42 - allocation failed",
            "2025-09-29 11:43:46.065 | critical |      Out of Memory: Not enough space",
        ] {
            assert!(error_level(line), "{line}");
        }
        for line in [
            "[WARNING] buffer allocation failed, retrying",
            "INFO: allocation failed counter reset",
            "buffer allocation failed: ERROR 2",
            "RuntimeError: out of memory",
            "2024-01-01 10:00:00.123 | WARNING  | app:run:7 - allocation failed, retrying",
        ] {
            assert!(!error_level(line), "{line}");
        }
    }

    #[test]
    fn strips_stacked_prefixes() {
        assert_eq!(
            strip_log_prefix(
                "trainer-1  | [rank0]: 2024-05-01 10:00:00,123 ERROR torch.OutOfMemoryError: x"
            ),
            "torch.OutOfMemoryError: x"
        );
        assert_eq!(
            strip_log_prefix(
                "(EngineCore_0 pid=4242) ERROR 06-12 10:11:12 [core.py:123] ValueError: No"
            ),
            "ValueError: No"
        );
        assert_eq!(
            strip_log_prefix("2024-01-01 10:00:00.123 | ERROR    | app.server:load:42 - msg"),
            "msg"
        );
        assert_eq!(
            strip_log_prefix("2025-09-29 11:43:46.065 | critical |      msg"),
            "msg"
        );
        assert_eq!(
            strip_log_prefix("2024-02-20 11:05:31.402118: W tensorflow/x.cc:1] msg"),
            "msg"
        );
        assert_eq!(strip_log_prefix("plain text"), "plain text");
    }

    #[test]
    fn a_numpy_message_ends_on_its_dtype() {
        let next = vec!["how to solve this problem?".to_string()];
        let first = "numpy.core._exceptions.MemoryError: Unable to allocate array with shape (9681, 9681) and data type float64";
        let (joined, taken) = join_continuations(first, &next, 8);
        assert_eq!((joined.as_str(), taken), (first, 0));
    }

    #[test]
    fn joins_wrapped_words_and_tails() {
        let next = vec![
            "ity; 6.50 GiB already allocated; 256.00 MiB free; 6.70 GiB reserved in total by PyTorch)".to_string(),
            "If reserved memory is >> allocated memory try setting max_split_size_mb".to_string(),
            "Traceback (most recent call last):".to_string(),
        ];
        let (joined, taken) = join_continuations(
            "RuntimeError: CUDA out of memory. Tried to allocate 512.00 MiB (GPU 0; 8.00 GiB total capac",
            &next,
            8,
        );
        assert_eq!(taken, 2);
        assert!(joined.contains("total capacity; 6.50 GiB"));
        assert!(joined.ends_with("max_split_size_mb"));
    }

    #[test]
    fn pytorch_s_sentences_retyped_one_per_line_are_joined() {
        let next: Vec<String> = [
            "GPU 0 has a total capacity of 96.00 GiB of which 10.75 GiB is free.",
            "Of the allocated memory 84.36 GiB is allocated by PyTorch,",
            "and 360.11 MiB is reserved by PyTorch but unallocated.",
            "",
            "This error means you ran out of memory on your GPU.",
        ]
        .map(String::from)
        .to_vec();
        let (joined, taken) =
            join_continuations("HIP out of memory. Tried to allocate 66.54 GiB.", &next, 8);
        assert_eq!(taken, 3, "{joined}");
        assert!(
            joined.ends_with("reserved by PyTorch but unallocated."),
            "{joined}"
        );
        let next = ["Tried to allocate 20.00 MiB (GPU 0; 4.00 GiB total capacity)".to_string()];
        let (joined, taken) = join_continuations("RuntimeError: CUDA out of memory.", &next, 8);
        assert_eq!(taken, 1, "{joined}");
        let next = ["GPU 1 is busy".to_string()];
        assert_eq!(
            join_continuations("RuntimeError: CUDA out of memory.", &next, 8).1,
            0
        );
    }

    #[test]
    fn a_notebook_traceback_heading_is_not_joined() {
        let next = vec![
            "-".repeat(75),
            "OutOfMemoryError                          Traceback (most recent call last)"
                .to_string(),
        ];
        let (joined, taken) = join_continuations(
            "OutOfMemoryError: CUDA out of memory. See documentation for Memory Management and PYTORCH_CUDA_ALLOC_CONF",
            &next,
            8,
        );
        assert_eq!(taken, 0, "{joined}");
        assert!(ends_continuation(&next[1]));
    }

    #[test]
    fn does_not_join_after_a_complete_message() {
        let next = vec!["Why it happens".to_string()];
        let (joined, taken) = join_continuations("RuntimeError: CUDA out of memory. (x)", &next, 8);
        assert_eq!(taken, 0);
        assert_eq!(joined, "RuntimeError: CUDA out of memory. (x)");
    }
}
