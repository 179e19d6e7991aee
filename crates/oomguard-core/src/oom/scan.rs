//! The streaming scanner: reads any byte stream (plain or gzip) in fixed-size
//! chunks, looks for the trigger phrases of every family with packed
//! multi-pattern searchers, and only around a hit decodes lines, joins wrapped
//! ones and asks the family parsers. Memory stays bounded whatever the size of
//! the input or of its longest line.
//!
//! The parts found go to the grouper (`group`), which makes one event of
//! each failure printed several times.

use super::families::{self, parse_logical_at, PHRASES_PER_SEARCHER, TRIGGERS};
use super::group::{Found, Grouper, ReadFacts};
use super::patterns::{says_non_fatal, Parsed, PartKind};
use super::text::{
    clean_line, ends_continuation, error_level, join_continuations, opens_markdown_block,
    opens_own_words, process_tag, rank_tag, strip_log_prefix,
};
use super::watchdog::{self, WatchdogTimeout};
use super::{attribution, context, phase, Framework, MemoryLimit, OomEvent, Phase};
use aho_corasick::{AhoCorasick, MatchKind};
use memchr::memmem;
use regex::Regex;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::LazyLock;

/// Bytes read per chunk.
const CHUNK: usize = 1 << 20;
/// Bytes kept after a trigger so a message and its wrapped lines are whole.
const LOOKAHEAD: usize = 32 << 10;
/// Bytes kept before a trigger for the traceback that explains its phase.
const CONTEXT_BYTES: usize = 48 << 10;
/// Lines of traceback looked at before a trigger.
const CONTEXT_LINES: usize = 120;
/// Lines after a trigger that can continue its message.
const CONTINUATION_LINES: usize = 10;
/// How far one line is read either side of a trigger: a 100 MB line is cut.
const MAX_LINE_SIDE: usize = 16 << 10;

/// The phrases searched for: every family's triggers, then the watchdog's
/// (its index is `TRIGGERS.len()`).
fn searched_phrases() -> Vec<&'static str> {
    TRIGGERS
        .iter()
        .copied()
        .chain([watchdog::TRIGGER])
        .collect()
}

/// The packed searchers of [`searched_phrases`] of at least
/// [`PACKED_MASK`] bytes, with the index in that list of each of their
/// phrases. aho-corasick's packed search (Teddy) compares as many leading
/// bytes as its shortest phrase has, up to four, and runs its slim form, 32
/// bytes a step, for up to 32 phrases, its fat form, 16 bytes a step, for
/// up to 64 (`packed/teddy/builder.rs`). A phrase shorter than four bytes
/// (`OOM`) would shorten a searcher's mask and multiply the candidates it
/// checks on ordinary text, so it has a single-phrase finder of its own
/// ([`SHORT_FINDERS`]). The first searcher is a slim one with the first
/// phrases in byte order; the rest, in byte order too (phrases that begin
/// alike share buckets and leave fewer false candidates), go to as few fat
/// searchers as hold them, in even shares.
///
/// Counted with cachegrind on the 1 GiB benchmark log
/// (`scripts/bench-explain.sh`): the two searchers plus the `OOM` finder
/// run 9% fewer instructions (5.39 G against 5.94 G) than `OOM` inside the
/// slim searcher (whose mask it cut to three bytes); two even fat searchers
/// ran as many as before. Earlier wall-clock measures of the search alone (75 phrases):
/// two searchers 0.50 s, three 0.72 s, one automaton past Teddy's 64
/// phrases 1.94 s.
static FINDERS: LazyLock<Vec<(Vec<usize>, AhoCorasick)>> = LazyLock::new(|| {
    let phrases = searched_phrases();
    let mut order: Vec<usize> = (0..phrases.len())
        .filter(|&i| phrases[i].len() >= PACKED_MASK)
        .collect();
    order.sort_by_key(|&i| phrases[i].as_bytes());
    let slim = order.len().min(SLIM_PHRASES);
    let rest = &order[slim..];
    let fat_max = 2 * PHRASES_PER_SEARCHER - SLIM_PHRASES;
    let fat = rest.len().div_ceil(fat_max);
    let share = rest.len().div_ceil(fat.max(1)).max(1);
    std::iter::once(&order[..slim])
        .chain(rest.chunks(share))
        .map(|ids| {
            let finder = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostFirst)
                .build(ids.iter().map(|&i| phrases[i]))
                .expect("trigger automaton builds");
            (ids.to_vec(), finder)
        })
        .collect()
});

/// A finder for each phrase shorter than [`PACKED_MASK`], with its index in
/// [`searched_phrases`].
static SHORT_FINDERS: LazyLock<Vec<(usize, memmem::Finder<'static>)>> = LazyLock::new(|| {
    searched_phrases()
        .into_iter()
        .enumerate()
        .filter(|(_, p)| p.len() < PACKED_MASK)
        .map(|(i, p)| (i, memmem::Finder::new(p.as_bytes())))
        .collect()
});

/// The leading bytes the packed search compares at most.
const PACKED_MASK: usize = 4;

/// The most phrases the packed search takes in its slim form.
const SLIM_PHRASES: usize = 32;

/// Where a phrase starts in `hay`, in order, with its index in
/// [`searched_phrases`], into `hits`. Two searchers' hits may overlap or
/// fall on one line; the caller skips what an event already consumed.
fn phrase_hits(hay: &[u8], hits: &mut Vec<(usize, usize)>) {
    hits.clear();
    for (ids, finder) in FINDERS.iter() {
        hits.extend(
            finder
                .find_iter(hay)
                .map(|m| (m.start(), ids[m.pattern().as_usize()])),
        );
    }
    for (phrase, finder) in SHORT_FINDERS.iter() {
        hits.extend(finder.find_iter(hay).map(|at| (at, *phrase)));
    }
    if FINDERS.len() + SHORT_FINDERS.len() > 1 {
        hits.sort_unstable();
    }
}

/// Knobs of a scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Bytes read per chunk (1 MiB). Smaller values only move the chunk
    /// boundaries, which the tests use to check that no event depends on them.
    pub chunk_bytes: usize,
    /// Lines within which the same message (digits aside) counts once.
    pub duplicate_window_lines: u64,
    /// Lines within which a warning that announces a failure is joined with
    /// the exception that follows it.
    pub announce_window_lines: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            chunk_bytes: CHUNK,
            duplicate_window_lines: 400,
            announce_window_lines: 5000,
        }
    }
}

/// What a finished scan read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Bytes read from the input.
    pub bytes: u64,
    /// Lines read from the input.
    pub lines: u64,
    /// OOM events found (after grouping copies of one failure).
    pub events: u64,
    /// NCCL watchdog timeouts, in order, one per rank and collective (the
    /// first 1024): not OOM events, but what the other ranks of a job print
    /// after one ran out of memory.
    pub watchdog_timeouts: Vec<WatchdogTimeout>,
}

/// A scan that could not read its input.
#[derive(Debug)]
pub struct ScanError {
    source: String,
    gzip: bool,
    error: io::Error,
}

/// Names the input; the I/O error itself is the [`source`](std::error::Error::source),
/// so that a chain printer shows each once.
impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.source == "-" {
            "standard input"
        } else {
            &self.source
        };
        if self.gzip {
            write!(
                f,
                "cannot read {name}: it starts like a gzip file but does not decompress"
            )
        } else {
            write!(f, "cannot read {name}")
        }
    }
}

impl std::error::Error for ScanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl ScanError {
    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.error
    }
}

/// Scans `reader` (gzip-compressed or not: the magic bytes decide) for OOM
/// events, calling `on_event` with each, in order. `source` names the input in
/// the events ("-" for standard input).
pub fn scan_reader<R: Read>(
    source: &str,
    reader: R,
    options: &ScanOptions,
    mut on_event: impl FnMut(OomEvent),
) -> Result<ScanSummary, ScanError> {
    let mut buffered = BufReader::with_capacity(64 << 10, reader);
    let is_gzip = match buffered.fill_buf() {
        Ok(head) => head.starts_with(&[0x1f, 0x8b]),
        Err(error) => {
            return Err(ScanError {
                source: source.to_string(),
                gzip: false,
                error,
            })
        }
    };
    let wrap = |error: io::Error| ScanError {
        source: source.to_string(),
        gzip: is_gzip,
        error,
    };
    let mut grouper = Grouper::new(options.clone());
    let mut emit = |e: OomEvent| on_event(e);
    let summary = if is_gzip {
        let decoder = flate2::bufread::MultiGzDecoder::new(buffered);
        scan_plain(
            source,
            decoder,
            options.chunk_bytes,
            &mut grouper,
            &mut emit,
        )
        .map_err(wrap)?
    } else {
        scan_plain(
            source,
            buffered,
            options.chunk_bytes,
            &mut grouper,
            &mut emit,
        )
        .map_err(wrap)?
    };
    let events = grouper.finish(&mut emit);
    Ok(ScanSummary { events, ..summary })
}

/// Reads into `store` after its first `filled` bytes until `want` more
/// bytes or end of input; returns the count. The store only grows (zeroed
/// once): a chunk read into it is not zeroed first.
fn read_more<R: Read>(
    reader: &mut R,
    store: &mut Vec<u8>,
    filled: &mut usize,
    want: usize,
) -> io::Result<usize> {
    let start = *filled;
    let end = start + want;
    if store.len() < end {
        store.resize(end, 0);
    }
    while *filled < end {
        match reader.read(&mut store[*filled..end]) {
            Ok(0) => break,
            Ok(n) => *filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(*filled - start)
}

fn scan_plain<R: Read>(
    source: &str,
    mut reader: R,
    chunk: usize,
    grouper: &mut Grouper,
    emit: &mut dyn FnMut(OomEvent),
) -> io::Result<ScanSummary> {
    let chunk = chunk.max(1);
    // The bytes read and kept are `store[..filled]`, seen as `buf`.
    let mut store: Vec<u8> = Vec::new();
    let mut filled: usize = 0;
    // Line number (1-based) at `counted_pos` in `buf`.
    let mut counted_line: u64 = 1;
    let mut counted_pos: usize = 0;
    let mut search_from: usize = 0;
    let mut consumed_until: usize = 0;
    // Where the last event's text ended: the traceback of an event never
    // reaches above the event before it, which keeps a log dense with OOM
    // lines linear.
    let mut last_event_end: usize = 0;
    let mut total_bytes: u64 = 0;
    let mut cache = ParseCache::default();
    let mut timeouts: Vec<WatchdogTimeout> = Vec::new();
    let mut hits: Vec<(usize, usize)> = Vec::new();
    // Bytes were dropped from the front of `buf`: nothing in it opens the input.
    let mut drained = false;
    loop {
        let n = read_more(&mut reader, &mut store, &mut filled, chunk)?;
        let buf = &store[..filled];
        total_bytes += n as u64;
        let eof = n < chunk;
        let scan_end = if eof {
            buf.len()
        } else {
            buf.len().saturating_sub(LOOKAHEAD).max(search_from)
        };
        phrase_hits(&buf[search_from..], &mut hits);
        for &(start, phrase) in &hits {
            let at = search_from + start;
            if at >= scan_end {
                break;
            }
            if phrase == TRIGGERS.len() {
                let line_start = line_start_of(buf, at);
                if line_start >= counted_pos {
                    counted_line += bytecount::count(&buf[counted_pos..line_start], b'\n') as u64;
                    counted_pos = line_start;
                }
                let raw = &buf[line_start..line_end_of(buf, at)];
                if let Some(t) = watchdog::parse(raw, source, counted_line) {
                    if timeouts.len() < watchdog::MAX_TIMEOUTS && !watchdog::repeats(&timeouts, &t)
                    {
                        timeouts.push(t);
                    }
                }
                continue;
            }
            if at < consumed_until {
                continue;
            }
            let line_start = line_start_of(buf, at);
            if line_start >= counted_pos {
                counted_line += bytecount::count(&buf[counted_pos..line_start], b'\n') as u64;
                counted_pos = line_start;
            }
            let opens_input = !drained && buf[..line_start].iter().all(|b| b.is_ascii_whitespace());
            let heads_report = !drained
                && !opens_input
                && counted_line < REPORT_HEAD_LINES
                && is_prose(&buf[..line_start]);
            let at_line = EventStart {
                line_start,
                at,
                opens_input,
                heads_report,
            };
            let (found, end) = read_event_at(buf, at_line, last_event_end, &mut cache);
            consumed_until = end;
            if let Some(found) = found {
                last_event_end = end;
                grouper.push(source, counted_line, found, emit);
            }
        }
        search_from = scan_end;
        if eof {
            counted_line += bytecount::count(&buf[counted_pos..], b'\n') as u64;
            let lines = if buf.is_empty() || buf.ends_with(b"\n") {
                counted_line - 1
            } else {
                counted_line
            };
            return Ok(ScanSummary {
                bytes: total_bytes,
                lines,
                events: 0,
                watchdog_timeouts: timeouts,
            });
        }
        // Keep the unscanned tail and some context before it; drop the rest.
        let mut keep_from = scan_end.saturating_sub(CONTEXT_BYTES);
        if let Some(nl) = memchr::memchr(b'\n', &buf[keep_from..scan_end]) {
            keep_from += nl + 1;
        }
        if counted_pos <= keep_from {
            counted_line += bytecount::count(&buf[counted_pos..keep_from], b'\n') as u64;
            counted_pos = 0;
        } else {
            counted_pos -= keep_from;
        }
        drained |= keep_from > 0;
        store.copy_within(keep_from..filled, 0);
        filled -= keep_from;
        search_from -= keep_from;
        consumed_until = consumed_until.saturating_sub(keep_from);
        last_event_end = last_event_end.saturating_sub(keep_from);
    }
}

/// The logical lines parsed last and what each gave. A failure printed again
/// and again (a loop that catches every OOM, ranks printing the same words)
/// is parsed once; identical text always parses the same.
#[derive(Default)]
struct ParseCache {
    entries: VecDeque<(String, bool, Option<Parsed>)>,
}

/// Logical lines a [`ParseCache`] remembers (each at most 16 KiB).
const PARSE_CACHE_LINES: usize = 8;

impl ParseCache {
    /// The family parsers' reading of `text`, `None` when no family claims
    /// it or it says the failure is not fatal. `error_level`: the log
    /// prefix stripped from the line put it at error level.
    fn parse(&mut self, text: &str, error_level: bool) -> Option<Parsed> {
        if let Some((_, _, parsed)) = self
            .entries
            .iter()
            .find(|(t, level, _)| t == text && *level == error_level)
        {
            return parsed.clone();
        }
        let parsed = parse_logical_at(text, error_level).filter(|_| !says_non_fatal(text));
        if self.entries.len() == PARSE_CACHE_LINES {
            self.entries.pop_front();
        }
        self.entries
            .push_back((text.to_string(), error_level, parsed.clone()));
        parsed
    }
}

/// Start of the line holding `at`, at most [`MAX_LINE_SIDE`] back.
fn line_start_of(buf: &[u8], at: usize) -> usize {
    let floor = at.saturating_sub(MAX_LINE_SIDE);
    memchr::memrchr(b'\n', &buf[floor..at]).map_or(floor, |i| floor + i + 1)
}

/// End of the line starting at `from` (after its newline), at most
/// [`MAX_LINE_SIDE`] on.
fn line_end_of(buf: &[u8], from: usize) -> usize {
    let ceil = (from + MAX_LINE_SIDE).min(buf.len());
    memchr::memchr(b'\n', &buf[from..ceil]).map_or(ceil, |i| from + i + 1)
}

/// Lines before a failure read for a multi-GPU job's ranks on its first
/// GPU (a report's title and sentences above the error it quotes).
const RANK_CONTEXT_LINES: usize = 8;

/// Lines of TensorFlow's allocator dump read after its warning for the
/// pool's figures (one line per chunk: a dump runs to hundreds).
const POOL_DUMP_LINES: usize = 400;

/// Lines after an event read for a traceback printed after the message
/// (Rust backtraces, logs that print the error before the Python traceback).
const FOLLOWING_LINES: usize = 80;

/// Where a trigger stands in the buffer.
struct EventStart {
    /// The start of the trigger's line.
    line_start: usize,
    /// The trigger.
    at: usize,
    /// Only blank lines come before the line in the whole input: it is the
    /// text's first line (an issue's title, a report's heading).
    opens_input: bool,
    /// Only a few lines of prose come before it (a report's title and first
    /// sentences): what is pasted under it is its own log.
    heads_report: bool,
}

/// Lines of prose a report may open with before quoting its error.
const REPORT_HEAD_LINES: u64 = 12;

/// True when `head` reads as a report's prose: paragraphs, and no
/// traceback, no log line (a timestamp or a level opening it), no code fence.
fn is_prose(head: &[u8]) -> bool {
    static LOG_LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^\s*(?:\[?\d{2,4}[-/:.]\d|\[?(?:INFO|WARN|WARNING|ERROR|DEBUG|CRITICAL)\b|[IWEF]\d{4}\s)|",
            r"Traceback \(most recent|^\s+File \x22|^\s*```"
        ))
        .expect("pattern compiles")
    });
    let head = String::from_utf8_lossy(head);
    // A report is set in paragraphs (a title, then sentences); a log's
    // lines run on.
    let paragraphs = head.lines().any(|l| l.trim().is_empty());
    paragraphs && head.lines().all(|l| !LOG_LINE.is_match(l))
}

/// Reads the logical line around a trigger and parses it. Returns the part
/// found, if any, and the end of the bytes it used.
fn read_event_at(
    buf: &[u8],
    start: EventStart,
    after_event: usize,
    cache: &mut ParseCache,
) -> (Option<Found>, usize) {
    let EventStart {
        line_start,
        at,
        opens_input,
        heads_report,
    } = start;
    let line_end = line_end_of(buf, at.max(line_start));
    let first = clean_line(&buf[line_start..line_end]);
    // Following lines that may continue the message.
    let mut after = Vec::new();
    let mut ends = Vec::new();
    let mut pos = line_end;
    while after.len() < CONTINUATION_LINES && pos < buf.len() {
        let end = line_end_of(buf, pos);
        let line = clean_line(&buf[pos..end]);
        // A new statement ends any continuation: read no further (a log
        // dense with OOM lines then decodes each line about once).
        let stop = ends_continuation(&line);
        after.push(line);
        ends.push(end);
        pos = end;
        if stop {
            break;
        }
    }
    // Preceding lines: the traceback, and a line this one may continue.
    let mut before = Vec::new();
    let floor = line_start
        .saturating_sub(CONTEXT_BYTES)
        .max(after_event.min(line_start));
    let mut end = line_start;
    while before.len() < CONTEXT_LINES && end > floor {
        let start = line_start_of(buf, end - 1).max(floor);
        before.push(clean_line(&buf[start..end]));
        end = start;
    }
    before.reverse();
    if in_diff_block(&before) {
        return (None, line_end);
    }

    let stripped = strip_log_prefix(&first).to_string();
    let (text, taken) = join_continuations(&stripped, &after, CONTINUATION_LINES);
    let used_end = if taken == 0 {
        line_end
    } else {
        ends[taken - 1]
    };
    let text = join_backwards(&before, text);
    // A rejected line claims only itself: a line joined to it as its
    // continuation may hold the failure.
    // The log prefixes stripped above, which may put the line at error level.
    let prefix = &first[..first.len() - stripped.len()];
    let Some(mut parsed) = cache.parse(&text, error_level(prefix)) else {
        return (None, line_end);
    };
    if parsed.generic {
        if families::generic::is_quiet_level(&first) && !parsed.facts.oom_killer() {
            return (None, line_end);
        }
        if !parsed.facts.oom_killer() && recovered_by_next_lines(buf, used_end) {
            return (None, used_end);
        }
        families::generic::refine_from_context(&before, &mut parsed);
    }
    // The lines right after the message: a traceback printed after it, or
    // the sentence that says when it happened.
    // The lines after the event, up to the same message printed again (a
    // loop that catches each OOM and goes on): what follows that is the next
    // failure's context, and a log dense with OOM lines stays linear.
    let again = |line: &str| same_but_digits(strip_log_prefix(line), &stripped);
    let mut following = after[taken..].to_vec();
    let other_failure = following.iter().position(|l| again(l));
    let mut pos = used_end.max(ends.last().copied().unwrap_or(used_end));
    if let Some(at) = other_failure {
        following.truncate(at);
    }
    let mut stopped = other_failure.is_some();
    while !stopped && following.len() < phase::FOLLOWING_LINES && pos < buf.len() {
        let end = line_end_of(buf, pos);
        let line = clean_line(&buf[pos..end]);
        if again(&line) {
            stopped = true;
            break;
        }
        following.push(line);
        pos = end;
    }
    // Marked before the software is read: a title, or a failure told in
    // words at the top of the text, names the software of the paste under
    // it when its own words do not, from as many lines of the paste as a
    // traceback under a message gets for its phase.
    if opens_input && heads_a_paste(&parsed, buf, used_end) {
        parsed.kind = PartKind::Title;
    }
    // A failure at the top of a text heads what is pasted under it, up to
    // the same failure printed again.
    let paste = ((opens_input || heads_report) && !stopped).then(|| {
        let mut paste = following.clone();
        paste.extend(lines_from(
            buf,
            pos,
            FOLLOWING_LINES.saturating_sub(paste.len()),
        ));
        paste
    });
    let told_at_top = matches!(parsed.kind, PartKind::Title | PartKind::Reported);
    let software_lines = match &paste {
        Some(paste) if told_at_top => paste,
        _ => &following,
    };
    attribution::refine(&first, &before, &text, software_lines, &mut parsed);
    // A full file system is a failure of memory only when it was shared
    // memory, which RAM backs.
    if parsed.space_ran_out {
        if !attribution::space_was_shared_memory(&before, &text, software_lines) {
            return (None, line_end);
        }
        parsed.facts.shm_full = true;
    }
    families::generic::fill_from_next_lines(&text, &following, &mut parsed.memory);
    if parsed.framework == Framework::PyTorch
        && families::inference_engines::printed_by_ggml(&before, &text, &following)
    {
        parsed.framework = Framework::LlamaCpp;
    }
    if parsed.framework == Framework::LlamaCpp {
        if parsed.device.index.is_none() {
            parsed.device.index =
                families::inference_engines::ggml_current_device(&text, &following);
        }
        if let (None, Some(index)) = (parsed.memory.free_bytes, parsed.device.index) {
            parsed.memory.free_bytes =
                families::inference_engines::ggml_device_free(&before, index);
        }
    }
    if parsed.framework == Framework::TensorFlow {
        families::tensorflow_jax::fill_pool_stats(&before, &mut parsed.memory);
        if parsed.memory.allowed_bytes.is_none()
            && families::tensorflow_jax::announces_pool_dump(&text)
        {
            let mut dump = following.clone();
            dump.extend(pool_dump_lines(buf, pos));
            families::tensorflow_jax::fill_pool_stats_after(&dump, &mut parsed.memory);
        }
        // A title or a failure told at the top, with the allocator's dump
        // pasted under it: the dump is that failure's.
        if let (Some(paste), true) = (&paste, told_at_top) {
            if parsed.memory.allowed_bytes.is_none() {
                families::tensorflow_jax::fill_pool_stats_after(paste, &mut parsed.memory);
            }
        }
        families::tensorflow_jax::device_from_context(&before, &mut parsed);
        families::tensorflow_jax::fill_device_log(&before, &following, &mut parsed);
    }
    if text.contains("That was not possible") {
        families::tensorflow_jax::fill_tpu_report(&text, &following, &mut parsed.memory);
    }
    // The kernel's report of a memory cgroup's OOM names the cgroup's
    // functions in its call trace under the first line: a container's limit.
    if parsed.facts.oom_killer()
        && parsed.facts.memory_limit.is_none()
        && (families::generic::memcg_trace(std::slice::from_ref(&text))
            || families::generic::memcg_trace(&following))
    {
        parsed.facts.memory_limit = Some(MemoryLimit::Container);
    }
    if parsed.facts.oom_killer() && parsed.memory.allowed_bytes.is_none() {
        parsed.memory.allowed_bytes = families::generic::cgroup_limit(&before)
            .or_else(|| families::generic::cgroup_limit(std::slice::from_ref(&text)));
    }
    // A batch job killed at its limit: the memory its script asked for,
    // read further down than other lines (a script pasted under the error).
    if parsed.facts.memory_limit == Some(MemoryLimit::Job) && parsed.memory.allowed_bytes.is_none()
    {
        let script = lines_from(buf, pos, JOB_SCRIPT_LINES);
        parsed.memory.allowed_bytes = [&before, std::slice::from_ref(&text), &following, &script]
            .into_iter()
            .find_map(families::generic::job_memory_request);
    }

    let phase = parsed
        .phase_hint
        // A TensorFlow graph node printed under the error says what ran.
        .or_else(|| phase::from_graph_node(&following))
        .or_else(|| phase::from_traceback(&before))
        .or_else(|| {
            // A traceback printed after the message; it must start within
            // its first lines, so no more is read unless one does.
            let opens_text = opens_input;
            if !phase::starts_traceback(&following, opens_text) {
                return None;
            }
            let mut following = following.clone();
            while !stopped && following.len() < FOLLOWING_LINES && pos < buf.len() {
                let end = line_end_of(buf, pos);
                following.push(clean_line(&buf[pos..end]));
                pos = end;
            }
            phase::from_following(&following, opens_text)
        })
        .or_else(|| paste.as_deref().and_then(phase::from_paste))
        .or_else(|| phase::from_context(&before, &text, &following))
        // A runtime reserving its pool does so at start-up.
        .or_else(|| parsed.facts.pool_reservation().then_some(Phase::Startup))
        // ONNX Runtime failing while it runs a graph node (`Non-zero status
        // code returned while running Conv node`) was executing a session's
        // Run: an inference's forward pass, when nothing above says more.
        .or_else(|| {
            (parsed.framework == Framework::OnnxRuntime && parsed.facts.op.is_some())
                .then_some(Phase::Forward)
        })
        .unwrap_or(Phase::Unknown);
    let rank = rank_tag(&first);
    let process = process_tag(&first);
    let report_words = opens_input || heads_report || told_at_top;
    let read_facts: ReadFacts = Box::new(move |before, text, parsed| {
        // A failure at the top of a text: the report under it tells of that
        // failure (memory that kept growing, the model it loaded), further
        // down than a log's next lines.
        let context_lines = match &paste {
            Some(paste) => paste,
            None => &following,
        };
        let software_lines = if told_at_top {
            context_lines
        } else {
            &following
        };
        read_surroundings(
            before,
            &first,
            text,
            context_lines,
            software_lines,
            report_words,
            parsed,
        );
        // A parser that read a per-buffer limit in the message itself keeps it.
        let per_buffer_limit = parsed.facts.engine_log.per_buffer_limit;
        parsed.facts.engine_log = families::inference_engines::engine_log(before, text, &following);
        parsed.facts.engine_log.per_buffer_limit |= per_buffer_limit;
    });
    let found = Found {
        parsed,
        phase,
        rank,
        process,
        before,
        text,
        read_facts,
    };
    (Some(found), used_end)
}

/// What the lines around a failure say of its cause: the context (the
/// model, the batch, what ran before), the ranks sharing the first GPU when
/// a report's own words tell of the failure, the serving engine, and for
/// ggml the layers it offloaded.
fn read_surroundings(
    before: &[String],
    first: &str,
    text: &str,
    context_lines: &[String],
    software_lines: &[String],
    report_words: bool,
    parsed: &mut Parsed,
) {
    parsed.facts.context = context::read(before, text, context_lines);
    // Told in a report's words (a title, its first sentences): a log's own
    // failures are not read for it.
    if report_words {
        parsed.facts.context.ranks_on_first_gpu = context::ranks_on_first_gpu(
            before[before.len().saturating_sub(RANK_CONTEXT_LINES)..]
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(first))
                .chain(text.lines())
                .chain(software_lines.iter().map(String::as_str)),
        );
    }
    parsed.facts.serving_engine = phase::serving_engine(before, first, text);
    if parsed.framework == Framework::LlamaCpp {
        parsed.facts.llama_offload = families::inference_engines::llama_offload(before);
    }
}

/// True when the lines above open a Markdown code block of a diff (```` ```diff
/// ````, ```` ```patch ````) that has not closed: a pull request's change to a
/// README or to code, whose lines quote an error (a troubleshooting section
/// titled with it, a handler that catches it) without any program failing.
fn in_diff_block(before: &[String]) -> bool {
    before
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with("```"))
        .is_some_and(|fence| {
            let lang = fence.trim_start_matches('`').trim();
            lang.eq_ignore_ascii_case("diff") || lang.eq_ignore_ascii_case("patch")
        })
}

/// True when a failure without a figure on the text's first line is set
/// apart by a blank line from more text under it: an issue's title or a
/// report's heading, which names the failure the paste under it shows in
/// full ([`PartKind::Title`]). A title that is all there is stays the
/// event; a log that starts with a failure runs on without a blank line.
fn heads_a_paste(parsed: &Parsed, buf: &[u8], used_end: usize) -> bool {
    if parsed.kind != PartKind::Primary {
        return false;
    }
    let rest = &buf[used_end.min(buf.len())..];
    let next_end = line_end_of(rest, 0);
    // Set apart by a blank line, by the Markdown block the body opens with
    // (`**command**`, a code fence, a heading), or by the reporter's first
    // sentence (`I am running:`).
    let blank = rest[..next_end].iter().all(|b| b.is_ascii_whitespace());
    let next = String::from_utf8_lossy(&rest[..next_end]);
    let block = opens_markdown_block(&next) || opens_own_words(&next);
    let below = if blank { &rest[next_end..] } else { rest };
    let set_apart = (blank || block) && below.iter().any(|b| !b.is_ascii_whitespace());
    set_apart && (parsed.memory.is_empty() || copied_from_below(&parsed.message, below))
}

/// True when a heading's last clause, with the size it states, is
/// printed again in `below` (`Error while finetuning: Unable to allocate 12
/// bytes.` over the runtime's `[malloc_or_wait] Unable to allocate 12
/// bytes.`): the heading copied the failure the paste shows, and names no
/// other.
fn copied_from_below(heading: &str, below: &[u8]) -> bool {
    let clause = heading
        .rsplit(':')
        .next()
        .unwrap_or(heading)
        .trim()
        .trim_end_matches(['.', '!', ' ']);
    if clause.len() < 12 || super::patterns::first_size_in(clause).is_none() {
        return false;
    }
    let below = &below[..below.len().min(LOOKAHEAD)];
    memchr::memmem::find(below, clause.as_bytes()).is_some()
}

/// Lines after a batch job's kill read for its script's memory request.
const JOB_SCRIPT_LINES: usize = 60;

/// The lines of an allocator dump from `pos`: up to its `InUse:` figure,
/// the next failure, or [`POOL_DUMP_LINES`], whichever comes first.
fn pool_dump_lines(buf: &[u8], mut pos: usize) -> Vec<String> {
    let mut lines = Vec::new();
    while lines.len() < POOL_DUMP_LINES && pos < buf.len() {
        let end = line_end_of(buf, pos);
        let line = clean_line(&buf[pos..end]);
        pos = end;
        if line.contains("ran out of memory") {
            break;
        }
        let last = line.trim_start().starts_with("InUse:");
        lines.push(line);
        if last {
            break;
        }
    }
    lines
}

/// Up to `count` cleaned lines of `buf` from `pos`.
fn lines_from(buf: &[u8], mut pos: usize, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    while lines.len() < count && pos < buf.len() {
        let end = line_end_of(buf, pos);
        lines.push(clean_line(&buf[pos..end]));
        pos = end;
    }
    lines
}

/// Lines after a failure read for the program saying it recovered.
const RECOVERY_LINES: usize = 4;

/// True when one of the few lines after `from` says the allocation that
/// failed was optional and the program went on without it: TensorRT's
/// builder skipping a tactic whose scratch memory it could not get
/// (`Skipping tactic N due to insufficient memory`, `... due to
/// insuficient memory`, `Tactic Device request: ... Device memory is
/// insufficient to use tactic`), unless the build then gives up (`Could
/// not find any implementation for node`, `Engine could not be created`):
/// no tactic was left, and the memory it lacked failed the build. Only
/// lines after a failure the generic layer read are decoded, so a dense log
/// pays nothing for it.
fn recovered_by_next_lines(buf: &[u8], from: usize) -> bool {
    let mut pos = from;
    let mut skipped = false;
    for _ in 0..RECOVERY_LINES * 2 {
        if pos >= buf.len() {
            break;
        }
        let end = line_end_of(buf, pos);
        let line = clean_line(&buf[pos..end]);
        if line.contains("Could not find any implementation")
            || line.contains("ngine could not be created")
        {
            return false;
        }
        skipped |= line.contains("Skipping tactic") || line.contains("insufficient to use tactic");
        pos = end;
    }
    skipped
}

static EXCEPTION_START: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^[A-Za-z_][\w.]*(?:Error|Exception)\s*:").expect("pattern compiles")
});

/// The two lines are the same words with other figures.
fn same_but_digits(a: &str, b: &str) -> bool {
    fn words(s: &str) -> impl Iterator<Item = u8> + '_ {
        s.bytes().filter(|c| !c.is_ascii_digit() && *c != b'.')
    }
    a.len().abs_diff(b.len()) <= 32 && words(a).eq(words(b))
}

/// A word that marks a line as an error's.
static ERROR_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:\berror\b|\bfail(?:ed|ure)?\b|exception|\[enforce fail)")
        .expect("pattern compiles")
});

/// Prepends the line before when the trigger line continues it (a terminal
/// wrapped the phrase itself, as in `CUDA out of mem` / `ory. Tried to ...`,
/// or an error's label at its colon).
fn join_backwards(before: &[String], text: String) -> String {
    let Some(prev) = before.last() else {
        return text;
    };
    // A traceback's frame or code line never continues into the error that
    // follows it, nor does anything continue into an exception's class or a
    // line that opens a statement of its own (a C function's log prefix,
    // `ggml_gallocr_reserve_n: failed to allocate ...`).
    if prev.starts_with([' ', '\t'])
        || prev.trim_start().starts_with("File \"")
        || EXCEPTION_START.is_match(&text)
        || ends_continuation(&text)
    {
        return text;
    }
    let prev = strip_log_prefix(prev);
    let trimmed = prev.trim_end();
    let open = trimmed.ends_with([',', '(', ';']) && trimmed.chars().count() >= 40;
    // An error's label cut from its message at the colon (`[enforce fail at
    // alloc_cpu.cpp:115] data. DefaultCPUAllocator:` over `not enough
    // memory: you tried to allocate ...`, a terminal or a paste wrapping the
    // line): the message goes on in lower case.
    let label = trimmed.ends_with(':')
        && trimmed.chars().count() >= 40
        && ERROR_WORD.is_match(trimmed)
        && text.starts_with(|c: char| c.is_ascii_lowercase());
    let open = open || label;
    let mid_word = prev.chars().count() >= 60
        && !trimmed.ends_with(['.', ')', ':', ']'])
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && prev.ends_with(|c: char| c.is_alphanumeric());
    if mid_word {
        format!("{prev}{text}")
    } else if open {
        format!("{trimmed} {text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heading_that_copies_the_failure_below_is_a_title() {
        let below = b"Loading\n`libc++abi: terminating due to uncaught exception of type std::runtime_error: [malloc_or_wait] Unable to allocate 12 bytes.`\n";
        assert!(copied_from_below(
            "Error while finetuning with LoRA: Unable to allocate 12 bytes.",
            below
        ));
        // A clause without a size, or not printed again, is no copy.
        assert!(!copied_from_below(
            "error: No space left on device (28)",
            b"error: No space left on device (28)\n"
        ));
        assert!(!copied_from_below(
            "Error: Unable to allocate 16 bytes.",
            below
        ));
    }

    #[test]
    fn short_phrases_have_their_own_finders_and_the_rest_fit_packed_ones() {
        let phrases = searched_phrases();
        let (slim, fat) = FINDERS.split_first().expect("a searcher");
        assert!(slim.0.len() <= SLIM_PHRASES);
        assert!(fat.iter().all(|(ids, _)| ids.len() <= 64));
        for (ids, _) in FINDERS.iter() {
            assert!(ids.iter().all(|&i| phrases[i].len() >= PACKED_MASK));
        }
        assert!(SHORT_FINDERS
            .iter()
            .all(|&(i, _)| phrases[i].len() < PACKED_MASK));
        let all: usize = FINDERS.iter().map(|(ids, _)| ids.len()).sum();
        assert_eq!(all + SHORT_FINDERS.len(), phrases.len());
    }

    #[test]
    fn every_phrase_is_found_by_its_searcher_and_hits_come_in_order() {
        let phrases = searched_phrases();
        assert!(FINDERS.len() >= 2, "the test covers a merge");
        let mut hits = Vec::new();
        for (i, phrase) in phrases.iter().enumerate() {
            phrase_hits(phrase.as_bytes(), &mut hits);
            assert_eq!(hits.first().map(|h| h.0), Some(0), "{phrase:?}");
            assert!(
                hits.iter().any(|&(_, p)| phrases[p] == *phrase || p == i),
                "{phrase:?}"
            );
        }
        // A phrase of the last searcher before one of the first.
        let (last, first) = (phrases[phrases.len() - 1], phrases[0]);
        let text = format!("{last} ... {first}");
        phrase_hits(text.as_bytes(), &mut hits);
        let starts: Vec<usize> = hits.iter().map(|h| h.0).collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
        assert_eq!(hits.last().map(|h| phrases[h.1]), Some(first));
    }

    #[test]
    fn the_same_message_with_other_figures_is_read_as_again() {
        let a = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has 1.06 GiB free";
        assert!(!same_but_digits(
            a,
            "CUDA out of memory. Tried to allocate 615.47 KiB. GPU 3 has 1.06 GiB free"
        ));
        assert!(same_but_digits(
            a,
            "CUDA out of memory. Tried to allocate 16.5 GiB. GPU 7 has 0 GiB free"
        ));
        assert!(!same_but_digits(
            a,
            "OutOfMemoryError        Traceback (most recent call last)"
        ));
    }

    #[test]
    fn a_failure_at_the_top_takes_its_phase_from_the_traceback_pasted_below() {
        // The error first, then the command, the program's log lines and
        // the traceback: more lines than a traceback right under an error
        // may start after.
        let text = "RuntimeError: CUDA out of memory. Tried to allocate 50.00 MiB (GPU 0; 12.00 GiB total capacity; 11.20 GiB already allocated; 0 bytes free)\n\
                    \n\
                    ```\n\
                    $ python serve.py --ckpt big.pt\n\
                    I0928 15:25:03.815069 gpu.cc:61] device: 0, compute capability 8.6\n\
                    Please wait a few minutes...\n\
                    Traceback (most recent call last):\n\
                    \x20 File \"serve.py\", line 25, in <module>\n\
                    \x20   state = torch.load(args.ckpt, map_location='cuda')\n\
                    \x20 File \"/x/torch/serialization.py\", line 9, in load\n\
                    \x20   return _load(f)\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].phase, Phase::ModelLoad);
        // Not for a failure further down a log: its traceback must follow it.
        let log = format!("step 1 ok\n{text}");
        let (events, _) = scan(&log);
        assert_eq!(events[0].phase, Phase::Unknown);
        // A report's title and first sentences above it: its paste.
        let report =
            format!("Cannot load the checkpoint\n\nWhen I start the server it fails:\n{text}");
        let (events, _) = scan(&report);
        assert_eq!(events[0].phase, Phase::ModelLoad);
        // Not under a log's lines, even set apart by a blank line.
        let logged = format!("I0928 15:25:01.000000 gpu.cc:12] starting\n\n{text}");
        let (events, _) = scan(&logged);
        assert_eq!(events[0].phase, Phase::Unknown);
    }

    #[test]
    fn the_engine_a_title_names_stays_with_the_error_under_it() {
        let report = concat!(
            "[Bug]: vLLM 0.11.1 runs into OOM error with lora adaptors.\n\n```\n",
            "(Worker_TP0 pid=134744) ERROR 12-15 22:17:19 [multiproc_executor.py:822] ",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 126.00 MiB. ",
            "GPU 0 has a total capacity of 31.36 GiB of which 111.94 MiB is free.\n```\n",
        );
        let (events, _) = scan(report);
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].facts.serving_engine,
            Some(crate::oom::ServingEngine::Vllm)
        );
    }

    #[test]
    fn a_title_reads_the_pool_dump_pasted_under_it() {
        let report = concat!(
            "OOM when allocating tensor with shape[1,4500,100,134]\n\n",
            "Whenever the execution occurs, the OOM appears\n",
            "boxes, scores, labels = model.predict_on_batch(image)\n",
            "2021-01-04 13:56:22.058249: I tensorflow/core/common_runtime/bfc_allocator.cc:1048] Stats:\n",
            "Limit:                      1435228569\n",
            "InUse:                      1099622912\n",
        );
        let (events, _) = scan(report);
        assert_eq!(events[0].memory.allowed_bytes, Some(1435228569));
        assert_eq!(events[0].memory.allocated_bytes, Some(1099622912));
        // Under a log's own failure, a later dump is not read.
        let logged = format!("I0104 13:56:20.000000 step 1\n{report}");
        let (events, _) = scan(&logged);
        assert_eq!(events[0].memory.allowed_bytes, None);
    }

    #[test]
    fn tensorflow_s_pool_dump_under_its_warning_gives_the_pool() {
        let warning = "W tensorflow/core/common_runtime/bfc_allocator.cc:275] Allocator (GPU_0_bfc) ran out of memory trying to allocate 2.00GiB.  Current allocation summary follows.";
        let text = format!(
            "{warning}\nI bfc_allocator.cc:630] Bin (256): Total Chunks: 0\n\
             I bfc_allocator.cc:680] Stats: \nLimit:                  2118451200\n\
             InUse:                     3846144\nMaxInUse:               1317554688\n"
        );
        let (events, _) = scan(&text);
        assert_eq!(events[0].memory.allowed_bytes, Some(2118451200));
        assert_eq!(events[0].memory.allocated_bytes, Some(3846144));
        // The read stops at its `InUse:` line, or at the next failure,
        // whose dump is not this one's.
        let after = text.split_once('\n').unwrap().1;
        assert_eq!(pool_dump_lines(after.as_bytes(), 0).len(), 4);
        let next = format!("I Bin (256)\n{warning}\nLimit: 1\nInUse: 1\n");
        assert_eq!(pool_dump_lines(next.as_bytes(), 0).len(), 1);
    }

    #[test]
    fn a_report_s_words_stay_with_the_error_it_gives_way_to() {
        // The title says the job resumed; the error is quoted two lines down
        // in a sentence about several GPUs.
        let text = "CUDA out of memory issue when resuming Torch model training\n\n\
                    When running with multi-gpu, once the job is interrupted, I always get \
                    `OutOfMemoryError: CUDA out of memory` at the first training step.\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1);
        assert!(events[0].facts.context.ranks_on_first_gpu.is_some());
    }

    #[test]
    fn a_bare_heading_and_its_message_under_a_traceback_are_one_failure() {
        let text = "RuntimeError\n\
                    torch.cuda.OutOfMemoryError\n\
                    Stack trace\n\
                    Traceback (most recent call last):\n\
                    File \"app.py\", line 42, in <module>\n\
                    outputs = model(input_tensor)\n\
                    File \"/x/torch/nn/modules/module.py\", line 1190, in _call_impl\n\
                    return forward_call(*input, **kwargs)\n\
                    ...\n\
                    torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 512.00 MiB (GPU 0; 8.00 GiB total capacity; 6.50 GiB already allocated; 256.00 MiB free; 6.70 GiB reserved in total by PyTorch)\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].line, 10);
        assert_eq!(events[0].memory.requested_bytes, Some(512 << 20));
    }

    #[test]
    fn an_exception_s_name_over_the_report_it_raised_is_that_report() {
        let text = "MemoryError: \n\n\
                    --------------------------------------\n\
                    C++ Traceback (most recent call last):\n\
                    --------------------------------------\n\
                    Not support stack backtrace yet.\n\n\
                    ----------------------\n\
                    Error Message Summary:\n\
                    ----------------------\n\
                    ResourceExhaustedError: \n\n\
                    Out of memory error on GPU 0. Cannot allocate 128.000000MB memory on GPU 0, 7.995605GB memory has been allocated and available memory is only 0.000000B.\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].device.kind, crate::oom::DeviceKind::Cuda);
        assert_eq!(events[0].memory.requested_bytes, Some(128 << 20));
    }

    #[test]
    fn a_copy_relayed_by_an_engine_s_router_names_the_engine() {
        let oom = "CUDA out of memory. Tried to allocate 18.00 MiB. GPU 0 has a total capacty of 79.11 GiB of which 14.62 MiB is free.";
        let text = format!(
            "torch.cuda.OutOfMemoryError: {oom}\n\n\
             2023-12-18T02:36:47Z ERROR batch{{batch_size=1}}:prefill: text_generation_client: router/client/src/lib.rs:33: Server error: {oom}\n"
        );
        let (events, _) = scan(&text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            events[0].facts.serving_engine,
            Some(crate::oom::ServingEngine::Tgi)
        );
    }

    #[test]
    fn a_quote_cut_short_gives_way_to_the_whole_error_below() {
        let text = "No matter what flags I set, I get:\n\
                    torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate...\n\
                    I am using FSDP on four GPUs.\n\
                    ### Error logs\n\
                    torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 1000.00 MiB (GPU 2; 15.57 GiB total capacity; 12.77 GiB already allocated; 793.38 MiB free; 14.55 GiB reserved in total by PyTorch)\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].line, 5);
        assert_eq!(events[0].device.index, Some(2));
        assert_eq!(events[0].memory.requested_bytes, Some(1000 << 20));
    }

    #[test]
    fn a_phase_is_not_read_past_the_same_failure_printed_again() {
        let log = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free.\n\
                   torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free.\n\
                   It happens while loading the model.\n";
        let (events, _) = scan(log);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].phase, Phase::Unknown);
        assert_eq!(events[1].phase, Phase::ModelLoad);
    }

    #[test]
    fn a_failure_told_in_words_gives_way_to_the_error_near_it() {
        let before = "I got a CUDA out of memory error during evaluation with batch 8.\n\
                      Traceback (most recent call last):\n\
                      torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free.\n";
        let (events, _) = scan(before);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, Framework::PyTorch);
        assert_eq!(events[0].line, 3);
        assert_eq!(events[0].phase, Phase::Evaluation);
        let after = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free.\n\
                     I got a CUDA out of memory error during evaluation again.\n";
        let (events, _) = scan(after);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, Framework::PyTorch);
        // Alone, the sentence is the event; PyTorch's words name PyTorch,
        // other words no software.
        let (events, _) = scan("I got a CUDA out of memory error during evaluation.\n");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, Framework::PyTorch);
        let (events, _) = scan("I got an OOM error during evaluation.\n");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, Framework::Other);
    }

    #[test]
    fn a_title_gives_way_to_the_error_pasted_under_it() {
        let text = "ResourceExhaustedError: Out of memory error on GPU 0.\n\n\
                    Error Message Summary:\n\
                    Out of memory error on GPU 0. Cannot allocate 25.000244MB memory on GPU 0, available memory is only 2.349999MB.\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].line, 4);
        assert_eq!(events[0].memory.free_bytes, Some(2464153));
        // A title with nothing under it is the event.
        let (events, _) =
            scan("ResourceExhaustedError: Out of memory error on GPU 0.\n\nAny idea?\n");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].line, 1);
        // A sentence under it that says no more does not replace it.
        let (events, _) = scan("RuntimeError: DataLoader worker (pid 16757) is killed by signal: Bus error.\n\nStill out of memory.\n");
        assert_eq!(events[0].line, 1, "{events:?}");
        // An event after another is not the text's first line, whatever
        // lies between them.
        let (events, _) = scan("I get a CUDA out of memory error. Then:\n\nRuntimeError: Not enough memory. Please increase --mem-fraction-static.\n\nAny idea?\n");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, Framework::Other);
    }

    #[test]
    fn a_first_line_restating_the_error_and_the_paste_under_it_are_one_failure() {
        // A bare title over the reporter's setup, then the whole error.
        let text = "HIP out of memory\n\
                    AMD AI MAX+395, ubuntu 24.04\n\
                    When I run the workflow it asks for 48G.\n\
                    torch.OutOfMemoryError: HIP out of memory. Tried to allocate 47.98 GiB. GPU 0 has a total capacity of 64.00 GiB of which 5.04 GiB is free. Of the allocated memory 58.21 GiB is allocated by PyTorch, and 242.67 MiB is reserved by PyTorch but unallocated.\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].line, 4);
        assert_eq!(events[0].device.index, Some(0));
        assert!(events[0].memory.allocated_bytes.is_some());
        // A title cut short, from another run (its free figure differs):
        // the paste's figures win.
        let text = "3080 12G: CUDA out of memory. Tried to allocate 884.00 MiB. GPU 0 has a total capacity of 12.00 GiB of which 135.00 MiB is free.\n\
                    memory grows over time\n\
                    torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 884.00 MiB. GPU 0 has a total capacity of 12.00 GiB of which 38.73 MiB is free. Of the allocated memory 6.68 GiB is allocated by PyTorch, and 3.96 GiB is reserved by PyTorch but unallocated.\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].memory.free_bytes, Some(40_611_348));
        // A first line asking for another size is another failure.
        let text = "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 8.00 GiB total capacity; 7.00 GiB already allocated; 0 bytes free; 7.31 GiB reserved in total by PyTorch)\n\
                    retrying with a smaller batch\n\
                    RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total capacity; 5.00 GiB already allocated; 1.00 GiB free; 5.31 GiB reserved in total by PyTorch)\n";
        assert_eq!(scan(text).0.len(), 2);
    }

    #[test]
    fn a_title_takes_the_software_of_the_frames_pasted_under_it() {
        // The engine's frames come past the lines any message reads after it.
        let mut paste =
            String::from("[Bug]: CUDA OOM at start-up\n\nTraceback (most recent call last):\n");
        for i in 0..8 {
            paste.push_str(&format!(
                "  File \"/usr/lib/python3.10/multiprocessing/p{i}.py\", line 1, in run\n"
            ));
        }
        paste.push_str("  File \"/venv/lib/python3.10/site-packages/vllm/engine/llm_engine.py\", line 339, in __init__\n");
        let (events, _) = scan(&paste);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, Framework::PyTorch);
        // Prose under a title that retells the failure in PyTorch's words
        // names no software.
        let (events, _) = scan("CUDA failed with error out of memory\n\nEvery translation grows until finally cuda out of memory.\n");
        assert_eq!(events[0].framework, Framework::Other, "{events:?}");
        // A log pasted under a title names its engine.
        let (events, _) = scan("Bug: error: Insufficient Memory (kIOGPUCommandBufferCallbackErrorOutOfMemory)\n\nllm_load_print_meta: model ftype = Q8_0\n");
        assert_eq!(events[0].framework, Framework::LlamaCpp, "{events:?}");
    }

    #[test]
    fn a_title_in_plain_words_gives_way_to_a_runtime_error_naming_the_device() {
        let text = "Out of memory\n\nMeshing at 1024^3 on my card:\n\n```\n13:27:53 ERROR    Uncaught exception: gpu_memory.h:523 cuMemCreate(&h, n, &prop, 0) failed with error CUDA_ERROR_OUT_OF_MEMORY\n```\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].device.kind, crate::oom::DeviceKind::Cuda);
        // A title in a runtime's own words stays the event: a sentence
        // quoting the CUDA call under it says no more.
        let text = "llama_model_load: error loading model: unable to allocate backend buffer\n\nA call to `cudaMalloc` failed with an \"out of memory\" error, which is outside llama.cpp.\n";
        let (events, _) = scan(text);
        assert_eq!(events[0].framework, Framework::LlamaCpp, "{events:?}");
    }

    #[test]
    fn a_title_naming_an_error_code_gives_way_to_the_line_that_prints_it() {
        let text = "SYCL backend: UR_RESULT_ERROR_DEVICE_LOST + OUT_OF_DEVICE_MEMORY on two Arc cards\n\
                    ## Hardware\n\
                    - 2x Arc B70\n\n\
                    Models in the 20-33 GB range fail with:\n\
                    ```\n\
                    level_zero backend failed with error: 39 [UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY]\n\
                    ```\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].line, 7);
    }

    #[test]
    fn a_full_file_system_is_an_event_only_when_it_was_shared_memory() {
        let shm = "INFO: Pandarallel will use Memory file system to transfer data between the main process and workers.\n\
                   Traceback (most recent call last):\n  File \"pandarallel/core.py\", line 263, in closure\n\
                   \x20   pickle.dump(chunk, filedescriptor)\n\
                   OSError: [Errno 28] No space left on device\n";
        let (events, _) = scan(shm);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].facts.shm_full);
        assert_eq!(events[0].device.kind, crate::oom::DeviceKind::Cpu);
        let disk = "  File \"torch/serialization.py\", line 652, in save\n\
                    OSError: [Errno 28] No space left on device\n";
        assert!(scan(disk).0.is_empty());
        // PyTorch's own shared-memory file for a tensor crossing processes.
        let torch_shm = "RuntimeError: unable to write to file </torch_32096_1415667320_0>: No space left on device (28)\n";
        let (events, _) = scan(torch_shm);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].facts.shm_full);
    }

    #[test]
    fn a_bare_wrapper_line_takes_the_figures_printed_under_it() {
        let text = "Error: llama runner process has terminated: cudaMalloc failed: out of memory\n\
                    ggml_gallocr_reserve_n: failed to allocate CUDA0 buffer of size 838447104\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, Framework::LlamaCpp);
        assert_eq!(events[0].device.index, Some(0));
        assert_eq!(events[0].memory.requested_bytes, Some(838447104));
        // Far apart, they are two failures.
        let apart = format!(
            "Error: llama runner process has terminated: cudaMalloc failed: out of memory\n{}\
             ggml_gallocr_reserve_n: failed to allocate CUDA0 buffer of size 838447104\n",
            "llama_context: n_ctx = 4096\n".repeat(8)
        );
        let (events, _) = scan(&apart);
        assert_eq!(events.len(), 2, "{events:?}");
    }

    #[test]
    fn an_error_s_label_wrapped_at_its_colon_joins_its_message() {
        let text = "ERROR [enforce fail at alloc_cpu.cpp:115] data. DefaultCPUAllocator:\n\
                    not enough memory: you tried to allocate 67731356304 bytes.\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, Framework::PyTorch);
        assert_eq!(events[0].device.kind, crate::oom::DeviceKind::Cpu);
        assert_eq!(events[0].memory.requested_bytes, Some(67731356304));
    }

    #[test]
    fn keras_s_line_over_a_layer_s_error_is_that_error() {
        // Keras 3 on the torch backend, in a report that names the other
        // backends: one PyTorch event with its figures, in the forward pass.
        let text = "Inference worked with the `jax` and `tensorflow` backends.\n\n\
                    OutOfMemoryError: Exception encountered when calling Softmax.call().\n\n\
                    CUDA out of memory. Tried to allocate 1.53 GiB. GPU 0 has a total capacity of 14.56 GiB of which 155.81 MiB is free.\n\n\
                    Arguments received by Softmax.call():\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, Framework::PyTorch);
        assert_eq!(events[0].device.index, Some(0));
        assert!(events[0].memory.requested_bytes.is_some());
        assert_eq!(events[0].phase, Phase::Forward);
    }

    #[test]
    fn ggml_s_error_handler_is_llama_cpp_s_and_names_the_device() {
        let text = "CUDA error: out of memory\n  current device: 1, in function ggml_cuda_pool_malloc_vmm at ggml-cuda.cu:8583\n  cuMemCreate(&handle, reserve_size, &prop, 0)\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, Framework::LlamaCpp);
        assert_eq!(events[0].device.index, Some(1));
    }

    #[test]
    fn a_cut_async_message_counts_only_where_it_is_the_error() {
        let (events, _) = scan("!!! Exception during processing !!! Allocation on device \n");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, Framework::PyTorch);
        assert_eq!(events[0].device.kind, crate::oom::DeviceKind::Cuda);
        let (events, _) = scan("We log each Allocation on device\n");
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn the_tpu_runtime_s_refusal_gives_request_and_free() {
        let text =
            "Attempting to allocate 180.59M. That was not possible. There are 142.58M free.\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        let m = &events[0].memory;
        assert!(
            m.requested_bytes.is_some() && m.free_bytes.is_some(),
            "{m:?}"
        );
        assert!(m.requested_bytes > m.free_bytes, "{m:?}");
    }

    #[test]
    fn xgboost_s_report_joined_to_the_message_gives_its_figures() {
        let text = "std::bad_alloc: cudaErrorMemoryAllocation: out of memory - Free memory: 8126464 - Requested memory: 33554432\n";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].memory.requested_bytes, Some(33554432));
        assert_eq!(events[0].memory.free_bytes, Some(8126464));
        // XGBoost 2's units, in a worker's error quoted as a Python string.
        let text = r#"Exception: "XGBoostError('[11:17:11] /workspace/src/common/device_vector.cu:23: Memory allocation error on worker 0: std::bad_alloc: cudaErrorMemoryAllocation: out of memory\n- Free memory: 53.1098GB\n- Requested memory: 64GB\n\nStack trace:\n')""#;
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].memory.requested_bytes, Some(64 << 30));
        assert_eq!(events[0].memory.free_bytes, Some(57026213524));
    }

    fn scan(text: &str) -> (Vec<OomEvent>, ScanSummary) {
        let mut events = Vec::new();
        let summary = scan_reader("-", text.as_bytes(), &ScanOptions::default(), |e| {
            events.push(e)
        })
        .expect("scans");
        (events, summary)
    }

    #[test]
    fn a_report_that_opens_on_the_quoted_error_is_the_error_pasted_under_it() {
        let text = concat!(
            "“RuntimeError：CUDA out of memory”， I had set train.batch_size to very small like 4， but the problem still existed.\n",
            "Traceback (most recent call last):\n",
            "  File \"bin/main.py\", line 141, in train\n",
            "    loss.backward()\n",
            "RuntimeError: CUDA out of memory. Tried to allocate 88.00 MiB (GPU 0; 7.93 GiB total capacity; 7.09 GiB already allocated; 12.56 MiB free; 7.34 GiB reserved in total by PyTorch)\n",
        );
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].line, 5);
        assert_eq!(events[0].memory.requested_bytes, Some(88 << 20));
    }

    #[test]
    fn zsh_s_job_report_is_a_kill_after_its_job_number_is_read_as_a_tag() {
        for text in [
            "[1]    29982 killed     python pmf2.py\n",
            "[2]    4711 killed     python train.py --fp16\n",
        ] {
            let (events, _) = scan(text);
            assert_eq!(events.len(), 1, "{text}");
            assert!(events[0].facts.oom_killer(), "{text}");
        }
        assert!(scan("[1]    29982 done       python pmf2.py\n")
            .0
            .is_empty());
    }

    #[test]
    fn a_failure_at_the_top_reads_the_report_under_it_for_its_cause() {
        let text = "Out of memory error on GPU 0. Cannot allocate 182.531494MB memory on GPU 0, 22.313599GB memory has been allocated and available memory is only 69.937500MB.

 1. PaddleSeg version: 2.4
 2. PaddlePaddle version: 2.1.3
 3. Operation system: Linux
 4. Python version: 3.8.10
 5. CUDA/cuDNN version: CUDA9.0/cuDNN 7.6.5

While training, GPU memory keeps increasing from 3G to 22G until it runs out.
";
        let (events, _) = scan(text);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].facts.context.kept_alive.is_some());
        // In a log, lines that far below are another story.
        let log = format!("step 1\n{text}");
        let (events, _) = scan(&log);
        assert!(events[0].facts.context.kept_alive.is_none());
    }

    #[test]
    fn an_error_quoted_in_a_diff_is_no_failure_and_the_text_after_it_is_read() {
        let text = "huggingface/README.md:115
```diff
 ### Problem with Azure Authentication
-### `RuntimeError: CUDA out of memory` error
+### In case of `RuntimeError: CUDA out of memory` error
```
";
        assert!(scan(text).0.is_empty());
        let after = format!("{text}Then the run itself:\nRuntimeError: CUDA out of memory. Tried to allocate 2.00 MiB (GPU 0; 7.79 GiB total capacity; 6.31 GiB already allocated; 1.06 MiB free; 6.39 GiB reserved in total by PyTorch)\n");
        assert_eq!(scan(&after).0.len(), 1);
    }

    #[test]
    fn tensorflow_s_smaller_retry_of_a_refused_region_is_the_same_failure() {
        let log = r"2018-03-14 11:33:52.456418: E c:\users\u\tensorflow\stream_executor\cuda\cuda_driver.cc:924] failed to allocate 968.17M (1015196672 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY
2018-03-14 11:33:52.486808: E c:\users\u\tensorflow\stream_executor\cuda\cuda_driver.cc:924] failed to allocate 871.35M (913677056 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY
";
        let (events, _) = scan(log);
        assert_eq!(events.len(), 1, "{events:#?}");
        assert_eq!(events[0].memory.requested_bytes, Some(1_015_196_672));
        assert!(events[0].message.starts_with("failed to allocate 968.17M"));
    }

    #[test]
    fn a_llama_cpp_failure_carries_the_offload_its_log_reported() {
        let log = "llm_load_tensors: offloaded 41/41 layers to GPU
llm_load_tensors:        CPU buffer size =  1640.62 MiB
llm_load_tensors:      CUDA0 buffer size =  5434.38 MiB
llama_kv_cache_init:      CUDA0 KV buffer size =  1536.00 MiB
llama_new_context_with_model: pipeline parallelism enabled (n_copies=4)
ggml_backend_cuda_buffer_type_alloc_buffer: allocating 8900.01 MiB on device 0: cudaMalloc failed: out of memory
ggml_gallocr_reserve_n: failed to allocate CUDA0 buffer of size 9332334592
llama_new_context_with_model: failed to allocate compute buffers
";
        let (events, _) = scan(log);
        assert_eq!(events.len(), 1);
        let offload = events[0].facts.llama_offload.as_ref().expect("offload");
        assert_eq!(offload.offloaded_layers, Some(41));
        assert_eq!(offload.buffers.len(), 3);
        assert_eq!(
            offload.buffers[2].kind,
            crate::oom::LlamaBufferKind::KvCache
        );
    }

    #[test]
    fn jax_s_allocator_line_and_its_raised_error_are_one_failure() {
        let log = "2023-09-15 15:37:48.396554: W external/tsl/tsl/framework/bfc_allocator.cc:485] Allocator (GPU_0_bfc) ran out of memory trying to allocate 85.87GiB (rounded to 92198188544)requested by op
2023-09-15 15:37:48.398429: W external/tsl/tsl/framework/bfc_allocator.cc:497] ******______________________________________________________________________________________________
2023-09-15 15:37:48.404245: E external/xla/xla/pjrt/pjrt_stream_executor_client.cc:2593] Execution of replica 0 failed: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 92198188384 bytes.
";
        let (events, _) = scan(log);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].framework, crate::oom::Framework::Jax);
    }

    #[test]
    fn tensorflow_s_root_errors_of_one_step_are_one_failure() {
        // The second root error's device was cut from the paste.
        let log = "ResourceExhaustedError: 2 root error(s) found.
  (0) Resource exhausted: OOM when allocating tensor with shape[20,48,2,25,201,64] and type float on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc
	 [[{{node sample_sequence/while/concat}}]]
Hint: If you want to see a list of allocated tensors when OOM happens, add report_tensor_allocations_upon_oom to RunOptions for current allocation info.

	 [[strided_slice/_1363]]
Hint: If you want to see a list of allocated tensors when OOM happens, add report_tensor_allocations_upon_oom to RunOptions for current allocation info.

  (1) Resource exhausted: OOM when allocating tensor with shape[20,48,2,25,201,64] and type float on /job:localhost/replica:0
";
        let (events, _) = scan(log);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].device.index, Some(0));
    }

    #[test]
    fn identical_lines_parse_the_same_through_the_cache() {
        let line = "RuntimeError: CUDA out of memory. Tried to allocate 2.00 MiB (GPU 0; 10.92 GiB total capacity; 10.17 GiB already allocated; 1.56 MiB free; 10.30 GiB reserved in total by PyTorch)\n";
        let mut log = String::new();
        for step in 0..3 {
            log.push_str(line);
            for _ in 0..500 {
                log.push_str(&format!("step {step}\n"));
            }
        }
        let (events, _) = scan(&log);
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.memory == events[0].memory));
        assert_eq!(events[2].line, 1003);
    }

    #[test]
    fn watchdog_timeouts_are_in_the_summary_not_events() {
        let (events, summary) = scan("[E ProcessGroupNCCL.cpp:737] [Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=5, OpType=ALLREDUCE, Timeout(ms)=600000) ran for 600013 milliseconds before timing out.\n");
        assert!(events.is_empty());
        assert_eq!(summary.watchdog_timeouts.len(), 1);
        assert_eq!(summary.watchdog_timeouts[0].rank, Some(3));
    }

    #[test]
    fn a_log_level_of_error_makes_a_worded_failure_behind_it_the_failure() {
        let (events, _) = scan(
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n",
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].device.kind, crate::oom::DeviceKind::Cpu);
        // The same words at warning level, or with no level, are a notice.
        for quiet in [
            "[WARNING] Reached heap limit Allocation failed\n",
            "the run reached heap limit allocation failed twice\n",
        ] {
            assert!(scan(quiet).0.is_empty(), "{quiet}");
        }
    }

    #[test]
    fn a_generic_follow_up_line_joins_the_failure_before_it() {
        let llama = "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9000.00 MiB on device 1: cudaMalloc failed: out of memory
alloc_tensor_range: failed to allocate CUDA1 buffer of size 9437184000
llama_model_load: error loading model: unable to allocate backend buffer
llama_load_model_from_file: failed to load model
";
        let (events, _) = scan(llama);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].memory.requested_bytes, Some(9_437_184_000));
        assert_eq!(events[0].device.index, Some(1));
        let trt = "[E] [TRT] Cuda Error in allocate: 2 (out of memory)
[W] [TRT] GPU memory allocation error during getBestTactic: head_conv
[E] [TRT] Internal error: could not find any implementation for node head_conv, try increasing the workspace size with IBuilder::setMaxWorkspaceSize()
";
        assert_eq!(scan(trt).0.len(), 1);
        let nccl = "h:1:2 [0] misc/shmutils.cc:88 NCCL WARN Error: failed to extend /dev/shm/nccl-aB3 to 4194308 bytes, error: No space left on device (28)

h:1:2 [0] misc/shmutils.cc:132 NCCL WARN Error while creating shared memory segment /dev/shm/nccl-aB3 (size 4194304), error: No space left on device (28)
";
        let (events, _) = scan(nccl);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].memory.requested_bytes, Some(4_194_308));
    }

    #[test]
    fn a_follow_up_of_another_device_or_kind_stays_its_own_event() {
        // A host kill after a GPU failure, and accelerate's finder giving up
        // after the OOM it caught, are failures of their own.
        let log = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free.
Killed
";
        assert_eq!(scan(log).0.len(), 2);
        let log = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free.
RuntimeError: No executable batch size found, reached zero.
";
        assert_eq!(scan(log).0.len(), 2);
    }

    #[test]
    fn an_allocation_the_program_recovers_from_is_no_event() {
        let skipped = "[TRT] [E] 2: [virtualMemoryBuffer.cpp::resizePhysical::145] Error Code 2: OutOfMemory (no further information)
[TRT] [W] Requested amount of GPU memory (8589934592 bytes) could not be allocated. There may not be enough free memory for allocation to succeed.
[TRT] [W] Skipping tactic 2 due to insufficient memory on requested size of 8589934592 detected for tactic 0x0000000000000007.
";
        assert!(scan(skipped).0.is_empty());
        let fatal = "[TRT] [E] 2: [virtualMemoryBuffer.cpp::resizePhysical::145] Error Code 2: OutOfMemory (no further information)
[TRT] [E] 2: [builder.cpp::buildSerializedNetwork::751] Error Code 2: Internal Error (Assertion engine != nullptr failed. )
";
        assert_eq!(scan(fatal).0.len(), 1);
        // A skipped tactic after which the build gives up failed the build.
        let gave_up = "[E] Error[1]: [defaultAllocator.cpp::allocate::31] Error Code 1: Cuda Runtime (out of memory)
[W] [TRT] Requested amount of GPU memory (15485030400 bytes) could not be allocated. There may not be enough free memory for allocation to succeed.
[E] Error[9]: Error Code: 9: Skipping tactic 0x0000000000000000 due to exception [tunable_graph.cpp:create:117] autotuning: User allocator error allocating 15485030400-byte buffer
[E] Error[10]: IBuilder::buildSerializedNetwork: Error Code 10: Internal Error (Could not find any implementation for node {ForeignNode[/1/Slice_4]}.)
[E] Engine could not be created from network
";
        let (events, _) = scan(gave_up);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].memory.requested_bytes, Some(15485030400));
    }

    #[test]
    fn the_kernel_s_report_confirms_a_kill_a_shell_reported() {
        let (events, _) = scan("Killed\n");
        assert!(events[0].facts.signal_only_kill);
        let log = "step 41 loss 2.1
Killed
[ 8123.004211] Out of memory: Killed process 5121 (python) total-vm:61234567kB, anon-rss:30123456kB
";
        let (events, _) = scan(log);
        assert_eq!(events.len(), 1);
        assert!(!events[0].facts.signal_only_kill);
        assert_eq!(events[0].facts.call.as_deref(), Some("python (pid 5121)"));
    }

    #[test]
    fn a_kernel_report_whose_trace_is_a_memory_cgroup_s_is_a_container_limit() {
        let log = "kernel: [75254.207495] supervisord invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=0
kernel: [75254.229995]  [<ffffffff8114e30a>] ? oom_kill_process+0x28a/0x3e0
kernel: [75254.231977]  [<ffffffff811b1faf>] ? mem_cgroup_oom_synchronize+0x50f/0x580
";
        let (events, _) = scan(log);
        assert_eq!(events[0].facts.memory_limit, Some(MemoryLimit::Container));
        let (events, _) = scan(
            "kernel: [1.0] python invoked oom-killer: gfp_mask=0x100cca, order=0
",
        );
        assert_eq!(events[0].facts.memory_limit, None);
    }
}
