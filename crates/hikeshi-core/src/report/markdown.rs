//! The Markdown renderer. Every dynamic string goes through [`esc`]:
//! Markdown and HTML specials are escaped (GitHub renders inline HTML),
//! and control or invisible characters become visible escapes.

use std::fmt::Write as _;

use super::text::{kept_of, label, push_visible_escape, Lang};
use super::{fmt_duration, fmt_time, Line, Report};

/// Escapes `s` for Markdown text, table cells included.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            _ => {
                if !push_visible_escape(&mut out, c) {
                    out.push(c);
                }
            }
        }
    }
    out
}

fn line(l: &Line, lang: Lang) -> String {
    match l {
        Line::Generated(t) => {
            if lang == Lang::Both {
                format!("{}<br>{}", esc(&t.en), esc(&t.ja))
            } else {
                esc(&t.get(lang, ""))
            }
        }
        Line::Recorded(r) => {
            format!("{} — {}, {}", esc(&r.text), esc(&r.by), fmt_time(r.at))
        }
    }
}

fn cell(value: &Option<Vec<Line>>, lang: Lang) -> String {
    match value {
        None => format!("**{}**", label("missing", lang)),
        Some(lines) => lines.iter().map(|l| line(l, lang)).collect::<Vec<_>>().join("<br>"),
    }
}

/// The report as Markdown.
pub fn markdown(r: &Report, lang: Lang) -> String {
    let l = |k: &str| label(k, lang);
    let mut o = String::new();
    let _ = writeln!(o, "# {} #{}\n", l("title"), r.incident_id);
    let _ = writeln!(
        o,
        "{}: {} · {}: {} · {}: {} · {}: {}\n",
        l("generated"),
        fmt_time(r.generated_at),
        l("state"),
        r.state,
        l("severity"),
        r.severity,
        l("phase"),
        r.nist_phase
    );

    let _ = writeln!(o, "## {}\n", l("template"));
    let _ = writeln!(o, "| {} | {} |\n|---|---|", l("item"), l("description"));
    let f = &r.fields;
    let one = |x: &Option<Line>| x.clone().map(|x| vec![x]);
    for (key, value) in [
        ("date", one(&f.date)),
        ("detected_by", f.detected_by.clone()),
        ("summary", one(&f.summary)),
        ("actions_taken", f.actions_taken.clone()),
        ("root_cause", f.root_cause.clone()),
        ("preventive_measures", f.preventive_measures.clone()),
    ] {
        let _ = writeln!(o, "| {} | {} |", l(key), cell(&value, lang));
    }
    if !f.suggested_measures.is_empty() {
        let _ = writeln!(o, "\n{}:\n", l("suggested"));
        for s in &f.suggested_measures {
            let _ = writeln!(o, "- {}", line(s, lang));
        }
    }

    let _ = writeln!(o, "\n## {}\n", l("timeline"));
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} | {} |\n|---|---|---|---|---|",
        l("time"),
        l("actor"),
        l("kind"),
        l("detail"),
        l("controls")
    );
    for row in &r.timeline {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            fmt_time(row.at),
            esc(&row.actor),
            esc(&row.kind),
            esc(&row.detail),
            row.controls.join(", ")
        );
    }

    let _ = writeln!(o, "\n## {}\n", l("evidence"));
    let _ = writeln!(
        o,
        "{} {}: `{}`\n",
        esc(&kept_of(r.evidence.len(), r.evidence_lines_total, lang)),
        l("evidence_digest"),
        r.evidence_digest
    );
    let _ = writeln!(
        o,
        "| # | {} | {} | SHA-256 | {} | {} |\n|---|---|---|---|---|---|",
        l("file"),
        l("offset"),
        l("line"),
        l("controls")
    );
    for e in &r.evidence {
        let _ = writeln!(
            o,
            "| {} | {} | {} | `{}` | {} | {} |",
            e.item.seq,
            esc(&e.item.file),
            e.item.offset,
            e.item.sha256,
            esc(&e.item.line),
            e.controls.join(", ")
        );
    }

    let _ = writeln!(o, "\n## {}\n", l("people"));
    if r.people.is_empty() {
        let _ = writeln!(o, "**{}**", l("missing"));
    } else {
        let _ = writeln!(o, "| {} | {} | {} |\n|---|---|---|", l("name"), l("roles"), l("actions"));
        for p in &r.people {
            let roles = if p.roles.is_empty() {
                format!("**{}**", l("missing"))
            } else {
                p.roles.iter().map(|x| esc(x)).collect::<Vec<_>>().join(", ")
            };
            let actions: Vec<String> =
                p.actions.iter().map(|(k, n)| format!("{} ×{n}", esc(k))).collect();
            let _ = writeln!(o, "| {} | {} | {} |", esc(&p.name), roles, actions.join(", "));
        }
    }

    let _ = writeln!(o, "\n## {}\n", l("lessons"));
    for n in &r.lessons.notes {
        if lang == Lang::Both {
            let _ = writeln!(o, "- {}\n  {}", esc(&n.en), esc(&n.ja));
        } else {
            let _ = writeln!(o, "- {}", esc(&n.get(lang, "")));
        }
    }

    let _ = writeln!(o, "\n## {}\n", l("metrics"));
    let _ = writeln!(o, "{}\n", l("metric_note"));
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} |\n|---|---|---|---|",
        l("metric"),
        l("from"),
        l("to"),
        l("duration")
    );
    for m in &r.metrics {
        let missing = format!("**{}**", l("missing"));
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            l(m.name),
            fmt_time(m.from),
            m.to.map(fmt_time).unwrap_or_else(|| missing.clone()),
            m.seconds.map(fmt_duration).unwrap_or(missing)
        );
    }

    let _ = writeln!(o, "\n## {}\n", l("isms"));
    let _ = writeln!(o, "{}\n", l("isms_note"));
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} |\n|---|---|---|---|",
        l("control"),
        l("title_col"),
        l("timeline_rows"),
        l("evidence_rows")
    );
    for c in &r.controls {
        let _ = writeln!(
            o,
            "| A.{} | {} | {} | {} |",
            c.number, c.title, c.timeline_rows, c.evidence_rows
        );
    }
    o
}
