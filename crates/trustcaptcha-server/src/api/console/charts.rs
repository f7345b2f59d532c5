//! Charts drawn on the server as SVG: lines over time, stacked areas over time, and bars. They
//! load nothing and need no script. None relies on colour alone: every line has its own dash
//! pattern and marker shape, every area its own hatching, each is named in a legend that shows
//! the same, and each chart carries its numbers as a table beside it.
//!
//! Every drawn point carries what it shows (`data-bucket`, `data-count`), so a browser test can
//! hold the drawing against the counts it produced.

use maud::{Markup, html};

use crate::store::Resolution;

/// One line of a chart, or one layer of a stacked chart.
#[derive(Debug)]
pub(crate) struct Line {
    /// What it counts, as statistics name it (`created`, `signal:automation`).
    pub(crate) event: String,
    /// Its name in the legend.
    pub(crate) label: String,
    /// Its count in each bucket.
    pub(crate) counts: Vec<u64>,
}

const WIDTH: u64 = 720;
const HEIGHT: u64 = 240;
const LEFT: u64 = 52;
const RIGHT: u64 = 14;
const TOP: u64 = 12;
const BOTTOM: u64 = 30;
const PLOT_WIDTH: u64 = WIDTH - LEFT - RIGHT;
const PLOT_HEIGHT: u64 = HEIGHT - TOP - BOTTOM;

/// Colours that stay apart for the common kinds of colour blindness (Okabe and Ito).
const COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C6D1F",
];
const DASHES: [&str; 8] = [
    "",
    "7 3",
    "2 3",
    "9 3 2 3",
    "4 4",
    "12 4",
    "1 2",
    "6 2 2 2 2 2",
];

/// The axis's top: `max` rounded up to 1, 2 or 5 times a power of ten.
fn axis_top(max: u64) -> u64 {
    let mut step = 1;
    loop {
        for factor in [1, 2, 5] {
            if step * factor >= max.max(1) {
                return step * factor;
            }
        }
        step *= 10;
    }
}

/// A point's coordinates, in tenths of a pixel (whole numbers, so that a test reads them back
/// exactly).
fn x(index: usize, points: usize) -> f64 {
    if points <= 1 {
        return (LEFT + PLOT_WIDTH / 2) as f64;
    }
    let step = PLOT_WIDTH as f64 / (points - 1) as f64;
    ((LEFT as f64 + step * index as f64) * 10.0).round() / 10.0
}

fn y(count: u64, top: u64) -> f64 {
    let fraction = count as f64 / top as f64;
    ((PLOT_HEIGHT as f64).mul_add(1.0 - fraction, TOP as f64) * 10.0).round() / 10.0
}

/// A bucket's start as the axis and the tables write it.
pub(crate) fn bucket_label(bucket: i64, resolution: Resolution) -> String {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(bucket) else {
        return bucket.to_string();
    };
    match resolution {
        Resolution::Hour => format!(
            "{:02}-{:02} {:02}:00",
            u8::from(at.month()),
            at.day(),
            at.hour()
        ),
        Resolution::Day => format!("{}-{:02}-{:02}", at.year(), u8::from(at.month()), at.day()),
    }
}

/// A marker of shape `shape` centred on (`x`, `y`), as an SVG path.
fn marker(shape: usize, x: f64, y: f64) -> String {
    let r = 3.5;
    match shape % 8 {
        0 => format!(
            "M{},{y}a{r},{r} 0 1,0 {},0a{r},{r} 0 1,0 -{},0z",
            x - r,
            2.0 * r,
            2.0 * r
        ),
        1 => format!("M{},{}h{}v{}h-{}z", x - r, y - r, 2.0 * r, 2.0 * r, 2.0 * r),
        2 => format!("M{x},{}L{},{}L{},{}z", y - r, x + r, y + r, x - r, y + r),
        3 => format!("M{x},{}L{},{y}L{x},{}L{},{y}z", y - r, x + r, y + r, x - r),
        4 => format!(
            "M{},{}L{},{}M{},{}L{},{}",
            x - r,
            y - r,
            x + r,
            y + r,
            x - r,
            y + r,
            x + r,
            y - r
        ),
        5 => format!("M{},{y}H{}M{x},{}V{}", x - r, x + r, y - r, y + r),
        6 => format!("M{x},{}L{},{}L{},{}z", y + r, x + r, y - r, x - r, y - r),
        _ => format!(
            "M{},{}L{},{}L{},{}L{},{}z",
            x - r,
            y,
            x,
            y - r,
            x + r,
            y,
            x,
            y + r
        ),
    }
}

/// The frame: the axis's ticks and the buckets' labels.
fn frame(buckets: &[i64], resolution: Resolution, top: u64) -> Markup {
    let labels = 6.min(buckets.len());
    let every = buckets.len().div_ceil(labels.max(1)).max(1);
    html! {
        @for tick in [0, top / 2, top] {
            @let at = y(tick, top);
            line.rule x1=(LEFT) x2=(WIDTH - RIGHT) y1=(at) y2=(at) {}
            text.tick x=(LEFT - 6) y=(at + 4.0) text-anchor="end" { (tick) }
        }
        @for (index, bucket) in buckets.iter().enumerate().filter(|(index, _)| index % every == 0) {
            text.tick x=(x(index, buckets.len())) y=(HEIGHT - 8) text-anchor="middle" {
                (bucket_label(*bucket, resolution))
            }
        }
    }
}

/// The chart's numbers as a table, for reading without the drawing.
fn table(buckets: &[i64], resolution: Resolution, lines: &[Line]) -> Markup {
    html! {
        details {
            summary { "The numbers" }
            table.numbers {
                thead { tr { th { "From" } @for line in lines { th { (line.label) } } } }
                tbody {
                    @for (index, bucket) in buckets.iter().enumerate() {
                        tr {
                            td { (bucket_label(*bucket, resolution)) }
                            @for line in lines { td { (line.counts.get(index).copied().unwrap_or(0)) } }
                        }
                    }
                }
            }
        }
    }
}

/// Lines over time, one per event, with a marker on every bucket.
pub(crate) fn lines(
    id: &str,
    title: &str,
    buckets: &[i64],
    resolution: Resolution,
    lines: &[Line],
) -> Markup {
    let top = axis_top(
        lines
            .iter()
            .flat_map(|line| line.counts.iter().copied())
            .max()
            .unwrap_or(0),
    );
    let points = buckets.len();
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            svg.plot role="img" aria-label=(title) viewBox={"0 0 " (WIDTH) " " (HEIGHT)} data-top=(top) {
                (frame(buckets, resolution, top))
                @for (index, line) in lines.iter().enumerate() {
                    @let colour = COLOURS[index % COLOURS.len()];
                    g.series data-event=(line.event) stroke=(colour) {
                        polyline fill="none" stroke-width="2" stroke-dasharray=(DASHES[index % DASHES.len()])
                            points=(line.counts.iter().enumerate().map(|(i, count)| format!("{},{}", x(i, points), y(*count, top))).collect::<Vec<_>>().join(" ")) {}
                        @for (i, count) in line.counts.iter().enumerate() {
                            path.point fill=(colour) d=(marker(index, x(i, points), y(*count, top)))
                                data-bucket=(buckets.get(i).copied().unwrap_or_default()) data-count=(count)
                                data-x=(x(i, points)) data-y=(y(*count, top)) {
                                title { (line.label) ", " (bucket_label(buckets.get(i).copied().unwrap_or_default(), resolution)) ": " (count) }
                            }
                        }
                    }
                }
            }
            ul.legend {
                @for (index, line) in lines.iter().enumerate() {
                    @let colour = COLOURS[index % COLOURS.len()];
                    li {
                        svg width="36" height="12" viewBox="0 0 36 12" aria-hidden="true" {
                            line x1="0" x2="36" y1="6" y2="6" stroke=(colour) stroke-width="2" stroke-dasharray=(DASHES[index % DASHES.len()]) {}
                            path fill=(colour) stroke=(colour) d=(marker(index, 18.0, 6.0)) {}
                        }
                        " " (line.label) " " span.muted { (line.counts.iter().sum::<u64>()) }
                    }
                }
            }
            (table(buckets, resolution, lines))
        }
    }
}

/// Areas stacked over time, one layer per event (the first at the bottom), each hatched its own
/// way.
pub(crate) fn stacked(
    id: &str,
    title: &str,
    buckets: &[i64],
    resolution: Resolution,
    layers: &[Line],
) -> Markup {
    let points = buckets.len();
    let totals: Vec<u64> = (0..points)
        .map(|i| {
            layers
                .iter()
                .map(|layer| layer.counts.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let top = axis_top(totals.iter().copied().max().unwrap_or(0));
    let mut below = vec![0_u64; points];
    let mut shapes = Vec::with_capacity(layers.len());
    for layer in layers {
        let above: Vec<u64> = below
            .iter()
            .zip(&layer.counts)
            .map(|(below, count)| below + count)
            .collect();
        let upper = (0..points).map(|i| format!("{},{}", x(i, points), y(above[i], top)));
        let lower = (0..points)
            .rev()
            .map(|i| format!("{},{}", x(i, points), y(below[i], top)));
        shapes.push(upper.chain(lower).collect::<Vec<_>>().join(" "));
        below = above;
    }
    let pattern = |index: usize| format!("{id}-hatch-{index}");
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            svg.plot role="img" aria-label=(title) viewBox={"0 0 " (WIDTH) " " (HEIGHT)} data-top=(top) {
                defs {
                    @for index in 0..layers.len() {
                        (hatch(&pattern(index), index))
                    }
                }
                (frame(buckets, resolution, top))
                @if layers.is_empty() {
                    text.tick x=(LEFT + 8) y=(TOP + 16) { "no signal fired" }
                }
                @for (index, (layer, shape)) in layers.iter().zip(&shapes).enumerate() {
                    polygon.layer data-event=(layer.event) fill={"url(#" (pattern(index)) ")"}
                        stroke=(COLOURS[index % COLOURS.len()]) stroke-width="1"
                        data-counts=(layer.counts.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
                        points=(shape) {
                        title { (layer.label) ": " (layer.counts.iter().sum::<u64>()) }
                    }
                }
            }
            ul.legend {
                @for (index, layer) in layers.iter().enumerate() {
                    li {
                        svg width="24" height="14" viewBox="0 0 24 14" aria-hidden="true" {
                            defs { (hatch(&format!("{}-key", pattern(index)), index)) }
                            rect x="0" y="0" width="24" height="14" fill={"url(#" (pattern(index)) "-key)"}
                                stroke=(COLOURS[index % COLOURS.len()]) {}
                        }
                        " " (layer.label) " " span.muted { (layer.counts.iter().sum::<u64>()) }
                    }
                }
            }
            (table(buckets, resolution, layers))
        }
    }
}

/// The hatching of layer `index`: its colour, and one of eight line patterns.
fn hatch(id: &str, index: usize) -> Markup {
    let colour = COLOURS[index % COLOURS.len()];
    let lines = match (index / COLOURS.len() + index) % 8 {
        0 => "M0,8L8,0",
        1 => "M0,0L8,8",
        2 => "M0,4H8",
        3 => "M4,0V8",
        4 => "M0,8L8,0M0,0L8,8",
        5 => "M0,4H8M4,0V8",
        6 => "M2,2h1v1h-1zM6,6h1v1h-1z",
        _ => "M0,2H8M0,6H8",
    };
    html! {
        pattern id=(id) patternUnits="userSpaceOnUse" width="8" height="8" {
            rect width="8" height="8" fill=(colour) fill-opacity="0.25" {}
            path d=(lines) stroke=(colour) stroke-width="1.5" {}
        }
    }
}

/// A horizontal bar chart; every bar carries its label and its count as text.
pub(crate) fn bars(id: &str, title: &str, entries: &[(String, u64)]) -> Markup {
    const ROW: u64 = 22;
    const LABEL: u64 = 120;
    const BAR: u64 = 260;
    let max = entries
        .iter()
        .map(|(_, count)| *count)
        .max()
        .unwrap_or(0)
        .max(1);
    let height = ROW * entries.len().max(1) as u64 + 4;
    let width = LABEL + BAR + 60;
    html! {
        figure id=(id) {
            figcaption { (title) }
            svg role="img" aria-label=(title) width=(width) height=(height) viewBox={"0 0 " (width) " " (height)} {
                @if entries.is_empty() {
                    text.empty x="0" y="16" { "nothing yet" }
                }
                @for (row, (label, count)) in entries.iter().enumerate() {
                    @let top = row as u64 * ROW + 2;
                    @let length = count * BAR / max;
                    g.bar data-label=(label) data-count=(count) {
                        text x="0" y=(top + 15) { (label) }
                        rect x=(LABEL) y=(top) width=(length) height=(ROW - 6) {}
                        text.count x=(LABEL + length + 6) y=(top + 15) { (count) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_axis_ends_on_a_round_number_at_or_above_the_largest_count() {
        for (max, top) in [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 5),
            (7, 10),
            (11, 20),
            (450, 500),
            (501, 1000),
        ] {
            assert_eq!(axis_top(max), top, "{max}");
        }
    }

    #[test]
    fn every_point_is_drawn_where_its_count_is() {
        let buckets = [0, 3_600, 7_200];
        let line = Line {
            event: "created".into(),
            label: "created".into(),
            counts: vec![0, 5, 10],
        };
        let svg = lines("c", "t", &buckets, Resolution::Hour, &[line]).into_string();
        assert!(
            svg.contains(&format!(
                r#"data-bucket="3600" data-count="5" data-x="{}" data-y="{}""#,
                LEFT + PLOT_WIDTH / 2,
                TOP + PLOT_HEIGHT / 2
            )),
            "{svg}"
        );
        assert!(svg.contains(&format!(
            r#"data-count="10" data-x="{}" data-y="{TOP}""#,
            WIDTH - RIGHT
        )));
        assert!(svg.contains(&format!(
            r#"data-count="0" data-x="{LEFT}" data-y="{}""#,
            TOP + PLOT_HEIGHT
        )));
    }
}
