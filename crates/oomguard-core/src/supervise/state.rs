//! The decision `run` shares through `--state DIR` between the ranks and
//! nodes of one job, and across the launcher's restarts of it (torchrun's
//! `--max-restarts`, Slurm's `--requeue`, a Kubernetes Job's retries): one
//! JSON file per job id, so every rank starts the next attempt with the same
//! batch. When ranks record at once, the smallest batch wins: each rank's
//! OOM is proof that larger batches fail.
//!
//! This module holds the record, the merge rule and where the id comes from;
//! the binary does the locking and the atomic write.

use serde::{Deserialize, Serialize};

/// One job's decision, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// The job's id.
    pub run_id: String,
    /// The batch chosen.
    pub batch: u64,
    /// The accumulation steps, when the command has them.
    pub accum: Option<u64>,
    /// Variables the next attempt sets (an allocator setting).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Why (`figures`, `halved`, `fragmentation`, `memory_line`, ...).
    pub reason: String,
    /// How many decisions this job has recorded.
    pub attempt: u32,
    /// RFC 3339 UTC time of the last decision.
    pub updated_at: String,
}

/// A decision sized from figures (the rank that ran out: its OOM's figures
/// or its memory line), rather than a halving guess (a rank whose error
/// had no figures, such as one that failed only because another did).
fn sized(r: &StateRecord) -> bool {
    r.reason != "halved"
}

/// The record after `new` arrives on top of what is stored: a sized
/// decision wins over a halving guess, then the smaller batch (with its
/// accumulation, settings and reason); the attempt count only grows.
pub fn merge(stored: Option<StateRecord>, new: StateRecord) -> StateRecord {
    match stored {
        None => new,
        Some(old) => {
            let attempt = old.attempt.max(new.attempt);
            let new_wins = match (sized(&new), sized(&old)) {
                (true, false) => true,
                (false, true) => false,
                _ => new.batch <= old.batch,
            };
            let mut winner = if new_wins { new } else { old };
            winner.attempt = attempt;
            winner
        }
    }
}

/// Where the job's id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunIdSource {
    /// Given by the caller (the `flag` argument of [`run_id`]).
    Caller,
    /// torchrun / torch.distributed.elastic: `TORCHELASTIC_RUN_ID` (`--rdzv-id`).
    TorchElastic,
    /// Slurm: `SLURM_JOB_ID`, the same on every node and kept by `--requeue`.
    Slurm,
    /// A Kubernetes Job: `JOB_NAME` (set by the user from the
    /// `batch.kubernetes.io/job-name` label through the downward API), else
    /// the pod's hostname minus the random suffix the Job controller adds.
    Kubernetes,
}

impl RunIdSource {
    /// The name of the source, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RunIdSource::Caller => "caller",
            RunIdSource::TorchElastic => "TORCHELASTIC_RUN_ID",
            RunIdSource::Slurm => "SLURM_JOB_ID",
            RunIdSource::Kubernetes => "Kubernetes Job name",
        }
    }
}

/// The pod name's Job part: a Job's pods are named `JOB-XXXXX` (five
/// characters of `[bcdfghjklmnpqrstvwxz2456789]`, the apimachinery random
/// alphabet), or `JOB-INDEX-XXXXX` for an Indexed Job.
fn job_from_pod_name(pod: &str) -> Option<String> {
    const ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";
    let (rest, suffix) = pod.rsplit_once('-')?;
    if suffix.len() != 5 || !suffix.chars().all(|c| ALPHABET.contains(c)) || rest.is_empty() {
        return None;
    }
    // Indexed Jobs put the completion index before the suffix.
    match rest.rsplit_once('-') {
        Some((job, index)) if !job.is_empty() && index.chars().all(|c| c.is_ascii_digit()) => {
            Some(job.to_string())
        }
        _ => Some(rest.to_string()),
    }
}

/// The job's id: the one the caller gives (`flag`), else the launcher's (see [`RunIdSource`]).
/// `var` reads the environment.
pub fn run_id(
    flag: Option<&str>,
    var: impl Fn(&str) -> Option<String>,
) -> Option<(String, RunIdSource)> {
    let set = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    if let Some(id) = flag.map(str::to_string) {
        return Some((id, RunIdSource::Caller));
    }
    if let Some(id) = set(var("TORCHELASTIC_RUN_ID")) {
        return Some((id, RunIdSource::TorchElastic));
    }
    if let Some(id) = set(var("SLURM_JOB_ID")) {
        return Some((id, RunIdSource::Slurm));
    }
    if set(var("KUBERNETES_SERVICE_HOST")).is_some() {
        if let Some(job) = set(var("JOB_NAME")) {
            return Some((job, RunIdSource::Kubernetes));
        }
        if let Some(job) = set(var("HOSTNAME")).as_deref().and_then(job_from_pod_name) {
            return Some((job, RunIdSource::Kubernetes));
        }
    }
    None
}

/// A file name for the id: letters, digits, `.`, `_` and `-` kept, the rest
/// `_`, at most 100 characters.
pub fn file_name(run_id: &str) -> String {
    let safe: String = run_id
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    format!("{}.json", if safe.is_empty() { "_" } else { safe })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(batch: u64, attempt: u32) -> StateRecord {
        StateRecord {
            run_id: "j".into(),
            batch,
            accum: None,
            env: Vec::new(),
            reason: "figures".into(),
            attempt,
            updated_at: String::new(),
        }
    }

    #[test]
    fn the_smallest_batch_wins_and_attempts_only_grow() {
        assert_eq!(merge(None, rec(32, 1)), rec(32, 1));
        assert_eq!(merge(Some(rec(24, 2)), rec(32, 1)), rec(24, 2));
        assert_eq!(merge(Some(rec(32, 1)), rec(20, 1)), rec(20, 1));
        // A rank's halving guess does not override the figures of the rank
        // that ran out.
        let guess = StateRecord {
            reason: "halved".into(),
            ..rec(16, 1)
        };
        assert_eq!(merge(Some(rec(24, 1)), guess.clone()), rec(24, 1));
        assert_eq!(merge(Some(guess), rec(24, 1)), rec(24, 1));
    }

    #[test]
    fn ids_come_from_the_flag_then_the_launchers() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
        };
        assert_eq!(
            run_id(Some("x"), env(&[("SLURM_JOB_ID", "7")])).unwrap().1,
            RunIdSource::Caller
        );
        assert_eq!(
            run_id(
                None,
                env(&[("TORCHELASTIC_RUN_ID", "r1"), ("SLURM_JOB_ID", "7")])
            ),
            Some(("r1".into(), RunIdSource::TorchElastic))
        );
        assert_eq!(
            run_id(None, env(&[("SLURM_JOB_ID", "7")])),
            Some(("7".into(), RunIdSource::Slurm))
        );
        assert_eq!(
            run_id(
                None,
                env(&[
                    ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
                    ("HOSTNAME", "train-llm-0-x7b2k")
                ])
            ),
            Some(("train-llm".into(), RunIdSource::Kubernetes))
        );
        assert_eq!(
            run_id(
                None,
                env(&[
                    ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
                    ("HOSTNAME", "train-llm-x7b2k")
                ])
            ),
            Some(("train-llm".into(), RunIdSource::Kubernetes))
        );
        // A Deployment's pod (two random parts) is not a Job's.
        assert_eq!(
            run_id(
                None,
                env(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1"), ("HOSTNAME", "web")])
            ),
            None
        );
        assert_eq!(run_id(None, env(&[])), None);
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_name("job-42"), "job-42.json");
        assert_eq!(file_name("../../etc/passwd"), "_.._etc_passwd.json");
        assert_eq!(file_name(""), "_.json");
    }
}
