//! The terminal interface of `oomguard watch` (ratatui): per GPU a gauge of
//! used memory, a sparkline of its history and the time until full; below,
//! the processes sorted by memory, pid or user. Keys: `q`/Esc quit, `s`
//! changes the sort, `p`/space pauses sampling.

use crate::commands::watch::{fmt_eta, unlisted_shown, Etas, Step, Watcher, UNLISTED_LABEL};
use crate::style::printable;
use oomguard_core::gpu::GpuSample;
use oomguard_core::size::format_size;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Gauge, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Points of history a sparkline shows.
const SPARK_POINTS: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Memory,
    Pid,
    User,
}

/// What the interface shows.
pub struct WatchView {
    pub source: String,
    pub interval: Duration,
    pub sample: Option<GpuSample>,
    pub etas: Etas,
    pub history: HashMap<u32, VecDeque<u64>>,
    pub sort: SortKey,
    pub paused: bool,
    /// Why the figures shown are stale, while sampling fails.
    pub stale: Option<String>,
}

impl WatchView {
    pub fn new(source: &str, interval: Duration) -> WatchView {
        WatchView {
            source: source.to_string(),
            interval,
            sample: None,
            etas: HashMap::new(),
            history: HashMap::new(),
            sort: SortKey::Memory,
            paused: false,
            stale: None,
        }
    }

    pub fn update(&mut self, sample: GpuSample, etas: Etas) {
        for g in &sample.gpus {
            let h = self.history.entry(g.index).or_default();
            h.push_back(g.used_bytes.unwrap_or(0));
            if h.len() > SPARK_POINTS {
                h.pop_front();
            }
        }
        self.sample = Some(sample);
        self.etas = etas;
        self.stale = None;
    }

    /// Applies a key; true when it asks to quit.
    pub fn key(&mut self, code: KeyCode) -> bool {
        match code {
            KeyCode::Char('q') | KeyCode::Esc => return true,
            KeyCode::Char('s') => {
                self.sort = match self.sort {
                    SortKey::Memory => SortKey::Pid,
                    SortKey::Pid => SortKey::User,
                    SortKey::User => SortKey::Memory,
                }
            }
            KeyCode::Char('p') | KeyCode::Char(' ') => self.paused = !self.paused,
            _ => {}
        }
        false
    }

    pub fn render(&self, frame: &mut Frame) {
        let area = frame.area();
        let gpus = self.sample.as_ref().map_or(0, |s| s.gpus.len()) as u16;
        let [header, gpu_area, proc_area] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(3 * gpus.max(1)),
            Constraint::Min(3),
        ])
        .areas(area);
        let sort = match self.sort {
            SortKey::Memory => "memory",
            SortKey::Pid => "pid",
            SortKey::User => "user",
        };
        let title = format!(
            "oomguard watch · {} · every {:?} · sort: {sort}{} · q quit  s sort  p pause",
            self.source,
            self.interval,
            if self.paused { " · PAUSED" } else { "" }
        );
        let (title, color) = match &self.stale {
            Some(why) => (format!("STALE: {why}"), Color::Red),
            None => (title, Color::Reset),
        };
        frame.render_widget(
            Paragraph::new(title).style(Style::new().add_modifier(Modifier::BOLD).fg(color)),
            header,
        );
        let Some(sample) = &self.sample else {
            frame.render_widget(Paragraph::new("waiting for the first sample…"), gpu_area);
            return;
        };
        for (i, g) in sample.gpus.iter().enumerate() {
            let row = Rect {
                y: gpu_area.y + 3 * i as u16,
                height: 3,
                ..gpu_area
            };
            let [gauge_area, spark_area, eta_area] = Layout::horizontal([
                Constraint::Percentage(55),
                Constraint::Percentage(30),
                Constraint::Min(12),
            ])
            .areas(row);
            let ratio = g.used_fraction().unwrap_or(0.0).clamp(0.0, 1.0);
            let color = if ratio >= 0.9 {
                Color::Red
            } else if ratio >= 0.75 {
                Color::Yellow
            } else {
                Color::Green
            };
            let label = format!(
                "{} / {}",
                g.used_bytes.map_or("n/a".into(), format_size),
                g.total_bytes.map_or("n/a".into(), format_size)
            );
            let name = format!(
                "GPU {} {}",
                g.index,
                printable(g.name.as_deref().unwrap_or("n/a"))
            );
            frame.render_widget(
                Gauge::default()
                    .block(Block::bordered().title(name))
                    .gauge_style(Style::new().fg(color))
                    .ratio(ratio)
                    .label(label),
                gauge_area,
            );
            let data: Vec<u64> = self
                .history
                .get(&g.index)
                .map(|h| h.iter().copied().collect())
                .unwrap_or_default();
            frame.render_widget(
                Sparkline::default()
                    .block(Block::bordered().title("history"))
                    .data(&data)
                    .max(g.total_bytes.unwrap_or(1))
                    .style(Style::new().fg(color)),
                spark_area,
            );
            let eta = fmt_eta(self.etas.get(&g.index).copied().flatten());
            frame.render_widget(
                Paragraph::new(eta).block(Block::bordered().title("full in")),
                eta_area,
            );
        }
        let mut procs: Vec<_> = sample.processes.iter().collect();
        match self.sort {
            SortKey::Memory => procs.sort_by_key(|p| std::cmp::Reverse(p.used_bytes.unwrap_or(0))),
            SortKey::Pid => procs.sort_by_key(|p| p.pid),
            SortKey::User => procs.sort_by(|a, b| a.user.cmp(&b.user).then(a.pid.cmp(&b.pid))),
        }
        let rows = procs
            .iter()
            .map(|p| {
                Row::new(vec![
                    p.gpu.to_string(),
                    p.pid.to_string(),
                    printable(p.user.as_deref().unwrap_or("n/a")).into_owned(),
                    p.used_bytes.map_or("n/a".into(), format_size),
                    printable(p.name.as_deref().unwrap_or("n/a")).into_owned(),
                ])
            })
            .chain(unlisted_shown(sample).into_iter().map(|(gpu, bytes)| {
                Row::new(vec![
                    gpu.to_string(),
                    "-".into(),
                    "-".into(),
                    format_size(bytes),
                    UNLISTED_LABEL.to_string(),
                ])
                .style(Style::new().add_modifier(Modifier::DIM))
            }));
        let table = Table::new(
            rows,
            [
                Constraint::Length(4),
                Constraint::Length(8),
                Constraint::Length(10),
                Constraint::Length(12),
                Constraint::Min(10),
            ],
        )
        .header(
            Row::new(vec!["GPU", "PID", "USER", "MEMORY", "COMMAND"])
                .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .block(Block::bordered().title(format!("processes ({})", procs.len())));
        frame.render_widget(table, proc_area);
    }
}

/// Runs the interface until `q`, Esc, Ctrl-C, SIGTERM or SIGHUP, sampling
/// every `interval` unless paused. A hung sample never blocks the keys: the
/// sampler is polled in short waits.
pub fn run(watcher: &mut Watcher<'_>, interval: Duration) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let mut view = WatchView::new(watcher.source_name(), interval);
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        let mut next = Instant::now();
        let mut ended = false;
        while !stop.load(Ordering::Relaxed) {
            if !view.paused && !ended && Instant::now() >= next {
                match watcher.poll_step(Duration::from_millis(20)) {
                    Some(Step::Fresh(sample, etas)) => view.update(sample, etas),
                    Some(Step::Stale(why)) => view.stale = Some(why),
                    Some(Step::Ended) => ended = true,
                    Some(Step::Invalid(why)) => return Err(anyhow::anyhow!(why)),
                    None => {}
                }
                if Instant::now() >= next {
                    next = Instant::now() + interval;
                }
            }
            terminal.draw(|f| view.render(f))?;
            let wait = next
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(20), Duration::from_millis(200));
            if event::poll(wait)? {
                if let Event::Key(k) = event::read()? {
                    let ctrl_c =
                        k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c');
                    if k.kind == KeyEventKind::Press && (ctrl_c || view.key(k.code)) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    })();
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomguard_core::gpu::{GpuState, ProcessState};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn sample(used_gib: u64) -> GpuSample {
        GpuSample {
            time: 0.0,
            gpus: vec![GpuState {
                index: 0,
                uuid: None,
                name: Some("NVIDIA A100-SXM4-80GB".into()),
                total_bytes: Some(80 << 30),
                used_bytes: Some(used_gib << 30),
                free_bytes: Some((80 - used_gib) << 30),
            }],
            processes: vec![
                ProcessState {
                    gpu: 0,
                    pid: 4242,
                    name: Some("python".into()),
                    user: Some("bob".into()),
                    used_bytes: Some(30 << 30),
                },
                ProcessState {
                    gpu: 0,
                    pid: 7,
                    name: Some("vllm".into()),
                    user: Some("alice".into()),
                    used_bytes: Some(40 << 30),
                },
            ],
        }
    }

    fn screen(view: &WatchView) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(72, 12)).unwrap();
        terminal.draw(|f| view.render(f)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn renders_gauge_history_forecast_and_sorted_processes() {
        let mut view = WatchView::new("replay", Duration::from_secs(1));
        view.update(sample(60), HashMap::from([(0, None)]));
        view.update(sample(72), HashMap::from([(0, Some(95.0))]));
        let lines = screen(&view);
        let text = lines.join("\n");
        assert!(
            lines[0].starts_with("oomguard watch · replay · every 1s · sort: memory"),
            "{text}"
        );
        assert!(
            lines[1].contains("GPU 0 NVIDIA A100-SXM4-80GB") && lines[1].contains("history"),
            "{text}"
        );
        assert!(
            lines[2].contains("72.00 GiB / 80.00 GiB") && lines[2].contains("1m35s"),
            "{text}"
        );
        // Largest first: vllm (40 GiB) above python (30 GiB).
        let vllm = lines.iter().position(|l| l.contains("vllm")).unwrap();
        let python = lines.iter().position(|l| l.contains("python")).unwrap();
        assert!(vllm < python, "{text}");
        // 72 GiB used, 70 GiB listed: 2 GiB no listed process holds, last.
        let unlisted = lines.iter().position(|l| l.contains("not listed")).unwrap();
        assert!(
            lines[unlisted].contains("2.00 GiB") && unlisted > python,
            "{text}"
        );
        // `s` sorts by pid: 7 before 4242. `p` pauses.
        view.key(KeyCode::Char('s'));
        view.key(KeyCode::Char('p'));
        let lines = screen(&view);
        assert!(
            lines[0].contains("sort: pid · PAUSED"),
            "{}",
            lines.join("\n")
        );
        let vllm = lines.iter().position(|l| l.contains("vllm")).unwrap();
        let python = lines.iter().position(|l| l.contains("python")).unwrap();
        assert!(vllm < python);
        assert!(view.key(KeyCode::Char('q')));
    }

    #[test]
    fn a_failing_source_is_shown_as_stale_until_the_next_sample() {
        let mut view = WatchView::new("nvidia-smi", Duration::from_secs(1));
        view.update(sample(60), HashMap::from([(0, None)]));
        view.stale = Some("nvidia-smi did not answer within 5s".into());
        let lines = screen(&view);
        assert!(
            lines[0].starts_with("STALE: nvidia-smi did not answer within 5s"),
            "{}",
            lines.join("\n")
        );
        // The last figures stay on screen under the stale header.
        assert!(lines.iter().any(|l| l.contains("60.00 GiB / 80.00 GiB")));
        view.update(sample(61), HashMap::from([(0, None)]));
        assert!(screen(&view)[0].starts_with("oomguard watch"));
    }
}
