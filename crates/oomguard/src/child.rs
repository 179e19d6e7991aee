//! Running one attempt of the user's command: in its own process group, its
//! output passed through as it comes (byte for byte on pipes, through a
//! pseudo-terminal when oomguard's own output is a terminal, so progress
//! bars and colours look as they do without oomguard), read for OOM events
//! in time order across stdout and stderr in bounded memory, optionally
//! timed out, with SIGINT/SIGTERM forwarded to the whole group (SIGKILL after
//! `--kill-after`) and nothing left running afterwards.
//!
//! Ways out, so an attempt always ends when its command ends:
//! - memory is sampled on a thread the attempt never waits for; a sample
//!   that fails is skipped (the first failure is kept to be said once);
//! - the output is drained for a moment after the group is gone, then
//!   dropped: a descendant in a new session that keeps the pipe open cannot
//!   hold the attempt up;
//! - a guard process (this binary, `__guard`) watches oomguard through a
//!   pipe and ends the command's group when oomguard dies, even of SIGKILL;
//! - on a terminal the command's group becomes the terminal's foreground
//!   group, so it can read stdin (`input()`, `pdb`), and Ctrl-Z stops
//!   oomguard with it; `fg` resumes both.

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{getpgrp, tcgetpgrp, tcsetpgrp, Pid};
use oomguard_core::diagnose::{DiagnoseContext, ExplainedEvent};
use oomguard_core::gpu::{GpuSample, GpuSource};
use oomguard_core::oom::{scan_reader, Framework, OomEvent, ScanOptions};
use oomguard_core::supervise::host::{self, HostLimit};
use oomguard_core::supervise::{
    classify_host_trend as classify_host, classify_trend as classify, MemoryTrace, MemoryTrend,
    Reading, TraceFold,
};
use std::fs::File;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Where the child's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// stdout to stdout, stderr to stderr.
    Passthrough,
    /// Both to oomguard's stderr (stdout carries JSON).
    ToStderr,
    /// Kept only as a short tail for error reports (tune's trials).
    Capture,
}

/// Signals oomguard received, forwarded to the running child's group.
#[derive(Clone)]
pub struct Interrupts {
    received: Arc<AtomicI32>,
    child_group: Arc<AtomicI32>,
}

impl Interrupts {
    /// Installs the handlers once, for the life of the process. A group
    /// that ignores the forwarded signal gets SIGKILL after `kill_after`.
    pub fn install(kill_after: Duration) -> io::Result<Interrupts> {
        let received = Arc::new(AtomicI32::new(0));
        let child_group = Arc::new(AtomicI32::new(0));
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ])?;
        let (r, g) = (received.clone(), child_group.clone());
        thread::spawn(move || {
            for sig in signals.forever() {
                r.store(sig, Ordering::SeqCst);
                let group = g.load(Ordering::SeqCst);
                forward(group, sig);
                let g = g.clone();
                thread::spawn(move || {
                    thread::sleep(kill_after);
                    // Still the same attempt (its leader not yet waited for).
                    if group > 0 && g.load(Ordering::SeqCst) == group {
                        forward(group, Signal::SIGKILL as i32);
                    }
                });
            }
        });
        Ok(Interrupts {
            received,
            child_group,
        })
    }

    /// The signal received, if any (the caller stops starting attempts).
    pub fn received(&self) -> Option<i32> {
        Some(self.received.load(Ordering::SeqCst)).filter(|s| *s != 0)
    }
}

fn forward(group: i32, sig: i32) {
    if group > 0 {
        if let Ok(s) = Signal::try_from(sig) {
            let _ = killpg(Pid::from_raw(group), s);
        }
    }
}

/// A process that ends the attempt's group when oomguard dies: it reads
/// `+GROUP` / `-GROUP` lines on a pipe from oomguard, and the pipe's end
/// (oomguard gone, whatever killed it) with a group still listed makes it
/// send SIGTERM, then SIGKILL after the grace period.
pub struct Guard {
    pipe: ChildStdin,
    _process: std::process::Child,
}

impl Guard {
    /// Starts the guard; `None` when this binary cannot be started again
    /// (the attempt then runs unguarded).
    pub fn start(kill_after: Duration) -> Option<Guard> {
        let exe = std::env::current_exe().ok()?;
        let mut process = Command::new(exe)
            .arg("__guard")
            .arg(format!("{}", kill_after.as_millis()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: a Ctrl-C meant for the command does not end it.
            .process_group(0)
            .spawn()
            .ok()?;
        let pipe = process.stdin.take()?;
        Some(Guard {
            pipe,
            _process: process,
        })
    }

    fn tell(&mut self, line: String) {
        let _ = self.pipe.write_all(line.as_bytes());
        let _ = self.pipe.flush();
    }
}

/// The guard's side: see [`Guard`].
pub fn guard(kill_after_ms: u64) -> std::process::ExitCode {
    let mut group: Option<i32> = None;
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(g) = line.strip_prefix('+').and_then(|g| g.parse().ok()) {
            group = Some(g);
        } else if line.starts_with('-') {
            group = None;
        }
    }
    if let Some(g) = group.filter(|g| *g > 0) {
        end_group(g, Duration::from_millis(kill_after_ms));
    }
    std::process::ExitCode::SUCCESS
}

/// Live (not zombie) pids whose process group is `group` (Linux /proc).
fn group_members(group: i32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // Fields after the command name (which may hold spaces):
                    // state, ppid, pgrp.
                    let rest: Vec<&str> = s[s.rfind(')')? + 2..].split_whitespace().collect();
                    let live = rest.first()? != &"Z";
                    Some(live && rest.get(2)?.parse::<i32>().ok()? == group)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Ends every live process left in `group`: SIGTERM, then SIGKILL after
/// `grace`.
fn end_group(group: i32, grace: Duration) {
    if group_members(group).is_empty() {
        return;
    }
    let pg = Pid::from_raw(group);
    let _ = killpg(pg, Signal::SIGTERM);
    // A stopped group cannot act on SIGTERM.
    let _ = killpg(pg, Signal::SIGCONT);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if group_members(group).is_empty() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(pg, Signal::SIGKILL);
}

/// Where an attempt's memory is read: a GPU source opened once for the whole
/// run (shared, so a sample still hung in the driver is skipped, not
/// waited for), or the host's `/proc`.
#[derive(Clone)]
pub enum MemorySource {
    Gpu {
        source: Arc<Mutex<Box<dyn GpuSource + Send>>>,
        name: &'static str,
    },
    Host,
}

impl MemorySource {
    pub fn gpu(source: Box<dyn GpuSource + Send>) -> MemorySource {
        MemorySource::Gpu {
            name: source.name(),
            source: Arc::new(Mutex::new(source)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            MemorySource::Gpu { name, .. } => (*name).to_string(),
            MemorySource::Host => "the host (/proc, rlimit, cgroup)".into(),
        }
    }
}

/// One attempt to run.
pub struct Launch<'a> {
    pub argv: &'a [String],
    pub env: Vec<(String, String)>,
    pub output: Output,
    pub timeout: Option<Duration>,
    /// SIGKILL this long after a SIGTERM the group ignores.
    pub kill_after: Duration,
    /// Sample the command's memory from here while it runs.
    pub memory: Option<MemorySource>,
    /// How often.
    pub sample_every: Duration,
}

/// How an attempt ended.
#[derive(Debug, Default)]
pub struct Finished {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// OOM events in the order the command printed them, stdout and stderr
    /// interleaved as they came.
    pub events: Vec<OomEvent>,
    pub duration: Duration,
    /// The last lines of output when captured.
    pub tail: String,
    pub memory: Option<MemoryTrace>,
    /// The first sample that failed, when one did (the rest are skipped).
    pub sample_error: Option<String>,
    /// The host limit the command ran under (host source only).
    pub host_limit: Option<HostLimit>,
    /// The kernel's OOM killer ended the command (its cgroup counted a kill).
    pub oom_killed: bool,
}

impl Finished {
    /// The exit code a shell would report: the code, or 128 + the signal.
    pub fn shell_code(&self) -> i32 {
        self.exit_code.or(self.signal.map(|s| 128 + s)).unwrap_or(1)
    }

    /// The event to decide on: the last one with the figures (on a
    /// multi-rank job the failing rank's, also when torchrun repeats it at
    /// the end, not the collective timeouts it caused on the other ranks),
    /// else the last that is not a communication library's, else the last.
    pub fn deciding_event(&self) -> Option<&OomEvent> {
        let has_figures = |e: &&OomEvent| {
            e.memory.requested_bytes.is_some()
                && (e.memory.allocated_bytes.is_some() || e.memory.total_bytes.is_some())
        };
        self.events
            .iter()
            .rev()
            .find(has_figures)
            .or_else(|| {
                self.events
                    .iter()
                    .rev()
                    .find(|e| e.framework != Framework::Nccl)
            })
            .or_else(|| self.events.last())
    }

    /// The shape of the command's memory over the attempt.
    pub fn trend(&self) -> Option<MemoryTrend> {
        let m = self.memory.as_ref()?;
        if self.host_limit.is_some() {
            classify_host(&m.timeline)
        } else {
            classify(&m.timeline)
        }
    }

    /// The deciding OOM event, diagnosed for the batch it ran with and what
    /// its memory did.
    pub fn last_oom(&self, batch: Option<u64>) -> Option<ExplainedEvent> {
        let memory_trend = self.trend();
        self.deciding_event().cloned().map(|e| {
            ExplainedEvent::new(
                e,
                &DiagnoseContext {
                    batch,
                    memory_trend,
                },
            )
        })
    }
}

/// Why the command could not start.
#[derive(Debug)]
pub enum StartError {
    NotFound(String),
    NotExecutable(String),
    Other(io::Error),
}

impl StartError {
    /// Says why on stderr and gives the shell's exit code for it (127 not
    /// found, 126 not executable); any other failure is an error.
    pub fn into_exit_code(self) -> anyhow::Result<i32> {
        let (cmd, code, why) = match self {
            StartError::NotFound(cmd) => (cmd, 127, "command not found"),
            StartError::NotExecutable(cmd) => (cmd, 126, "permission denied"),
            StartError::Other(e) => {
                return Err(anyhow::Error::new(e).context("cannot start the command"))
            }
        };
        let _ = writeln!(io::stderr().lock(), "oomguard: cannot run `{cmd}`: {why}");
        Ok(code)
    }
}

const TAIL_BYTES: usize = 16 << 10;
const CHUNK: usize = 256 << 10;
/// A line longer than this goes to the scanner in pieces.
const MAX_LINE: usize = 64 << 10;
/// Pipe capacity asked of the kernel (Linux F_SETPIPE_SZ; the default 64 KiB
/// makes a fast writer wait on every page).
const PIPE_BYTES: i32 = 1 << 20;
/// After the command's group is gone, its output is read this long more;
/// then what still holds it open (a daemon in a new session) is left behind.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// A `Read` over chunks sent through a channel, for the scanner thread.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Scans what arrives on `rx` for OOM events.
fn spawn_scanner(rx: Receiver<Vec<u8>>) -> thread::JoinHandle<Vec<OomEvent>> {
    thread::spawn(move || {
        let mut events = Vec::new();
        let reader = ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        };
        let _ = scan_reader("-", reader, &ScanOptions::default(), |e| events.push(e));
        events
    })
}

/// One output stream of the command.
struct Stream {
    file: File,
    is_stderr: bool,
    /// Bytes after the last newline, held until the line is whole so lines
    /// of stdout and stderr reach the scanner whole, in arrival order.
    partial: Vec<u8>,
    open: bool,
}

/// Copies the command's streams to their destinations as bytes arrive, and
/// whole lines, in arrival order, to the scanner; stops at the end of every
/// stream, or once `drain_until` is set and passed.
fn spawn_pump(
    mut streams: Vec<Stream>,
    output: Output,
    tx: SyncSender<Vec<u8>>,
    tail: Arc<Mutex<Vec<u8>>>,
    drain_until: Arc<Mutex<Option<Instant>>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            if streams.iter().all(|s| !s.open) {
                break;
            }
            let until = *drain_until.lock().unwrap_or_else(|p| p.into_inner());
            if until.is_some_and(|u| Instant::now() >= u) {
                break;
            }
            let ready: Vec<bool> = {
                let mut fds: Vec<PollFd> = streams
                    .iter()
                    .filter(|s| s.open)
                    .map(|s| PollFd::new(s.file.as_fd(), PollFlags::POLLIN))
                    .collect();
                match poll(&mut fds, PollTimeout::from(100u16)) {
                    Ok(0) => continue,
                    Ok(_) => fds.iter().map(|f| f.any().unwrap_or(true)).collect(),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break,
                }
            };
            let mut ready = ready.into_iter();
            for s in streams.iter_mut().filter(|s| s.open) {
                if !ready.next().unwrap_or(false) {
                    continue;
                }
                let n = match s.file.read(&mut buf) {
                    Ok(0) => {
                        s.open = false;
                        continue;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // A pseudo-terminal's master reports EIO once the child side closes.
                    Err(_) => {
                        s.open = false;
                        continue;
                    }
                };
                let bytes = &buf[..n];
                pass_on(bytes, s.is_stderr, output, &tail);
                s.partial.extend_from_slice(bytes);
                let cut = match memchr_last_newline(&s.partial) {
                    Some(i) => i + 1,
                    None if s.partial.len() > MAX_LINE => s.partial.len(),
                    None => 0,
                };
                if cut > 0 {
                    let whole: Vec<u8> = s.partial.drain(..cut).collect();
                    if tx.send(whole).is_err() {
                        return;
                    }
                }
            }
        }
        for s in streams.iter_mut() {
            if !s.partial.is_empty() {
                let mut rest = std::mem::take(&mut s.partial);
                rest.push(b'\n');
                let _ = tx.send(rest);
            }
        }
    })
}

fn memchr_last_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|b| *b == b'\n')
}

fn pass_on(bytes: &[u8], is_stderr: bool, output: Output, tail: &Mutex<Vec<u8>>) {
    match output {
        Output::Passthrough if !is_stderr => {
            let mut out = io::stdout().lock();
            let _ = out.write_all(bytes).and_then(|_| out.flush());
        }
        Output::Passthrough | Output::ToStderr => {
            let mut err = io::stderr().lock();
            let _ = err.write_all(bytes).and_then(|_| err.flush());
        }
        Output::Capture => {
            let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
            t.extend_from_slice(bytes);
            if t.len() > TAIL_BYTES {
                let cut = t.len() - TAIL_BYTES;
                t.drain(..cut);
            }
        }
    }
}

/// What the sampler shares with the attempt: the fold so far and the first
/// failure. The attempt reads them when it ends and never waits for the
/// sampler itself.
#[derive(Default)]
struct SamplerState {
    fold: TraceFold,
    error: Option<String>,
    limit: Option<HostLimit>,
}

/// Samples the group's memory every `period` until `stop` is set.
fn spawn_sampler(
    source: MemorySource,
    period: Duration,
    group: i32,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<SamplerState>>,
) {
    thread::spawn(move || {
        let started = Instant::now();
        let note_error = |e: String| {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            s.error.get_or_insert(e);
        };
        while !stop.load(Ordering::SeqCst) {
            let reading = match &source {
                MemorySource::Gpu { source, .. } => match source.try_lock() {
                    Ok(mut src) => match src.sample() {
                        Ok(Some(sample)) => gpu_reading(&sample, group, started),
                        Ok(None) => None,
                        Err(e) => {
                            note_error(format!("{:#}", anyhow::Error::new(e)));
                            None
                        }
                    },
                    Err(_) => {
                        note_error("an earlier sample has not returned".into());
                        None
                    }
                },
                MemorySource::Host => host_reading(group, started, &state),
            };
            if let Some(r) = reading {
                state.lock().unwrap_or_else(|p| p.into_inner()).fold.add(r);
            }
            let wake = Instant::now() + period;
            while !stop.load(Ordering::SeqCst) && Instant::now() < wake {
                thread::sleep(period.min(Duration::from_millis(20)));
            }
        }
    });
}

/// The group's usage on the GPU it uses most, and what others hold there.
fn gpu_reading(sample: &GpuSample, group: i32, started: Instant) -> Option<Reading> {
    let members = group_members(group);
    let mine_on = |gpu: u32| -> u64 {
        sample
            .processes
            .iter()
            .filter(|p| p.gpu == gpu && members.contains(&p.pid))
            .filter_map(|p| p.used_bytes)
            .sum()
    };
    let g = sample.gpus.iter().max_by_key(|g| mine_on(g.index))?;
    let others: u64 = sample
        .processes
        .iter()
        .filter(|p| p.gpu == g.index && !members.contains(&p.pid))
        .filter_map(|p| p.used_bytes)
        .sum();
    Some(Reading {
        seconds: started.elapsed().as_secs_f64(),
        mine: mine_on(g.index),
        others,
        total: g.total_bytes,
        free: g.free_bytes,
        limit: None,
        peak: None,
    })
}

/// The group's memory from /proc, against its tightest limit.
fn host_reading(group: i32, started: Instant, state: &Mutex<SamplerState>) -> Option<Reading> {
    let members = group_members(group);
    if members.is_empty() {
        return None;
    }
    // Read on every sample, not once: a first reading can come before a
    // wrapper such as `prlimit --as` has set the limit and exec'd the job,
    // and a limit cached then would measure resident memory against the
    // host's RAM for the whole attempt.
    let limit = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.limit = host::limit(group as u32).or(s.limit);
        s.limit
    };
    Some(Reading {
        seconds: started.elapsed().as_secs_f64(),
        mine: host::group_usage(&members, limit)?,
        others: 0,
        total: None,
        free: None,
        limit: limit.map(|l| l.bytes),
        peak: host::group_peak(&members, limit),
    })
}

/// The terminal oomguard runs on, when it reads stdin there in the
/// foreground: the command's group is given the terminal while it runs.
struct Terminal {
    stdin: io::Stdin,
    own: Pid,
}

impl Terminal {
    fn if_foreground() -> Option<Terminal> {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let own = getpgrp();
        (tcgetpgrp(stdin.as_fd()).ok()? == own).then_some(Terminal { stdin, own })
    }

    /// Makes `group` the foreground group (SIGTTOU blocked: oomguard may be
    /// in the background by then) and wakes it if it stopped on reading.
    fn give(&self, group: i32) {
        self.set(Pid::from_raw(group));
        let _ = killpg(Pid::from_raw(group), Signal::SIGCONT);
    }

    fn take_back(&self) {
        self.set(self.own);
    }

    fn set(&self, pgrp: Pid) {
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), None);
        let _ = tcsetpgrp(self.stdin.as_fd(), pgrp);
        let _ = pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&ttou), None);
    }
}

/// Waits until the leader of `group` exits, without reaping it: while it is
/// a zombie its pid, and so its group id, cannot be given to another
/// process, so killing the group after can only reach what the attempt
/// started. On a terminal, a stop of the command (Ctrl-Z) stops oomguard
/// too, and a resume resumes the command.
fn wait_exit(group: i32, terminal: Option<&Terminal>) {
    let id = || Id::Pid(Pid::from_raw(group));
    loop {
        let flags = if terminal.is_some() {
            WaitPidFlag::WEXITED | WaitPidFlag::WSTOPPED | WaitPidFlag::WNOWAIT
        } else {
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT
        };
        match waitid(id(), flags) {
            Ok(WaitStatus::Stopped(..)) => {
                // Consume the stop report (without reaping anything).
                let _ = waitid(id(), WaitPidFlag::WSTOPPED);
                if let Some(t) = terminal {
                    t.take_back();
                    // Stop oomguard's own job, as the shell expects of it;
                    // this returns when the shell continues it (`fg`/`bg`).
                    // SIGSTOP: the kernel drops SIGTSTP sent to a group with
                    // no parent in the session outside it (an orphaned group).
                    let _ = killpg(t.own, Signal::SIGSTOP);
                    if tcgetpgrp(t.stdin.as_fd()).ok() == Some(t.own) {
                        t.give(group);
                    } else {
                        let _ = killpg(Pid::from_raw(group), Signal::SIGCONT);
                    }
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// The command's cgroup's OOM-killer count now (the command runs in
/// oomguard's cgroup).
fn oom_kills_now() -> Option<u64> {
    host::oom_kills(std::process::id())
}

/// The event the kernel's OOM killer leaves in the kernel log, in its own
/// words (mm/oom_kill.c: `Out of memory: Killed process PID (COMM)`), for a
/// kill the cgroup counted.
fn oom_killer_event(pid: i32, argv0: &str) -> Option<OomEvent> {
    let comm = std::path::Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| argv0.to_string());
    let line =
        format!("Out of memory: Killed process {pid} ({comm}) (its cgroup counted an oom_kill)\n");
    let mut events = Vec::new();
    let _ = scan_reader("kernel", line.as_bytes(), &ScanOptions::default(), |e| {
        events.push(e)
    });
    events.pop()
}

/// Runs one attempt to its end.
pub fn run(
    launch: &Launch<'_>,
    interrupts: &Interrupts,
    guard: &mut Option<Guard>,
) -> Result<Finished, StartError> {
    let started = Instant::now();
    let mut cmd = Command::new(&launch.argv[0]);
    cmd.args(&launch.argv[1..])
        .envs(launch.env.iter().cloned())
        .process_group(0);
    let use_pty = launch.output == Output::Passthrough && io::stdout().is_terminal();
    let mut master: Option<File> = None;
    if use_pty {
        let size = terminal_size::terminal_size().map(|(w, h)| nix::pty::Winsize {
            ws_row: h.0,
            ws_col: w.0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        });
        let pty =
            nix::pty::openpty(size.as_ref(), None).map_err(|e| StartError::Other(e.into()))?;
        let slave_err = pty.slave.try_clone().map_err(StartError::Other)?;
        cmd.stdout(Stdio::from(pty.slave))
            .stderr(Stdio::from(slave_err));
        master = Some(File::from(pty.master));
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let kills_before = oom_kills_now();
    let terminal = if launch.output == Output::Capture {
        None
    } else {
        Terminal::if_foreground()
    };
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StartError::NotFound(launch.argv[0].clone()),
        io::ErrorKind::PermissionDenied => StartError::NotExecutable(launch.argv[0].clone()),
        _ => StartError::Other(e),
    })?;
    // The command line's process group is the child's pid (process_group(0)).
    let group = child.id() as i32;
    if let Some(g) = guard.as_mut() {
        g.tell(format!("+{group}\n"));
    }
    if let Some(t) = &terminal {
        t.give(group);
    }
    interrupts.child_group.store(group, Ordering::SeqCst);
    if let Some(sig) = interrupts.received() {
        forward(group, sig);
    }
    drop(cmd); // closes our copies of the pseudo-terminal's child side

    let tail = Arc::new(Mutex::new(Vec::new()));
    let mut streams = Vec::new();
    if let Some(m) = master {
        streams.push((OwnedFd::from(m), false));
    } else {
        if let Some(out) = child.stdout.take() {
            streams.push((OwnedFd::from(out), false));
        }
        if let Some(err) = child.stderr.take() {
            streams.push((OwnedFd::from(err), true));
        }
    }
    let streams: Vec<Stream> = streams
        .into_iter()
        .map(|(fd, is_stderr)| {
            let _ = nix::fcntl::fcntl(
                fd.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BYTES),
            );
            Stream {
                file: File::from(fd),
                is_stderr,
                partial: Vec::new(),
                open: true,
            }
        })
        .collect();
    let (tx, rx) = mpsc::sync_channel(64);
    let scanner = spawn_scanner(rx);
    let drain_until = Arc::new(Mutex::new(None));
    let pump = spawn_pump(
        streams,
        launch.output,
        tx,
        tail.clone(),
        drain_until.clone(),
    );

    let stop_sampler = Arc::new(AtomicBool::new(false));
    let sampler_state = Arc::new(Mutex::new(SamplerState::default()));
    if let Some(source) = launch.memory.clone() {
        spawn_sampler(
            source,
            launch.sample_every,
            group,
            stop_sampler.clone(),
            sampler_state.clone(),
        );
    }
    let (stop_timer, timer_rx) = mpsc::channel::<()>();
    let timed_out = Arc::new(AtomicI32::new(0));
    let kill_after = launch.kill_after;
    let timer = launch.timeout.map(|limit| {
        let flag = timed_out.clone();
        thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = timer_rx.recv_timeout(limit) {
                flag.store(1, Ordering::SeqCst);
                end_group(group, kill_after);
            }
        })
    });

    wait_exit(group, terminal.as_ref());
    if let Some(t) = &terminal {
        t.take_back();
    }
    let _ = stop_timer.send(());
    if let Some(t) = timer {
        let _ = t.join();
    }
    interrupts.child_group.store(0, Ordering::SeqCst);
    stop_sampler.store(true, Ordering::SeqCst);
    // Nothing of the attempt keeps running (torchrun workers, data loaders).
    end_group(group, kill_after);
    let status = child.wait();
    if let Some(g) = guard.as_mut() {
        g.tell(format!("-{group}\n"));
    }
    *drain_until.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(Instant::now() + DRAIN_AFTER_EXIT);
    let _ = pump.join();
    let mut events = scanner.join().unwrap_or_default();
    let status = status.map_err(StartError::Other)?;
    let (memory, sample_error, host_limit) = {
        let s = sampler_state.lock().unwrap_or_else(|p| p.into_inner());
        let memory = launch.memory.as_ref().map(|m| match m {
            MemorySource::Host => s.fold.host_trace(),
            MemorySource::Gpu { .. } => s.fold.trace(),
        });
        (memory, s.error.clone(), s.limit)
    };
    let killed = status.signal() == Some(Signal::SIGKILL as i32);
    let oom_killed =
        killed && matches!((kills_before, oom_kills_now()), (Some(a), Some(b)) if b > a);
    if oom_killed && events.is_empty() {
        events.extend(oom_killer_event(group, &launch.argv[0]));
    }
    if terminal.is_some()
        && matches!(status.signal(), Some(s) if s == Signal::SIGINT as i32 || s == Signal::SIGQUIT as i32)
    {
        // Ctrl-C on the terminal reached the command, not oomguard: the
        // user wants to stop.
        interrupts
            .received
            .compare_exchange(
                0,
                status.signal().unwrap_or(2),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .ok();
    }
    let tail =
        String::from_utf8_lossy(&tail.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    Ok(Finished {
        exit_code: status.code(),
        signal: status.signal(),
        timed_out: timed_out.load(Ordering::SeqCst) == 1,
        events,
        duration: started.elapsed(),
        tail,
        memory,
        sample_error,
        host_limit,
        oom_killed,
    })
}
