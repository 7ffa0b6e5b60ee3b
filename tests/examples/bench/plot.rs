//! SVG plots of the benchmark results (written under docs/bench/).
//!
//! Text is laid out by plotters' built-in estimate (no font files are read),
//! and the SVG names only the generic `sans-serif` family, so the output does
//! not depend on the fonts of the machine that wrote it.
use std::{io, ops::Range, path::Path};

use plotters::{
    coord::{
        Shift,
        ranged1d::{DefaultFormatting, KeyPointHint, ValueFormatter},
        types::RangedCoordf64,
    },
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

const SIZE: (u32, u32) = (800, 450);
const FONT: &str = "sans-serif";
// plotters writes font-size = size / 1.24 into the SVG: about 19 px and 14 px.
const TITLE_SIZE: u32 = 24;
const TEXT_SIZE: u32 = 17;
const MARGIN: u32 = 10;
/// Rough width of a character at TEXT_SIZE, for sizing the label areas
/// (plotters itself estimates about 7).
const CHAR_PX: u32 = 8;
/// Upright category names longer than this are cut, so that they cannot
/// squeeze the plot to nothing.
const MAX_UPRIGHT_CHARS: u32 = 18;
/// Where legend text starts, right of the swatch.
const LEGEND_TEXT_X: u32 = 34;
/// Headroom above the tallest value, so the top bar or point never touches
/// the frame.
const HEADROOM: f64 = 1.15;

/// Tableau 10: distinguishable, and all of it dark enough to read on white,
/// unlike the pale yellows early in `Palette99`.
const COLOURS: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

/// Everything drawn goes to an in-memory SVG, whose backend error is an
/// `io::Error`; all plotters calls fail with this one type.
type DrawResult = Result<(), DrawingAreaErrorKind<io::Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Grouped bar chart: one group per category along x, one bar per series in each group, with a legend.
/// `series[i].1[j]` is the value of series i in category j (same length as `categories`). Values may be NaN = missing (draw nothing).
pub(crate) fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> io::Result<()> {
    // A short or long row would silently shift every later bar into the
    // wrong category, so it is refused rather than guessed at.
    if let Some((name, values)) = series.iter().find(|(_, v)| v.len() != categories.len()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "series {name:?} has {} values for {} categories",
                values.len(),
                categories.len()
            ),
        ));
    }
    render(path, |root| {
        draw_bars(root, title, y_label, categories, series)
    })
}

/// Line chart with point markers and a legend; `log_x` makes the x axis logarithmic (x values are > 0 then).
/// A point with a non-finite coordinate (or x <= 0 when `log_x`) is left out and breaks its line there.
pub(crate) fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_x: bool,
    series: &[(String, Vec<(f64, f64)>)],
) -> io::Result<()> {
    render(path, |root| {
        draw_lines(root, title, x_label, y_label, log_x, series)
    })
}

/// Renders into a string first so that a failed write reports the real
/// `io::Error` (the file backend only writes when dropped, where errors are
/// lost), and a failed drawing leaves no half-written file behind.
fn render(path: &Path, draw: impl FnOnce(&Area<'_>) -> DrawResult) -> io::Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root).map_err(io::Error::other)?;
        root.present().map_err(io::Error::other)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, svg)
}

fn draw_bars(
    root: &Area<'_>,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> DrawResult {
    let (plot, legend) = frame(root, title, series.iter().map(|(n, _)| n.as_str()))?;
    let values = || series.iter().flat_map(|(_, v)| v.iter().copied());
    let (y_lo, y_hi) = y_range(values());

    let n = categories.len();
    let y_area = y_label_area(y_lo, y_hi);
    // Names wider than their group would run into each other, so they are
    // then turned upright; plotters' own axis labels cannot be rotated
    // (it re-anchors them), so those are drawn here instead.
    let group_px = plot.dim_in_pixel().0.saturating_sub(y_area + 2 * MARGIN) / n.max(1) as u32;
    let longest = categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let upright = longest * CHAR_PX + 8 > group_px;
    let x_area = if upright {
        (longest.min(MAX_UPRIGHT_CHARS) * CHAR_PX + 15).max(35)
    } else {
        35
    };
    let mut chart = ChartBuilder::on(&plot)
        .margin(MARGIN)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(CategoryAxis(n), y_lo..y_hi)?;
    let y_res = (y_hi - y_lo) / 1000.0;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| match categories.get(x.round() as usize) {
            Some(name) if !upright => name.clone(),
            _ => String::new(),
        })
        .y_label_formatter(&|y| number(*y, y_res))
        .y_desc(y_label)
        // One faint line between ticks: plotters' default of many reads as
        // a texture behind the bars.
        .max_light_lines(1)
        .label_style((FONT, TEXT_SIZE))
        .axis_desc_style((FONT, TEXT_SIZE))
        .draw()?;

    // Groups fill 80% of their slot so neighbouring groups stay apart.
    let slot = 0.8 / series.len().max(1) as f64;
    for (i, (_, row)) in series.iter().enumerate() {
        let style = colour(i).filled();
        chart.draw_series(row.iter().enumerate().filter(|(_, v)| v.is_finite()).map(
            |(j, &v)| {
                let left = j as f64 - 0.4 + slot * i as f64;
                Rectangle::new([(left + slot * 0.05, 0.0), (left + slot * 0.95, v)], style)
            },
        ))?;
    }

    if upright {
        let style = TextStyle::from((FONT, TEXT_SIZE).into_font())
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (j, name) in categories.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(j as f64, y_lo));
            let name = shorten(name, MAX_UPRIGHT_CHARS as usize);
            root.draw(&Text::new(name, (x, y + 8), style.clone()))?;
        }
    }

    if !values().any(f64::is_finite) {
        no_data(&plot)?;
    }
    draw_legend(&legend, series.iter().map(|(n, _)| n.as_str()), false)
}

/// The bar chart's x axis for `n` categories: category j is centred on
/// x = j, and the only ticks are those centres, so every group gets exactly
/// its own name. plotters' `with_key_points` would do, but loses the label
/// formatter support of the f64 axis it wraps.
struct CategoryAxis(usize);

impl Ranged for CategoryAxis {
    // Never shown: `x_label_formatter` replaces it; it is only here to
    // satisfy the mesh's bounds.
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let Range { start, end } = self.range();
        let frac = (value - start) / (end - start);
        limit.0 + (frac * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Light points would only draw grid lines between the groups.
        if hint.weight().allow_light_points() {
            return Vec::new();
        }
        (0..self.0).map(|j| j as f64).collect()
    }

    fn range(&self) -> Range<f64> {
        -0.5..self.0.max(1) as f64 - 0.5
    }
}

fn draw_lines(
    root: &Area<'_>,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_x: bool,
    series: &[(String, Vec<(f64, f64)>)],
) -> DrawResult {
    let (plot, legend) = frame(root, title, series.iter().map(|(n, _)| n.as_str()))?;
    let valid = move |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_x || x > 0.0);
    let points = || {
        series
            .iter()
            .flat_map(|(_, pts)| pts.iter().copied().filter(valid))
    };
    let (x_lo, x_hi) = x_range(points().map(|p| p.0), log_x);
    let (y_lo, y_hi) = y_range(points().map(|p| p.1));

    let mut builder = ChartBuilder::on(&plot);
    builder
        .margin(MARGIN)
        // Extra right margin: the last x label is centred on the frame's
        // edge and would otherwise be cut off.
        .margin_right(MARGIN * 3)
        .x_label_area_size(50)
        .y_label_area_size(y_label_area(y_lo, y_hi));
    let y_res = (y_hi - y_lo) / 1000.0;
    if log_x {
        let chart = builder.build_cartesian_2d((x_lo..x_hi).log_scale(), y_lo..y_hi)?;
        // Log ticks span decades, so each label needs digits relative to
        // its own size rather than to the axis span.
        line_chart(
            chart,
            &|x| number(*x, x.abs() / 100.0),
            &|y| number(*y, y_res),
            x_label,
            y_label,
            series,
            valid,
        )?;
    } else {
        let x_res = (x_hi - x_lo) / 1000.0;
        let chart = builder.build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
        line_chart(
            chart,
            &|x| number(*x, x_res),
            &|y| number(*y, y_res),
            x_label,
            y_label,
            series,
            valid,
        )?;
    }

    if points().next().is_none() {
        no_data(&plot)?;
    }
    draw_legend(&legend, series.iter().map(|(n, _)| n.as_str()), true)
}

/// Generic over the x coordinate so the linear and logarithmic charts, which
/// are different types, share one body.
fn line_chart<X>(
    mut chart: ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, RangedCoordf64>>,
    x_fmt: &dyn Fn(&f64) -> String,
    y_fmt: &dyn Fn(&f64) -> String,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    valid: impl Fn(&(f64, f64)) -> bool + Copy,
) -> DrawResult
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_label_formatter(x_fmt)
        .y_label_formatter(y_fmt)
        .x_desc(x_label)
        .y_desc(y_label)
        // As for the bars: plotters' default grid is too dense.
        .max_light_lines(1)
        .label_style((FONT, TEXT_SIZE))
        .axis_desc_style((FONT, TEXT_SIZE))
        .draw()?;

    for (i, (_, pts)) in series.iter().enumerate() {
        let colour = colour(i);
        // A missing point breaks the line instead of being bridged, so a gap
        // in the measurements stays visible.
        let runs = pts
            .split(|p| !valid(p))
            .filter(|run| !run.is_empty())
            .map(|run| PathElement::new(run.to_vec(), colour.stroke_width(2)));
        chart.draw_series(runs)?;
        chart.draw_series(
            pts.iter()
                .copied()
                .filter(valid)
                .map(|p| Circle::new(p, 4, colour.filled())),
        )?;
    }
    Ok(())
}

/// Draws the background and title and splits off a strip on the right for
/// the legend; a legend inside the plot would cover the tallest bars.
fn frame<'a, 'n>(
    root: &Area<'a>,
    title: &str,
    names: impl Iterator<Item = &'n str>,
) -> Result<(Area<'a>, Area<'a>), DrawingAreaErrorKind<io::Error>> {
    root.fill(&WHITE)?;
    let body = root.titled(title, (FONT, TITLE_SIZE))?;
    let longest = names.map(|n| n.chars().count()).max();
    let legend_width = match longest {
        None => 0,
        // Capped so that a runaway name cannot squeeze the plot away;
        // `draw_legend` shortens what does not fit.
        Some(chars) => (chars as u32 * CHAR_PX + LEGEND_TEXT_X + 11).clamp(80, SIZE.0 / 3),
    };
    Ok(body.split_horizontally(SIZE.0 - legend_width))
}

fn draw_legend<'n>(
    area: &Area<'_>,
    names: impl Iterator<Item = &'n str>,
    line: bool,
) -> DrawResult {
    let text =
        TextStyle::from((FONT, TEXT_SIZE).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let max_chars = (area.dim_in_pixel().0.saturating_sub(LEGEND_TEXT_X + 11) / CHAR_PX) as usize;
    for (i, name) in names.enumerate() {
        // Starts level with the top of the plot frame.
        let y = MARGIN as i32 + 10 + i as i32 * 22;
        let colour = colour(i);
        if line {
            area.draw(&PathElement::new(
                vec![(0, y), (26, y)],
                colour.stroke_width(2),
            ))?;
            area.draw(&Circle::new((13, y), 4, colour.filled()))?;
        } else {
            area.draw(&Rectangle::new([(6, y - 7), (20, y + 7)], colour.filled()))?;
        }
        let name = shorten(name, max_chars);
        area.draw(&Text::new(name, (LEGEND_TEXT_X as i32, y), text.clone()))?;
    }
    Ok(())
}

/// Says so explicitly, because an empty frame looks like a rendering bug.
fn no_data(plot: &Area<'_>) -> DrawResult {
    let (w, h) = plot.dim_in_pixel();
    let style = TextStyle::from((FONT, TITLE_SIZE).into_font())
        .color(&RGBColor(0x80, 0x80, 0x80))
        .pos(Pos::new(HPos::Center, VPos::Center));
    plot.draw(&Text::new("no data", (w as i32 / 2, h as i32 / 2), style))
}

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

fn colour(i: usize) -> RGBColor {
    COLOURS.get(i).copied().unwrap_or_else(|| {
        let (r, g, b) = Palette99::pick(i).rgb();
        RGBColor(r, g, b)
    })
}

/// Zero is always on the axis, because these are costs and counts whose
/// size is judged against nothing; without finite data the axis is 0..1.
fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((0.0_f64, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo == 0.0 && hi == 0.0 {
        return (0.0, 1.0);
    }
    (lo * HEADROOM, hi * HEADROOM)
}

/// Pads a little so the outermost markers are not cut in half by the frame,
/// and widens a lone value so the axis still has a span.
fn x_range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let to_axis = |v: f64| if log { v.log10() } else { v };
    let from_axis = |v: f64| if log { 10f64.powf(v) } else { v };
    let Some((lo, hi)) = values
        .map(to_axis)
        .fold(None, |acc: Option<(f64, f64)>, v| {
            Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        })
    else {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    };
    let pad = if hi > lo {
        (hi - lo) * 0.03
    } else if log {
        0.5
    } else {
        (lo.abs() * 0.1).max(1.0)
    };
    (from_axis(lo - pad), from_axis(hi + pad))
}

/// Room for the widest tick label plus the rotated axis description beside
/// it. A label has the integer digits of an axis end and the decimals of
/// the tick step, which plotters keeps above about a twentieth of the span.
fn y_label_area(lo: f64, hi: f64) -> u32 {
    let step = (hi - lo) / 20.0;
    let decimals = number(step, step)
        .split_once('.')
        .map_or(0, |(_, frac)| frac.len() + 1);
    let digits = number(hi.trunc(), 1.0)
        .len()
        .max(number(lo.trunc(), 1.0).len());
    (digits + decimals) as u32 * CHAR_PX + 30
}

/// Plain decimal with thousands separators, so that ticks up to millions
/// read at a glance (plotters' defaults print e.g. `1000000.0`), with as
/// many decimals as `resolution` needs and no trailing zeros.
fn number(value: f64, resolution: f64) -> String {
    let decimals = if resolution > 0.0 && resolution.is_finite() {
        (-resolution.log10().floor()).clamp(0.0, 12.0) as usize
    } else {
        0
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.truncate(text.trim_end_matches('0').trim_end_matches('.').len());
    }
    // Rounding a tiny negative tick gives "-0", which reads as a bug.
    if text == "-0" {
        text.remove(0);
    }
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (int, frac) = rest.split_at(rest.find('.').unwrap_or(rest.len()));
    let mut grouped = String::with_capacity(text.len() + int.len() / 3);
    grouped.push_str(sign);
    for (i, digit) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped.push_str(frac);
    grouped
}
