//! NCCL watchdog timeouts of PyTorch's process groups, and how they tie back
//! to the out-of-memory failures of a multi-rank job.
//!
//! When one rank of a torchrun, DeepSpeed or Slurm job dies of an OOM, the
//! others wait in their next collective until PyTorch's NCCL watchdog gives
//! up, each printing (torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp,
//! `WorkNCCL::checkTimeout`):
//!
//! ```text
//! [Rank 2] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=808, OpType=ALLREDUCE, NumelIn=9801523, NumelOut=9801523, Timeout(ms)=600000) ran for 600061 milliseconds before timing out.
//! ```
//!
//! Newer releases name the process group before the rank (`[PG 3 Rank 5]`,
//! `[PG ID 0 PG GUID 0(default_pg) Rank 1]`) and repeat the sentence inside
//! `Process group watchdog thread terminated with exception: ...`; older ones
//! print no `Numel` fields. These lines are not OOM events: a user reading
//! the log sees them last and takes them for the failure. The scanner reports
//! them apart, and [`JobFailure`] says which ranks ran out of memory and
//! whose timeouts followed.

use super::text::{clean_line, rank_tag, strip_log_prefix};
use super::{OomEvent, RankDevice};
use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

/// The phrase every watchdog timeout contains, searched for with the
/// families' triggers.
pub(super) const TRIGGER: &str = "Watchdog caught collective operation timeout";

/// Timeouts a scan keeps: a job of thousands of ranks reports the first ones.
pub(super) const MAX_TIMEOUTS: usize = 1024;

/// One rank's NCCL watchdog timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchdogTimeout {
    /// The path the text came from, or "-" for standard input.
    pub source: String,
    /// 1-based line of the timeout.
    pub line: u64,
    /// The rank that timed out, from `[Rank N]`, `[PG .. Rank N]` or the
    /// launcher's line prefix.
    pub rank: Option<u32>,
    /// The collective it waited in (`ALLREDUCE`, `_ALLGATHER_BASE`, ...).
    pub op_type: Option<String>,
    /// The collective's sequence number: ranks stuck in the same one share it.
    pub seq_num: Option<u64>,
    /// The watchdog's timeout (`Timeout(ms)=`), in milliseconds.
    pub timeout_ms: Option<u64>,
    /// How long the collective ran before the watchdog gave up, in milliseconds.
    pub ran_for_ms: Option<u64>,
}

/// Reads the watchdog timeout on one raw line; `None` when the line only
/// mentions the phrase.
pub(super) fn parse(raw: &[u8], source: &str, line: u64) -> Option<WatchdogTimeout> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?:\[(?:PG\b[^\]]*?\s)?Rank\s*(\d+)\]\s*)?",
            r"Watchdog caught collective operation timeout:\s*WorkNCCL\(([^()]*(?:\([^()]*\)[^()]*)*)\)",
            r"(?:\s*ran for\s*(\d+)\s*milliseconds)?"
        ))
        .expect("pattern compiles")
    });
    static PG_RANK: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\[PG\b[^\]]*?\sRank\s*(\d+)\]").expect("pattern compiles"));
    let text = clean_line(raw);
    let c = RE.captures(&text)?;
    let fields = c.get(2)?.as_str();
    let field = |name: &str| {
        fields
            .split(',')
            .find_map(|f| f.trim().strip_prefix(name)?.strip_prefix('='))
            .map(str::trim)
    };
    let number = |s: Option<&str>| s.and_then(|v| v.parse::<u64>().ok());
    let rank = c
        .get(1)
        .and_then(|m| m.as_str().parse().ok())
        .or_else(|| PG_RANK.captures(&text)?.get(1)?.as_str().parse().ok())
        .or_else(|| rank_tag(&text))
        .or_else(|| rank_tag(strip_log_prefix(&text)));
    Some(WatchdogTimeout {
        source: source.to_string(),
        line,
        rank,
        op_type: field("OpType").map(str::to_string),
        seq_num: number(field("SeqNum")),
        timeout_ms: number(field("Timeout(ms)")),
        ran_for_ms: number(c.get(3).map(|m| m.as_str())),
    })
}

/// True when `new` repeats a timeout already kept: the same rank in the same
/// collective (the watchdog's line, then the exception that quotes it).
pub(super) fn repeats(kept: &[WatchdogTimeout], new: &WatchdogTimeout) -> bool {
    kept.iter().any(|k| {
        k.source == new.source
            && k.rank == new.rank
            && k.seq_num == new.seq_num
            && k.op_type == new.op_type
    })
}

/// What failed in a multi-rank job: the ranks that ran out of memory, and
/// the ranks whose NCCL watchdog timeouts came after the first OOM in the
/// same log (they waited on the failed ranks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFailure {
    /// Ranks that printed an OOM, each once, in rank order.
    pub oom_ranks: Vec<RankDevice>,
    /// Ranks that timed out after the first OOM, each once, in rank order.
    pub timeout_ranks: Vec<u32>,
    /// Timeouts after the first OOM whose rank the text does not say.
    pub timeouts_without_rank: u64,
    /// The first OOM's line in each source, to place the timeouts.
    first_oom: Vec<(String, u64)>,
}

/// Ranks a [`JobFailure`] lists at most.
const MAX_RANKS: usize = 4096;

impl JobFailure {
    /// Takes in one event's ranks (an event without rank prefixes adds none).
    pub fn add_event(&mut self, event: &OomEvent) {
        if !self.first_oom.iter().any(|(s, _)| *s == event.source) {
            self.first_oom.push((event.source.clone(), event.line));
        }
        for copy in event.ranks.iter().flatten() {
            if self.oom_ranks.len() < MAX_RANKS
                && !self.oom_ranks.iter().any(|r| r.rank == copy.rank)
            {
                self.oom_ranks.push(*copy);
            }
        }
        self.oom_ranks.sort();
    }

    /// Takes in the timeouts of the scans; only those after an OOM of the
    /// same source count.
    pub fn add_timeouts(&mut self, timeouts: &[WatchdogTimeout]) {
        for t in timeouts {
            let after_oom = self
                .first_oom
                .iter()
                .any(|(s, line)| *s == t.source && t.line > *line);
            if !after_oom {
                continue;
            }
            match t.rank {
                Some(rank) => {
                    if self.timeout_ranks.len() < MAX_RANKS && !self.timeout_ranks.contains(&rank) {
                        self.timeout_ranks.push(rank);
                    }
                }
                None => self.timeouts_without_rank += 1,
            }
        }
        self.timeout_ranks.sort_unstable();
    }

    /// True when there is anything to say about ranks.
    pub fn is_multi_rank(&self) -> bool {
        !self.oom_ranks.is_empty() || !self.timeout_ranks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_watchdog_line_in_its_forms() {
        let old = parse(b"[E ProcessGroupNCCL.cpp:737] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=469508, OpType=ALLREDUCE, Timeout(ms)=1800000) ran for 1802212 milliseconds before timing out.\n", "-", 7).expect("a timeout");
        assert_eq!(old.rank, Some(1));
        assert_eq!(old.op_type.as_deref(), Some("ALLREDUCE"));
        assert_eq!(old.seq_num, Some(469_508));
        assert_eq!(old.timeout_ms, Some(1_800_000));
        assert_eq!(old.ran_for_ms, Some(1_802_212));
        assert_eq!(old.line, 7);
        let new = parse(b"[rank4]:[E1206 18:44:12.755262105 ProcessGroupNCCL.cpp:607] [Rank 4] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=7753, OpType=_REDUCE_SCATTER_BASE, NumelIn=544997376, NumelOut=68124672, Timeout(ms)=600000) ran for 600099 milliseconds before timing out.", "-", 1).expect("a timeout");
        assert_eq!(new.rank, Some(4));
        assert_eq!(new.op_type.as_deref(), Some("_REDUCE_SCATTER_BASE"));
        let pg = parse(b"  what():  [PG 3 Rank 5] Process group watchdog thread terminated with exception: [Rank 5] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=9141, OpType=_ALLGATHER_BASE, NumelIn=19008, NumelOut=152064, Timeout(ms)=600000) ran for 600020 milliseconds before timing out.", "-", 1).expect("a timeout");
        assert_eq!((pg.rank, pg.seq_num), (Some(5), Some(9141)));
    }

    #[test]
    fn a_mention_without_the_work_is_not_a_timeout() {
        assert!(parse(
            b"How to fix Watchdog caught collective operation timeout: any idea?",
            "-",
            1
        )
        .is_none());
    }

    #[test]
    fn only_timeouts_after_an_oom_of_the_same_source_follow_it() {
        let mut job = JobFailure::default();
        let event = OomEvent {
            source: "a.log".into(),
            line: 10,
            framework: crate::oom::Framework::PyTorch,
            device: crate::oom::Device::UNKNOWN,
            message: String::new(),
            memory: Default::default(),
            phase: crate::oom::Phase::Unknown,
            ranks: Some(vec![RankDevice {
                rank: 1,
                device_index: Some(1),
            }]),
            facts: Default::default(),
        };
        job.add_event(&event);
        let t = |source: &str, line, rank| WatchdogTimeout {
            source: source.into(),
            line,
            rank,
            op_type: None,
            seq_num: None,
            timeout_ms: None,
            ran_for_ms: None,
        };
        job.add_timeouts(&[
            t("a.log", 5, Some(7)),
            t("a.log", 20, Some(3)),
            t("a.log", 21, Some(0)),
            t("a.log", 22, Some(3)),
            t("b.log", 30, Some(2)),
            t("a.log", 23, None),
        ]);
        assert_eq!(job.timeout_ranks, vec![0, 3]);
        assert_eq!(job.timeouts_without_rank, 1);
        assert!(job.is_multi_rank());
    }
}
