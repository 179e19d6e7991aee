//! `oomguard watch`: sample GPU memory every interval; show it (a refreshing
//! view on a terminal, a table per sample otherwise, or JSON lines), record
//! it, serve it as Prometheus text, forecast the time until full, and fire
//! alerts once per crossing.

use crate::flags::WatchArgs;
use crate::style::{proportional_cells, Style};
use anyhow::Context;
use oomguard_core::gpu::alert::{AlertReason, AlertState};
use oomguard_core::gpu::forecast::seconds_until_full;
use oomguard_core::gpu::metrics;
use oomguard_core::gpu::sample::GpuSample;
use oomguard_core::gpu::source::GpuSource;
use oomguard_core::size::format_size;
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Samples of history kept per GPU for the forecast.
const HISTORY: usize = 120;

fn open_source(args: &WatchArgs) -> anyhow::Result<Box<dyn GpuSource>> {
    use oomguard_core::gpu::source::{open, SourceChoice};
    let choice = match (&args.replay, args.source.as_deref()) {
        (Some(path), _) => SourceChoice::Replay(path.clone()),
        (None, Some("nvml")) => SourceChoice::Nvml,
        (None, Some("nvidia-smi")) => SourceChoice::NvidiaSmi,
        (None, _) => SourceChoice::Auto,
    };
    Ok(open(&choice)?)
}

/// Serves the latest metrics at /metrics (and nothing else) on `addr`.
fn serve(addr: &str, latest: Arc<Mutex<String>>) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("--serve {addr}: cannot listen"))?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let latest = latest.clone();
            std::thread::spawn(move || {
                let _ = answer(stream, &latest);
            });
        }
    });
    Ok(())
}

fn answer(stream: TcpStream, latest: &Mutex<String>) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut out = stream;
    if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
        let body = latest.lock().unwrap_or_else(|p| p.into_inner()).clone();
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        let body = "not found: oomguard serves /metrics only\n";
        write!(out, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    }
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

fn table(sample: &GpuSample, etas: &HashMap<u32, Option<f64>>, s: &Style) -> String {
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
            g.name.clone().unwrap_or_else(na),
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
                p.user.clone().unwrap_or_else(na),
                p.used_bytes.map_or_else(na, format_size),
                p.name.clone().unwrap_or_else(na)
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

/// Seconds until full per GPU, when usage rises.
pub type Etas = HashMap<u32, Option<f64>>;

/// Everything `watch` does with a sample besides showing it: record it,
/// publish it for /metrics, keep history for the forecast, fire alerts.
pub struct Watcher<'a> {
    args: &'a WatchArgs,
    source: Box<dyn GpuSource>,
    recorder: Option<File>,
    latest: Arc<Mutex<String>>,
    alerts: Option<AlertState>,
    history: HashMap<u32, VecDeque<(f64, u64)>>,
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
        let latest = Arc::new(Mutex::new(String::new()));
        if let Some(addr) = &args.serve {
            serve(addr, latest.clone())?;
        }
        Ok(Watcher {
            args,
            source,
            recorder,
            latest,
            alerts: args.alert.map(AlertState::new),
            history: HashMap::new(),
        })
    }

    pub fn source_name(&self) -> &'static str {
        self.source.name()
    }

    /// The next sample with its forecasts; `None` when a recording ended.
    pub fn step(&mut self) -> anyhow::Result<Option<(GpuSample, Etas)>> {
        let Some(sample) = self.source.sample()? else {
            return Ok(None);
        };
        if let Some(r) = self.recorder.as_mut() {
            let mut line = serde_json::to_vec(&sample)?;
            line.push(b'\n');
            r.write_all(&line).context("cannot write the recording")?;
        }
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = metrics::render(&sample);
        let mut etas = HashMap::new();
        for g in &sample.gpus {
            if let Some(u) = g.used_bytes {
                let h = self.history.entry(g.index).or_default();
                h.push_back((sample.time, u));
                if h.len() > HISTORY {
                    h.pop_front();
                }
                let points: Vec<(f64, u64)> = h.iter().copied().collect();
                etas.insert(
                    g.index,
                    g.total_bytes.and_then(|t| seconds_until_full(&points, t)),
                );
            }
        }
        if let Some(a) = self.alerts.as_mut() {
            let threshold = a
                .update(&sample)
                .into_iter()
                .map(|g| (g, AlertReason::Threshold));
            let forecast = a
                .update_forecast(&etas)
                .into_iter()
                .map(|g| (g, AlertReason::Forecast));
            for (gpu, reason) in threshold.chain(forecast).collect::<Vec<_>>() {
                let g = sample.gpus.iter().find(|g| g.index == gpu);
                eprintln!(
                    "oomguard: alert ({}): GPU {gpu} at {} of {}{}",
                    reason.name(),
                    g.and_then(|g| g.used_bytes)
                        .map_or("n/a".into(), format_size),
                    g.and_then(|g| g.total_bytes)
                        .map_or("n/a".into(), format_size),
                    match reason {
                        AlertReason::Forecast =>
                            format!(", full in {}", fmt_eta(etas.get(&gpu).copied().flatten())),
                        AlertReason::Threshold => String::new(),
                    }
                );
                if let Some(cmd) = &self.args.on_alert {
                    fire_alert(cmd, &sample, gpu, reason);
                }
            }
        }
        Ok(Some((sample, etas)))
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
        let Some((sample, etas)) = watcher.step()? else {
            watcher.linger_if_serving();
            break;
        };
        if args.json {
            let gpus: Vec<serde_json::Value> = sample
                .gpus
                .iter()
                .map(|g| {
                    let mut v = serde_json::to_value(g).unwrap_or_default();
                    v["seconds_until_full"] =
                        serde_json::json!(etas.get(&g.index).copied().flatten());
                    v["unlisted_bytes"] = serde_json::json!(sample.unlisted_bytes(g.index));
                    v
                })
                .collect();
            let obj = serde_json::json!({"time": sample.time, "gpus": gpus, "processes": sample.processes});
            serde_json::to_writer(&mut out, &obj)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", table(&sample, &etas, &style))?;
        }
        out.flush()?;
        if args.once {
            break;
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
