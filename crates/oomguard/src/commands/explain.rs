//! `oomguard explain`: reads files or standard input, streams every OOM event
//! found to stdout as it is found (human text or the reference's (docs/reference.md) JSON), and returns
//! 0 when an event was found, 1 when none was, 2 when an input could not be
//! read.

use crate::flags::ExplainArgs;
use crate::style::{printable, proportional_cells, Style};
use anyhow::Context;
use oomguard_core::diagnose::{Confidence, DiagnoseContext, ExplainedEvent, SegmentKind};
use oomguard_core::oom::{scan_reader, JobFailure, ScanOptions, WatchdogTimeout};
use oomguard_core::size::{format_signed_size, format_size};
use oomguard_core::snapshot::{explain_snapshot, read_snapshot, DeviceReport, SnapshotReport};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

const BAR_WIDTH: usize = 50;

pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let ctx = DiagnoseContext {
        batch: args.batch,
        memory_trend: None,
    };
    let style = Style::detect();
    // Read before any output, so a bad snapshot is an input error (exit 2).
    let snapshot = match &args.snapshot {
        Some(path) => {
            if path.is_dir() {
                anyhow::bail!(
                    "--snapshot {}: is a directory, not a snapshot file",
                    path.display()
                );
            }
            let snap =
                read_snapshot(path).with_context(|| format!("--snapshot {}", path.display()))?;
            Some(explain_snapshot(snap, &path.display().to_string(), 3))
        }
        None => None,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut sink = Sink {
        json: args.json,
        style,
        count: 0,
        write_error: None,
        snapshot,
        job: JobFailure::default(),
        timeouts: Vec::new(),
    };
    let inputs: Vec<&Path> = if args.paths.is_empty() {
        vec![Path::new("-")]
    } else {
        args.paths.iter().map(|p| p.as_path()).collect()
    };
    if args.json {
        write!(out, "{{\"events\": [")?;
    }
    let mut input_errors = 0;
    for path in &inputs {
        let result = scan_one(path, &ctx, &mut sink, &mut out);
        if let Some(e) = sink.write_error.take() {
            return Err(e).context("cannot write to standard output");
        }
        if let Err(err) = result {
            input_errors += 1;
            out.flush().ok();
            eprintln!("oomguard: {err:#}");
        }
    }
    sink.job.add_timeouts(&sink.timeouts);
    if args.json {
        let mut timeouts = Vec::new();
        crate::style::write_json(&mut timeouts, &sink.timeouts)?;
        let timeouts = String::from_utf8(timeouts)?;
        writeln!(
            out,
            "{}], \"watchdog_timeouts\": {timeouts}}}",
            if sink.count > 0 { "\n" } else { "" }
        )?;
    } else {
        if sink.job.is_multi_rank() {
            writeln!(out, "{}", style.bold(&describe_job(&sink.job)))?;
        }
        if sink.count > 1 {
            writeln!(
                out,
                "{}",
                style.bold(&format!("{} OOM events found.", sink.count))
            )?;
        }
    }
    out.flush()?;
    if input_errors > 0 {
        return Ok(ExitCode::from(2));
    }
    if sink.count == 0 {
        let names: Vec<String> = inputs.iter().map(|p| display_name(p)).collect();
        let timeouts = match sink.timeouts.len() {
            0 => String::new(),
            n => format!(" ({n} NCCL watchdog timeouts, which are not one)"),
        };
        eprintln!(
            "oomguard: no out-of-memory event found in {}{timeouts}",
            names.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "standard input".into()
    } else {
        path.display().to_string()
    }
}

struct Sink {
    json: bool,
    style: Style,
    count: u64,
    write_error: Option<io::Error>,
    snapshot: Option<SnapshotReport>,
    /// The ranks of the events, for the multi-rank line.
    job: JobFailure,
    /// Every input's NCCL watchdog timeouts.
    timeouts: Vec<WatchdogTimeout>,
}

/// The multi-rank line: which ranks (on which GPUs) ran out of memory, and
/// whose NCCL watchdog timeouts followed.
fn describe_job(job: &JobFailure) -> String {
    let list = |items: Vec<String>| match items.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    let plural = |n: usize| if n == 1 { "Rank" } else { "Ranks" };
    let mut line = String::new();
    if !job.oom_ranks.is_empty() {
        let ranks = list(job.oom_ranks.iter().map(|r| r.rank.to_string()).collect());
        let gpus = list(
            job.oom_ranks
                .iter()
                .map(|r| match r.device_index {
                    Some(i) => format!("rank {} on GPU {i}", r.rank),
                    None => format!("rank {} on GPU n/a", r.rank),
                })
                .collect(),
        );
        line.push_str(&format!(
            "{} {ranks} ran out of memory ({gpus})",
            plural(job.oom_ranks.len())
        ));
    } else {
        line.push_str("The job ran out of memory");
    }
    if !job.timeout_ranks.is_empty() {
        let ranks = list(job.timeout_ranks.iter().map(u32::to_string).collect());
        line.push_str(&format!(
            "; NCCL watchdog timeouts followed on {} {ranks} (they waited in a collective for the failed ranks)",
            plural(job.timeout_ranks.len()).to_lowercase()
        ));
    }
    line.push('.');
    line
}

fn scan_one(
    path: &Path,
    ctx: &DiagnoseContext,
    sink: &mut Sink,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let source = if path == Path::new("-") {
        "-".to_string()
    } else {
        path.display().to_string()
    };
    let mut on_event = |event| {
        if sink.write_error.is_some() {
            return;
        }
        sink.job.add_event(&event);
        let explained = ExplainedEvent::new(event, ctx);
        sink.count += 1;
        let evidence = sink
            .snapshot
            .as_ref()
            .map(|r| (r, r.device_for(&explained.event)));
        let result = if sink.json {
            write_json(out, &explained, sink.count, evidence.and_then(|(_, d)| d))
        } else {
            write_human(out, &explained, sink.count, &sink.style).and_then(|()| match evidence {
                Some((report, device)) => {
                    write_snapshot(out, &explained, report, device, &sink.style)
                }
                None => Ok(()),
            })
        };
        if let Err(e) = result {
            sink.write_error = Some(e);
        }
    };
    let options = ScanOptions::default();
    if source == "-" {
        let stdin = io::stdin();
        let summary = scan_reader(&source, stdin.lock(), &options, &mut on_event)?;
        sink.timeouts.extend(summary.watchdog_timeouts);
    } else {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            anyhow::bail!(
                "cannot read {}: it is a directory (give the log files inside it)",
                path.display()
            );
        }
        let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let summary = scan_reader(&source, file, &options, &mut on_event)?;
        sink.timeouts.extend(summary.watchdog_timeouts);
    }
    Ok(())
}

fn write_json(
    out: &mut impl Write,
    event: &ExplainedEvent,
    n: u64,
    snapshot: Option<&DeviceReport>,
) -> io::Result<()> {
    let sep = if n > 1 { ",\n" } else { "\n" };
    write!(out, "{sep}")?;
    match snapshot {
        None => crate::style::write_json(&mut *out, event).map_err(io::Error::other),
        Some(device) => {
            // With --snapshot, the EVENT gains `snapshot`: the matching
            // device as `oomguard snapshot --json` reports it.
            let mut value = serde_json::to_value(event).map_err(io::Error::other)?;
            value["snapshot"] = serde_json::to_value(device).map_err(io::Error::other)?;
            crate::style::write_json(&mut *out, &value).map_err(io::Error::other)
        }
    }
}

/// The snapshot's evidence for one event: the allocator's state at the
/// snapshot's OOM (or peak), the largest free block against the request, the
/// code holding the memory, and the snapshot's own top cause.
fn write_snapshot(
    out: &mut impl Write,
    ev: &ExplainedEvent,
    report: &SnapshotReport,
    device: Option<&DeviceReport>,
    s: &Style,
) -> io::Result<()> {
    let name = printable(&report.source);
    let Some(d) = device else {
        writeln!(
            out,
            "{} {}",
            s.bold("From the memory snapshot"),
            s.dim(&format!(
                "· {name}: no device of the snapshot matches this event (by GPU index, request or a single device)"
            ))
        )?;
        return writeln!(out);
    };
    let f = &d.figures;
    writeln!(
        out,
        "{} {}",
        s.bold("From the memory snapshot"),
        s.dim(&format!(
            "· {name}, device {}, at the {}",
            f.device,
            f.at.as_str()
        ))
    )?;
    if let (Some(theirs), Some(ours)) = (f.requested_bytes, ev.event.memory.requested_bytes) {
        if (theirs as f64 - ours as f64).abs() > 0.01 * ours as f64 {
            writeln!(
                out,
                "  {}",
                s.yellow(&format!(
                    "the snapshot's OOM asked for {}, this event for {}: it may record another failure",
                    format_size(theirs),
                    format_size(ours)
                ))
            )?;
        }
    }
    writeln!(
        out,
        "  allocated {} · reserved {} · cached but free {} · largest free block {}",
        format_size(f.allocated_bytes),
        format_size(f.reserved_bytes),
        format_size(f.cached_free_bytes),
        format_size(f.largest_free_block_bytes)
    )?;
    for t in &f.top_sites {
        writeln!(
            out,
            "  {:>12}  {}",
            format_size(t.bytes),
            printable(&t.frame)
        )?;
    }
    if let Some(c) = d.causes.first() {
        writeln!(
            out,
            "  {} {}",
            s.yellow(c.id.title()),
            s.dim(&format!("[{}]", c.id.as_str()))
        )?;
        writeln!(out, "     {}", printable(&c.evidence))?;
    }
    writeln!(out)
}

fn write_human(out: &mut impl Write, ev: &ExplainedEvent, n: u64, s: &Style) -> io::Result<()> {
    let e = &ev.event;
    let d = &ev.diagnosis;
    let device = match e.device.index {
        Some(i) => format!("{} {i}", e.device.kind.display_name()),
        None => e.device.kind.display_name().to_string(),
    };
    let place = if e.source == "-" {
        format!("line {}", e.line)
    } else {
        format!("{}:{}", printable(&e.source), e.line)
    };
    writeln!(
        out,
        "{}",
        s.bold(&s.red(&format!("── OOM event {n} · {place} ──")))
    )?;
    writeln!(
        out,
        "{}",
        s.dim(&format!(
            "{} · {} · phase: {}",
            e.failing_tool(),
            device,
            e.phase.describe()
        ))
    )?;
    writeln!(out, "  {}", printable(&e.message))?;
    writeln!(out)?;
    writeln!(out, "{}", s.bold("What happened"))?;
    writeln!(out, "  {}", printable(&d.summary))?;
    write_accounting(out, ev, s)?;
    writeln!(out)?;
    writeln!(
        out,
        "{} {}",
        s.bold("Why (most likely first)"),
        s.dim(&format!("· confidence: {}", d.confidence.as_str()))
    )?;
    for (i, c) in d.causes.iter().enumerate() {
        writeln!(
            out,
            "  {}. {} {}",
            i + 1,
            s.yellow(c.id.title()),
            s.dim(&format!("[{}, {:.2}]", c.id.as_str(), c.score))
        )?;
        writeln!(out, "     {}", printable(&c.evidence))?;
        if let Some(check) = &c.check {
            writeln!(
                out,
                "     {} {}",
                s.dim("check:"),
                s.cyan(&printable(check))
            )?;
        }
    }
    if d.confidence == Confidence::Low && d.causes.len() > 1 {
        writeln!(
            out,
            "  {}",
            s.dim("The text alone cannot tell these causes apart: run the checks.")
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{}", s.bold("Fixes (best first)"))?;
    for (i, f) in d.fixes.iter().enumerate() {
        writeln!(out, "  {}. {}", i + 1, s.green(&printable(&f.title)))?;
        writeln!(out, "     {}", printable(&f.detail))?;
        if let Some(env) = &f.env {
            for (k, v) in env {
                writeln!(
                    out,
                    "     {} {}",
                    s.dim("env:"),
                    s.cyan(&printable(&format!("{k}={v}")))
                )?;
            }
        }
        if let Some(code) = &f.code {
            for line in code.lines() {
                writeln!(out, "     {} {}", s.dim("│"), s.cyan(&printable(line)))?;
            }
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", s.bold("Workaround"))?;
    writeln!(out, "  {}", printable(d.workaround))?;
    writeln!(out, "{}", s.bold("Prevention"))?;
    writeln!(out, "  {}", printable(d.prevention))?;
    writeln!(out)?;
    Ok(())
}

fn glyph(kind: SegmentKind) -> char {
    match kind {
        SegmentKind::Allocated => '█',
        SegmentKind::CachedFree => '▓',
        SegmentKind::NonFramework => '▒',
        SegmentKind::OtherProcesses => '░',
        SegmentKind::OutsideFramework => '▒',
        SegmentKind::Free => '·',
    }
}

fn write_accounting(out: &mut impl Write, ev: &ExplainedEvent, s: &Style) -> io::Result<()> {
    let acc = &ev.diagnosis.accounting;
    if acc.segments.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let title = match (acc.extent, acc.extent_is_cap) {
        (Some(t), false) => format!("Memory of the device ({})", format_size(t)),
        (Some(t), true) => format!("Memory within the cap ({})", format_size(t)),
        (None, _) => "Memory the message accounts for".to_string(),
    };
    writeln!(out, "{}", s.bold(&title))?;
    let parts: Vec<u64> = acc.segments.iter().map(|seg| seg.bytes).collect();
    let extent = acc.extent.unwrap_or_else(|| parts.iter().sum());
    let cells = proportional_cells(&parts, BAR_WIDTH);
    let bar: String = acc
        .segments
        .iter()
        .zip(&cells)
        .map(|(seg, &c)| glyph(seg.kind).to_string().repeat(c))
        .collect();
    let request = acc
        .requested
        .map(|q| format!("  + request {}", format_size(q)))
        .unwrap_or_default();
    writeln!(out, "  [{bar}]{}", s.red(&request))?;
    for seg in &acc.segments {
        let share = if extent > 0 {
            format!("{:5.1}%", seg.bytes as f64 * 100.0 / extent as f64)
        } else {
            "  n/a".into()
        };
        writeln!(
            out,
            "   {} {:<30} {:>12} {}",
            glyph(seg.kind),
            seg.kind.label(),
            format_size(seg.bytes),
            s.dim(&share)
        )?;
    }
    if let Some(p) = acc.self_process {
        writeln!(
            out,
            "   {}",
            s.dim(&format!(
                "(process {} is this process itself: in a container PyTorch cannot match its own pid)",
                p.pid
            ))
        )?;
    }
    if let (Some(q), Some(short)) = (acc.requested, acc.shortfall) {
        let line = if short > 0 {
            format!(
                "   request {}: {} more than was free",
                format_size(q),
                format_signed_size(short)
            )
        } else {
            format!(
                "   request {}: it fitted the free memory, {} to spare",
                format_size(q),
                format_signed_size(-short)
            )
        };
        writeln!(out, "{}", s.red(&line))?;
    }
    Ok(())
}
