//! The PNG chart of a campaign report: the recipient funnel with its counts, and cumulative sends
//! over time, under the campaign's title and id.
//!
//! plotters draws into an RGB buffer (`canvas` sets the text in DejaVu Sans, embedded in the
//! binary, so a chart looks the same on any machine, with or without installed fonts) and `png`
//! encodes it.

mod canvas;

use chrono::{DateTime, Duration, Utc};
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::{RangedCoordi64, RangedCoordu32};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, RGBColor};

use crate::store::{Campaign, Report};

use canvas::{Canvas, Fonts};

pub const WIDTH: u32 = 1000;
pub const HEIGHT: u32 = 600;

/// Every text is set in the embedded DejaVu Sans (see `canvas`); the family named here only
/// satisfies plotters' text styles.
const FONT: &str = "sans-serif";

const INK: RGBColor = RGBColor(30, 41, 59);
const MUTED: RGBColor = RGBColor(100, 116, 139);
const GRID: RGBColor = RGBColor(226, 232, 240);
const AXIS: RGBColor = RGBColor(148, 163, 184);
const SENDS: RGBColor = RGBColor(37, 99, 235);

/// One bar of the funnel.
struct Bar {
    label: &'static str,
    count: i64,
    color: RGBColor,
}

/// The funnel stages in sequential blues (each a subset of the one before), then the outcomes that
/// left the funnel in their warning colours. `queued` and `unknown` only appear when non-zero:
/// they matter while sending or after a crash, and are noise on a finished campaign.
fn bars(r: &Report) -> Vec<Bar> {
    let mut bars = vec![
        Bar {
            label: "targeted",
            count: r.targeted,
            color: RGBColor(51, 65, 85),
        },
        Bar {
            label: "sent",
            count: r.sent,
            color: RGBColor(29, 78, 216),
        },
        Bar {
            label: "delivered",
            count: r.delivered,
            color: RGBColor(37, 99, 235),
        },
        Bar {
            label: "read",
            count: r.read,
            color: RGBColor(59, 130, 246),
        },
        Bar {
            label: "replied",
            count: r.replied,
            color: RGBColor(96, 165, 250),
        },
        Bar {
            label: "failed",
            count: r.failed,
            color: RGBColor(220, 38, 38),
        },
        Bar {
            label: "skipped",
            count: r.skipped,
            color: RGBColor(245, 158, 11),
        },
    ];
    if r.queued > 0 {
        bars.push(Bar {
            label: "queued",
            count: r.queued,
            color: RGBColor(148, 163, 184),
        });
    }
    if r.unknown > 0 {
        bars.push(Bar {
            label: "unknown",
            count: r.unknown,
            color: RGBColor(168, 162, 158),
        });
    }
    bars
}

fn regular(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size, FontStyle::Normal).into_font())
}

fn bold(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size, FontStyle::Bold).into_font())
}

/// Draws the chart of campaign `c` as a `WIDTH`x`HEIGHT` PNG at `path`. `send_times` are the
/// campaign's send times in ascending order.
pub fn draw(c: &Campaign, r: &Report, send_times: &[DateTime<Utc>]) -> Result<Vec<u8>, String> {
    let fonts = Fonts::load()?;
    let mut pixels = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    {
        let root = Canvas::new(&mut pixels, (WIDTH, HEIGHT), &fonts).into_drawing_area();
        paint(&root, c, r, send_times).map_err(|e| format!("drawing failed: {e}"))?;
        root.present().map_err(|e| format!("drawing failed: {e}"))?;
    }
    encode_png(&pixels)
}

/// The RGB pixels as PNG bytes.
fn encode_png(rgb: &[u8]) -> Result<Vec<u8>, String> {
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| format!("cannot encode the PNG: {e}"))?;
    writer
        .write_image_data(rgb)
        .map_err(|e| format!("cannot encode the PNG: {e}"))?;
    writer
        .finish()
        .map_err(|e| format!("cannot encode the PNG: {e}"))?;
    Ok(png_bytes)
}

type Area<'a> = DrawingArea<Canvas<'a>, Shift>;
type DrawResult<T> =
    Result<T, DrawingAreaErrorKind<<Canvas<'static> as DrawingBackend>::ErrorType>>;

fn paint(root: &Area, c: &Campaign, r: &Report, send_times: &[DateTime<Utc>]) -> DrawResult<()> {
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(84);
    paint_header(&header, c, send_times)?;
    let (left, right) = body.split_horizontally(580);
    paint_funnel(&left, r)?;
    paint_sends(&right, send_times)?;
    Ok(())
}

fn paint_header(area: &Area, c: &Campaign, send_times: &[DateTime<Utc>]) -> DrawResult<()> {
    let title_style = bold(28).color(&INK);
    let sub_style = regular(16).color(&MUTED);
    let max_width = WIDTH - 60;
    let title = fit(area, &c.title, &title_style, max_width)?;
    area.draw_text(&title, &title_style, (30, 20))?;

    let mut sub = format!("campaign {} · {}", c.id, c.status);
    if let (Some(first), Some(last)) = (send_times.first(), send_times.last()) {
        sub.push_str(&format!(" · sent {}", span_text(*first, *last)));
    }
    let sub = fit(area, &sub, &sub_style, max_width)?;
    area.draw_text(&sub, &sub_style, (30, 56))?;
    area.draw(&PathElement::new(
        vec![(30, 83), (WIDTH as i32 - 30, 83)],
        GRID.stroke_width(1),
    ))?;
    Ok(())
}

/// `22 Nov 2026 10:00–10:07 UTC`, with both dates when the sends span days.
fn span_text(first: DateTime<Utc>, last: DateTime<Utc>) -> String {
    // Paced sends in a burst are milliseconds apart: one time says it better than a range.
    if last - first < Duration::seconds(1) {
        format!("{} UTC", first.format("%-d %b %Y %H:%M:%S"))
    } else if first.date_naive() == last.date_naive() {
        let fmt = if last - first < Duration::minutes(2) {
            "%H:%M:%S"
        } else {
            "%H:%M"
        };
        format!(
            "{} {}–{} UTC",
            first.format("%-d %b %Y"),
            first.format(fmt),
            last.format(fmt)
        )
    } else {
        format!(
            "{} – {} UTC",
            first.format("%-d %b %Y %H:%M"),
            last.format("%-d %b %Y %H:%M")
        )
    }
}

fn paint_funnel(area: &Area, r: &Report) -> DrawResult<()> {
    let notes = breakdown_lines(r);
    let footer_height = 22 * notes.len() as u32 + if notes.is_empty() { 0 } else { 8 };
    let (chart_area, footer) =
        area.split_vertically(area.dim_in_pixel().1.saturating_sub(footer_height));

    let bars = bars(r);
    let n = bars.len() as u32;
    let top = bars.iter().map(|b| b.count).max().unwrap_or(0);
    // Headroom above the tallest bar for its count label.
    let y_max = (top as f64 * 1.18).ceil().max(1.0) as i64;

    let mut chart = ChartBuilder::on(&chart_area)
        .caption("Recipients (share of targeted)", bold(18).color(&INK))
        .margin_top(14)
        .margin_left(20)
        .margin_right(20)
        .margin_bottom(6)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d((0u32..n.saturating_sub(1)).into_segmented(), 0i64..y_max)?;

    // Labels shrink, within reason, so that neighbours never run into each other when there are
    // many bars or big counts.
    let slot = (chart.plotting_area().dim_in_pixel().0 / n.max(1)).saturating_sub(6);
    let names: Vec<String> = bars.iter().map(|b| b.label.to_string()).collect();
    let counts: Vec<String> = bars.iter().map(|b| thousands(b.count)).collect();
    let name_size = size_to_fit(area, &names, slot, 15, 11, regular)?;
    let count_size = size_to_fit(area, &counts, slot, 17, 11, bold)?;
    configure_funnel_mesh(&mut chart, &bars, name_size)?;

    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let i = i as u32;
        let mut rect = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0),
                (SegmentValue::Exact(i + 1), b.count),
            ],
            b.color.filled(),
        );
        rect.set_margin(0, 0, 9, 9);
        rect
    }))?;

    let count_style = bold(count_size)
        .color(&INK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    let share_style = regular(count_size.min(13))
        .color(&MUTED)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    let share_offset = -(count_size as i32) - 9;
    chart.draw_series(bars.iter().zip(counts).enumerate().map(|(i, (b, count))| {
        let at = (SegmentValue::CenterOf(i as u32), b.count);
        // Targeted is the base of the shares; a zero needs no "0%" over it.
        let share = if b.label == "targeted" || b.count == 0 {
            String::new()
        } else {
            percent(b.count, r.targeted)
        };
        EmptyElement::at(at)
            + Text::new(count, (0, -6), count_style.clone())
            + Text::new(share, (0, share_offset), share_style.clone())
    }))?;

    let note_style = regular(14).color(&MUTED);
    for (i, line) in notes.iter().enumerate() {
        let line = fit(&footer, line, &note_style, footer.dim_in_pixel().0 - 40)?;
        footer.draw_text(&line, &note_style, (30, 4 + 22 * i as i32))?;
    }
    Ok(())
}

fn configure_funnel_mesh(
    chart: &mut ChartContext<Canvas, Cartesian2d<SegmentedCoord<RangedCoordu32>, RangedCoordi64>>,
    bars: &[Bar],
    label_size: u32,
) -> DrawResult<()> {
    let label_of = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => bars
            .get(*i as usize)
            .map(|b| b.label.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len())
        .x_label_formatter(&label_of)
        .x_label_style(regular(label_size).color(&INK))
        .y_labels(6)
        .y_label_formatter(&|v| thousands(*v))
        .y_label_style(regular(13).color(&MUTED))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(WHITE.stroke_width(0))
        .axis_style(AXIS.stroke_width(1))
        .draw()
}

/// `failed: 131026 Message undeliverable (2), …` and `skipped: no_consent (3), …`, when there are
/// any.
fn breakdown_lines(r: &Report) -> Vec<String> {
    let line = |what: &str, parts: &[(String, i64)]| {
        let parts: Vec<String> = parts
            .iter()
            .map(|(reason, n)| format!("{reason} ({})", thousands(*n)))
            .collect();
        format!("{what}: {}", parts.join(", "))
    };
    let mut lines = Vec::new();
    if !r.failed_by_reason.is_empty() {
        lines.push(line("failed", &r.failed_by_reason));
    }
    if !r.skipped_by_reason.is_empty() {
        lines.push(line("skipped", &r.skipped_by_reason));
    }
    lines
}

fn paint_sends(area: &Area, send_times: &[DateTime<Utc>]) -> DrawResult<()> {
    let caption = bold(18).color(&INK);
    let (Some(&first), Some(&last)) = (send_times.first(), send_times.last()) else {
        let (w, h) = area.dim_in_pixel();
        // Where ChartBuilder puts the funnel's caption, so the two line up.
        let caption = caption.pos(Pos::new(HPos::Center, VPos::Top));
        area.draw_text("Sends over time", &caption, (w as i32 / 2, 20))?;
        let style = regular(16)
            .color(&MUTED)
            .pos(Pos::new(HPos::Center, VPos::Center));
        area.draw_text("nothing sent yet", &style, (w as i32 / 2, h as i32 / 2))?;
        return Ok(());
    };
    let total = send_times.len() as i64;
    let span = last - first;
    // A little room on both sides so the first step and the final plateau are visible, even when
    // every message left in the same second.
    let pad = (span / 20).max(Duration::minutes(1));
    let (start, end) = (first - pad, last + pad);
    let y_max = (total as f64 * 1.15).ceil().max(1.0) as i64;

    let mut chart = ChartBuilder::on(area)
        .caption("Sends over time (cumulative)", caption)
        .margin_top(14)
        .margin_left(10)
        .margin_right(40)
        .margin_bottom(6)
        .x_label_area_size(52)
        .y_label_area_size(56)
        .build_cartesian_2d(start..end, 0i64..y_max)?;

    let time_format = tick_format(end - start);
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|t| t.format(time_format).to_string())
        .x_desc("time (UTC)")
        .y_labels(6)
        .y_label_formatter(&|v| thousands(*v))
        .label_style(regular(13).color(&MUTED))
        .axis_desc_style(regular(14).color(&MUTED))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(WHITE.stroke_width(0))
        .axis_style(AXIS.stroke_width(1))
        .draw()?;

    let steps = cumulative_steps(send_times, start, end);
    chart.draw_series(
        AreaSeries::new(steps, 0, SENDS.mix(0.18)).border_style(SENDS.stroke_width(2)),
    )?;

    let label = bold(15)
        .color(&SENDS)
        .pos(Pos::new(HPos::Right, VPos::Bottom));
    chart.draw_series(std::iter::once(
        EmptyElement::at((end, total))
            + Text::new(format!("{} sent", thousands(total)), (-4, -6), label),
    ))?;
    Ok(())
}

/// The cumulative count as a step line: flat at 0 from `start`, up one step per distinct send
/// time, flat at the total until `end`. Sends in the same instant make one step, so the point
/// count stays bounded by the distinct times, not the recipients.
fn cumulative_steps(
    send_times: &[DateTime<Utc>],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, i64)> {
    let mut steps = vec![(start, 0)];
    let mut count = 0i64;
    let mut i = 0;
    while i < send_times.len() {
        let t = send_times[i];
        let before = count;
        while i < send_times.len() && send_times[i] == t {
            count += 1;
            i += 1;
        }
        steps.push((t, before));
        steps.push((t, count));
    }
    steps.push((end, count));
    steps
}

/// Tick labels as precise as the time axis needs.
fn tick_format(span: Duration) -> &'static str {
    if span <= Duration::minutes(10) {
        "%H:%M:%S"
    } else if span <= Duration::days(1) {
        "%H:%M"
    } else if span <= Duration::days(7) {
        "%-d %b %H:%M"
    } else {
        "%-d %b"
    }
}

/// The largest size from `largest` down to `smallest` at which every one of `texts` is at most
/// `width` pixels wide (or `smallest`, when none is).
fn size_to_fit(
    area: &Area,
    texts: &[String],
    width: u32,
    largest: u32,
    smallest: u32,
    style: fn(u32) -> TextStyle<'static>,
) -> DrawResult<u32> {
    for size in (smallest..=largest).rev() {
        let mut fits = true;
        for text in texts {
            fits &= area.estimate_text_size(text, &style(size))?.0 <= width;
        }
        if fits {
            return Ok(size);
        }
    }
    Ok(smallest)
}

/// Shortens `text` with an ellipsis until it fits in `max_width` pixels.
fn fit(area: &Area, text: &str, style: &TextStyle, max_width: u32) -> DrawResult<String> {
    if area.estimate_text_size(text, style)?.0 <= max_width {
        return Ok(text.to_string());
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let candidate = format!("{}…", chars.iter().collect::<String>().trim_end());
        if area.estimate_text_size(&candidate, style)?.0 <= max_width {
            return Ok(candidate);
        }
    }
    Ok("…".into())
}

/// `part` as a whole percentage of `whole`; a share too small to round up still shows as `<1%`.
fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return String::new();
    }
    let share = part as f64 * 100.0 / whole as f64;
    if part > 0 && share < 0.5 {
        "<1%".into()
    } else {
        format!("{share:.0}%")
    }
}

/// `12345` -> `12,345`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    use crate::store::{CampaignKind, CampaignStatus, Pace};

    fn campaign(title: &str) -> Campaign {
        Campaign {
            id: 7,
            title: title.into(),
            kind: CampaignKind::OneTime,
            status: CampaignStatus::Completed,
            owner: None,
            audience: Some("vip".into()),
            text: Some("Hi {{name}}".into()),
            variants: vec![],
            template: None,
            pace: Pace::default(),
            scheduled_at: None,
            status_reason: None,
            created_at: t(0),
            started_at: Some(t(0)),
            finished_at: None,
            repeat_rule: None,
            parent_id: None,
            run_no: 0,
            step_delay_ms: 0,
            stop_on_reply: true,
            choices: None,
            media: None,
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + Duration::seconds(secs)
    }

    fn report() -> Report {
        Report {
            targeted: 120,
            sent: 96,
            delivered: 90,
            read: 61,
            replied: 14,
            failed: 6,
            skipped: 18,
            skipped_by_reason: vec![("no_consent".into(), 11), ("opted_out".into(), 7)],
            failed_by_reason: vec![
                ("131026 Message undeliverable".into(), 4),
                ("131047 Re-engagement message".into(), 2),
            ],
            ..Report::default()
        }
    }

    /// Width and height from a PNG's IHDR chunk, after checking the signature.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR");
        let be = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        (be(16), be(20))
    }

    #[test]
    fn draws_a_png_of_the_expected_size() {
        let mut times: Vec<_> = (0..96).map(|i| t(i * 4 + (i % 5) * 30)).collect();
        times.sort();
        let bytes = draw(&campaign("Spring sale"), &report(), &times).unwrap();
        assert_eq!(png_size(&bytes), (WIDTH, HEIGHT));
        // The whole image decodes, and it is not blank.
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        assert!(buf.iter().any(|&b| b != 255), "something was drawn");
    }

    #[test]
    fn draws_campaigns_with_nothing_sent_or_all_sent_at_once_or_over_months() {
        let c = campaign("A title long enough that it has to be shortened to fit in the chart's caption line, really quite long");
        draw(&c, &Report::default(), &[]).unwrap();
        draw(&c, &report(), &[t(0); 96]).unwrap();
        let weeks: Vec<_> = (0..50).map(|i| t(i * 86_400 / 2)).collect();
        draw(&c, &report(), &weeks).unwrap();
        let hours: Vec<_> = (0..50).map(|i| t(i * 300)).collect();
        draw(&c, &report(), &hours).unwrap();
        let year = [t(0), t(200 * 86_400), t(400 * 86_400)];
        draw(&c, &report(), &year).unwrap();
        let paced = [t(0), t(0) + Duration::milliseconds(50)];
        let last = draw(&c, &report(), &paced).unwrap();
        assert_eq!(png_size(&last), (WIDTH, HEIGHT));
    }

    #[test]
    fn steps_group_sends_of_the_same_instant() {
        let steps = cumulative_steps(&[t(5), t(5), t(9)], t(0), t(20));
        assert_eq!(
            steps,
            vec![
                (t(0), 0),
                (t(5), 0),
                (t(5), 2),
                (t(9), 2),
                (t(9), 3),
                (t(20), 3)
            ]
        );
    }

    #[test]
    fn big_counts_get_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-4200), "-4,200");
    }

    /// `cargo test --lib chart::tests::preview -- --ignored --nocapture`, then open the files.
    #[test]
    #[ignore = "writes sample charts for a person to look at"]
    fn preview() {
        let dir = std::env::temp_dir().join("herald-chart-preview");
        std::fs::create_dir_all(&dir).unwrap();
        let mut minutes: Vec<_> = (0..96).map(|i| t(i * 4 + (i % 5) * 30)).collect();
        minutes.sort();
        let weeks: Vec<_> = (0..96).map(|i| t(i * i * 200)).collect();
        let big = Report {
            targeted: 123_456,
            sent: 96_000,
            delivered: 90_000,
            read: 1000,
            replied: 3,
            failed: 20_000,
            skipped: 7456,
            queued: 12_000,
            unknown: 3,
            ..Report::default()
        };
        let waiting = Report {
            targeted: 3,
            queued: 3,
            ..Report::default()
        };
        let cases = [
            (
                "minutes",
                "Spring sale — 20% off for VIPs",
                report(),
                minutes,
            ),
            ("weeks", "Winter drip", big, weeks),
            ("burst", "Flash sale", report(), vec![t(0); 96]),
            ("waiting", "Not started", waiting, vec![]),
        ];
        for (name, title, r, times) in cases {
            let path = dir.join(format!("{name}.png"));
            std::fs::write(&path, draw(&campaign(title), &r, &times).unwrap()).unwrap();
            println!("{}", path.display());
        }
    }
}
