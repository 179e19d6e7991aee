//! `oomguard watch`: sample GPU memory every interval; show it (a refreshing
//! view on a terminal, a table per sample otherwise, or JSON lines), record
//! it, serve it as Prometheus text, forecast the time until full, and fire
//! alerts once per crossing.

use crate::flags::WatchArgs;
use crate::serve::{self, Body};
use crate::style::{printable, proportional_cells, Style};
use anyhow::{anyhow, Context};
use oomguard_core::gpu::container::{self, ContainerInfo};
use oomguard_core::gpu::metrics::{self, Exposition};
pub use oomguard_core::gpu::Etas;
use oomguard_core::gpu::{
    Alert, AlertReason, GpuSample, GpuSource, Monitor, Sampled, SourceError, TimedSampler,
};
use oomguard_core::size::format_size;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn open_source(args: &WatchArgs) -> anyhow::Result<Box<dyn GpuSource>> {
    use oomguard_core::gpu::{open_source as open, SourceChoice};
    let choice = match (&args.replay, args.source.as_deref()) {
        (Some(path), _) => SourceChoice::Replay(path.clone()),
        (None, Some("nvml")) => SourceChoice::Nvml,
        (None, Some("nvidia-smi")) => SourceChoice::NvidiaSmi,
        (None, _) => SourceChoice::Auto,
    };
    Ok(open(&choice)?)
}

fn fire_alert(command: &str, sample: &GpuSample, gpu: u32, reason: AlertReason) {
    let mut words = command.split_whitespace();
    let Some(program) = words.next() else { return };
    let g = sample.gpus.iter().find(|g| g.index == gpu);
    let top = sample.top_process(gpu);
    let mut cmd = Command::new(program);
    cmd.args(words)
        .stdin(Stdio::null())
        .env("OOMGUARD_GPU", gpu.to_string())
        .env("OOMGUARD_ALERT", reason.name())
        .env(
            "OOMGUARD_GPU_NAME",
            g.and_then(|g| g.name.clone()).unwrap_or_default(),
        )
        .env(
            "OOMGUARD_USED_BYTES",
            g.and_then(|g| g.used_bytes)
                .map_or(String::new(), |v| v.to_string()),
        )
        .env(
            "OOMGUARD_TOTAL_BYTES",
            g.and_then(|g| g.total_bytes)
                .map_or(String::new(), |v| v.to_string()),
        )
        .env(
            "OOMGUARD_TOP_PID",
            top.map_or(String::new(), |p| p.pid.to_string()),
        )
        .env(
            "OOMGUARD_TOP_NAME",
            top.and_then(|p| p.name.clone()).unwrap_or_default(),
        );
    match cmd.spawn() {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => eprintln!("oomguard: --on-alert {program}: {e}"),
    }
}

pub fn fmt_eta(seconds: Option<f64>) -> String {
    match seconds {
        None => "n/a".into(),
        Some(s) if s < 60.0 => format!("{s:.0}s"),
        Some(s) if s < 3600.0 => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        Some(s) => format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        ),
    }
}

fn table(sample: &GpuSample, etas: &Etas, s: &Style) -> String {
    let na = || "n/a".to_string();
    let mut out = String::new();
    out.push_str(&format!(
        "{:<4} {:<26} {:>23} {:>6}  {:<22} {:>9}\n",
        "GPU", "NAME", "USED / TOTAL", "USE", "", "FULL IN"
    ));
    for g in &sample.gpus {
        let used = g.used_bytes.map_or_else(na, format_size);
        let total = g.total_bytes.map_or_else(na, format_size);
        let pct = g
            .used_fraction()
            .map_or_else(na, |f| format!("{:.1}%", f * 100.0));
        let bar = match (g.used_bytes, g.total_bytes) {
            (Some(u), Some(t)) if t >= u => {
                let cells = proportional_cells(&[u, t - u], 20);
                format!("[{}{}]", "█".repeat(cells[0]), "·".repeat(cells[1]))
            }
            _ => format!("[{:<20}]", "n/a"),
        };
        let bar = match g.used_fraction() {
            Some(f) if f >= 0.9 => s.red(&bar),
            Some(f) if f >= 0.75 => s.yellow(&bar),
            _ => s.green(&bar),
        };
        out.push_str(&format!(
            "{:<4} {:<26} {:>23} {:>6}  {} {:>9}\n",
            g.index,
            printable(&g.name.clone().unwrap_or_else(na)),
            format!("{used} / {total}"),
            pct,
            bar,
            fmt_eta(etas.get(&g.index).copied().flatten())
        ));
    }
    let mut procs: Vec<_> = sample.processes.iter().collect();
    procs.sort_by_key(|p| std::cmp::Reverse(p.used_bytes.unwrap_or(0)));
    let unlisted = unlisted_shown(sample);
    if !procs.is_empty() || !unlisted.is_empty() {
        out.push_str(&format!(
            "\n{:<4} {:>8} {:<12} {:>12}  {}\n",
            "GPU", "PID", "USER", "MEMORY", "COMMAND"
        ));
        for p in procs {
            out.push_str(&format!(
                "{:<4} {:>8} {:<12} {:>12}  {}\n",
                p.gpu,
                p.pid,
                printable(&p.user.clone().unwrap_or_else(na)),
                p.used_bytes.map_or_else(na, format_size),
                printable(&p.name.clone().unwrap_or_else(na))
            ));
        }
        for (gpu, bytes) in unlisted {
            out.push_str(&format!(
                "{:<4} {:>8} {:<12} {:>12}  {}\n",
                gpu,
                "-",
                "-",
                format_size(bytes),
                s.dim(UNLISTED_LABEL)
            ));
        }
    }
    out
}

/// The smallest unlisted memory shown (64 MiB): below it, the sum of
/// per-process figures rounded to MiB can differ from the GPU's total.
const UNLISTED_SHOWN: u64 = 64 << 20;

pub const UNLISTED_LABEL: &str =
    "not listed: processes of other containers or PID namespaces, or the driver";

/// Per GPU, memory in use that no listed process accounts for, where it is
/// more than the rounding of per-process figures could explain.
pub fn unlisted_shown(sample: &GpuSample) -> Vec<(u32, u64)> {
    sample
        .gpus
        .iter()
        .filter_map(|g| Some((g.index, sample.unlisted_bytes(g.index)?)))
        .filter(|(_, b)| *b >= UNLISTED_SHOWN)
        .collect()
}

/// What one step of the watch gave.
pub enum Step {
    /// A fresh sample and its forecasts.
    Fresh(GpuSample, Etas),
    /// Sampling failed or hung; the figures on hand are stale.
    Stale(String),
    /// A recording ended.
    Ended,
    /// The input cannot be read on (a recording that is not one): an error
    /// for the user, not a passing failure of the GPUs.
    Invalid(String),
}

/// Everything `watch` does with a sample besides showing it: ask the source
/// with a deadline, fold the sample into the monitor, attribute processes to
/// containers, record it, publish it for /metrics, fire alerts.
pub struct Watcher<'a> {
    args: &'a WatchArgs,
    sampler: TimedSampler,
    monitor: Monitor,
    recorder: Option<File>,
    record_failed: bool,
    body: Option<Body>,
    last: Option<(GpuSample, Etas)>,
    containers: HashMap<u32, ContainerInfo>,
}

impl<'a> Watcher<'a> {
    fn new(args: &'a WatchArgs) -> anyhow::Result<Watcher<'a>> {
        let source = open_source(args)?;
        let recorder = args
            .record
            .as_ref()
            .map(|p| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("--record {}: cannot write", p.display()))
            })
            .transpose()?;
        let body = match &args.serve {
            Some(addr) => {
                let body = Body::default();
                serve::spawn(addr, body.clone())?;
                Some(body)
            }
            None => None,
        };
        Ok(Watcher {
            args,
            sampler: TimedSampler::spawn(source, args.sample_timeout),
            monitor: Monitor::new(args.alert),
            recorder,
            record_failed: false,
            body,
            last: None,
            containers: HashMap::new(),
        })
    }

    pub fn source_name(&self) -> &'static str {
        self.sampler.name()
    }

    /// The next sample with its forecasts, or why there is none. A failed or
    /// hung sample is said once on stderr (until the source recovers) and
    /// never ends the watch.
    pub fn step(&mut self) -> Step {
        loop {
            if let Some(step) = self.poll_step(self.args.sample_timeout) {
                return step;
            }
        }
    }

    /// Like [`Watcher::step`], but `None` after `wait` while the sample is
    /// still within its timeout.
    pub fn poll_step(&mut self, wait: Duration) -> Option<Step> {
        let sampled = self.sampler.poll(wait)?;
        Some(self.settle(sampled))
    }

    fn settle(&mut self, sampled: Sampled) -> Step {
        let error = match sampled {
            Sampled::Sample(sample) => return self.fresh(sample),
            Sampled::Ended => return Step::Ended,
            Sampled::Failed(e @ SourceError::Replay { .. }) => return Step::Invalid(e.to_string()),
            Sampled::Failed(e) => format!("{:#}", anyhow::Error::new(e)),
            Sampled::TimedOut(t) => format!(
                "{} did not answer within {} (--sample-timeout)",
                self.sampler.name(),
                humantime(t)
            ),
            Sampled::Gone => format!("{} stopped answering", self.sampler.name()),
        };
        if self.monitor.failed(error.clone()) {
            eprintln!("oomguard: sampling failed, data marked stale until it recovers: {error}");
        }
        self.publish();
        Step::Stale(error)
    }

    fn fresh(&mut self, sample: GpuSample) -> Step {
        let observation = self.monitor.observe(&sample);
        if self.args.serve.is_some() || self.args.json {
            let proc_root = std::path::Path::new("/proc");
            self.containers = sample
                .processes
                .iter()
                .map(|p| (p.pid, container::read(proc_root, p.pid)))
                .filter(|(_, c)| !c.is_empty())
                .collect();
        }
        self.record(&sample);
        for alert in &observation.alerts {
            self.alert(&sample, &observation.etas, *alert);
        }
        self.last = Some((sample.clone(), observation.etas.clone()));
        self.publish();
        Step::Fresh(sample, observation.etas)
    }

    /// Appends the sample to the recording; a full disk is said once and
    /// the watch goes on.
    fn record(&mut self, sample: &GpuSample) {
        let Some(r) = self.recorder.as_mut() else {
            return;
        };
        let mut line = serde_json::to_vec(sample).unwrap_or_default();
        line.push(b'\n');
        // One write of a whole line: a failed write leaves no half line
        // behind for the next one to be glued to, as far as the file
        // system allows.
        match r.write_all(&line) {
            Ok(()) => self.record_failed = false,
            Err(e) if !self.record_failed => {
                self.record_failed = true;
                eprintln!("oomguard: --record: cannot write ({e}); watching goes on, samples are not recorded until it can");
            }
            Err(_) => {}
        }
    }

    fn alert(&self, sample: &GpuSample, etas: &Etas, alert: Alert) {
        let g = sample.gpus.iter().find(|g| g.index == alert.gpu);
        eprintln!(
            "oomguard: alert ({}): GPU {} at {} of {}{}",
            alert.reason.name(),
            alert.gpu,
            g.and_then(|g| g.used_bytes)
                .map_or("n/a".into(), format_size),
            g.and_then(|g| g.total_bytes)
                .map_or("n/a".into(), format_size),
            match alert.reason {
                AlertReason::Forecast => format!(
                    ", full in {}",
                    fmt_eta(etas.get(&alert.gpu).copied().flatten())
                ),
                AlertReason::Threshold => String::new(),
            }
        );
        if let Some(cmd) = &self.args.on_alert {
            fire_alert(cmd, sample, alert.gpu, alert.reason);
        }
    }

    /// Renders what /metrics serves now.
    fn publish(&self) {
        let (Some(body), Some((sample, etas))) = (&self.body, &self.last) else {
            return;
        };
        body.set(metrics::render(&Exposition {
            sample,
            etas,
            containers: &self.containers,
            health: self.monitor.health(),
            version: env!("CARGO_PKG_VERSION"),
            dcgm_names: self.args.dcgm_names,
        }));
    }

    /// Container facts of the latest sample's processes.
    pub fn containers(&self) -> &HashMap<u32, ContainerInfo> {
        &self.containers
    }

    /// After a recording ends, an exporter keeps serving its last sample.
    fn linger_if_serving(&self) {
        if self.args.serve.is_some() {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
}

fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn json_line(
    sample: &GpuSample,
    etas: &Etas,
    containers: &HashMap<u32, ContainerInfo>,
) -> serde_json::Value {
    let gpus: Vec<serde_json::Value> = sample
        .gpus
        .iter()
        .map(|g| {
            let mut v = serde_json::to_value(g).unwrap_or_default();
            v["seconds_until_full"] = serde_json::json!(etas.get(&g.index).copied().flatten());
            v["unlisted_bytes"] = serde_json::json!(sample.unlisted_bytes(g.index));
            v
        })
        .collect();
    let processes: Vec<serde_json::Value> = sample
        .processes
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            if let Some(c) = containers.get(&p.pid) {
                v["container"] = serde_json::to_value(c).unwrap_or_default();
            }
            v
        })
        .collect();
    serde_json::json!({"time": sample.time, "gpus": gpus, "processes": processes})
}

pub fn run(args: &WatchArgs) -> anyhow::Result<ExitCode> {
    let mut watcher = Watcher::new(args)?;
    if !args.json && !args.once && io::stdout().is_terminal() {
        crate::tui::run(&mut watcher, args.interval)?;
        return Ok(ExitCode::SUCCESS);
    }
    let style = Style::detect();
    let mut out = io::stdout().lock();
    let mut next = Instant::now();
    loop {
        match watcher.step() {
            Step::Ended => {
                watcher.linger_if_serving();
                break;
            }
            Step::Invalid(error) => return Err(anyhow!(error)),
            Step::Stale(error) => {
                if args.once {
                    return Err(anyhow!("no sample: {error}"));
                }
            }
            Step::Fresh(sample, etas) => {
                if args.json {
                    serde_json::to_writer(
                        &mut out,
                        &json_line(&sample, &etas, watcher.containers()),
                    )?;
                    writeln!(out)?;
                } else {
                    writeln!(out, "{}", table(&sample, &etas, &style))?;
                }
                out.flush()?;
                if args.once {
                    break;
                }
            }
        }
        next += args.interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    Ok(ExitCode::SUCCESS)
}
