//! `oomguard snapshot FILE`: a PyTorch memory snapshot explained per device,
//! as text, JSON (`--json`) or one self-contained HTML page (`--html OUT`:
//! the active-memory timeline stacked by allocation site with the OOM
//! marked, and the segment map, as inline SVG). Everything shown comes from
//! the core's [`SnapshotReport`]; nothing is recomputed here.

use crate::flags::SnapshotArgs;
use crate::style::{printable, Style};
use anyhow::Context;
use oomguard_core::size::format_size as fs;
use oomguard_core::snapshot::{
    explain_snapshot, read_snapshot, DeviceFigures, DeviceReport, Moment, PoolKind, PoolUsage,
    SnapshotLayout, SnapshotReport,
};
use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

pub fn run(args: &SnapshotArgs) -> anyhow::Result<ExitCode> {
    let source = args.file.display().to_string();
    if args.file.is_dir() {
        anyhow::bail!("{source}: is a directory, not a snapshot file");
    }
    let snapshot = read_snapshot(&args.file)?;
    let report = explain_snapshot(snapshot, &source, args.top);
    if let Some(out) = &args.html {
        std::fs::write(out, html_page(&report))
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_human(&mut out, &report, &Style::detect())?;
        if let Some(path) = &args.html {
            writeln!(out, "Page written to {}", path.display())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn pool_name(p: &PoolUsage) -> String {
    let kind = match p.pool {
        PoolKind::Default => "default pool".to_string(),
        PoolKind::Private(a, b) => format!("private pool ({a}, {b}): CUDA graph or MemPool"),
    };
    if p.expandable {
        format!("{kind}, expandable segments")
    } else {
        kind
    }
}

fn write_human(out: &mut impl Write, r: &SnapshotReport, s: &Style) -> io::Result<()> {
    let layout = match r.layout {
        SnapshotLayout::Current => "memory snapshot",
        SnapshotLayout::SegmentList => "segment list (no trace: the state when it was taken)",
    };
    let gz = if r.gzipped { ", gzipped" } else { "" };
    writeln!(
        out,
        "{}",
        s.bold(&format!("{} · PyTorch {layout}{gz}", r.source))
    )?;
    if r.devices.is_empty() {
        writeln!(
            out,
            "  No segment and no trace entry: nothing was allocated on any device."
        )?;
    }
    for d in &r.devices {
        writeln!(out)?;
        write_device(out, d, s)?;
    }
    Ok(())
}

fn write_device(out: &mut impl Write, d: &DeviceReport, s: &Style) -> io::Result<()> {
    let f = &d.figures;
    let heading = match (f.at, f.requested_bytes, f.device_free_bytes) {
        (Moment::Oom, Some(req), Some(free)) => format!(
            "GPU {} · at the OOM: {} requested, CUDA had {} free",
            f.device,
            fs(req),
            fs(free)
        ),
        _ if f.trace_entries == 0 => format!(
            "GPU {} · when the snapshot was taken (no trace recorded)",
            f.device
        ),
        _ => format!(
            "GPU {} · at the peak of allocated memory (no OOM in the trace)",
            f.device
        ),
    };
    writeln!(out, "{}", s.bold(&s.red(&heading)))?;
    let extra_ooms = if f.oom_entries > 1 {
        format!("; {} OOM entries, the last one shown", f.oom_entries)
    } else {
        String::new()
    };
    if f.trace_entries > 0 {
        writeln!(
            out,
            "{}",
            s.dim(&format!(
                "  {} trace entries, {} iteration boundaries found{extra_ooms}",
                f.trace_entries, f.iteration_boundaries
            ))
        )?;
    }
    writeln!(out, "  allocated          {:>12}", fs(f.allocated_bytes))?;
    writeln!(out, "  reserved           {:>12}", fs(f.reserved_bytes))?;
    writeln!(
        out,
        "  cached but free    {:>12}  in {} holes, the largest {}",
        fs(f.cached_free_bytes),
        f.free_holes,
        fs(f.largest_free_block_bytes)
    )?;
    if let Some(req) = f.requested_bytes {
        let verdict = if f.largest_free_block_bytes >= req {
            "a hole was large enough"
        } else {
            "no hole was large enough"
        };
        writeln!(out, "  request            {:>12}  {verdict}", fs(req))?;
    }
    writeln!(out, "  segments           {:>12}", f.segments)?;
    for p in &f.pools {
        writeln!(
            out,
            "    {:>5} × {}: {} reserved, {} allocated",
            p.segments,
            pool_name(p),
            fs(p.reserved_bytes),
            fs(p.allocated_bytes)
        )?;
    }
    // Without a trace nothing says which allocations come and go.
    if f.trace_entries > 0 {
        let sp = f.split;
        writeln!(
            out,
            "  live bytes by kind: {} come and go (activations), {} never freed in the trace (weights, states), {} growing",
            fs(sp.transient_bytes),
            fs(sp.persistent_bytes),
            fs(sp.growing_bytes)
        )?;
    }
    writeln!(out)?;
    let when = if f.at == Moment::Oom {
        "the OOM"
    } else {
        "that moment"
    };
    writeln!(
        out,
        "{}",
        s.bold(&format!("Top allocation sites (live at {when})"))
    )?;
    if f.top_sites.is_empty() {
        writeln!(out, "  none")?;
    }
    for t in &f.top_sites {
        writeln!(
            out,
            "  {:>12}  {:>6} blocks  {}",
            fs(t.bytes),
            t.blocks,
            printable(&t.frame)
        )?;
    }
    if !f.growing_sites.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", s.bold("Grew across iterations (a leak)"))?;
        for g in &f.growing_sites {
            writeln!(
                out,
                "  {} → {}  {}",
                fs(g.first_bytes),
                s.yellow(&fs(g.last_bytes)),
                printable(&g.frame)
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", s.bold("Why (most likely first)"))?;
    if d.causes.is_empty() {
        writeln!(out, "  Nothing stands out in the blocks.")?;
    }
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
            writeln!(out, "     {} {check}", s.dim("check:"))?;
        }
    }
    if !d.fixes.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", s.bold("Fixes (best first)"))?;
    }
    for (i, fix) in d.fixes.iter().enumerate() {
        writeln!(out, "  {}. {}", i + 1, s.green(&fix.title))?;
        writeln!(out, "     {}", fix.detail)?;
        if let Some(code) = &fix.code {
            for line in code.lines() {
                writeln!(out, "     {} {}", s.dim("│"), s.cyan(line))?;
            }
        }
    }
    Ok(())
}

/// Colours of the timeline's series and the map's sites (Tableau 10).
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2c", "#e15759", "#76b7b2", "#59a14f", "#edc949", "#af7aa1", "#ff9da7",
    "#9c755f", "#bab0ab",
];

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One self-contained page: styles inline, SVG inline, no script, no font.
fn html_page(r: &SnapshotReport) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>oomguard snapshot: {}</title>\n<style>\nbody{{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1200px}}\nh1{{font-size:20px}}h2{{font-size:17px;margin-top:28px}}h3{{font-size:15px}}\ntable{{border-collapse:collapse;font-size:13px}}td,th{{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}}td.n{{text-align:right;font-variant-numeric:tabular-nums}}\n.legend span{{display:inline-block;margin:2px 12px 2px 0;font-size:12px}}.legend i{{display:inline-block;width:10px;height:10px;margin-right:4px}}\npre{{background:#f6f6f6;padding:6px;font-size:12px}}\n</style></head><body>\n<h1>Memory snapshot: {}</h1>\n",
        esc(&r.source),
        esc(&r.source)
    );
    if r.devices.is_empty() {
        h.push_str("<p>No segment and no trace entry in this snapshot.</p>\n");
    }
    for d in &r.devices {
        device_section(&mut h, d, r);
    }
    h.push_str("</body></html>\n");
    h
}

fn device_section(h: &mut String, d: &DeviceReport, r: &SnapshotReport) {
    let f = &d.figures;
    let moment = match f.at {
        Moment::Oom => "at the OOM",
        Moment::Peak => "at the peak",
    };
    let _ = writeln!(
        h,
        "<section class=\"device\" id=\"device-{}\"><h2>GPU {} · {moment}</h2>",
        f.device, f.device
    );
    h.push_str("<table class=\"figures\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(
            h,
            "<tr><th>{}</th><td class=\"n\">{}</td></tr>",
            esc(k),
            esc(&v)
        );
    };
    if let Some(req) = f.requested_bytes {
        row("requested", fs(req));
    }
    if let Some(free) = f.device_free_bytes {
        row("free on the device (CUDA)", fs(free));
    }
    row("allocated", fs(f.allocated_bytes));
    row("reserved", fs(f.reserved_bytes));
    row("cached but free", fs(f.cached_free_bytes));
    row("largest free block", fs(f.largest_free_block_bytes));
    row("segments", f.segments.to_string());
    h.push_str("</table>\n");
    timeline_svg(h, f);
    segment_map_svg(h, f, r);
    h.push_str("<h3>Top allocation sites</h3><table class=\"sites\"><tr><th>bytes</th><th>blocks</th><th>site</th></tr>");
    for t in &f.top_sites {
        let _ = write!(
            h,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            fs(t.bytes),
            t.blocks,
            esc(&t.frame)
        );
    }
    h.push_str("</table>\n");
    if !f.growing_sites.is_empty() {
        h.push_str("<h3>Grew across iterations</h3><table class=\"growing\">");
        for g in &f.growing_sites {
            let _ = write!(
                h,
                "<tr><td class=\"n\">{} → {}</td><td>{}</td></tr>",
                fs(g.first_bytes),
                fs(g.last_bytes),
                esc(&g.frame)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h3>Causes</h3><ol class=\"causes\">");
    for c in &d.causes {
        let _ = write!(
            h,
            "<li><b>{}</b> ({}, {:.2}): {}</li>",
            esc(c.id.title()),
            c.id.as_str(),
            c.score,
            esc(&c.evidence)
        );
    }
    h.push_str("</ol><h3>Fixes</h3><ol class=\"fixes\">");
    for fix in &d.fixes {
        let _ = write!(h, "<li><b>{}</b><br>{}", esc(&fix.title), esc(&fix.detail));
        if let Some(code) = &fix.code {
            let _ = write!(h, "<pre>{}</pre>", esc(code));
        }
        h.push_str("</li>");
    }
    h.push_str("</ol></section>\n");
}

const PLOT_W: f64 = 1000.0;
const MAX_BOUNDARY_LINES: usize = 60;
const PLOT_H: f64 = 300.0;
const LEFT: f64 = 80.0;

fn timeline_svg(h: &mut String, f: &DeviceFigures) {
    let t = &f.timeline;
    h.push_str("<h3>Active memory over the trace, by allocation site</h3>\n");
    let n = t.events.len();
    if n == 0 || t.bytes.is_empty() {
        h.push_str("<p>No trace was recorded: no timeline.</p>\n");
        return;
    }
    let totals: Vec<u64> = (0..n).map(|k| t.bytes.iter().map(|s| s[k]).sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let x = |k: usize| {
        LEFT + if n > 1 {
            k as f64 * PLOT_W / (n - 1) as f64
        } else {
            0.0
        }
    };
    let y = |b: u64| 10.0 + PLOT_H - b as f64 * PLOT_H / max;
    let _ = writeln!(
        h,
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\">",
        LEFT + PLOT_W + 20.0,
        PLOT_H + 40.0,
        LEFT + PLOT_W + 20.0,
        PLOT_H + 40.0
    );
    let mut below = vec![0u64; n];
    for (row, series) in t.bytes.iter().enumerate() {
        let top: Vec<u64> = (0..n).map(|k| below[k] + series[k]).collect();
        let mut pts = String::new();
        for (k, &b) in top.iter().enumerate() {
            let _ = write!(pts, "{:.1},{:.1} ", x(k), y(b));
        }
        for (k, &b) in below.iter().enumerate().rev() {
            let _ = write!(pts, "{:.1},{:.1} ", x(k), y(b));
        }
        let _ = writeln!(
            h,
            "<polygon class=\"site\" fill=\"{}\" points=\"{}\"><title>{}</title></polygon>",
            PALETTE[row % PALETTE.len()],
            pts.trim_end(),
            esc(&t.labels[row])
        );
        below = top;
    }
    // Past a few dozen, boundary lines would only grey the plot.
    let boundaries: &[usize] = if t.boundary_samples.len() <= MAX_BOUNDARY_LINES {
        &t.boundary_samples
    } else {
        &[]
    };
    for &b in boundaries {
        let _ = writeln!(
            h,
            "<line class=\"iteration\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"10\" y2=\"{:.1}\" stroke=\"#999\" stroke-dasharray=\"2,3\"/>",
            x(b),
            x(b),
            10.0 + PLOT_H
        );
    }
    if let Some(m) = t.moment_sample {
        let label = if f.at == Moment::Oom { "OOM" } else { "peak" };
        let _ = writeln!(
            h,
            "<line class=\"moment\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"10\" y2=\"{:.1}\" stroke=\"#d00\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"22\" fill=\"#d00\" font-size=\"13\" text-anchor=\"end\">{label}</text>",
            x(m),
            x(m),
            10.0 + PLOT_H,
            x(m) - 4.0
        );
    }
    for k in 0..=4 {
        let b = (max * k as f64 / 4.0) as u64;
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y(b) + 4.0,
            esc(&fs(b))
        );
    }
    let _ = writeln!(
        h,
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"10\" y2=\"{:.1}\" stroke=\"#333\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">trace entries 0 to {}</text></svg>",
        10.0 + PLOT_H,
        LEFT + PLOT_W / 2.0,
        PLOT_H + 34.0,
        t.events.last().copied().unwrap_or(0)
    );
    h.push_str("<div class=\"legend\">");
    for (row, label) in t.labels.iter().enumerate() {
        let _ = write!(
            h,
            "<span><i style=\"background:{}\"></i>{}</span>",
            PALETTE[row % PALETTE.len()],
            esc(label)
        );
    }
    h.push_str("</div>\n");
}

fn segment_map_svg(h: &mut String, f: &DeviceFigures, r: &SnapshotReport) {
    let segs = &f.segment_map;
    let when = if f.at == Moment::Oom {
        "the OOM"
    } else {
        "that moment"
    };
    let _ = writeln!(
        h,
        "<h3>Segments at {when} (largest first; white: free; green border: private pool)</h3>"
    );
    if segs.is_empty() {
        h.push_str("<p>No segment was reserved.</p>\n");
        return;
    }
    let largest = segs.iter().map(|s| s.size).max().unwrap_or(1).max(1) as f64;
    let row_h = 14.0;
    let height = segs.len() as f64 * (row_h + 3.0) + 10.0;
    let _ = writeln!(
        h,
        "<svg class=\"segments\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height:.0}\" viewBox=\"0 0 {} {height:.0}\">",
        LEFT + PLOT_W + 20.0,
        LEFT + PLOT_W + 20.0
    );
    let color_of = |site: u32| -> &'static str {
        let label = r.sites.get(site as usize).map(String::as_str).unwrap_or("");
        // Sites not drawn on the timeline take the colour of its "other" band.
        let other = f.timeline.labels.len().saturating_sub(1);
        let row = f
            .timeline
            .labels
            .iter()
            .position(|l| l == label)
            .unwrap_or(other);
        PALETTE[row % PALETTE.len()]
    };
    for (i, seg) in segs.iter().enumerate() {
        let y0 = 5.0 + i as f64 * (row_h + 3.0);
        let w = seg.size as f64 * PLOT_W / largest;
        let stroke = match seg.pool {
            PoolKind::Default => "#333",
            PoolKind::Private(_, _) => "#7a3",
        };
        let _ = writeln!(
            h,
            "<g class=\"segment\"><title>{} segment at 0x{:x}{}</title><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text><rect x=\"{LEFT}\" y=\"{y0:.1}\" width=\"{w:.2}\" height=\"{row_h}\" fill=\"#fff\" stroke=\"{stroke}\" stroke-width=\"1\"/>",
            esc(&fs(seg.size)),
            seg.address,
            if seg.expandable { " (expandable)" } else { "" },
            LEFT - 6.0,
            y0 + 11.0,
            esc(&fs(seg.size))
        );
        // Blocks closer than half a pixel with the same colour are drawn as
        // one rectangle, so a segment of thousands of small blocks stays a
        // few rectangles (named after its first block and counted).
        let mut run: Option<BlockRun> = None;
        for p in seg.pieces.iter().filter(|p| p.site.is_some()) {
            let site = p.site.unwrap_or(0);
            let x0 = LEFT + p.offset as f64 * PLOT_W / largest;
            let x1 = x0 + p.size as f64 * PLOT_W / largest;
            let color = color_of(site);
            match &mut run {
                Some(r) if r.color == color && x0 <= r.x1 + 0.5 => {
                    r.x1 = x1;
                    r.bytes = r.bytes.saturating_add(p.size);
                    r.blocks += 1;
                }
                _ => {
                    if let Some(done) = run.take() {
                        done.draw(h, y0, row_h);
                    }
                    run = Some(BlockRun {
                        x0,
                        x1,
                        color,
                        bytes: p.size,
                        blocks: 1,
                        label: r.sites.get(site as usize).cloned().unwrap_or_default(),
                    });
                }
            }
        }
        if let Some(done) = run {
            done.draw(h, y0, row_h);
        }
        h.push_str("</g>\n");
    }
    h.push_str("</svg>\n");
}

/// Adjacent blocks of one colour, drawn as one rectangle.
struct BlockRun {
    x0: f64,
    x1: f64,
    color: &'static str,
    bytes: u64,
    blocks: u64,
    label: String,
}

impl BlockRun {
    fn draw(&self, h: &mut String, y0: f64, row_h: f64) {
        let count = if self.blocks > 1 {
            format!(" ({} blocks)", self.blocks)
        } else {
            String::new()
        };
        let _ = write!(
            h,
            "<rect class=\"block\" x=\"{:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"{}\"><title>{}{count} {}</title></rect>",
            self.x0,
            y0 + 1.0,
            (self.x1 - self.x0).max(0.3),
            row_h - 2.0,
            self.color,
            esc(&fs(self.bytes)),
            esc(&self.label)
        );
    }
}
