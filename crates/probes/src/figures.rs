//! PNG figures with `plotters` and a bundled font (DejaVu Sans), so they render on a bare machine: the logit-lens
//! table (Fig. 3), level-word trajectories (Fig. 6) and the attention heatmap (Fig. 5).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::attention::AttentionMap;
use crate::error::{ProbeError, Result};
use crate::lens::LensResult;
use crate::output::write_atomic;
use crate::trajectories::Trajectories;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();
const FONT_NAME: &str = "sans-serif";

fn register_font() {
    REGISTER.call_once(|| {
        // The bundled font is valid; if registration failed, text would be missing, never a panic.
        let _ = plotters::style::register_font(FONT_NAME, FontStyle::Normal, FONT);
    });
}

/// Viridis-like colour for `t` in [0, 1].
pub fn colour(t: f64) -> RGBColor {
    const STOPS: [(f64, (u8, u8, u8)); 5] = [
        (0.0, (68, 1, 84)),
        (0.25, (59, 82, 139)),
        (0.5, (33, 145, 140)),
        (0.75, (94, 201, 98)),
        (1.0, (253, 231, 37)),
    ];
    let t = t.clamp(0.0, 1.0);
    for w in STOPS.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if t <= b {
            let f = (t - a) / (b - a);
            let mix =
                |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * f).round() as u8;
            return RGBColor(mix(ca.0, cb.0), mix(ca.1, cb.1), mix(ca.2, cb.2));
        }
    }
    RGBColor(253, 231, 37)
}

fn text_on(bg: RGBColor) -> RGBColor {
    let lum = 0.299 * f64::from(bg.0) + 0.587 * f64::from(bg.1) + 0.114 * f64::from(bg.2);
    if lum > 140.0 { BLACK } else { WHITE }
}

/// Renders into an RGB buffer, then encodes a PNG written atomically.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(
        &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    ) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    let plot_err = |reason: String| ProbeError::Plot {
        path: path.to_path_buf(),
        reason,
    };
    let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(format!("{e:?}")))?;
        draw(&root).map_err(plot_err)?;
        root.present().map_err(|e| plot_err(format!("{e:?}")))?;
    }
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut png);
    image::ImageEncoder::write_image(
        encoder,
        &buf,
        size.0,
        size.1,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| plot_err(e.to_string()))?;
    write_atomic(path, &png)
}

fn e<E: std::fmt::Debug>(err: E) -> String {
    format!("{err:?}")
}

/// A vertical colour bar from 0 to `max` with a label.
fn colour_bar(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    x: i32,
    y0: i32,
    y1: i32,
    max: f64,
    label: &str,
) -> std::result::Result<(), String> {
    let steps = (y1 - y0).max(1);
    for i in 0..steps {
        let t = 1.0 - f64::from(i) / f64::from(steps);
        area.draw(&Rectangle::new(
            [(x, y0 + i), (x + 16, y0 + i + 1)],
            colour(t).filled(),
        ))
        .map_err(e)?;
    }
    area.draw(&Rectangle::new(
        [(x, y0), (x + 16, y1)],
        BLACK.stroke_width(1),
    ))
    .map_err(e)?;
    let font = (FONT_NAME, 12).into_font();
    area.draw(&Text::new(
        format!("{max:.2}"),
        (x + 20, y0 - 4),
        font.clone(),
    ))
    .map_err(e)?;
    area.draw(&Text::new("0", (x + 20, y1 - 10), font.clone()))
        .map_err(e)?;
    area.draw(&Text::new(label.to_string(), (x - 4, y1 + 8), font))
        .map_err(e)?;
    Ok(())
}

/// Size of the lens table figure for `layers` rows and `top_k` columns.
pub fn lens_figure_size(layers: usize, top_k: usize) -> (u32, u32) {
    (
        130 + 110 * top_k.max(1) as u32 + 90,
        70 + 34 * layers.max(1) as u32 + 50,
    )
}

/// The logit-lens table (Fig. 3): one row per layer (last layer at the top), the top-k candidates left to right,
/// each cell coloured by its probability and labelled with the token and the probability.
///
/// # Errors
/// Drawing or I/O errors.
pub fn lens_table(path: &Path, lens: &LensResult, title: &str) -> Result<()> {
    let rows = lens.layers.len();
    let k = lens.layers.iter().map(|l| l.top.len()).max().unwrap_or(1);
    let size = lens_figure_size(rows, k);
    // Colours scale to the largest probability in the table (shown on the colour bar).
    let pmax = lens
        .layers
        .iter()
        .flat_map(|l| l.top.iter().map(|c| c.prob))
        .fold(0.0f64, f64::max)
        .max(1e-12);
    render(path, size, |root| {
        let font = |s: u32| (FONT_NAME, s).into_font();
        root.draw(&Text::new(title.to_string(), (12, 10), font(20)))
            .map_err(e)?;
        let (left, top, cw, ch) = (130i32, 70i32, 110i32, 34i32);
        root.draw(&Text::new("candidate rank →", (left, 44), font(13)))
            .map_err(e)?;
        root.draw(&Text::new("layer", (12, 44), font(13)))
            .map_err(e)?;
        for (r, layer) in lens.layers.iter().rev().enumerate() {
            let y = top + r as i32 * ch;
            let name = if r == 0 {
                format!("{} (out)", layer.layer)
            } else {
                layer.layer.to_string()
            };
            root.draw(&Text::new(name, (12, y + 10), font(13)))
                .map_err(e)?;
            for (c, cand) in layer.top.iter().enumerate() {
                let x = left + c as i32 * cw;
                let bg = colour(cand.prob / pmax);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cw - 2, y + ch - 2)],
                    bg.filled(),
                ))
                .map_err(e)?;
                let mut text: String = cand.text.chars().take(10).collect();
                if text.trim().is_empty() {
                    text = format!("#{}", cand.id);
                }
                let style = font(12).color(&text_on(bg));
                root.draw(&Text::new(text, (x + 4, y + 3), style.clone()))
                    .map_err(e)?;
                root.draw(&Text::new(
                    format!("{:.3}", cand.prob),
                    (x + 4, y + 17),
                    style,
                ))
                .map_err(e)?;
            }
        }
        let bar_x = left + k as i32 * cw + 20;
        colour_bar(root, bar_x, top, top + rows as i32 * ch - 2, pmax, "prob")
    })
}

/// Level-word trajectories over layers (Fig. 6): share of samples whose top level word is each word.
///
/// # Errors
/// Drawing or I/O errors; fewer than one layer.
pub fn trajectories_figure(path: &Path, t: &Trajectories, title: &str) -> Result<()> {
    let (x0, x1) = match (t.layers.first(), t.layers.last()) {
        (Some(&a), Some(&b)) => (a as f64, (b as f64).max(a as f64 + 1.0)),
        _ => {
            return Err(ProbeError::NothingToPlot {
                path: path.to_owned(),
                what: "no layers",
            });
        }
    };
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    render(path, (800, 480), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT_NAME, 20))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, 0f64..1.0f64)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("layer (hidden-state index)")
            .x_labels(t.layers.len().min(33))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(format!("share of {} samples", t.samples))
            .label_style((FONT_NAME, 13))
            .axis_desc_style((FONT_NAME, 14))
            .draw()
            .map_err(e)?;
        for (w, word) in t.words.iter().enumerate() {
            let c = palette[w % palette.len()];
            let pts: Vec<(f64, f64)> = t
                .layers
                .iter()
                .zip(&t.share)
                .map(|(&l, s)| (l as f64, s[w]))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(3)))
                .map_err(e)?
                .label(word.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                .map_err(e)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT_NAME, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
        Ok(())
    })
}

/// The attention heatmap (Fig. 5): one row per query (generation step), one column per context token, colour =
/// attention (scaled to the largest value), with the span of segment `highlight` (e.g. the image tokens) framed.
///
/// # Errors
/// Drawing or I/O errors; an empty map.
pub fn attention_heatmap(
    path: &Path,
    map: &AttentionMap,
    highlight: &str,
    title: &str,
) -> Result<()> {
    let (q, t) = (map.map.len(), map.map.first().map_or(0, Vec::len));
    if q == 0 || t == 0 {
        return Err(ProbeError::NothingToPlot {
            path: path.to_owned(),
            what: "empty attention map",
        });
    }
    let max = map
        .map
        .iter()
        .flatten()
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let width = (900u32).max(160 + (t as u32) * 4);
    let height = (120 + (q as u32) * 18).clamp(260, 900);
    render(path, (width, height), |root| {
        let (plot, bar) = root.split_horizontally(width - 80);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, (FONT_NAME, 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..t as f64, q as f64..0f64)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_desc("context token position")
            .y_desc("query (generation step)")
            .label_style((FONT_NAME, 12))
            .axis_desc_style((FONT_NAME, 14))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(map.map.iter().enumerate().flat_map(|(qi, row)| {
                row.iter().enumerate().map(move |(k, &v)| {
                    Rectangle::new(
                        [(k as f64, qi as f64), (k as f64 + 1.0, qi as f64 + 1.0)],
                        colour(v / max).filled(),
                    )
                })
            }))
            .map_err(e)?;
        for s in map
            .segments
            .iter()
            .filter(|s| s.name == highlight && s.end > s.start)
        {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(s.start as f64, 0.0), (s.end as f64, q as f64)],
                    RGBColor(255, 0, 0).stroke_width(2),
                )))
                .map_err(e)?
                .label(format!("{} tokens {}..{}", s.name, s.start, s.end))
                .legend(|(x, y)| {
                    Rectangle::new(
                        [(x, y - 5), (x + 16, y + 5)],
                        RGBColor(255, 0, 0).stroke_width(2),
                    )
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT_NAME, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
        colour_bar(&bar, 10, 50, height as i32 - 60, max, "attention")
    })
}

/// One named series of a [`line_chart`]: `(x, y)` points in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend label.
    pub label: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// A captioned Cartesian chart over `x` × `y` with the figures' mesh, axis descriptions `(x, y)` and fonts.
fn cartesian<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> std::result::Result<
    ChartContext<
        'a,
        BitMapBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    String,
> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT_NAME, 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT_NAME, 13))
        .axis_desc_style((FONT_NAME, 14))
        .draw()
        .map_err(e)?;
    Ok(chart)
}

/// A line chart of one or more series (training loss curves, validation correlations), with a legend.
///
/// # Errors
/// No point at all, non-finite points only, or drawing / I/O errors.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<()> {
    let finite: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if finite.is_empty() {
        return Err(ProbeError::NothingToPlot {
            path: path.to_owned(),
            what: "no finite point",
        });
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in &finite {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
    ];
    render(path, (800, 480), |root| {
        let mut chart = cartesian(root, title, (x_desc, y_desc), x0..x1, y0..y1)?;
        for (i, s) in series.iter().enumerate() {
            let c = palette[i % palette.len()];
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(e)?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT_NAME, 13))
            .draw()
            .map_err(e)?;
        Ok(())
    })
}

/// A scatter of predictions (`x`) against MOS (`y`), with the fitted 4-parameter logistic
/// `(β1 − β2) / (1 + exp(−(x − β3) / |β4|)) + β2` drawn over it when given (the evaluation's Table-2 figure).
///
/// # Errors
/// No finite point, or drawing / I/O errors.
pub fn scatter_with_fit(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[(f64, f64)],
    betas: Option<[f64; 4]>,
) -> Result<()> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if pts.is_empty() {
        return Err(ProbeError::Plot {
            path: path.to_path_buf(),
            reason: "no finite point to plot".into(),
        });
    }
    let bounds = |v: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = v.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let pad = ((hi - lo) * 0.05).max(1e-6);
        (lo - pad, hi + pad)
    };
    let (x0, x1) = bounds(&mut pts.iter().map(|p| p.0));
    let (y0, y1) = bounds(&mut pts.iter().map(|p| p.1));
    render(path, (640, 560), |root| {
        let mut chart = cartesian(root, title, (x_desc, y_desc), x0..x1, y0..y1)?;
        let dot = RGBColor(31, 119, 180);
        chart
            .draw_series(
                pts.iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, dot.mix(0.6).filled())),
            )
            .map_err(e)?;
        if let Some([b1, b2, b3, b4]) = betas {
            let curve: Vec<(f64, f64)> = (0..=200)
                .map(|i| {
                    let x = x0 + (x1 - x0) * f64::from(i) / 200.0;
                    (x, (b1 - b2) / (1.0 + (-(x - b3) / b4.abs()).exp()) + b2)
                })
                .filter(|(_, y)| y.is_finite() && *y >= y0 && *y <= y1)
                .collect();
            chart
                .draw_series(LineSeries::new(
                    curve,
                    RGBColor(214, 39, 40).stroke_width(2),
                ))
                .map_err(e)?;
        }
        Ok(())
    })
}

/// A confusion matrix of levels as a heatmap with counts: `counts[t][p]` images of true level `rows[t]` answered
/// `cols[p]` (the last column may be "invalid"); each row is shaded by its share.
///
/// # Errors
/// An empty matrix, ragged rows, or drawing / I/O errors.
pub fn confusion_matrix(
    path: &Path,
    title: &str,
    rows: &[&str],
    cols: &[&str],
    counts: &[Vec<usize>],
) -> Result<()> {
    if rows.is_empty() || cols.is_empty() || counts.len() != rows.len() {
        return Err(ProbeError::Plot {
            path: path.to_path_buf(),
            reason: format!(
                "{} rows of counts for {} row labels",
                counts.len(),
                rows.len()
            ),
        });
    }
    if let Some(r) = counts.iter().position(|r| r.len() != cols.len()) {
        return Err(ProbeError::Plot {
            path: path.to_path_buf(),
            reason: format!(
                "row {r} has {} counts for {} columns",
                counts[r].len(),
                cols.len()
            ),
        });
    }
    register_font();
    let cell = 84i32;
    let (left, top) = (110i32, 70i32);
    let width = left + cell * cols.len() as i32 + 20;
    let height = top + cell * rows.len() as i32 + 40;
    render(path, (width as u32, height as u32), |root| {
        let font = (FONT_NAME, 15).into_font();
        root.draw(&Text::new(
            title.to_string(),
            (left, 12),
            (FONT_NAME, 18).into_font(),
        ))
        .map_err(e)?;
        root.draw(&Text::new("answered →", (left, 30), font.clone()))
            .map_err(e)?;
        for (j, c) in cols.iter().enumerate() {
            root.draw(&Text::new(
                (*c).to_string(),
                (left + cell * j as i32 + 8, top - 18),
                font.clone(),
            ))
            .map_err(e)?;
        }
        for (i, r) in rows.iter().enumerate() {
            let y = top + cell * i as i32;
            root.draw(&Text::new(
                (*r).to_string(),
                (8, y + cell / 2 - 8),
                font.clone(),
            ))
            .map_err(e)?;
            let total: usize = counts[i].iter().sum();
            for (j, &n) in counts[i].iter().enumerate() {
                let x = left + cell * j as i32;
                let share = if total > 0 {
                    n as f64 / total as f64
                } else {
                    0.0
                };
                let bg = colour(share);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell - 2, y + cell - 2)],
                    bg.filled(),
                ))
                .map_err(e)?;
                root.draw(&Text::new(
                    n.to_string(),
                    (x + cell / 2 - 12, y + cell / 2 - 8),
                    (FONT_NAME, 15).into_font().color(&text_on(bg)),
                ))
                .map_err(e)?;
            }
        }
        Ok(())
    })
}

/// A horizontal bar chart of named shares in [0, 1] (the attention share of the quality token per context
/// segment, Fig. 5).
///
/// # Errors
/// Labels and values of different lengths, none at all, or drawing / I/O errors.
pub fn share_bars(path: &Path, title: &str, labels: &[String], values: &[f64]) -> Result<()> {
    if labels.is_empty() || labels.len() != values.len() {
        return Err(ProbeError::Plot {
            path: path.to_path_buf(),
            reason: format!("{} labels for {} values", labels.len(), values.len()),
        });
    }
    register_font();
    let (left, top, bar_h, width) = (140i32, 50i32, 36i32, 420i32);
    let height = top + (bar_h + 10) * labels.len() as i32 + 20;
    render(path, ((left + width + 90) as u32, height as u32), |root| {
        root.draw(&Text::new(
            title.to_string(),
            (12, 12),
            (FONT_NAME, 18).into_font(),
        ))
        .map_err(e)?;
        for (i, (l, v)) in labels.iter().zip(values).enumerate() {
            let y = top + (bar_h + 10) * i as i32;
            let w = (f64::from(width) * v.clamp(0.0, 1.0)).round() as i32;
            root.draw(&Text::new(
                l.clone(),
                (8, y + bar_h / 2 - 8),
                (FONT_NAME, 15).into_font(),
            ))
            .map_err(e)?;
            root.draw(&Rectangle::new(
                [(left, y), (left + w.max(1), y + bar_h)],
                colour(0.35).filled(),
            ))
            .map_err(e)?;
            root.draw(&Text::new(
                format!("{:.1} %", 100.0 * v),
                (left + w + 8, y + bar_h / 2 - 8),
                (FONT_NAME, 15).into_font(),
            ))
            .map_err(e)?;
        }
        Ok(())
    })
}
