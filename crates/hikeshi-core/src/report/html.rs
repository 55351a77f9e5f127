//! The HTML renderer: one self-contained file (inline CSS with print
//! rules, no script, no external resource) that prints well. Every dynamic
//! string goes through [`esc`]; control and invisible characters become
//! visible escapes.

use std::fmt::Write as _;

use super::text::{kept_of, label, push_visible_escape, Lang};
use super::{fmt_duration, fmt_time, Line, Report};

/// Escapes `s` for HTML text and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => {
                if !push_visible_escape(&mut out, c) {
                    out.push(c);
                }
            }
        }
    }
    out
}

const STYLE: &str = "
body { font-family: system-ui, 'Hiragino Sans', 'Noto Sans CJK JP', sans-serif; margin: 2em auto; max-width: 60em; color: #111; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #b22; padding-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; font-size: .92em; }
th, td { border: 1px solid #bbb; padding: .3em .5em; vertical-align: top; text-align: left; }
th { background: #f2f2f2; }
td.mono, code { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: .85em; word-break: break-all; }
.missing { color: #b22; font-weight: bold; }
.meta { color: #444; }
.ja { display: block; color: #333; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  h2 { page-break-after: avoid; }
  tr, li { page-break-inside: avoid; }
  th { background: #eee !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a { color: inherit; text-decoration: none; }
}
";

fn text(en: &str, ja: &str, lang: Lang) -> String {
    match lang {
        Lang::En => esc(en),
        Lang::Ja => esc(ja),
        Lang::Both => format!("{}<span class=\"ja\" lang=\"ja\">{}</span>", esc(en), esc(ja)),
    }
}

fn line(l: &Line, lang: Lang) -> String {
    match l {
        Line::Generated(t) => text(&t.en, &t.ja, lang),
        Line::Recorded(r) => format!(
            "{} <span class=\"meta\">— {}, {}</span>",
            esc(&r.text),
            esc(&r.by),
            fmt_time(r.at)
        ),
    }
}

fn missing(lang: Lang) -> String {
    format!("<span class=\"missing\">{}</span>", esc(&label("missing", lang)))
}

/// The report as one self-contained HTML document.
pub fn html(r: &Report, lang: Lang) -> String {
    let l = |k: &str| esc(&label(k, lang));
    let mut o = String::new();
    let html_lang = if lang == Lang::Ja { "ja" } else { "en" };
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"{html_lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} #{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        l("title"),
        r.incident_id
    );
    let _ = writeln!(o, "<h1>{} #{}</h1>", l("title"), r.incident_id);
    let _ = writeln!(
        o,
        "<p class=\"meta\">{}: {} · {}: {} · {}: {} · {}: {}</p>",
        l("generated"),
        fmt_time(r.generated_at),
        l("state"),
        r.state,
        l("severity"),
        r.severity,
        l("phase"),
        esc(r.nist_phase)
    );

    let _ = writeln!(o, "<h2>{}</h2>\n<table>", l("template"));
    let _ = writeln!(o, "<tr><th>{}</th><th>{}</th></tr>", l("item"), l("description"));
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
        let cell = match value {
            None => missing(lang),
            Some(lines) if lines.len() == 1 => line(&lines[0], lang),
            Some(lines) => format!(
                "<ul>{}</ul>",
                lines.iter().map(|x| format!("<li>{}</li>", line(x, lang))).collect::<String>()
            ),
        };
        let _ = writeln!(o, "<tr><th>{}</th><td>{cell}</td></tr>", l(key));
    }
    let _ = writeln!(o, "</table>");
    if !f.suggested_measures.is_empty() {
        let _ = writeln!(o, "<p>{}:</p>\n<ul>", l("suggested"));
        for s in &f.suggested_measures {
            let _ = writeln!(o, "<li>{}</li>", line(s, lang));
        }
        let _ = writeln!(o, "</ul>");
    }

    let _ = writeln!(o, "<h2>{}</h2>\n<table>", l("timeline"));
    let _ = writeln!(
        o,
        "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        l("time"),
        l("actor"),
        l("kind"),
        l("detail"),
        l("controls")
    );
    for row in &r.timeline {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            fmt_time(row.at),
            esc(&row.actor),
            esc(&row.kind),
            esc(&row.detail),
            row.controls.join(", ")
        );
    }
    let _ = writeln!(o, "</table>");

    let _ = writeln!(o, "<h2>{}</h2>", l("evidence"));
    let _ = writeln!(
        o,
        "<p>{} {}: <code>{}</code></p>\n<table>",
        esc(&kept_of(r.evidence.len(), r.evidence_lines_total, lang)),
        l("evidence_digest"),
        esc(&r.evidence_digest)
    );
    let _ = writeln!(
        o,
        "<tr><th>#</th><th>{}</th><th>{}</th><th>SHA-256</th><th>{}</th><th>{}</th></tr>",
        l("file"),
        l("offset"),
        l("line"),
        l("controls")
    );
    for e in &r.evidence {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td>\
             <td class=\"mono\">{}</td><td>{}</td></tr>",
            e.item.seq,
            esc(&e.item.file),
            e.item.offset,
            esc(&e.item.sha256),
            esc(&e.item.line),
            e.controls.join(", ")
        );
    }
    let _ = writeln!(o, "</table>");

    let _ = writeln!(o, "<h2>{}</h2>", l("people"));
    if r.people.is_empty() {
        let _ = writeln!(o, "<p>{}</p>", missing(lang));
    } else {
        let _ = writeln!(
            o,
            "<table>\n<tr><th>{}</th><th>{}</th><th>{}</th></tr>",
            l("name"),
            l("roles"),
            l("actions")
        );
        for p in &r.people {
            let roles = if p.roles.is_empty() {
                missing(lang)
            } else {
                p.roles.iter().map(|x| esc(x)).collect::<Vec<_>>().join(", ")
            };
            let actions: Vec<String> =
                p.actions.iter().map(|(k, n)| format!("{} ×{n}", esc(k))).collect();
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{roles}</td><td>{}</td></tr>",
                esc(&p.name),
                actions.join(", ")
            );
        }
        let _ = writeln!(o, "</table>");
    }

    let _ = writeln!(o, "<h2>{}</h2>\n<ul>", l("lessons"));
    for n in &r.lessons.notes {
        let _ = writeln!(o, "<li>{}</li>", text(&n.en, &n.ja, lang));
    }
    let _ = writeln!(o, "</ul>");

    let _ = writeln!(o, "<h2>{}</h2>\n<p>{}</p>\n<table>", l("metrics"), l("metric_note"));
    let _ = writeln!(
        o,
        "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        l("metric"),
        l("from"),
        l("to"),
        l("duration")
    );
    for m in &r.metrics {
        let _ = writeln!(
            o,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            l(m.name),
            fmt_time(m.from),
            m.to.map(fmt_time).unwrap_or_else(|| missing(lang)),
            m.seconds.map(fmt_duration).unwrap_or_else(|| missing(lang))
        );
    }
    let _ = writeln!(o, "</table>");

    let _ = writeln!(o, "<h2>{}</h2>\n<p>{}</p>\n<table>", l("isms"), l("isms_note"));
    let _ = writeln!(
        o,
        "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        l("control"),
        l("title_col"),
        l("timeline_rows"),
        l("evidence_rows")
    );
    for c in &r.controls {
        let _ = writeln!(
            o,
            "<tr><td>A.{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.number,
            esc(c.title),
            c.timeline_rows,
            c.evidence_rows
        );
    }
    let _ = writeln!(o, "</table>\n</body>\n</html>");
    o
}
