//! SVG charts drawn on the server, each with a title, a description and the numbers as a table
//! for readers who cannot see it.

use chrono::NaiveDate;
use epai_engine::{InsightContent, InsightDetails};
use epai_store::UsageDay;
use maud::{Markup, html};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// Maps values into the plot area.
struct Scale {
    min: f64,
    max: f64,
    slots: usize,
}

impl Scale {
    fn y(&self, value: f64) -> f64 {
        let span = (self.max - self.min).max(f64::EPSILON);
        TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - (value - self.min) / span)
    }

    fn slot_width(&self) -> f64 {
        (WIDTH - LEFT) / self.slots.max(1) as f64
    }

    /// Centre of slot `index`.
    fn x(&self, index: usize) -> f64 {
        LEFT + self.slot_width() * (index as f64 + 0.5)
    }
}

fn axis(scale: &Scale) -> Markup {
    html! {
        line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
        text.tick x=(LEFT - 6.0) y=(scale.y(scale.max) + 4.0) text-anchor="end" { (format!("{:.0}", scale.max)) }
        text.tick x=(LEFT - 6.0) y=(scale.y(scale.min) + 4.0) text-anchor="end" { (format!("{:.0}", scale.min)) }
    }
}

/// The 30-day usage chart: one bar of events per day.
pub(crate) fn usage(days: &[UsageDay]) -> Markup {
    let max = days
        .iter()
        .map(|d| f64::from(d.event_count))
        .fold(1.0, f64::max);
    let scale = Scale {
        min: 0.0,
        max,
        slots: days.len(),
    };
    let total: i64 = days.iter().map(|d| i64::from(d.event_count)).sum();
    let busiest = days.iter().max_by_key(|d| d.event_count);
    let description = match busiest {
        Some(day) if total > 0 => format!(
            "{total} events over {} days; the busiest day was {} with {} events.",
            days.len(),
            day.date,
            day.event_count
        ),
        _ => format!("No events in the last {} days.", days.len()),
    };
    let bar = scale.slot_width() * 0.7;
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-labelledby="usage-title usage-desc" {
                title #usage-title { "Events per day, last 30 days" }
                desc #usage-desc { (description) }
                (axis(&scale))
                @for (index, day) in days.iter().enumerate() {
                    @let top = scale.y(f64::from(day.event_count));
                    rect.bar x=(format!("{:.1}", scale.x(index) - bar / 2.0)) y=(format!("{top:.1}"))
                        width=(format!("{bar:.1}")) height=(format!("{:.1}", HEIGHT - BOTTOM - top)) {
                        title { (day.date) ": " (day.event_count) " events" }
                    }
                }
            }
            figcaption { (description) }
            (table(
                "Events per day",
                &["Date", "Events", "Insights"],
                days.iter().map(|d| vec![d.date.to_string(), d.event_count.to_string(), d.insight_count.to_string()]),
            ))
        }
    }
}

fn table(caption: &str, headings: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Markup {
    html! {
        details {
            summary { "Show the numbers" }
            div.table-wrap {
                table {
                    caption { (caption) }
                    thead { tr { @for h in headings { th scope="col" { (h) } } } }
                    tbody { @for row in rows { tr { @for cell in row { td { (cell) } } } } }
                }
            }
        }
    }
}

/// One day of an insight's chart: the observed value and, for forecast days, the prediction
/// with its widest interval.
struct Day {
    date: NaiveDate,
    observed: Option<f64>,
    predicted: Option<f64>,
    interval: Option<(f64, f64)>,
    flagged: bool,
}

/// The chart of a forecast or anomaly insight; `None` for content without a series.
pub(crate) fn insight(content: &serde_json::Value) -> Option<Markup> {
    let content: InsightContent = serde_json::from_value(content.clone()).ok()?;
    let (days, label) = match &content.details {
        InsightDetails::VolumeForecast(details) => {
            let mut days: Vec<Day> = details
                .history
                .iter()
                .map(|p| Day {
                    date: p.date,
                    observed: Some(p.value),
                    predicted: None,
                    interval: None,
                    flagged: false,
                })
                .collect();
            days.extend(details.forecast.points.iter().map(|p| {
                Day {
                    date: p.date,
                    observed: None,
                    predicted: Some(p.value),
                    interval: p
                        .intervals
                        .iter()
                        .max_by(|a, b| a.level.total_cmp(&b.level))
                        .map(|i| (i.lower, i.upper)),
                    flagged: false,
                }
            }));
            (
                days,
                format!("Daily {} events and the forecast", details.event_type),
            )
        }
        InsightDetails::Anomalies(details) => {
            let days = details
                .history
                .iter()
                .map(|p| Day {
                    date: p.date,
                    observed: Some(p.value),
                    predicted: details
                        .scan
                        .baseline
                        .iter()
                        .find(|b| b.date == p.date)
                        .map(|b| b.value),
                    interval: None,
                    flagged: details.scan.anomalies.iter().any(|a| a.date == p.date),
                })
                .collect();
            (
                days,
                format!("Daily {} with its expected level", details.metric),
            )
        }
        _ => return None,
    };
    if days.is_empty() {
        return None;
    }
    Some(series_chart(&days, &label))
}

fn path(points: impl Iterator<Item = (f64, f64)>) -> String {
    points
        .enumerate()
        .map(|(i, (x, y))| format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { " L" }))
        .collect()
}

fn series_chart(days: &[Day], label: &str) -> Markup {
    let values = days.iter().flat_map(|d| {
        [
            d.observed,
            d.predicted,
            d.interval.map(|i| i.0),
            d.interval.map(|i| i.1),
        ]
        .into_iter()
        .flatten()
    });
    let (min, max) = values.fold((0.0_f64, 1.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let scale = Scale {
        min,
        max,
        slots: days.len(),
    };
    let observed = path(
        days.iter()
            .enumerate()
            .filter_map(|(i, d)| d.observed.map(|v| (scale.x(i), scale.y(v)))),
    );
    let predicted = path(
        days.iter()
            .enumerate()
            .filter_map(|(i, d)| d.predicted.map(|v| (scale.x(i), scale.y(v)))),
    );
    let with_interval: Vec<(usize, (f64, f64))> = days
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.interval.map(|band| (i, band)))
        .collect();
    let band = (!with_interval.is_empty()).then(|| {
        let upper = with_interval
            .iter()
            .map(|(i, (_, hi))| (scale.x(*i), scale.y(*hi)));
        let lower = with_interval
            .iter()
            .rev()
            .map(|(i, (lo, _))| (scale.x(*i), scale.y(*lo)));
        format!("{} Z", path(upper.chain(lower)))
    });
    let first = days.first().map(|d| d.date.to_string()).unwrap_or_default();
    let last = days.last().map(|d| d.date.to_string()).unwrap_or_default();
    let flagged = days.iter().filter(|d| d.flagged).count();
    let description = format!(
        "{label}, {first} to {last}. Solid line: observed; dashed line: expected or forecast{}{}.",
        if band.is_some() {
            "; shaded band: prediction interval"
        } else {
            ""
        },
        if flagged > 0 {
            format!("; {flagged} unusual day(s) marked")
        } else {
            String::new()
        }
    );
    let number = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.1}"));
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-labelledby="series-title series-desc" {
                title #series-title { (label) }
                desc #series-desc { (description) }
                (axis(&scale))
                @if let Some(band) = &band { path.band d=(band) {} }
                path.observed d=(observed) {}
                path.predicted d=(predicted) {}
                @for (index, day) in days.iter().enumerate() {
                    @if let (true, Some(value)) = (day.flagged, day.observed) {
                        circle.flag cx=(format!("{:.1}", scale.x(index))) cy=(format!("{:.1}", scale.y(value))) r="4" {}
                    }
                }
                text.tick x=(LEFT) y=(HEIGHT - 6.0) { (first) }
                text.tick x=(WIDTH) y=(HEIGHT - 6.0) text-anchor="end" { (last) }
            }
            figcaption { (description) }
            (table(
                label,
                &["Date", "Observed", "Expected or forecast", "Interval"],
                days.iter().map(|d| vec![
                    d.date.to_string(),
                    number(d.observed),
                    number(d.predicted),
                    d.interval.map_or_else(String::new, |(lo, hi)| format!("{lo:.1} – {hi:.1}")),
                ]),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use epai_engine::forecast::{Horizon, IntervalLevel, volume_forecast_insight};

    /// Six weeks of weekly-seasonal daily counts, as the worker would see them.
    fn forecast_content() -> serde_json::Value {
        let counts: Vec<f64> = (0..42)
            .map(|day| 40.0 + f64::from(day % 7) * 6.0 + f64::from(day) * 0.5)
            .collect();
        let content = volume_forecast_insight(
            "page_view",
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            &counts,
            Horizon::new(7).unwrap(),
            &[
                IntervalLevel::new(80.0).unwrap(),
                IntervalLevel::new(95.0).unwrap(),
            ],
            chrono::Utc::now(),
        )
        .unwrap();
        serde_json::to_value(content).unwrap()
    }

    #[test]
    fn a_forecast_is_drawn_with_its_history_prediction_and_interval() {
        let chart = insight(&forecast_content()).unwrap().into_string();
        for part in [
            "class=\"observed\"",
            "class=\"predicted\"",
            "class=\"band\"",
            "<desc",
            "<table",
        ] {
            assert!(chart.contains(part), "{part} in {chart}");
        }
        assert!(chart.contains("shaded band: prediction interval"));
    }

    #[test]
    fn content_without_a_series_has_no_chart() {
        assert!(insight(&serde_json::json!({"title": "Attendance Forecast"})).is_none());
    }

    #[test]
    fn the_usage_chart_describes_its_busiest_day() {
        let days = [
            UsageDay {
                date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                event_count: 3,
                insight_count: 0,
            },
            UsageDay {
                date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
                event_count: 9,
                insight_count: 1,
            },
        ];
        let chart = usage(&days).into_string();
        assert!(
            chart.contains("12 events over 2 days; the busiest day was 2026-01-02 with 9 events.")
        );
        assert_eq!(chart.matches("class=\"bar\"").count(), 2);
    }
}
