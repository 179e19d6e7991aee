//! `oomguard run`: run the command; when it dies of OOM, print the diagnosis,
//! take the restart policy's decision (`supervise::restart`) and carry it
//! out: restart with the batch it names, share it through `--state`, or stop
//! and say why. One journal line per attempt, written whole.

use crate::child::{self, Guard, Interrupts, Launch, MemorySource, Output};
use crate::flags::RunArgs;
use anyhow::{bail, Context};
use nix::fcntl::{Flock, FlockArg};
use oomguard_core::diagnose::{Caution, ExplainedEvent};
use oomguard_core::gpu::metrics::{render_run, RunCounters};
use oomguard_core::gpu::{open_source_within as open_within, SourceChoice, SAMPLE_TIMEOUT};
use oomguard_core::oom::DeviceKind;
use oomguard_core::size::format_size;
use oomguard_core::supervise::state::{self, RunIdSource, StateRecord};
use oomguard_core::supervise::{
    at_host_limit, largest_divisor, rfc3339, AttemptMemory, AttemptRecord, CommandTemplate,
    Decision, Failure, HostLimitKind, MemoryLine, MemoryTrend, RestartPolicy, RetryReason,
    StopReason, AT_LIMIT_SHARE,
};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The journal: one whole JSON line per attempt, synced as each attempt
/// ends. A line that cannot be written whole (a full disk) is cut back off,
/// so the file never ends in half a line; a journal that does (an earlier
/// crash mid-write) is repaired on open.
struct Journal {
    file: File,
    path: String,
    warned: bool,
}

impl Journal {
    fn open(path: &Path) -> anyhow::Result<Journal> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot write the journal {}", path.display()))?;
        if let Some(keep) = whole_lines_len(&mut file)? {
            file.set_len(keep)
                .with_context(|| format!("cannot repair the journal {}", path.display()))?;
            say(&format!(
                "the journal {} ended in a partial line; it was cut back to its last whole line",
                path.display()
            ));
        }
        Ok(Journal {
            file,
            path: path.display().to_string(),
            warned: false,
        })
    }

    /// Appends one line; on failure warns (once) and leaves the file as it was.
    fn append(&mut self, record: &AttemptRecord) {
        let mut line = match serde_json::to_vec(record) {
            Ok(l) => l,
            Err(_) => return,
        };
        line.push(b'\n');
        let before = self.file.metadata().map(|m| m.len()).ok();
        let written = self
            .file
            .write_all(&line)
            .and_then(|_| self.file.sync_data());
        if let Err(e) = written {
            if let Some(len) = before {
                let _ = self.file.set_len(len);
            }
            if !self.warned {
                say(&format!(
                    "cannot write the journal {} ({e}); supervising on without it",
                    self.path
                ));
                self.warned = true;
            }
        }
    }
}

/// The length up to the last newline when the file ends in a partial line.
fn whole_lines_len(file: &mut File) -> anyhow::Result<Option<u64>> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    // Look back in blocks for the last newline.
    let mut end = len;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if end == len && buf[n - 1] == b'\n' {
            return Ok(None);
        }
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(Some(start + i as u64 + 1));
        }
        if start == 0 {
            return Ok(Some(0));
        }
        end = start;
    }
}

/// The job's counters as Prometheus text: served at `--serve`, written to
/// `--metrics-file` (to a temporary file renamed over it, so node_exporter
/// never reads half of it).
struct Metrics {
    counters: RunCounters,
    file: Option<PathBuf>,
    body: Option<crate::serve::Body>,
    said_error: bool,
}

impl Metrics {
    fn open(args: &RunArgs) -> anyhow::Result<Metrics> {
        let mut labels = Vec::new();
        if let Some((id, _)) = state::run_id(args.run_id.as_deref(), |k| std::env::var(k).ok()) {
            labels.push(("job_id".to_string(), id));
        }
        if let Some(program) = args.command.first() {
            let name = Path::new(program)
                .file_name()
                .map_or(program.clone(), |n| n.to_string_lossy().into_owned());
            labels.push(("command".to_string(), name));
        }
        let body = match &args.serve {
            Some(addr) => {
                let body = crate::serve::Body::default();
                crate::serve::spawn(addr, body.clone())?;
                Some(body)
            }
            None => None,
        };
        Ok(Metrics {
            counters: RunCounters {
                labels,
                ..RunCounters::default()
            },
            file: args.metrics_file.clone(),
            body,
            said_error: false,
        })
    }

    fn publish(&mut self) {
        if self.file.is_none() && self.body.is_none() {
            return;
        }
        let text = render_run(&self.counters, env!("CARGO_PKG_VERSION"));
        if let Some(body) = &self.body {
            body.set(text.clone());
        }
        if let Some(path) = &self.file {
            let tmp = path.with_extension("prom.tmp");
            let written = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, path));
            match written {
                Ok(()) => self.said_error = false,
                Err(e) if !self.said_error => {
                    self.said_error = true;
                    say(&format!(
                        "--metrics-file {}: cannot write ({e}); supervising on",
                        path.display()
                    ));
                }
                Err(_) => {}
            }
        }
    }
}

fn say(msg: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "oomguard: {msg}");
}

/// The shared decision of one job in `--state DIR`.
struct SharedState {
    dir: PathBuf,
    run_id: String,
}

impl SharedState {
    fn path(&self) -> PathBuf {
        self.dir.join(state::file_name(&self.run_id))
    }

    /// Holds the job's lock file for a read-modify-write.
    fn lock(&self) -> anyhow::Result<Flock<File>> {
        let lock_path = self
            .dir
            .join(format!("{}.lock", state::file_name(&self.run_id)));
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("--state: cannot open {}", lock_path.display()))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| anyhow::anyhow!("--state: cannot lock {}: {e}", lock_path.display()))
    }

    fn read(&self) -> anyhow::Result<Option<StateRecord>> {
        match std::fs::read(self.path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
                format!(
                    "--state: {} is not an oomguard state file",
                    self.path().display()
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => {
                Err(e).with_context(|| format!("--state: cannot read {}", self.path().display()))
            }
        }
    }

    /// Merges `new` into the stored decision (the smallest batch wins) and
    /// writes it atomically (a temporary file renamed over it); returns what
    /// is stored now.
    fn record(&self, new: StateRecord) -> anyhow::Result<StateRecord> {
        let _lock = self.lock()?;
        let merged = state::merge(self.read()?, new);
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            state::file_name(&self.run_id),
            std::process::id()
        ));
        let mut bytes = serde_json::to_vec_pretty(&merged)?;
        bytes.push(b'\n');
        (|| -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.path())
        })()
        .with_context(|| format!("--state: cannot write {}", self.path().display()))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok(merged)
    }
}

fn shared_state(args: &RunArgs) -> anyhow::Result<Option<SharedState>> {
    let Some(dir) = &args.state else {
        return Ok(None);
    };
    if !dir.is_dir() {
        bail!("--state {}: not a directory", dir.display());
    }
    let Some((run_id, from)) = state::run_id(args.run_id.as_deref(), |k| std::env::var(k).ok())
    else {
        bail!("--state needs the job's id: pass --run-id ID, or run under torchrun (TORCHELASTIC_RUN_ID), Slurm (SLURM_JOB_ID) or a Kubernetes Job (JOB_NAME)");
    };
    if from != RunIdSource::Caller {
        say(&format!("job id {run_id} (from {})", from.as_str()));
    }
    Ok(Some(SharedState {
        dir: dir.clone(),
        run_id,
    }))
}

/// Checks the batch flags against each other; the first batch, snapped to a
/// divisor of `--global-batch`.
fn first_batch(args: &RunArgs) -> anyhow::Result<Option<u64>> {
    let Some(b) = args.batch else {
        return Ok(None);
    };
    if args.min_batch > b {
        bail!(
            "--min-batch {} is above --batch {b}: nothing to try",
            args.min_batch
        );
    }
    let Some(g) = args.global_batch else {
        return Ok(Some(b));
    };
    if g < b {
        bail!("--global-batch {g} is below --batch {b}: the global batch is batch x accumulation, at least one batch");
    }
    match largest_divisor(g, b, args.min_batch) {
        Some(d) if d == b => Ok(Some(b)),
        Some(d) => {
            say(&format!(
                "batch {b} does not divide --global-batch {g}: starting at {d} (x {} = {g})",
                g / d
            ));
            Ok(Some(d))
        }
        None => bail!(
            "no batch from --min-batch {} to --batch {b} divides --global-batch {g}",
            args.min_batch
        ),
    }
}

/// The allocator variables the command would see.
fn alloc_env(extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = [
        "PYTORCH_CUDA_ALLOC_CONF",
        "PYTORCH_HIP_ALLOC_CONF",
        "PYTORCH_ALLOC_CONF",
    ]
    .iter()
    .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
    .collect();
    for (k, v) in extra {
        out.retain(|(ok, _)| ok != k);
        out.push((k.clone(), v.clone()));
    }
    out
}

fn device_name(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Cpu => "cpu",
        DeviceKind::Rocm => "rocm",
        DeviceKind::Mps => "mps",
        DeviceKind::Xpu => "xpu",
        DeviceKind::Cuda | DeviceKind::Unknown => "cuda",
    }
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let template = CommandTemplate::new(
        args.command.clone(),
        args.batch.is_some(),
        args.global_batch.is_some(),
    )?;
    let mut batch = first_batch(args)?;
    if args.batch.is_some() && !template.uses_batch() {
        say("the command has no {batch}: each attempt gets its batch size only as OOMGUARD_BATCH in its environment");
    }
    let shared = shared_state(args)?;
    let mut journal = args.journal.as_deref().map(Journal::open).transpose()?;
    let mut metrics = Metrics::open(args)?;
    let interrupts =
        Interrupts::install(args.kill_after).context("cannot install signal handlers")?;
    let mut guard = Guard::start(args.kill_after);
    let output = if args.json {
        Output::ToStderr
    } else {
        Output::Passthrough
    };
    // The command's memory: a GPU source opened once, else the host's.
    let gpu = open_within(&SourceChoice::Auto, SAMPLE_TIMEOUT).ok();
    let has_gpu_source = gpu.is_some();
    let memory = Some(gpu.map_or(MemorySource::Host, MemorySource::gpu));

    let mut policy = RestartPolicy::new(
        args.min_batch,
        args.max_restarts,
        args.global_batch,
        args.cpu_fallback,
        args.retry_leak,
    );
    let mut extra_env: Vec<(String, String)> = Vec::new();
    let mut attempt_offset = 0u32;
    if let Some(s) = &shared {
        if let Some(rec) = s.read()? {
            if batch.is_some() {
                say(&format!(
                    "{}: job {} was restarted at batch {} ({}, decision {})",
                    s.path().display(),
                    rec.run_id,
                    rec.batch,
                    rec.reason,
                    rec.attempt
                ));
                batch = Some(rec.batch);
                extra_env = rec.env.clone();
                attempt_offset = rec.attempt;
            }
        }
    }
    let mut on_cpu = false;
    let mut said_sample_error = false;
    let mut last_device: Option<&'static str> = None;
    let mut records: Vec<AttemptRecord> = Vec::new();
    let mut stopped: Option<StopReason> = None;
    let mut last_trend: Option<MemoryTrend> = None;
    let code = loop {
        if let Some(sig) = interrupts.received() {
            break 128 + sig;
        }
        let accum = batch.and_then(|b| policy.accum(b));
        let argv = template.fill(batch.unwrap_or(0), accum);
        let mut env = extra_env.clone();
        if let Some(b) = batch {
            env.push(("OOMGUARD_BATCH".to_string(), b.to_string()));
        }
        if let Some(k) = accum {
            env.push(("OOMGUARD_ACCUM".to_string(), k.to_string()));
        }
        if let Some(j) = &args.journal {
            // The Python callbacks append their per-step lines to the same
            // journal when they find it here.
            env.push(("OOMGUARD_JOURNAL".to_string(), j.display().to_string()));
        }
        if on_cpu {
            env.push(("CUDA_VISIBLE_DEVICES".to_string(), String::new()));
        }
        let attempt = records.len() as u32 + 1;
        metrics.counters.batch_size = batch;
        metrics.publish();
        if attempt > 1 {
            say(&format!(
                "attempt {attempt}: {}{}",
                batch.map_or("same command".into(), |b| match accum {
                    Some(k) => format!("batch {b} x {k} accumulation steps"),
                    None => format!("batch {b}"),
                }),
                if on_cpu {
                    " on the CPU (CUDA_VISIBLE_DEVICES=\"\")"
                } else {
                    ""
                }
            ));
        }
        let started_at = now();
        let launch = Launch {
            argv: &argv,
            env,
            output,
            timeout: None,
            kill_after: args.kill_after,
            memory: memory.clone(),
            sample_every: Duration::from_millis(250),
        };
        let finished = match child::run(&launch, &interrupts, &mut guard) {
            Ok(f) => f,
            Err(e) => break e.into_exit_code()?,
        };
        if let (Some(e), false) = (&finished.sample_error, said_sample_error) {
            say(&format!(
                "a memory sample failed ({e}); failed samples are skipped"
            ));
            said_sample_error = true;
        }
        let oom = if finished.exit_code == Some(0) {
            None
        } else {
            finished.last_oom(batch)
        };
        let trend = finished.trend();
        last_trend = trend;
        let device = if on_cpu {
            "cpu"
        } else if let Some(e) = &oom {
            device_name(e.event.device.kind)
        } else if let Some(d) = last_device {
            d
        } else if has_gpu_source {
            "cuda"
        } else {
            "cpu"
        };
        last_device = Some(device);
        let record = AttemptRecord {
            attempt: attempt + attempt_offset,
            batch,
            accum,
            device,
            started_at: rfc3339(started_at),
            duration_s: (finished.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            exit_code: finished.exit_code,
            signal: finished.signal,
            oom: oom.clone(),
            memory: finished.memory.as_ref().map(|m| AttemptMemory {
                baseline_bytes: m.baseline_bytes,
                peak_bytes: m.peak_bytes,
                timeline: thin(&m.timeline, 200),
                trend,
            }),
        };
        if let Some(j) = journal.as_mut() {
            j.append(&record);
        }
        records.push(record);
        let code = finished.shell_code();
        if finished.exit_code == Some(0) || interrupts.received().is_some() {
            break code;
        }
        let at_limit = finished
            .memory
            .as_ref()
            .filter(|_| !has_gpu_source)
            .and_then(|m| Some((m.peak_bytes?, m.capacity_bytes?)))
            .filter(|&(peak, limit)| at_host_limit(peak, limit));
        match (&oom, at_limit) {
            (Some(event), _) => report(event, batch, &finished),
            (None, Some((peak, limit))) => say(&format!(
                "the command failed with exit code {code} without an out-of-memory message, with its memory at {} of its {} limit (at least {:.0}% of it): counted as out of memory",
                format_size(peak),
                format_size(limit),
                AT_LIMIT_SHARE * 100.0
            )),
            (None, None) => {
                say(&format!(
                    "the command failed with exit code {code} and no out-of-memory error: not retried"
                ));
                break code;
            }
        }
        metrics.counters.oom_events += 1;
        metrics.publish();
        let Some(failed) = batch else {
            say("no --batch to shrink: not retried");
            break code;
        };
        let line = finished.memory.as_ref().and_then(|m| {
            Some(MemoryLine {
                baseline_bytes: m.baseline_bytes?,
                // The high-water mark where the source keeps one (the
                // host's VmPeak), else the last reading.
                at_failure_bytes: m.peak_bytes.or(m.last_bytes)?,
                limit_bytes: m.capacity_bytes?,
            })
        });
        let alloc = alloc_env(&extra_env);
        let decision = policy.decide(&Failure {
            batch: failed,
            event: oom.as_ref(),
            trend,
            on_cpu: on_cpu || device == "cpu",
            line: line.filter(|_| device == "cpu"),
            alloc_env: &alloc,
        });
        say(&why(&decision, oom.as_ref()));
        match decision {
            Decision::Retry {
                batch: next,
                accum,
                env,
                reason,
                ..
            } => {
                metrics.counters.restarts += 1;
                for (k, v) in &env {
                    extra_env.retain(|(ok, _)| ok != k);
                    extra_env.push((k.clone(), v.clone()));
                }
                batch = Some(next);
                if let Some(s) = &shared {
                    let stored = s.record(StateRecord {
                        run_id: s.run_id.clone(),
                        batch: next,
                        accum,
                        env: extra_env.clone(),
                        reason: reason.as_str().to_string(),
                        attempt: attempt + attempt_offset,
                        updated_at: rfc3339(now()),
                    })?;
                    if stored.batch != next {
                        say(&format!(
                            "another rank recorded batch {} for job {}: using it",
                            stored.batch, stored.run_id
                        ));
                        batch = Some(stored.batch);
                        extra_env = stored.env.clone();
                    }
                    if let Some(n) = args.exit_code_on_oom {
                        say(&format!(
                            "decision recorded in {}; exiting {n} (--exit-code-on-oom) for the launcher to restart the job",
                            s.path().display()
                        ));
                        break i32::from(n);
                    }
                } else if let Some(n) = args.exit_code_on_oom {
                    say(&format!("exiting {n} (--exit-code-on-oom); without --state the decision is only in this message"));
                    break i32::from(n);
                }
            }
            Decision::Cpu { batch: b } => {
                metrics.counters.restarts += 1;
                batch = Some(b);
                on_cpu = true;
            }
            Decision::Stop(reason) => {
                stopped = Some(reason);
                break code;
            }
        }
    };
    metrics.publish();
    summarize(args, &records, code, stopped.as_ref(), last_trend)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// At most `n` points of `timeline`, evenly spread, the last one kept.
fn thin(timeline: &[(f64, u64)], n: usize) -> Vec<(f64, u64)> {
    if timeline.len() <= n {
        return timeline.to_vec();
    }
    let step = timeline.len().div_ceil(n);
    let mut out: Vec<(f64, u64)> = timeline.iter().copied().step_by(step).collect();
    if let Some(last) = timeline.last() {
        if out.last() != Some(last) {
            out.push(*last);
        }
    }
    out
}

fn report(event: &ExplainedEvent, batch: Option<u64>, finished: &child::Finished) {
    let d = &event.diagnosis;
    say(&format!(
        "out of memory{}: {}",
        batch.map_or(String::new(), |b| format!(" at batch {b}")),
        d.summary
    ));
    if let Some(c) = d.causes.first() {
        say(&format!(
            "  likely cause: {} — {}",
            c.id.title(),
            c.evidence
        ));
    }
    if event.event.device.kind == DeviceKind::Cpu || finished.oom_killed {
        host_advice(event, finished);
    }
}

/// What ran out on the host: a limit of the process or the machine.
fn host_advice(event: &ExplainedEvent, finished: &child::Finished) {
    if finished.oom_killed {
        say("  the kernel's OOM killer ended the command (its cgroup counted the kill): the cgroup or the machine is out of RAM; a smaller batch, fewer data-loader workers, or a larger memory limit for the job");
        return;
    }
    let at = finished.memory.as_ref().and_then(|m| m.peak_bytes);
    match (finished.host_limit, at) {
        (Some(l), Some(peak)) if at_host_limit(peak.saturating_add(event.event.memory.requested_bytes.unwrap_or(0)), l.bytes) => say(&format!(
            "  host memory: the process reached {} of {} ({}); malloc's error code 12 (ENOMEM) is this limit, {}",
            format_size(peak),
            format_size(l.bytes),
            l.kind.describe(),
            if l.kind == HostLimitKind::Machine {
                "the machine itself is full"
            } else {
                "not a full machine: raise the limit or lower the batch"
            }
        )),
        (Some(l), _) => say(&format!(
            "  host memory: the tightest limit is {} ({}); the process was not seen near it, so the allocation itself was refused (error code 12, ENOMEM)",
            format_size(l.bytes),
            l.kind.describe()
        )),
        _ => {}
    }
}

/// One sentence for the decision, from its own figures.
fn why(decision: &Decision, event: Option<&ExplainedEvent>) -> String {
    match decision {
        Decision::Retry {
            batch,
            accum,
            reason,
            after_leak,
            ..
        } => {
            let with_accum = accum.map_or(String::new(), |k| {
                format!(" x {k} accumulation steps (= {})", batch * k)
            });
            let lead = if *after_leak {
                "memory climbed step after step (a leak); restarting once as --retry-leak asks, though a smaller batch only delays the OOM: "
            } else {
                ""
            };
            let body = match reason {
                RetryReason::Figures {
                    failed,
                    need_bytes,
                    usable_bytes,
                    bound,
                    caution,
                    share,
                } => format!(
                    "restarting with batch {batch}{with_accum}: at batch {failed} it needed at least {} of the {} it could use, so no batch above {bound} can fit; {batch} is {:.0}% of that bound (the next-batch rule with the caution of a {}), leaving room for the rest of the step, which the error does not show{}",
                    format_size(*need_bytes),
                    format_size(*usable_bytes),
                    share * 100.0,
                    caution.as_str().replace('_', " "),
                    event
                        .and_then(|e| e.diagnosis.suggested_batch)
                        .filter(|s| s != batch)
                        .map_or(String::new(), |s| format!(
                            "; explain's fix for one more run by hand takes {:.0}%: batch {s}",
                            Caution::OneMoreRun.share() * 100.0
                        ))
                ),
                RetryReason::MemoryLine {
                    failed,
                    line,
                    requested_bytes,
                    bound,
                } => format!(
                    "restarting with batch {batch}{with_accum}: at batch {failed} the process held {} (from {} before its first step) and asked {} more, past its limit of {}, so no batch above {bound} can fit",
                    format_size(line.at_failure_bytes),
                    format_size(line.baseline_bytes),
                    format_size(*requested_bytes),
                    format_size(line.limit_bytes)
                ),
                RetryReason::Halved {
                    failed,
                    request_fitted: true,
                } => format!(
                    "restarting with batch {batch}{with_accum}: by the error's figures the request fitted the memory left, yet the allocator could not place it; with no bound to size it, batch {failed} is halved"
                ),
                RetryReason::Halved { failed, .. } => format!(
                    "restarting with batch {batch}{with_accum}: the error gives no figures to size it, and no memory source measured it, so batch {failed} is halved"
                ),
                RetryReason::Fragmentation {
                    cached_free_bytes,
                    requested_bytes,
                    var,
                    value,
                } => format!(
                    "restarting at the same batch {batch} with {var} including {value}: the allocator's cache held {} free, more than the {} asked for, so the memory is fragmented, not too small; the batch is cut only if this fails again",
                    cached_free_bytes.map_or("n/a".into(), format_size),
                    requested_bytes.map_or("n/a".into(), format_size)
                ),
            };
            format!("{lead}{body}")
        }
        Decision::Cpu { batch } => format!(
            "batch {batch} is the minimum and still fails: one more run on the CPU (--cpu-fallback)"
        ),
        Decision::Stop(reason) => stop_sentence(reason),
    }
}

fn stop_sentence(reason: &StopReason) -> String {
    match reason {
        StopReason::MinimumFails { min } => {
            format!("batch {min} is the minimum (--min-batch) and still fails: not restarted")
        }
        StopReason::MaxRestarts { restarts } => {
            format!("stopping after {restarts} restarts (--max-restarts)")
        }
        StopReason::Leak {
            from_bytes,
            to_bytes,
        } => format!(
            "memory climbed step after step from {} to {}: tensors from earlier steps stay alive, and a smaller batch only delays the OOM; not restarted (--retry-leak restarts once)",
            format_size(*from_bytes),
            format_size(*to_bytes)
        ),
        StopReason::NoDivisorFits { global, at_most, min } => format!(
            "no divisor of --global-batch {global} lies between {min} and {at_most}, the largest batch the figures allow: not restarted (change --global-batch or --min-batch)"
        ),
        StopReason::CpuFailed => "the run on the CPU failed too: not restarted".into(),
    }
}

fn summarize(
    args: &RunArgs,
    records: &[AttemptRecord],
    code: i32,
    stopped: Option<&StopReason>,
    last_trend: Option<MemoryTrend>,
) -> anyhow::Result<()> {
    if args.json {
        let last_ok = records.last().filter(|r| r.exit_code == Some(0));
        let summary = serde_json::json!({
            "exit_code": code,
            "batch": last_ok.and_then(|r| r.batch),
            "restarts": records.len().saturating_sub(1),
            "stopped": stopped.map(|s| s.as_str()),
            "attempts": records,
        });
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut err = io::stderr().lock();
    if records.len() > 1 {
        writeln!(err, "oomguard: attempts")?;
        writeln!(
            err,
            "  {:>3} {:>7} {:>6} {:>9} {:>6}  outcome",
            "#", "batch", "device", "time", "exit"
        )?;
        for r in records {
            let outcome = match (&r.oom, r.exit_code) {
                (_, Some(0)) => "ok".to_string(),
                (Some(e), _) => format!(
                    "OOM ({})",
                    e.diagnosis.causes.first().map_or("?", |c| c.id.title())
                ),
                (None, _) => "failed".to_string(),
            };
            writeln!(
                err,
                "  {:>3} {:>7} {:>6} {:>8.1}s {:>6}  {}",
                r.attempt,
                r.batch.map_or("-".into(), |b| b.to_string()),
                r.device,
                r.duration_s,
                r.exit_code.map_or_else(
                    || r.signal.map_or("?".into(), |s| format!("sig{s}")),
                    |c| c.to_string()
                ),
                outcome
            )?;
        }
    }
    if let Some(MemoryTrend::Climbing {
        from_bytes,
        to_bytes,
        ..
    }) = last_trend.filter(|_| code != 0)
    {
        writeln!(
            err,
            "oomguard: at the end memory was still climbing ({} to {}): look for tensors kept across steps (a loss summed without .item(), a list of outputs, a growing cache)",
            format_size(from_bytes),
            format_size(to_bytes)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_last_line_is_found() {
        let dir = std::env::temp_dir().join(format!("oomguard-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("j.jsonl");
        for (content, want) in [
            (&b""[..], None),
            (b"{\"a\":1}\n", None),
            (b"{\"a\":1}\n{\"a\":", Some(8)),
            (b"{\"a\":", Some(0)),
        ] {
            std::fs::write(&p, content).unwrap();
            let mut f = File::open(&p).unwrap();
            assert_eq!(whole_lines_len(&mut f).unwrap(), want, "{content:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
