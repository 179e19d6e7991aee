//! Grouping the parts the scanner finds into events: one failure printed
//! several times (by several ranks, by a chained exception, as a warning
//! followed by the exception it announces, a log handler and stderr) becomes
//! one event, keeping where its text first started. Memory stays bounded: a
//! window of recent parts and one event held back until the next part shows
//! whether it continues.

use super::patterns::{Parsed, PartKind};
use super::scan::ScanOptions;
use super::{
    Device, DeviceKind, EngineLog, EventFacts, EventKind, Framework, OomEvent, Phase, RankDevice,
};
use regex::Regex;
use std::collections::VecDeque;
use std::sync::LazyLock;

/// One parsed part with what the grouper needs to place it.
pub(super) struct Found {
    pub parsed: Parsed,
    pub phase: Phase,
    /// The rank tag of the line (`[rank3]:`), when there is one.
    pub rank: Option<u32>,
    /// The process tag of the line (`(EngineCore_0 pid=12)`).
    pub process: Option<String>,
    /// The lines before it, for chained-exception markers.
    pub before: Vec<String>,
    /// The logical line, prefix removed, as read.
    pub text: String,
    /// Reads what the part's surroundings say of its cause into its facts,
    /// given `before` and `text`. Run only for a part that stands as an
    /// event or merges into one: a copy folded into the event before it
    /// adds nothing of these, so a log dense with one failure reads them
    /// once and not once per line.
    pub read_facts: ReadFacts,
}

/// See [`Found::read_facts`].
pub(super) type ReadFacts = Box<dyn FnOnce(&[String], &str, &mut Parsed)>;

/// An event already seen, as the grouper remembers it.
struct Seen {
    line: u64,
    /// Figures (or, without figures, the words) of the failure.
    figures: Signature,
    /// The figures are figures, not the words standing in for them.
    has_figures: bool,
    /// The words with digits masked: equal across ranks and devices.
    words: (Framework, String),
    rank: Option<u32>,
    /// The process tag of the line (`(EngineCore_0 pid=12)`), when there is one.
    process: Option<String>,
    device_index: Option<u32>,
    message: String,
    text: String,
}

/// Groups the parts of one failure and drops repeats, holding back the last
/// event until the next one (or the end) shows whether it continues.
///
/// Parts are the same failure when they are: copies printed by different
/// ranks (rank tags differ, or devices differ within a few lines); an exact
/// copy printed again at once (a log handler and stderr) or after a chained
/// exception; retries of a warning that announces the failure; or a warning
/// followed by the exception it announces.
pub(super) struct Grouper {
    options: ScanOptions,
    pending: Option<Pending>,
    recent: VecDeque<Seen>,
    emitted: u64,
}

struct Pending {
    event: OomEvent,
    kind: PartKind,
    exact_request: bool,
    /// The line of the last part joined to the event.
    last_line: u64,
}

/// Lines within which the same message again is a reprint (a log handler
/// and stderr, a wrapper that prints before re-raising), not a new failure.
const REPRINT_LINES: u64 = 12;
/// Lines within which the same failure told in other words is one.
const NEAR_COPY_LINES: u64 = 4;

/// True when a line among the last `gap` before the event starts a new run
/// (a REPL or shell prompt): the same message after it is a new failure.
fn new_run_between(before: &[String], gap: u64) -> bool {
    before.iter().rev().take(gap as usize).any(|l| {
        let t = l.trim_start();
        t.starts_with(">>> ") || t.starts_with("In [") || t.starts_with("$ ")
    })
}
/// Lines after the last part of an event within which a figure-less line of
/// the same device is that failure's generic follow-up (llama.cpp's `unable
/// to allocate backend buffer` after ggml's allocation, TensorRT's `could
/// not find any implementation` after its allocator's error, NCCL's segment
/// error after the failed extension).
const FOLLOW_UP_LINES: u64 = 5;

/// True when a part adds nothing but words to the pending event (not to a
/// sentence telling of the failure, which gives way to it): it states no
/// figure, says the same kind of failure on the same device (or names
/// none), and comes from the same software or from the generic layer.
fn is_follow_up(pending: &Pending, parsed: &Parsed, line: u64) -> bool {
    let event = &pending.event;
    let kind_fits =
        parsed.facts.kind == EventKind::Allocation || parsed.facts.kind == event.facts.kind;
    let framework_fits =
        parsed.framework == event.framework || parsed.framework == Framework::Other;
    let gives_way = match pending.kind {
        PartKind::Reported => true,
        PartKind::Title => title_gives_way(event, parsed),
        _ => false,
    };
    !gives_way
        && parsed.memory.is_empty()
        && line.saturating_sub(pending.last_line) <= FOLLOW_UP_LINES
        && kind_fits
        && framework_fits
        && devices_fit(&parsed.device, &event.device)
}

/// True when a part says more of a failure than a title naming it: it
/// states a figure or the device's number, comes from a known software's
/// own wording, names the
/// kind of device a title in plain words left out (a runtime's error code:
/// `CUDA_ERROR_OUT_OF_MEMORY`), or is an exception or error line
/// (`RuntimeError: ...`), not a sentence.
fn says_more(title: &OomEvent, parsed: &Parsed) -> bool {
    static ERROR_LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*(?:[A-Za-z_][\w.]*(?:Error|Exception)\b|(?i:error|fatal)\s*[:\]])")
            .expect("pattern compiles")
    });
    !parsed.memory.is_empty()
        || parsed.framework != Framework::Other
        || parsed.facts.oom_killer()
        || (parsed.device.index.is_some() && title.device.index.is_none())
        || (parsed.device.kind != DeviceKind::Unknown
            && title.device.kind == DeviceKind::Unknown
            && title.framework == Framework::Other)
        || ERROR_LINE.is_match(&parsed.message)
}

/// True when a title gives way to a part of the paste under it: the part
/// says more, or is the very line the title copied (retyped: in another
/// case, `Terminate called ...` over `terminate called ...`).
fn title_gives_way(event: &OomEvent, parsed: &Parsed) -> bool {
    let title = event.message.trim().to_lowercase();
    says_more(event, parsed)
        || (!title.is_empty() && parsed.message.to_lowercase().contains(&title))
        || shares_error_code(&event.message, &parsed.message)
}

/// True when a title and a line under it name the same runtime error code,
/// in full or by its tail (`OUT_OF_DEVICE_MEMORY` in a title over SYCL's
/// `UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY`, `CUBLAS_STATUS_ALLOC_FAILED`
/// over the line that raised it): the title names the failure the paste
/// prints.
fn shares_error_code(title: &str, line: &str) -> bool {
    let title_codes: Vec<&str> = error_codes(title).collect();
    // One code is the other's tail at a part's boundary (`_` before it).
    let tail_of = |long: &str, short: &str| {
        long.strip_suffix(short)
            .is_some_and(|head| head.is_empty() || head.ends_with('_'))
    };
    !title_codes.is_empty()
        && error_codes(line).any(|code| {
            title_codes
                .iter()
                .any(|t| tail_of(code, t) || tail_of(t, code))
        })
}

/// The words of `text` written as C error codes: upper-case parts joined by
/// at least two underscores (`CUDA_ERROR_OUT_OF_MEMORY`, `CL_OUT_OF_RESOURCES`).
fn error_codes(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(|w| w.trim_matches('_'))
        .filter(|w| {
            w.matches('_').count() >= 2
                && w.starts_with(|c: char| c.is_ascii_uppercase())
                && !w.contains("__")
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
}

/// True when two parts may name the same device: the same kind (or one
/// names none) and the same index (or one names none).
fn devices_fit(a: &Device, b: &Device) -> bool {
    let kind = a.kind == b.kind || a.kind == DeviceKind::Unknown || b.kind == DeviceKind::Unknown;
    let index = match (a.index, b.index) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    kind && index
}

/// True when the pending event stated no figure and this part, a few lines
/// on, is the same failure with its figures: a wrapper's bare line and the
/// runtime's own line under it (Ollama's `llama runner process has
/// terminated: cudaMalloc failed: out of memory` and ggml's `failed to
/// allocate CUDA0 buffer of size N`), one failure.
///
/// A bare line that the later message opens with (a page's heading
/// `torch.cuda.OutOfMemoryError`, then the traceback, then
/// `torch.cuda.OutOfMemoryError: CUDA out of memory. ...`) is completed
/// across a whole traceback.
///
/// Keras's line over an error it re-raises from a layer's call is that
/// error, whatever backend the words around it name: the original message
/// follows it (keras/src/utils/traceback_utils.py: Keras 3's
/// `OutOfMemoryError: Exception encountered when calling Softmax.call().`
/// over PyTorch's `CUDA out of memory. Tried to allocate ...`; Keras 2.9+'s
/// `Exception encountered when calling layer "dense" (type Dense).`).
fn completes_bare(pending: &Pending, parsed: &Parsed, line: u64) -> bool {
    let event = &pending.event;
    let same_software = event.framework == parsed.framework
        || event.framework == Framework::Other
        || keras_wrapper(event);
    let kind_fits = parsed.facts.kind == EventKind::Allocation
        || event.facts.kind == EventKind::Allocation
        || parsed.facts.kind == event.facts.kind;
    let gap = line.saturating_sub(pending.last_line);
    let heads_report = heads_its_report(&event.message);
    // The heading's comparison, the one that copies text, comes last: a
    // log dense with failures reaches it only for a bare heading.
    pending.kind == PartKind::Primary
        && event.memory.is_empty()
        && !parsed.memory.is_empty()
        && parsed.kind != PartKind::Reported
        && gap <= TRACEBACK_LINES
        && same_software
        && (heads_report || devices_fit(&parsed.device, &event.device))
        && kind_fits
        && (gap <= FOLLOW_UP_LINES || heads_report || opened_by(event, parsed))
}

/// True when the event's message is an exception's name and a colon with
/// nothing after it: the exception's text starts on the next line, a
/// report the program formatted itself (PaddlePaddle raises `MemoryError: `
/// over its C++ traceback and the `Error Message Summary` that names the
/// GPU). The class says nothing of the device; the report under it does.
/// Python prints an exception raised without text as its bare name, with
/// no colon.
fn heads_its_report(message: &str) -> bool {
    let Some(name) = message.trim().strip_suffix(':') else {
        return false;
    };
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    (name.ends_with("Error") || name.ends_with("Exception")) && name.chars().all(is_name)
}

/// True when the pending event is the text's first line (an issue's
/// title) and this part, further down, is the failure it names with at
/// least as many figures: the same software's wording, the same device,
/// and the same request and capacity where both state them. A title that
/// restates the error, whole or cut short, and the paste under it are one
/// failure, whatever lies between (the reporter's setup, a heading); the
/// paste's own figures win. A log whose first line is a failure joins a
/// second failure of the same size within a traceback's length to it.
fn titled_by(pending: &Pending, parsed: &Parsed, line: u64) -> bool {
    let event = &pending.event;
    let agree = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => a.abs_diff(b) <= a.max(b) / 100,
        _ => true,
    };
    event.line == 1
        && pending.kind == PartKind::Primary
        && parsed.kind == PartKind::Primary
        && line.saturating_sub(pending.last_line) <= TRACEBACK_LINES
        && event.framework == parsed.framework
        && devices_fit(&parsed.device, &event.device)
        && parsed.memory.count() >= event.memory.count()
        && agree(event.memory.requested_bytes, parsed.memory.requested_bytes)
        && agree(event.memory.total_bytes, parsed.memory.total_bytes)
}

/// True when the pending event's whole message is how this part's message
/// opens: a bare heading (an exception's name) and the full message, or a
/// quote of it cut short with an ellipsis (`Tried to allocate...` in a
/// report's words, the whole error pasted under it).
fn opened_by(event: &OomEvent, parsed: &Parsed) -> bool {
    let heading = quoted_heading(&event.message)
        .trim_end_matches(['.', '\u{2026}'])
        .trim_end();
    let (heading, message) = (squeezed(heading), squeezed(&parsed.message));
    !heading.is_empty() && message.len() > heading.len() && message.starts_with(&heading)
}

/// The words a report quotes at its start ("“RuntimeError：CUDA out of
/// memory”， I had set the batch to 4"): the error it names, without the
/// sentence around it. Text that opens with no quote mark is all heading.
fn quoted_heading(message: &str) -> &str {
    let text = message.trim();
    let Some(open) = text.chars().next().filter(|c| "\"'`“‘「".contains(*c)) else {
        return text;
    };
    let close = match open {
        '“' => '”',
        '‘' => '’',
        '「' => '」',
        other => other,
    };
    let inner = &text[open.len_utf8()..];
    inner.find(close).map_or(text, |end| &inner[..end])
}

/// Text without white space, with the full-width colon and comma CJK
/// reports type read as ASCII: the same words however they were spaced.
fn squeezed(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '：' => ':',
            '，' => ',',
            other => other,
        })
        .collect()
}

/// Keras's own line over an error it re-raises from a layer's call.
fn keras_wrapper(event: &OomEvent) -> bool {
    event.message.contains("Exception encountered when calling")
}

/// Lines a traceback between a failure's bare heading and its full message
/// may take.
const TRACEBACK_LINES: u64 = 80;

/// Lines one kernel OOM report (with its task table) spans at most.
const KILL_REPORT_LINES: u64 = 400;
/// Lines within which copies for different devices are one failure of
/// several ranks.
const RANK_COPY_LINES: u64 = 60;

fn is_chained(before: &[String], gap: u64) -> bool {
    before.iter().rev().take(gap as usize).any(|l| {
        l.contains("During handling of the above exception")
            || l.contains("The above exception was the direct cause")
    })
}

impl Grouper {
    pub(super) fn new(options: ScanOptions) -> Grouper {
        Grouper {
            options,
            pending: None,
            recent: VecDeque::new(),
            emitted: 0,
        }
    }

    pub(super) fn push(
        &mut self,
        source: &str,
        line: u64,
        found: Found,
        emit: &mut dyn FnMut(OomEvent),
    ) {
        let Found {
            parsed,
            phase,
            rank,
            process,
            before,
            text,
            read_facts,
        } = found;
        if self.fold_report(&parsed, phase, line) {
            return;
        }
        let figures = figures_signature(&parsed);
        let has_figures = figures.stands_for_figures(&parsed.message);
        let seen = Seen {
            line,
            figures,
            has_figures,
            words: mask_digits(parsed.framework, &parsed.message),
            rank,
            process,
            device_index: parsed.device.index,
            message: parsed.message.clone(),
            text,
        };
        let window = self.options.duplicate_window_lines;
        let pending_is_preliminary = self
            .pending
            .as_ref()
            .is_some_and(|p| p.kind == PartKind::Preliminary);
        let copy = self.recent.iter().any(|r| {
            let gap = line.saturating_sub(r.line);
            if gap > window {
                return false;
            }
            let same_words = r.words == seen.words;
            if !same_words && !r.figures.fits(&seen.figures) {
                return false;
            }
            let other_rank = matches!((r.rank, seen.rank), (Some(a), Some(b)) if a != b);
            let other_device = gap <= RANK_COPY_LINES
                && same_words
                && matches!((r.device_index, seen.device_index), (Some(a), Some(b)) if a != b);
            // A reprint: the same figures told in other words (a log line and
            // the exception it raises, an engine's error and the server's
            // re-raise) anywhere within the window; the same message again
            // within a few lines; or any copy after a chained exception. The
            // same message far apart is a new failure of the same size (a
            // loop that catches the OOM and goes on).
            let retold = r.has_figures && r.message != seen.message;
            // The same line again (not a line that differs by a progress
            // bar), with no new command started in between.
            let same_line =
                r.text == seen.text && gap <= REPRINT_LINES && !new_run_between(&before, gap);
            let near_copy =
                gap <= NEAR_COPY_LINES && (r.message != seen.message || r.text == seen.text);
            let other_process = matches!((&r.process, &seen.process), (Some(a), Some(b)) if a != b);
            let reprint = r.figures.fits(&seen.figures)
                && (same_line || near_copy || retold || other_process || is_chained(&before, gap));
            let retry = pending_is_preliminary && same_words && gap <= REPRINT_LINES;
            (other_rank && same_words) || other_device || reprint || retry
        });
        // The kernel's report of one kill spans many lines (the invoking
        // task, the cgroup's figures, the victim, the reaper): one event.
        let same_kill = self.pending.as_ref().is_some_and(|p| {
            p.event.facts.oom_killer()
                && parsed.facts.oom_killer()
                && line.saturating_sub(p.event.line) <= KILL_REPORT_LINES
        });
        let copy_of_rank = rank.map(|rank| RankDevice {
            rank,
            device_index: parsed.device.index,
        });
        let follow_up = self
            .pending
            .as_ref()
            .is_some_and(|p| is_follow_up(p, &parsed, line));
        if copy || same_kill || follow_up {
            if let Some(p) = &mut self.pending {
                p.last_line = line;
                if p.event.device.kind == DeviceKind::Unknown {
                    p.event.device.kind = parsed.device.kind;
                }
                // A copy that names the device's number the first left out
                // (not another rank's copy, whose device is its own).
                if p.event.device.index.is_none() && rank.is_none() {
                    p.event.device.index = parsed.device.index;
                }
                add_rank(&mut p.event, copy_of_rank);
                p.event.memory.fill_from(&parsed.memory);
                if p.event.facts.call.is_none() {
                    p.event.facts.call = parsed.facts.call.clone();
                }
                // A copy another component passed on can name the engine
                // (TGI's router logs the shard's error it relays).
                if p.event.facts.serving_engine.is_none() {
                    p.event.facts.serving_engine =
                        super::phase::serving_engine(&[], &seen.text, &seen.text);
                }
                p.event.facts.memory_limit =
                    p.event.facts.memory_limit.or(parsed.facts.memory_limit);
                // The kernel's own report of the kill confirms a signal.
                if parsed.facts.oom_killer() && !parsed.facts.signal_only_kill {
                    p.event.facts.signal_only_kill = false;
                }
                if p.event.phase == Phase::Unknown {
                    p.event.phase = phase;
                }
            }
            self.remember(seen);
            return;
        }
        let mut parsed = parsed;
        read_facts(&before, &seen.text, &mut parsed);
        if let Some(p) = &mut self.pending {
            let announce = p.kind == PartKind::Preliminary
                && p.event.framework == parsed.framework
                && line.saturating_sub(p.event.line) <= self.options.announce_window_lines;
            let titled = titled_by(p, &parsed, line);
            if announce || titled || completes_bare(p, &parsed, line) {
                if p.event.framework == Framework::Other || keras_wrapper(&p.event) {
                    p.event.framework = parsed.framework;
                }
                // A heading the message opens with, an exception's name
                // over the report it raised, or a title over the paste: the
                // event is the message, on the device the report names.
                let heading = heads_its_report(&p.event.message);
                if titled || heading || opened_by(&p.event, &parsed) {
                    p.event.line = line;
                }
                if heading && parsed.device.kind != DeviceKind::Unknown {
                    p.event.device.kind = parsed.device.kind;
                }
                p.last_line = line;
                add_rank(&mut p.event, copy_of_rank);
                let mut parsed = parsed;
                if titled {
                    // The paste's own surroundings read first: the title's
                    // reading ran over the lines under it, before the
                    // paste showed where its failure came.
                    let title = std::mem::take(&mut p.event.facts.context);
                    parsed.facts.context = std::mem::take(&mut parsed.facts.context).merge(title);
                }
                merge_announced(p, parsed, phase);
                self.remember(seen);
                return;
            }
        }
        // A sentence that told of the failure gives way to the error itself.
        let reported = self.pending.as_ref().is_some_and(|p| {
            (p.kind == PartKind::Reported
                || (p.kind == PartKind::Title && title_gives_way(&p.event, &parsed)))
                && !matches!(parsed.kind, PartKind::Reported | PartKind::Title)
                && line.saturating_sub(p.last_line) <= self.options.announce_window_lines
        });
        let told = if reported {
            self.pending.take().map(|p| p.event)
        } else {
            self.flush(emit);
            None
        };
        // What the sentence's own lines showed and the error leaves unsaid:
        // the phase, the device (a card named in the report's words).
        let phase = match (phase, &told) {
            (Phase::Unknown, Some(told)) => told.phase,
            _ => phase,
        };
        let mut device = parsed.device;
        let mut facts = parsed.facts;
        if let Some(told) = told {
            if device.kind == DeviceKind::Unknown {
                device.kind = told.device.kind;
            }
            // What the report's lines showed of the cause (its title's
            // words, the paste under it) stays with the error, and so does
            // the serving engine its title names ("[Bug]: vLLM 0.11.1 runs
            // into OOM ..." over a worker's PyTorch error).
            facts.context = facts.context.merge(told.facts.context);
            facts.serving_engine = facts.serving_engine.or(told.facts.serving_engine);
        }
        let event = OomEvent {
            source: source.to_string(),
            line,
            framework: parsed.framework,
            device,
            message: parsed.message,
            memory: parsed.memory,
            phase,
            ranks: copy_of_rank.map(|r| vec![r]),
            facts,
        };
        self.remember(seen);
        self.pending = Some(Pending {
            event,
            kind: parsed.kind,
            exact_request: parsed.exact_request,
            last_line: line,
        });
    }

    /// Folds a sentence that tells of the failure in words into the event
    /// held back, when there is one near: the event's own error says more.
    /// The sentence may still name the phase the error leaves unsaid.
    fn fold_report(&mut self, parsed: &Parsed, phase: Phase, line: u64) -> bool {
        if parsed.kind != PartKind::Reported {
            return false;
        }
        let window = self.options.announce_window_lines;
        let Some(p) = self
            .pending
            .as_mut()
            .filter(|p| line.saturating_sub(p.last_line) <= window)
        else {
            return false;
        };
        if p.event.phase == Phase::Unknown {
            p.event.phase = phase;
        }
        true
    }

    fn remember(&mut self, seen: Seen) {
        let window = self.options.duplicate_window_lines;
        let line = seen.line;
        self.recent
            .retain(|r| line.saturating_sub(r.line) <= window);
        self.recent.push_back(seen);
        if self.recent.len() > 64 {
            self.recent.pop_front();
        }
    }

    fn flush(&mut self, emit: &mut dyn FnMut(OomEvent)) {
        if let Some(p) = self.pending.take() {
            self.emitted += 1;
            emit(p.event);
        }
    }

    pub(super) fn finish(&mut self, emit: &mut dyn FnMut(OomEvent)) -> u64 {
        self.flush(emit);
        self.emitted
    }
}

/// Ranks one event lists at most (a job of thousands of ranks stays small).
const MAX_RANKS: usize = 1024;

/// Adds the rank of a copy to the event's ranks, once, in rank order.
fn add_rank(event: &mut OomEvent, copy: Option<RankDevice>) {
    let Some(copy) = copy else {
        return;
    };
    let ranks = event.ranks.get_or_insert_with(Vec::new);
    if ranks.len() < MAX_RANKS && !ranks.iter().any(|r| r.rank == copy.rank) {
        ranks.push(copy);
        ranks.sort();
    }
}

/// Joins the failure a warning announced into the warning's event: it keeps
/// where the text started, takes the exception's words, and fills figures
/// both ways (an exact byte count wins over a rounded one).
fn merge_announced(p: &mut Pending, parsed: Parsed, phase: Phase) {
    let pending = &mut p.event;
    let earlier = std::mem::take(&mut pending.memory);
    let earlier_request = earlier.requested_bytes;
    pending.memory = parsed.memory.clone();
    pending.memory.fill_from(&earlier);
    if !parsed.exact_request && p.exact_request && earlier_request.is_some() {
        pending.memory.requested_bytes = earlier_request;
    }
    p.exact_request |= parsed.exact_request;
    pending.message = parsed.message;
    if pending.device.index.is_none() {
        pending.device.index = parsed.device.index;
    }
    // A later part can name the device more precisely (llama.cpp's ROCm
    // build says "cudaMalloc", then "ROCm0 buffer").
    if !matches!(parsed.device.kind, DeviceKind::Unknown | DeviceKind::Cuda)
        || pending.device.kind == DeviceKind::Unknown
    {
        pending.device.kind = parsed.device.kind;
    }
    if pending.phase == Phase::Unknown {
        pending.phase = phase;
    }
    pending.facts = merge_facts(std::mem::take(&mut pending.facts), parsed.facts);
    p.kind = parsed.kind;
}

fn merge_facts(mut a: EventFacts, b: EventFacts) -> EventFacts {
    // The kind an earlier part named stays; a plain allocation learns the
    // kind from the later part.
    if a.kind == EventKind::Allocation {
        a.kind = b.kind;
        a.signal_only_kill = b.signal_only_kill;
    } else if b.kind == EventKind::OomKill && !b.signal_only_kill {
        // The kernel's own report of the kill confirms a signal.
        a.signal_only_kill = false;
    }
    a.pytorch_era = a.pytorch_era.or(b.pytorch_era);
    a.alloc_conf_var = a.alloc_conf_var.or(b.alloc_conf_var);
    a.absurd_request |= b.absurd_request;
    a.op = b.op.or(a.op);
    a.call = a.call.or(b.call);
    a.memory_limit = a.memory_limit.or(b.memory_limit);
    a.context = a.context.merge(b.context);
    a.serving_engine = a.serving_engine.or(b.serving_engine);
    a.llama_offload = a.llama_offload.or(b.llama_offload);
    if a.engine_log == EngineLog::default() {
        a.engine_log = b.engine_log;
    }
    a
}

/// The message with every digit masked: ranks and figures differ between
/// copies of one failure, the words do not.
/// A run of digits is one mask whatever its length: a retry that asks for
/// less is the same words: TensorFlow's BFC allocator asks again for 90% of
/// a region the device refused (tensorflow/core/common_runtime/
/// bfc_allocator.cc `Extend`, `kBackpedalFactor = 0.9`), printing
/// `968.17M (1015196672 bytes)` then `871.35M (913677056 bytes)`.
fn mask_digits(framework: Framework, message: &str) -> (Framework, String) {
    // Bytes, not chars: an ASCII digit is never part of a longer UTF-8
    // sequence, so the other bytes copied as they are stay valid UTF-8.
    let bytes = message.as_bytes();
    let mut masked = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if !b.is_ascii_digit() {
            masked.push(b);
        } else if i == 0 || !bytes[i - 1].is_ascii_digit() {
            masked.push(b'#');
        }
    }
    let masked = String::from_utf8(masked).expect("ASCII digits replaced by ASCII");
    (framework, masked)
}

/// What copies of one failure share, compared as values: Triton's two
/// shared-memory figures, the device figures, or without figures the words.
/// Two signatures are equal exactly when their [`Signature::text`] is: the
/// text is built only where a message could be mistaken for its tail.
#[derive(PartialEq)]
enum Signature {
    Shared(Framework, Option<u64>, Option<u64>),
    Figures(Framework, Device, [Option<u64>; 5]),
    Words(Framework, String),
}

impl Signature {
    /// True when two signatures may be one failure: equal, or the same
    /// figures where one names no device or no index (TensorFlow's second
    /// root error, its device cut from the message, under the first).
    ///
    /// TensorFlow's BFC allocator (also inside jaxlib) logs the request
    /// rounded up to its 256-byte unit (`rounded to 92198188544`, its
    /// `RoundedBytes`, kMinAllocationSize), while XLA's raised error gives
    /// the bytes asked (`92198188384`): the same request.
    fn fits(&self, other: &Signature) -> bool {
        match (self, other) {
            (Signature::Figures(fa, da, a), Signature::Figures(fb, db, b)) => {
                let bfc = matches!(fa, Framework::TensorFlow | Framework::Jax);
                let request = a[0] == b[0]
                    || (bfc && a[0].map(|q| q.div_ceil(256)) == b[0].map(|q| q.div_ceil(256)));
                fa == fb && request && a[1..] == b[1..] && devices_fit(da, db)
            }
            _ => self == other,
        }
    }

    /// The signature as one line of text.
    fn text(&self) -> String {
        match self {
            Signature::Shared(fw, required, limit) => {
                format!("{fw:?}|shared|{required:?}|{limit:?}")
            }
            Signature::Figures(fw, device, [r, t, f, a, res]) => {
                format!("{fw:?}|{device:?}|{r:?}|{t:?}|{f:?}|{a:?}|{res:?}")
            }
            Signature::Words(fw, message) => format!("{fw:?}:{message}"),
        }
    }

    /// False when the signature stands for the words `message`, not for
    /// figures: its text ends in `:` and the message.
    fn stands_for_figures(&self, message: &str) -> bool {
        match self {
            Signature::Words(..) => false,
            // No `:` in its text.
            Signature::Shared(..) => true,
            // Its text ends in `None` or `)`: only such a message can be its tail.
            Signature::Figures(..) if message.ends_with("None") || message.ends_with(')') => !self
                .text()
                .strip_suffix(message)
                .is_some_and(|head| head.ends_with(':')),
            Signature::Figures(..) => true,
        }
    }
}

/// The figures of a failure, which copies of it share; without figures,
/// its words.
fn figures_signature(parsed: &Parsed) -> Signature {
    // Triton's shared-memory figures are not device memory, but they are
    // what copies of one failure share: the error and Inductor's wrapper of
    // it (`InductorError: OutOfResources: ...`) name the same two numbers.
    if let Some(shm) = parsed.facts.shared_memory().copied() {
        if shm.required_bytes.is_some() || shm.limit_bytes.is_some() {
            return Signature::Shared(parsed.framework, shm.required_bytes, shm.limit_bytes);
        }
    }
    let m = &parsed.memory;
    if m.requested_bytes.is_none() && m.total_bytes.is_none() && m.allocated_bytes.is_none() {
        return Signature::Words(parsed.framework, parsed.message.clone());
    }
    Signature::Figures(
        parsed.framework,
        parsed.device,
        [
            m.requested_bytes,
            m.total_bytes,
            m.free_bytes,
            m.allocated_bytes,
            m.reserved_bytes,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_upper_case_words_of_three_parts() {
        let codes: Vec<&str> = error_codes(
            "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)` (CUDA_VISIBLE, OOM_ERROR, cuda_error_out_of_memory)",
        )
        .collect();
        assert_eq!(codes, ["CUBLAS_STATUS_ALLOC_FAILED"]);
        assert!(shares_error_code(
            "OUT_OF_DEVICE_MEMORY on Arc",
            "failed with error: 39 [UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY]"
        ));
        assert!(!shares_error_code(
            "OUT_OF_DEVICE_MEMORY on Arc",
            "failed with error: 5 [UR_RESULT_ERROR_OUT_OF_HOST_MEMORY]"
        ));
        assert!(!shares_error_code(
            "CUDA out of memory",
            "CUDA_ERROR_OUT_OF_MEMORY"
        ));
        // A tail inside a part is no shared code.
        assert!(!shares_error_code(
            "ERROR_OUT_OF_MEMORY here",
            "HIP_XERROR_OUT_OF_MEMORY"
        ));
        assert!(shares_error_code(
            "CUDA_ERROR_OUT_OF_MEMORY",
            "CUDA_ERROR_OUT_OF_MEMORY"
        ));
    }

    #[test]
    fn a_quoted_heading_opens_the_message_it_names() {
        assert_eq!(
            quoted_heading("“RuntimeError：CUDA out of memory”， I had set train.batch_size to 4"),
            "RuntimeError：CUDA out of memory"
        );
        assert_eq!(
            quoted_heading("`CUDA out of memory` again"),
            "CUDA out of memory"
        );
        assert_eq!(quoted_heading("CUDA out of memory"), "CUDA out of memory");
        // An open quote that never closes leaves the text whole.
        assert_eq!(
            quoted_heading("\"CUDA out of memory"),
            "\"CUDA out of memory"
        );
        assert!(squeezed("RuntimeError：CUDA out of memory")
            .starts_with(&squeezed("RuntimeError: CUDA out of memory")));
    }

    /// The same line printed again right under itself is a copy: its
    /// surroundings are never read, the first line's are read once.
    #[test]
    fn a_copy_folded_away_never_reads_its_surroundings() {
        use std::cell::Cell;
        use std::rc::Rc;
        let reads = Rc::new(Cell::new(0));
        let message = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB";
        let found = |reads: &Rc<Cell<u32>>| {
            let reads = Rc::clone(reads);
            let mut parsed = Parsed::new(Framework::PyTorch, DeviceKind::Cuda, message.into());
            parsed.memory.requested_bytes = Some(2 << 30);
            Found {
                parsed,
                phase: Phase::Unknown,
                rank: None,
                process: None,
                before: Vec::new(),
                text: message.into(),
                read_facts: Box::new(move |_, _, _| reads.set(reads.get() + 1)),
            }
        };
        let mut grouper = Grouper::new(ScanOptions::default());
        let mut events = Vec::new();
        for line in 1..=3 {
            grouper.push("log", line, found(&reads), &mut |e| events.push(e));
        }
        grouper.finish(&mut |e| events.push(e));
        assert_eq!(events.len(), 1);
        assert_eq!(reads.get(), 1);
    }

    /// Signatures compare as their texts did, and only a signature of words
    /// stands for no figures.
    #[test]
    fn signatures_compare_as_their_texts() {
        let device = Device {
            kind: DeviceKind::Cuda,
            index: Some(0),
        };
        let figures =
            |r| Signature::Figures(Framework::PyTorch, device, [r, None, None, None, None]);
        let words = |m: &str| Signature::Words(Framework::PyTorch, m.to_string());
        let all = [
            figures(Some(1)),
            figures(Some(2)),
            figures(None),
            words("CUDA out of memory"),
            words("CUDA error: out of memory"),
            Signature::Shared(Framework::Other, Some(1), None),
        ];
        for a in &all {
            for b in &all {
                assert_eq!(a == b, a.text() == b.text(), "{} / {}", a.text(), b.text());
            }
        }
        assert_eq!(
            figures(Some(1)).text(),
            "PyTorch|Device { kind: Cuda, index: Some(0) }|Some(1)|None|None|None|None"
        );
        assert!(!words("CUDA out of memory").stands_for_figures("CUDA out of memory"));
        assert!(figures(Some(1)).stands_for_figures("CUDA out of memory (None)"));
        assert!(!figures(Some(1)).stands_for_figures(" Some(0) }|Some(1)|None|None|None|None"));
        assert!(Signature::Shared(Framework::Other, Some(1), None).stands_for_figures("x"));
    }

    #[test]
    fn an_exception_s_name_and_an_empty_text_head_a_report() {
        for heading in [
            "MemoryError:",
            "MemoryError: ",
            "torch.cuda.OutOfMemoryError:",
        ] {
            assert!(heads_its_report(heading), "{heading}");
        }
        // Python's bare name, with no colon, is an exception raised without
        // text; words are no name.
        for other in [
            "MemoryError",
            "CUDA out of memory:",
            "RuntimeError: CUDA error:",
        ] {
            assert!(!heads_its_report(other), "{other}");
        }
    }
}
