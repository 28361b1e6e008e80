//! `rig bench --plot`: the figures of `bench.json` as one SVG, a panel per
//! figure (two columns), each bar its median with a whisker from min to
//! max. Pure drawing: plotters' SVG backend, text as SVG text.

use super::bench::{BenchReport, Figure};
use plotters::prelude::*;
use std::path::Path;

const PANEL_W: u32 = 640;
const BAR_H: u32 = 30;
const PANEL_FIXED_H: u32 = 110;

const NOTE_H: u32 = 14;

/// Height of a figure's panel: room for its bars, title, axis and notes.
fn panel_height(f: &Figure) -> u32 {
    PANEL_FIXED_H + BAR_H * f.bars.len().max(1) as u32 + NOTE_H * f.notes.len() as u32
}

/// The x range that holds every whisker, with a margin.
pub fn x_range(f: &Figure) -> (f64, f64) {
    let max = f.bars.iter().map(|b| b.max.max(b.median)).fold(0.0, f64::max);
    (0.0, if max > 0.0 { max * 1.15 } else { 1.0 })
}

/// A value as the bar label shows it: three significant digits or so.
pub fn short(v: f64) -> String {
    match v.abs() {
        x if x >= 100.0 => format!("{v:.0}"),
        x if x >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

/// Draws `report` into `path`.
pub fn draw(report: &BenchReport, path: &Path) -> Result<(), String> {
    let figs = &report.figures;
    let rows: Vec<&[Figure]> = figs.chunks(2).collect();
    let heights: Vec<u32> = rows.iter().map(|r| r.iter().map(panel_height).max().unwrap_or(PANEL_FIXED_H)).collect();
    let header = 40;
    let total_h = header + heights.iter().sum::<u32>().max(1);
    let root = SVGBackend::new(path, (PANEL_W * 2, total_h)).into_drawing_area();
    let e = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let title = format!(
        "rig bench: {} (QEMU {}, {} CPUs, load {:.1} to {:.1})",
        report.accel, report.qemu_version, report.host_cpus, report.load_before, report.load_after
    );
    root.draw(&Text::new(title, (10, 10), ("sans-serif", 20).into_font())).map_err(|x| e(&x))?;
    let mut y = header as i32;
    for (row, h) in rows.iter().zip(&heights) {
        for (col, f) in row.iter().enumerate() {
            let x0 = col as i32 * PANEL_W as i32;
            let area = root.clone().shrink((x0, y), (PANEL_W, *h));
            panel(&area, f).map_err(|x| e(&x))?;
        }
        y += *h as i32;
    }
    root.present().map_err(|x| e(&x))
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    f: &Figure,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let n = f.bars.len().max(1);
    let (lo, hi) = x_range(f);
    let caption = format!("{} [{}], {}", f.title, f.unit, f.kernel);
    let notes_h = NOTE_H * f.notes.len() as u32;
    let (chart_area, notes_area) = area.split_vertically(area.dim_in_pixel().1.saturating_sub(notes_h));
    let mut chart = ChartBuilder::on(&chart_area)
        .caption(caption, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(230)
        .build_cartesian_2d(lo..hi, 0f64..n as f64)?;
    let labels: Vec<String> = f.bars.iter().map(|b| b.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .max_light_lines(1)
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|v| {
            // Labels sit at the middle of each bar's band.
            let i = (*v - 0.5).round();
            if (*v - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_label_formatter(&|v| short(*v))
        .label_style(("sans-serif", 11))
        .draw()?;
    let colors = [RGBColor(70, 120, 180), RGBColor(220, 130, 50), RGBColor(90, 160, 90), RGBColor(170, 80, 160)];
    for (i, b) in f.bars.iter().enumerate() {
        let y = i as f64;
        let color = colors[i % colors.len()];
        chart.draw_series(std::iter::once(Rectangle::new([(0.0, y + 0.2), (b.median, y + 0.8)], color.filled())))?;
        if b.n > 1 {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(b.min, y + 0.5), (b.max, y + 0.5)],
                BLACK.stroke_width(1),
            )))?;
        }
        let label = format!("{} {}", short(b.median), f.unit);
        chart.draw_series(std::iter::once(Text::new(label, (b.max.max(b.median), y + 0.65), ("sans-serif", 11))))?;
    }
    for (i, note) in f.notes.iter().enumerate() {
        notes_area.draw(&Text::new(note.clone(), (240, (NOTE_H as i32) * i as i32), ("sans-serif", 11)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::bench::{Bar, BenchReport, Figure, KernelInfo};
    use super::*;

    fn report() -> BenchReport {
        let fig = |id: &str, bars: Vec<Bar>| Figure {
            id: id.into(),
            title: format!("title of {id}"),
            unit: "ms".into(),
            kernel: "bookworm-6.1".into(),
            bars,
            notes: vec!["a note".into()],
        };
        BenchReport {
            format: 1,
            accel: "tcg".into(),
            qemu_version: "10.0.2".into(),
            host_cpus: 2,
            load_before: 1.0,
            load_after: 2.0,
            kernels: vec![KernelInfo { name: "bookworm-6.1".into(), release: "6.1.0".into(), boots: "pvh".into() }],
            figures: vec![
                fig("boot", vec![Bar::of("cold", &[2000.0, 2100.0]), Bar::of("restore", &[120.0, 150.0, 130.0])]),
                fig("console", vec![Bar::of("step", &[9.0])]),
                fig("empty", vec![]),
            ],
        }
    }

    #[test]
    fn draws_every_figure_and_label() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bench.svg");
        draw(&report(), &path).expect("draw");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        for needle in ["title of boot", "title of console", "title of empty", "restore", "cold", "2050 ms", "a note"] {
            assert!(svg.contains(needle), "{needle} missing");
        }
    }

    #[test]
    fn ranges_and_numbers() {
        let f = &report().figures[0];
        let (lo, hi) = x_range(f);
        assert!(lo == 0.0 && hi > 2100.0);
        assert_eq!(x_range(&report().figures[2]), (0.0, 1.0));
        assert_eq!((short(2050.0), short(12.345), short(0.1234)), ("2050".into(), "12.3".into(), "0.12".into()));
    }
}
