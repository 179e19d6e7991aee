//! Running one attempt of the user's command: in its own process group, its
//! output passed through as it comes (byte for byte on pipes, through a
//! pseudo-terminal when oomguard's own output is a terminal, so progress
//! bars and colours look as they do without oomguard), read for OOM events
//! on the way in bounded memory, optionally timed out, with SIGINT/SIGTERM
//! forwarded to the whole group and nothing left running afterwards.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use oomguard_core::diagnose::trend::classify;
use oomguard_core::diagnose::{DiagnoseContext, ExplainedEvent};
use oomguard_core::gpu::source::{GpuSource, NvidiaSmiSource, NvmlSource};
use oomguard_core::oom::{scan_reader, OomEvent, ScanOptions};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
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
    /// Installs the handlers once, for the life of the process.
    pub fn install() -> io::Result<Interrupts> {
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
                forward(g.load(Ordering::SeqCst), sig);
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

/// The child's GPU memory as sampled during the attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryTrace {
    /// Lowest usage after the first allocation: weights before a step.
    pub baseline_bytes: Option<u64>,
    pub peak_bytes: Option<u64>,
    /// What the command could reach: the device's total minus the most the
    /// listed other processes held, and no more than its own memory plus the
    /// device's free memory at the baseline (that also leaves out what the
    /// driver reserves and processes NVML does not list, as in a container).
    pub capacity_bytes: Option<u64>,
    pub samples: u32,
    /// `(seconds since start, bytes)`, thinned to stay under 1024 points.
    pub timeline: Vec<(f64, u64)>,
}

/// One attempt to run.
pub struct Launch<'a> {
    pub argv: &'a [String],
    pub env: Vec<(String, String)>,
    pub output: Output,
    pub timeout: Option<Duration>,
    /// Sample the command's GPU memory from here while it runs.
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
    pub events: Vec<OomEvent>,
    pub duration: Duration,
    /// The last lines of output when captured.
    pub tail: String,
    pub memory: Option<MemoryTrace>,
}

impl Finished {
    /// The exit code a shell would report: the code, or 128 + the signal.
    pub fn shell_code(&self) -> i32 {
        self.exit_code.or(self.signal.map(|s| 128 + s)).unwrap_or(1)
    }

    /// The OOM event that ended the attempt (the last one it printed),
    /// diagnosed for the batch it ran with and what its memory did.
    pub fn last_oom(&self, batch: Option<u64>) -> Option<ExplainedEvent> {
        let memory_trend = self.memory.as_ref().and_then(|m| classify(&m.timeline));
        self.events.last().cloned().map(|e| {
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
/// Pipe capacity asked of the kernel (Linux F_SETPIPE_SZ; the default 64 KiB
/// makes a fast writer wait on every page).
const PIPE_BYTES: i32 = 1 << 20;

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

/// Copies `input` to its destination as it arrives and to the scanner.
fn spawn_pump(
    mut input: impl Read + Send + 'static,
    to_stderr: bool,
    output: Output,
    tx: SyncSender<Vec<u8>>,
    tail: Arc<Mutex<Vec<u8>>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A pseudo-terminal's master reports EIO once the child side closes.
                Err(_) => break,
            };
            let bytes = &buf[..n];
            match output {
                Output::Passthrough if !to_stderr => {
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
            if tx.send(bytes.to_vec()).is_err() {
                break;
            }
        }
    })
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

/// Where an attempt's GPU memory is read.
#[derive(Debug, Clone)]
pub enum MemorySource {
    Nvml,
    NvidiaSmi(std::path::PathBuf),
}

impl MemorySource {
    fn open(&self) -> Option<Box<dyn GpuSource + Send>> {
        match self {
            MemorySource::Nvml => NvmlSource::open()
                .ok()
                .map(|s| Box::new(s) as Box<dyn GpuSource + Send>),
            MemorySource::NvidiaSmi(bin) => Some(Box::new(NvidiaSmiSource::new(bin.clone()))),
        }
    }
}

/// Samples the group's GPU memory until `stop` fires: its usage on the GPU it
/// runs on, and what other processes hold there.
fn spawn_sampler(
    source: MemorySource,
    period: Duration,
    group: i32,
    stop: Receiver<()>,
) -> thread::JoinHandle<MemoryTrace> {
    thread::spawn(move || {
        let started = Instant::now();
        let mut trace = MemoryTrace::default();
        let Some(mut source) = source.open() else {
            return trace;
        };
        let mut others_max = 0u64;
        let mut total = None;
        // Own memory plus the device's free memory, read with the baseline:
        // before the first step memory is flat, so the two readings agree.
        let mut reach_at_baseline: Option<u64> = None;
        loop {
            if let Ok(Some(sample)) = source.sample() {
                let members = group_members(group);
                let mine_on = |gpu: u32| -> u64 {
                    sample
                        .processes
                        .iter()
                        .filter(|p| p.gpu == gpu && members.contains(&p.pid))
                        .filter_map(|p| p.used_bytes)
                        .sum()
                };
                // The GPU the command uses: where its processes hold most.
                if let Some(g) = sample.gpus.iter().max_by_key(|g| mine_on(g.index)) {
                    let mine = mine_on(g.index);
                    let others: u64 = sample
                        .processes
                        .iter()
                        .filter(|p| p.gpu == g.index && !members.contains(&p.pid))
                        .filter_map(|p| p.used_bytes)
                        .sum();
                    trace.samples += 1;
                    trace.timeline.push((started.elapsed().as_secs_f64(), mine));
                    if trace.timeline.len() >= 1024 {
                        // Keep every other point: bounded memory, whole span.
                        let thinned = trace.timeline.iter().copied().step_by(2).collect();
                        trace.timeline = thinned;
                    }
                    if mine > 0 {
                        others_max = others_max.max(others);
                        total = g.total_bytes.or(total);
                        trace.peak_bytes = Some(trace.peak_bytes.map_or(mine, |p| p.max(mine)));
                        let reach = g.free_bytes.map(|f| f.saturating_add(mine));
                        match trace.baseline_bytes {
                            Some(b) if mine > b => {}
                            Some(b) if mine == b => {
                                // Two readings a moment apart: the lowest sum
                                // is the one no allocation fell between.
                                reach_at_baseline = match (reach_at_baseline, reach) {
                                    (Some(a), Some(r)) => Some(a.min(r)),
                                    (a, r) => a.or(r),
                                };
                            }
                            _ => {
                                trace.baseline_bytes = Some(mine);
                                reach_at_baseline = reach;
                            }
                        }
                    }
                }
            }
            match stop.recv_timeout(period) {
                Err(RecvTimeoutError::Timeout) => continue,
                _ => break,
            }
        }
        let listed = total.map(|t: u64| t.saturating_sub(others_max));
        trace.capacity_bytes = match (listed, reach_at_baseline) {
            (Some(l), Some(r)) => Some(l.min(r)),
            (l, r) => l.or(r),
        };
        trace
    })
}

/// Ends every live process left in `group`: SIGTERM, then SIGKILL after a
/// grace period. The leader is a zombie at this point (waited, not reaped).
fn reap_group(group: i32) {
    if group_members(group).is_empty() {
        return;
    }
    let pg = Pid::from_raw(group);
    let _ = killpg(pg, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if group_members(group).is_empty() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(pg, Signal::SIGKILL);
}

/// Runs one attempt to its end.
pub fn run(launch: &Launch<'_>, interrupts: &Interrupts) -> Result<Finished, StartError> {
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
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StartError::NotFound(launch.argv[0].clone()),
        io::ErrorKind::PermissionDenied => StartError::NotExecutable(launch.argv[0].clone()),
        _ => StartError::Other(e),
    })?;
    // The command line's process group is the child's pid (process_group(0)).
    let group = child.id() as i32;
    interrupts.child_group.store(group, Ordering::SeqCst);
    if let Some(sig) = interrupts.received() {
        forward(group, sig);
    }
    drop(cmd); // closes our copies of the pseudo-terminal's child side

    let tail = Arc::new(Mutex::new(Vec::new()));
    let mut pumps = Vec::new();
    let mut scanners = Vec::new();
    let mut streams: Vec<(Box<dyn Read + Send>, bool)> = Vec::new();
    if let Some(m) = master {
        streams.push((Box::new(m), false));
    } else {
        if let Some(out) = child.stdout.take() {
            let _ = nix::fcntl::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&out),
                nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BYTES),
            );
            streams.push((Box::new(out), false));
        }
        if let Some(err) = child.stderr.take() {
            let _ = nix::fcntl::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&err),
                nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BYTES),
            );
            streams.push((Box::new(err), true));
        }
    }
    for (stream, is_stderr) in streams {
        let (tx, rx) = mpsc::sync_channel(64);
        scanners.push(spawn_scanner(rx));
        pumps.push(spawn_pump(
            stream,
            is_stderr,
            launch.output,
            tx,
            tail.clone(),
        ));
    }

    let (stop_sampler, sampler_rx) = mpsc::channel();
    let sampler = launch
        .memory
        .clone()
        .map(|source| spawn_sampler(source, launch.sample_every, group, sampler_rx));
    let (stop_timer, timer_rx) = mpsc::channel::<()>();
    let timed_out = Arc::new(AtomicI32::new(0));
    let timer = launch.timeout.map(|limit| {
        let flag = timed_out.clone();
        thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = timer_rx.recv_timeout(limit) {
                flag.store(1, Ordering::SeqCst);
                reap_group(group);
            }
        })
    });

    // Wait for the exit without reaping: while the child is a zombie its pid,
    // and so its group id, cannot be given to another process, so killing
    // the group below can only reach what the attempt started.
    let _ = nix::sys::wait::waitid(
        nix::sys::wait::Id::Pid(Pid::from_raw(group)),
        nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT,
    );
    let _ = stop_timer.send(());
    if let Some(t) = timer {
        let _ = t.join();
    }
    interrupts.child_group.store(0, Ordering::SeqCst);
    // Nothing of the attempt keeps running (torchrun workers, data loaders).
    reap_group(group);
    let status = child.wait();
    for p in pumps {
        let _ = p.join();
    }
    let mut events = Vec::new();
    for s in scanners {
        events.extend(s.join().unwrap_or_default());
    }
    let _ = stop_sampler.send(());
    let memory = sampler.and_then(|s| s.join().ok());
    let status = status.map_err(StartError::Other)?;
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
    })
}
