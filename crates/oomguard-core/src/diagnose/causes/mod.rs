//! Ranking the causes of one event from its figures, its phase and its
//! framework. Each rule is a small function in the file of its topic; it adds
//! a cause with a score and the numbers behind it, and a cause added twice
//! keeps its highest score. The rules read the figures, never the source of a
//! particular message. The order in which `rank_into` calls them is part of
//! the ranking: causes of equal score keep the order they were added in.
//!
//! Topics: `sizes` (invalid and absurd sizes), `figures` (free, request,
//! reserved, fragmentation), `caps` (configured limits), `processes` (memory
//! outside the framework), `phase` (the phase and the frames), `engines`
//! (vLLM, SGLang, llama.cpp), `libraries` (cuBLAS, cuDNN, NCCL, Triton,
//! RAPIDS pools, several models on one device, ggml's backends), `host`
//! (the OOM killer, host RAM, numpy, container limits).

mod caps;
mod engines;
mod figures;
mod host;
mod libraries;
mod phase;
mod processes;
mod sizes;

pub(super) use engines::turbomind_failure;
pub(super) use host::{managed_heap, memory_monitor, windows_commit_limit, ManagedHeap};
pub(super) use libraries::shared_memory_gpu_class;
pub(super) use phase::from_trend;

use super::accounting::Accounting;
use super::{Cause, CauseId};
use crate::oom::{DeviceKind, Framework, OomEvent};

pub(super) const GIB: u64 = 1 << 30;

struct Ranking(Vec<Cause>, bool);

impl Ranking {
    fn new() -> Ranking {
        Ranking(Vec::new(), false)
    }

    fn add(&mut self, id: CauseId, score: f64, evidence: impl Into<String>) {
        self.add_checked(id, score, evidence, None);
    }

    /// Adds a cause with the check that tells it apart from the others.
    fn add_checked(
        &mut self,
        id: CauseId,
        score: f64,
        evidence: impl Into<String>,
        check: Option<&str>,
    ) {
        let score = (score.clamp(0.0, 1.0) * 100.0).round() / 100.0;
        let check = check.map(str::to_string);
        match self.0.iter_mut().find(|c| c.id == id) {
            Some(c) if c.score >= score => {}
            Some(c) => {
                c.score = score;
                c.evidence = evidence.into();
                c.check = check;
            }
            None => self.0.push(Cause {
                id,
                score,
                evidence: evidence.into(),
                check,
            }),
        }
    }

    /// Lowers a cause to at most `max`, saying why, when a rule added it.
    fn limit(&mut self, id: CauseId, max: f64, why: &str) {
        if let Some(c) = self.0.iter_mut().find(|c| c.id == id && c.score > max) {
            c.score = max;
            c.evidence = format!("{}; {why}", c.evidence);
        }
    }

    /// Marks the event as one whose text covers several causes.
    fn undecided(&mut self) {
        self.1 = true;
    }

    /// Marks the event as one a reading of its text settles, whatever
    /// differential the figures alone called for.
    fn decided(&mut self) {
        self.1 = false;
    }

    /// The score of a cause, when a rule added it.
    #[cfg(test)]
    fn score(&self, id: CauseId) -> Option<f64> {
        self.0.iter().find(|c| c.id == id).map(|c| c.score)
    }

    /// The cause with the highest score (the first added among equals).
    #[cfg(test)]
    fn top(&self) -> Option<CauseId> {
        let mut sorted = self.0.clone();
        sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
        sorted.first().map(|c| c.id)
    }
}

/// The ranked causes, and whether the text itself leaves them open.
pub(super) struct Ranked {
    pub causes: Vec<Cause>,
    pub undecided: bool,
}

/// How far the ranking decides: low when a rule said the text cannot tell
/// the causes apart or the first two are within 0.1; high when the first
/// leads by 0.25 or more at 0.8 or above; medium otherwise.
pub(super) fn confidence(causes: &[Cause], undecided: bool) -> super::Confidence {
    use super::Confidence;
    let top = causes.first().map_or(0.0, |c| c.score);
    let second = causes.get(1).map_or(0.0, |c| c.score);
    if undecided || top < 0.5 || top - second < 0.1 {
        Confidence::Low
    } else if top >= 0.8 && top - second >= 0.25 {
        Confidence::High
    } else {
        Confidence::Medium
    }
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "n/a".into();
    }
    format!("{:.0}%", part as f64 * 100.0 / whole as f64)
}

pub(super) fn rank(event: &OomEvent, acc: &Accounting) -> Ranked {
    let mut r = Ranking::new();
    rank_into(&mut r, event, acc);
    Ranked {
        causes: r.0,
        undecided: r.1,
    }
}

fn rank_into(r: &mut Ranking, event: &OomEvent, acc: &Accounting) {
    // Messages whose meaning the facts fix entirely: the phase rules below
    // would add a batch cause, which is wrong for each of them.
    if let Some(shm) = event.facts.shared_memory() {
        libraries::shared_memory(r, shm);
        return;
    }
    if let Some(space) = libraries::on_chip_memory_space(&event.message) {
        libraries::on_chip_memory(r, space);
        return;
    }
    if let Some(check) = event.facts.sglang() {
        engines::sglang(r, check);
        return;
    }
    if event.facts.locked_memory() {
        host::locked_memory_limit(r);
        return;
    }
    if event.facts.batch_search_exhausted() {
        phase::batch_search_exhausted(r);
        return;
    }
    if without_figures(event) && phase::llvm_ran_out(r, event) {
        r.undecided();
        return;
    }
    sizes::absurd_request(r, event);
    sizes::device_request_invalid(r, event);
    if let Some(check) = event.facts.vllm() {
        engines::vllm(r, check, event);
    }
    engines::serving_engine(r, event);
    if event.device.kind == DeviceKind::Mps {
        figures::mps_nothing_allocated(r, event);
    }
    // A pool the program sized on the host is not the host's memory.
    if event.facts.oom_killer()
        || (event.device.kind == DeviceKind::Cpu && !engines::ggml_fixed_pool(event))
    {
        host::host(r, event);
    }
    if event.facts.shm_full {
        host::shared_memory_full(r);
    }
    host::system_memory_check(r, event);
    host::ggml_host_buffer(r, event);
    host::pinned_host_alloc(r, event);
    // The words of a library's own error, or of the report, name what
    // filled the device when no figure does; the differential of a bare
    // failure still follows them, with its checks.
    let worded = libraries::rapids_pools(r, event)
        | libraries::several_models(r, event)
        | libraries::tensorrt(r, event)
        | engines::engine_messages(r, event)
        | libraries::runtime_messages(r, event);
    let ggml = libraries::ggml_backend(event);
    match event.framework {
        Framework::Cublas | Framework::Cudnn | Framework::Nccl => libraries::library(r, event),
        Framework::LlamaCpp => engines::llama(r, event),
        Framework::TensorFlow | Framework::Jax => {
            figures::tensorflow_pool(r, event);
            if without_figures(event) {
                figures::xla_pool_request(r, event);
            }
        }
        _ if ggml => engines::llama(r, event),
        _ => {
            if let Some(library) = libraries::math_library(event) {
                libraries::math_library_alloc(r, event, library);
            }
        }
    }
    all_figures(r, event, acc);
    phase::by_phase(r, event, acc);
    if r.0.is_empty() || ((worded || ggml) && without_figures(event)) {
        phase::bare_failure(r, event);
    }
    // What the text around the failure shows weighs in over the figures'
    // and the phase's ranking, and over the differential of a bare failure.
    phase::context(r, event, acc);
    phase::notebook(r, event);
    speech_model(r, event);
    engines::tgi_cache_fills_the_device(r, event);
}

/// Whisper's decoder attends to at most 448 text tokens and its encoder to
/// 1500 audio frames (openai/whisper's `ModelDimensions`: `n_text_ctx` 448,
/// `n_audio_ctx` 1500, for every size; whisper.cpp reads the same
/// hyperparameters): its KV cache is small and bounded, so a failure in a
/// Whisper run is its weights or its batch, not a cache grown by a long
/// context. Unless the program's own line says the cache's buffer failed
/// (whisper.cpp's `whisper_kv_cache_init`): one cache per beam adds up.
fn speech_model(r: &mut Ranking, event: &OomEvent) {
    let cache_failed =
        event.facts.engine_log.llama_failed == Some(crate::oom::LlamaBufferKind::KvCache);
    if event.facts.context.speech_model.is_some() && !cache_failed {
        r.limit(
            CauseId::KvCache,
            0.3,
            "but Whisper's decoder keeps at most 448 tokens, so its KV cache stays small",
        );
    }
}

/// The message states no figure of the device or the framework.
fn without_figures(event: &OomEvent) -> bool {
    let m = &event.memory;
    m.total_bytes.is_none()
        && m.free_bytes.is_none()
        && m.allocated_bytes.is_none()
        && m.reserved_bytes.is_none()
}

/// Rules over the figures any framework may state, in the order they weigh
/// in. A request larger than the whole device decides alone.
fn all_figures(r: &mut Ranking, event: &OomEvent, acc: &Accounting) {
    if sizes::device_reports_no_memory(r, event) || sizes::request_exceeds_device(r, event) {
        return;
    }
    figures::fragmentation(r, event, acc);
    processes::outside_the_framework(r, event, acc);
    caps::configured_caps(r, event);
    caps::xpu_single_allocation(r, event);
    figures::fitted_free_memory(r, event, acc);
    figures::first_request_takes_the_device(r, event);
    figures::spilled_into_shared_memory(r, event);
}

#[cfg(test)]
pub(super) mod testing {
    //! Events built from figures, for the rules' unit tests.
    use crate::oom::{Device, DeviceKind, EventFacts, Framework, MemoryFigures, OomEvent, Phase};

    pub const MIB: u64 = 1 << 20;
    pub(in crate::diagnose) use super::GIB;

    /// A CUDA event of `framework` with the given figures and no facts.
    pub fn event(framework: Framework, memory: MemoryFigures) -> OomEvent {
        OomEvent {
            source: "-".into(),
            line: 1,
            framework,
            device: Device {
                kind: DeviceKind::Cuda,
                index: Some(0),
            },
            message: String::new(),
            memory,
            phase: Phase::Unknown,
            ranks: None,
            facts: EventFacts::default(),
        }
    }

    /// A PyTorch event stating a device, a request and what was free.
    pub fn pytorch(total: u64, requested: u64, free: u64) -> OomEvent {
        event(
            Framework::PyTorch,
            MemoryFigures {
                total_bytes: Some(total),
                requested_bytes: Some(requested),
                free_bytes: Some(free),
                ..MemoryFigures::default()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::oom::{MemoryFigures, Phase};

    fn ranked(event: &OomEvent) -> Ranked {
        rank(event, &Accounting::of(event))
    }

    #[test]
    fn a_full_device_while_tgi_serves_is_its_kv_cache() {
        let mut e = pytorch(79 * GIB, 18 * MIB, 14 * MIB);
        e.memory.allocated_bytes = Some(78 * GIB);
        e.memory.reserved_bytes = Some(78 * GIB + 128 * MIB);
        e.facts.serving_engine = Some(crate::oom::ServingEngine::Tgi);
        e.phase = Phase::Generation;
        let causes = ranked(&e).causes;
        assert_eq!(causes[0].id, CauseId::KvCache, "{causes:?}");
        // Weights too large fail TGI's warm-up: there the cache rules stand aside.
        e.phase = Phase::Startup;
        let causes = ranked(&e).causes;
        assert_ne!(causes[0].id, CauseId::KvCache, "{causes:?}");
    }

    #[test]
    fn a_ggml_pool_on_the_host_is_not_the_host_s_memory_running_out() {
        let mut e = event(Framework::LlamaCpp, MemoryFigures::default());
        e.device = crate::oom::Device {
            kind: DeviceKind::Cpu,
            index: None,
        };
        e.message = "ggml_new_object: not enough space in the context's memory pool (needed 13340448, available 10485760)".into();
        let causes = ranked(&e).causes;
        assert_eq!(causes[0].id, CauseId::BatchTooLarge, "{causes:?}");
        assert!(
            causes.iter().all(|c| c.id != CauseId::HostMemory),
            "{causes:?}"
        );
        // The host's own allocation failing is.
        e.message =
            "ggml_aligned_malloc: insufficient memory (attempted to allocate 24576.00 MB)".into();
        assert_eq!(ranked(&e).causes[0].id, CauseId::HostMemory);
    }

    #[test]
    fn whisper_s_kv_cache_is_no_lead() {
        let mut r = Ranking::new();
        r.add(CauseId::KvCache, 0.6, "the context");
        r.add(CauseId::ModelTooLarge, 0.5, "the weights");
        let mut e = pytorch(8 * GIB, 20 * MIB, 0);
        speech_model(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::KvCache));
        e.facts.context.speech_model = Some("whisper: transcription failed".into());
        speech_model(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::ModelTooLarge));
        assert_eq!(r.score(CauseId::KvCache), Some(0.3));
    }

    #[test]
    fn a_cause_added_twice_keeps_its_highest_score_and_its_evidence() {
        let mut r = Ranking::new();
        r.add(CauseId::BatchTooLarge, 0.4, "low");
        r.add(CauseId::BatchTooLarge, 0.7, "high");
        r.add(CauseId::BatchTooLarge, 0.5, "middle");
        assert_eq!(r.0.len(), 1);
        assert_eq!(r.0[0].score, 0.7);
        assert_eq!(r.0[0].evidence, "high");
    }

    #[test]
    fn confidence_is_low_when_undecided_or_close_and_high_when_clear() {
        let cause = |id, score| Cause {
            id,
            score,
            evidence: String::new(),
            check: None,
        };
        let clear = [
            cause(CauseId::BatchTooLarge, 0.9),
            cause(CauseId::ModelTooLarge, 0.4),
        ];
        assert_eq!(confidence(&clear, false), super::super::Confidence::High);
        assert_eq!(confidence(&clear, true), super::super::Confidence::Low);
        let close = [
            cause(CauseId::BatchTooLarge, 0.6),
            cause(CauseId::ModelTooLarge, 0.55),
        ];
        assert_eq!(confidence(&close, false), super::super::Confidence::Low);
        let medium = [
            cause(CauseId::BatchTooLarge, 0.7),
            cause(CauseId::ModelTooLarge, 0.5),
        ];
        assert_eq!(confidence(&medium, false), super::super::Confidence::Medium);
    }

    #[test]
    fn an_event_without_figures_or_phase_gets_the_undecided_differential() {
        let e = event(Framework::PyTorch, MemoryFigures::default());
        let r = ranked(&e);
        assert!(r.undecided);
        assert_eq!(r.causes[0].id, CauseId::BatchTooLarge);
        assert!(r.causes.iter().any(|c| c.id == CauseId::OtherProcesses));
        // A card of at most 4 GB named in the text puts the model first,
        // unless the run trains.
        let top = |e: &OomEvent| {
            let r = ranked(e);
            r.causes
                .iter()
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .map(|c| c.id)
        };
        let mut e = e;
        e.facts.context.small_device = Some("NVIDIA GeForce 940MX".into());
        assert_eq!(top(&e), Some(CauseId::ModelTooLarge));
        e.facts.context.training = Some("python train.py".into());
        assert_eq!(top(&e), Some(CauseId::BatchTooLarge));
    }

    #[test]
    fn a_request_beyond_the_device_skips_the_other_figures() {
        let mut e = pytorch(24 * GIB, 40 * GIB, GIB);
        e.memory.reserved_bytes = Some(20 * GIB);
        e.memory.allocated_bytes = Some(2 * GIB);
        e.memory.reserved_unallocated_bytes = Some(18 * GIB);
        e.phase = Phase::Evaluation;
        let r = ranked(&e);
        assert_eq!(r.causes[0].id, CauseId::BatchTooLarge);
        assert!(r.causes.iter().all(|c| c.id != CauseId::Fragmentation));
    }

    #[test]
    fn llvm_running_out_is_no_device_shortage_in_any_phase() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.message = "LLVM ERROR: out of memory".into();
        e.phase = Phase::Startup;
        let r = ranked(&e);
        assert_eq!(r.causes[0].id, CauseId::NotMemory);
        assert!(r.undecided);
    }
}
