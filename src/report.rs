//! `coffer report --html`: the SLA evidence as one self-contained HTML page (no script, no
//! external asset, printable), for the quality and compliance people who do not read JSON.
//!
//! Built from what is cheap to read at any scale: the snapshot summaries (one per snapshot,
//! not the per-database trees), the SLA judgement made from them ([`crate::sla`]) and the
//! audit log. Charts are inline SVG drawn here: a page that needs nothing but itself renders
//! the same in a browser, a mail client's preview and on paper.

use std::collections::BTreeMap;
use std::fmt::Write;

use jiff::Timestamp;

use crate::repo::audit::{AuditOutcome, AuditRecord};
use crate::repo::ids::SnapshotId;
use crate::repo::summary::SnapshotSummary;
use crate::sla::SlaReport;

/// What the page shows.
pub struct ReportInput<'a> {
    /// The repository, as the command was given it (no credentials: locations carry none).
    pub repository: &'a str,
    pub generated: Timestamp,
    /// The first moment shown.
    pub since: Timestamp,
    /// Snapshot summaries, oldest first (all of them: the charts take those since `since`).
    pub summaries: &'a [(SnapshotId, SnapshotSummary)],
    /// Audit records, oldest first.
    pub audit: &'a [AuditRecord],
    /// The SLA judged now.
    pub sla: &'a SlaReport,
}

/// The page.
pub fn html(input: &ReportInput) -> String {
    let mut page = String::with_capacity(64 << 10);
    let title = format!("coffer backup report: {}", input.repository);
    let _ = writeln!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    let _ = writeln!(
        page,
        "<header><h1>Backup report</h1><p>Repository <code>{}</code> · from {} to {} · generated {} by coffer {}</p></header>",
        escape(input.repository),
        day(input.since),
        day(input.generated),
        minute(input.generated),
        env!("CARGO_PKG_VERSION")
    );
    page.push_str(&at_a_glance(input));
    let mut by_server: BTreeMap<&str, Vec<&(SnapshotId, SnapshotSummary)>> = BTreeMap::new();
    for entry in input.summaries {
        if entry.1.time >= input.since {
            by_server
                .entry(entry.1.source.server.as_str())
                .or_default()
                .push(entry);
        }
    }
    for (server, snapshots) in &by_server {
        page.push_str(&server_section(server, snapshots, input));
    }
    page.push_str(&drills_and_restores(input));
    page.push_str(&problems(input, &by_server));
    page.push_str("<footer>Built from the repository's snapshot summaries and audit log. Times are UTC.</footer>\n</body></html>\n");
    page
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:70rem;color:#1b1f24;padding:0 1rem}\
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ccd;padding-bottom:.2rem;margin-top:2.2rem}\
table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.9rem}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #e3e6ea}\
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:600}.warn{color:#9a6700;font-weight:600}\
.cards{display:flex;flex-wrap:wrap;gap:1rem}.card{border:1px solid #d0d7de;border-radius:.4rem;padding:.7rem 1rem;min-width:14rem}\
.card b{font-size:1.4rem;display:block}svg{max-width:100%;height:auto;margin:.4rem 0}figure{margin:1rem 0}\
figcaption{font-size:.85rem;color:#57606a}code{font-size:.85rem}footer{margin-top:3rem;font-size:.8rem;color:#57606a}\
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}figure,table{page-break-inside:avoid}}";

fn at_a_glance(input: &ReportInput) -> String {
    let mut out =
        String::from("<section id=\"sla\"><h2>SLA at a glance</h2><div class=\"cards\">\n");
    let hours = input.sla.within_seconds as f64 / 3600.0;
    for server in &input.sla.servers {
        let met = server.missing.is_empty() && server.months_missing.is_empty();
        let _ = writeln!(
            out,
            "<div class=\"card\"><span>{}</span><b class=\"{}\">{}</b>\
             {} of {} databases backed up within {hours:.0} h{}</div>",
            escape(&server.server),
            if met { "ok" } else { "bad" },
            if met { "✓ met" } else { "✗ missed" },
            server.backed_up,
            server.expected,
            if input.sla.monthly > 0 {
                if server.months_missing.is_empty() {
                    format!(
                        "<br>a kept snapshot in each of the last {} months",
                        input.sla.monthly
                    )
                } else {
                    format!(
                        "<br>months without a kept snapshot: {}",
                        escape(&server.months_missing.join(", "))
                    )
                }
            } else {
                String::new()
            }
        );
    }
    if input.sla.servers.is_empty() {
        out.push_str("<p class=\"bad\">No snapshot in the repository.</p>");
    }
    out.push_str("</div></section>\n");
    out
}

fn server_section(
    server: &str,
    snapshots: &[&(SnapshotId, SnapshotSummary)],
    input: &ReportInput,
) -> String {
    let mut out = format!(
        "<section class=\"server\"><h2>Server <code>{}</code></h2>\n",
        escape(server)
    );
    let points = |f: &dyn Fn(&SnapshotSummary) -> f64| -> Vec<(Timestamp, f64)> {
        snapshots.iter().map(|(_, s)| (s.time, f(s))).collect()
    };
    // Seconds for short backups, minutes otherwise: the axis stays readable.
    let longest = snapshots
        .iter()
        .map(|(_, s)| s.stats.duration_secs)
        .fold(0.0_f64, f64::max);
    let (unit, per) = if longest < 120.0 {
        ("seconds", 1.0)
    } else {
        ("minutes", 60.0)
    };
    out.push_str(&chart(
        "Duration of each backup",
        unit,
        &[Series {
            name: "duration",
            color: "#0969da",
            points: points(&|s| s.stats.duration_secs / per),
        }],
        input,
    ));
    out.push_str(&chart(
        "Bytes read from the server and added to the repository",
        "MiB",
        &[
            Series {
                name: "read",
                color: "#8250df",
                points: points(&|s| s.stats.bytes_read as f64 / 1_048_576.0),
            },
            Series {
                name: "added (compressed, encrypted)",
                color: "#1a7f37",
                points: points(&|s| s.stats.bytes_stored_new as f64 / 1_048_576.0),
            },
        ],
        input,
    ));
    out.push_str(&chart(
        "Databases read and carried over unchanged",
        "databases",
        &[
            Series {
                name: "read",
                color: "#bc4c00",
                points: points(&|s| {
                    let carried = s.change_tracking.as_ref().map_or(0, |c| c.carried);
                    s.databases.len().saturating_sub(carried) as f64
                }),
            },
            Series {
                name: "carried over",
                color: "#0969da",
                points: points(&|s| s.change_tracking.as_ref().map_or(0, |c| c.carried) as f64),
            },
        ],
        input,
    ));
    let mut total = 0.0;
    let growth: Vec<(Timestamp, f64)> = snapshots
        .iter()
        .map(|(_, s)| {
            total += s.stats.bytes_stored_new as f64 / 1_048_576.0;
            (s.time, total)
        })
        .collect();
    out.push_str(&chart(
        "Repository growth from these backups (before prune)",
        "MiB",
        &[Series {
            name: "stored",
            color: "#1a7f37",
            points: growth,
        }],
        input,
    ));
    let _ = writeln!(
        out,
        "<table><thead><tr><th>snapshot</th><th>time</th><th>host</th><th class=\"num\">databases</th>\
         <th class=\"num\">carried</th><th class=\"num\">read</th><th class=\"num\">added</th><th class=\"num\">duration</th><th>problems</th></tr></thead><tbody>"
    );
    for (id, s) in snapshots.iter().rev().take(60) {
        let carried = s.change_tracking.as_ref().map_or(0, |c| c.carried);
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{carried}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            id.short(),
            minute(s.time),
            escape(&s.hostname),
            s.databases.len(),
            bytes(s.stats.bytes_read),
            bytes(s.stats.bytes_stored_new),
            crate::timespec::display_duration(s.stats.duration_secs),
            if s.failed.is_empty() {
                String::from("<span class=\"ok\">none</span>")
            } else {
                format!("<span class=\"bad\">{} failed</span>", s.failed.len())
            }
        );
    }
    out.push_str("</tbody></table>");
    if snapshots.len() > 60 {
        let _ = write!(
            out,
            "<p>The newest 60 of {} snapshots in the period are listed.</p>",
            snapshots.len()
        );
    }
    out.push_str("</section>\n");
    out
}

/// Commands whose records are restore drills, and those that put data back.
const DRILLS: &[&str] = &["verify-restore"];
const RESTORES: &[&str] = &["restore", "dump", "history", "log undo"];

fn drills_and_restores(input: &ReportInput) -> String {
    let finished: Vec<&AuditRecord> = input
        .audit
        .iter()
        .filter(|r| r.time >= input.since && r.outcome != AuditOutcome::Started)
        .collect();
    let mut out = String::from("<section id=\"drills\"><h2>Restore drills</h2>\n");
    let drills: Vec<&&AuditRecord> = finished
        .iter()
        .filter(|r| DRILLS.contains(&r.command.as_str()))
        .collect();
    if drills.is_empty() {
        out.push_str("<p class=\"warn\">No restore drill in the period: schedule <code>coffer verify-restore --sample N</code>.</p>\n");
    } else {
        out.push_str("<table><thead><tr><th>time</th><th>who</th><th>snapshot</th><th>result</th><th>counts</th></tr></thead><tbody>\n");
        for r in drills.iter().rev() {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}@{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                minute(r.time),
                escape(&r.user),
                escape(&r.host),
                escape(short(r.snapshot.as_deref())),
                outcome(&r.outcome),
                escape(&counts(r))
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n<section id=\"restores\"><h2>Restores (audit log)</h2>\n");
    let restores: Vec<&&AuditRecord> = finished
        .iter()
        .filter(|r| RESTORES.contains(&r.command.as_str()))
        .collect();
    if restores.is_empty() {
        out.push_str("<p>No restore in the period.</p>\n");
    } else {
        out.push_str("<table><thead><tr><th>time</th><th>who</th><th>command</th><th>database</th><th>into</th><th>why</th><th>result</th></tr></thead><tbody>\n");
        for r in restores.iter().rev() {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}@{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                minute(r.time),
                escape(&r.user),
                escape(&r.host),
                escape(&r.command),
                escape(r.database.as_deref().unwrap_or("")),
                escape(r.target_database.as_deref().unwrap_or("")),
                escape(r.reason.as_deref().unwrap_or("")),
                outcome(&r.outcome)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n");
    out
}

fn problems(
    input: &ReportInput,
    by_server: &BTreeMap<&str, Vec<&(SnapshotId, SnapshotSummary)>>,
) -> String {
    let mut rows: Vec<(Timestamp, String)> = Vec::new();
    for snapshots in by_server.values() {
        for (id, s) in snapshots {
            if !s.failed.is_empty() {
                rows.push((
                    s.time,
                    format!(
                        "snapshot {} of {}: {} database(s) failed: {}",
                        id.short(),
                        s.source.server,
                        s.failed.len(),
                        s.failed
                            .iter()
                            .take(10)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if let Some(tracking) = &s.change_tracking
                && !tracking.changed_while_carried.is_empty()
            {
                rows.push((
                    s.time,
                    format!(
                        "snapshot {}: the check found {} database(s) the binary log showed unchanged had changed (read fresh): {}",
                        id.short(),
                        tracking.changed_while_carried.len(),
                        tracking
                            .changed_while_carried
                            .iter()
                            .map(|c| c.database.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    for r in input.audit {
        if r.time >= input.since
            && let AuditOutcome::Failed(why) = &r.outcome
        {
            rows.push((r.time, format!("{} failed: {why}", r.command)));
        }
    }
    for server in &input.sla.servers {
        for missing in &server.missing {
            rows.push((
                input.generated,
                format!(
                    "{}: database {} has no backup within the window (last: {})",
                    server.server,
                    missing.database,
                    missing
                        .last_backup
                        .map(minute)
                        .unwrap_or_else(|| "never".to_string())
                ),
            ));
        }
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    let mut out = String::from("<section id=\"problems\"><h2>Problems</h2>\n");
    if rows.is_empty() {
        out.push_str("<p class=\"ok\">None in the period.</p>");
    } else {
        out.push_str("<table><thead><tr><th>date</th><th>what</th></tr></thead><tbody>\n");
        for (time, what) in rows.iter().take(500) {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                minute(*time),
                escape(what)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>\n");
    out
}

/// One line of a chart.
struct Series {
    name: &'static str,
    color: &'static str,
    points: Vec<(Timestamp, f64)>,
}

/// A time chart as inline SVG: one polyline (and dots) per series, over the report's period.
fn chart(title: &str, unit: &str, series: &[Series], input: &ReportInput) -> String {
    const W: f64 = 760.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 36.0;
    let start = input.since.as_second() as f64;
    let end = (input.generated.as_second() as f64).max(start + 1.0);
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let x =
        |t: Timestamp| LEFT + (t.as_second() as f64 - start) / (end - start) * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - v / top) * (H - TOP - BOTTOM);
    let mut svg = format!(
        "<figure><svg role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title>{t}</title>",
        t = escape(title)
    );
    for step in 0..=4 {
        let value = top * f64::from(step) / 4.0;
        let py = y(value);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#e3e6ea\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#57606a\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            axis_number(value)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"11\" fill=\"#57606a\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#57606a\">{}</text>\
         <text x=\"12\" y=\"{:.1}\" font-size=\"11\" fill=\"#57606a\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{}</text>",
        H - 12.0,
        day(input.since),
        W - RIGHT,
        H - 12.0,
        day(input.generated),
        H / 2.0,
        H / 2.0,
        escape(unit)
    );
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let line: Vec<String> = s
            .points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            s.color,
            line.join(" ")
        );
        for (t, v) in &s.points {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>{} {}: {}</title></circle>",
                x(*t),
                y(*v),
                s.color,
                minute(*t),
                s.name,
                axis_number(*v)
            );
        }
    }
    svg.push_str("</svg><figcaption>");
    let _ = write!(svg, "{}: ", escape(title));
    let legend: Vec<String> = series
        .iter()
        .map(|s| {
            format!(
                "<span style=\"color:{}\">■</span> {}",
                s.color,
                escape(s.name)
            )
        })
        .collect();
    svg.push_str(&legend.join(" · "));
    svg.push_str("</figcaption></figure>\n");
    svg
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `max` (1 for an empty chart).
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= max)
        .unwrap_or(10.0 * magnitude)
}

fn axis_number(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        "0".to_string()
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        // Two significant digits, however small.
        let digits = (-value.log10().floor()) as usize + 1;
        format!("{value:.digits$}")
    }
}

fn outcome(outcome: &AuditOutcome) -> String {
    match outcome {
        AuditOutcome::Succeeded => "<span class=\"ok\">✓ succeeded</span>".to_string(),
        AuditOutcome::Failed(why) => format!("<span class=\"bad\">✗ {}</span>", escape(why)),
        AuditOutcome::Started => "<span class=\"warn\">unfinished</span>".to_string(),
    }
}

fn counts(record: &AuditRecord) -> String {
    record
        .counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn short(id: Option<&str>) -> &str {
    id.map(|i| &i[..i.len().min(8)]).unwrap_or("")
}

fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

fn day(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

fn minute(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M").to_string()
}

/// Text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_repository_cannot_become_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn axes_end_at_a_round_number() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(450.0), 500.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
        assert_eq!(axis_number(0.0025), "0.0025");
        assert_eq!(axis_number(0.5), "0.50");
        assert_eq!(axis_number(12.0), "12.0");
    }
}
