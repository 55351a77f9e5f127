//! The HTML renderer: one self-contained file (inline CSS with print
//! rules, no script, no external resource) that prints well. Every dynamic
//! string goes through [`esc`]; control and invisible characters become
//! visible escapes.

use std::fmt::Write as _;

use super::layout::{layout, Block, Span};
use super::text::{label, push_visible_escape, Lang};
use super::{fmt_time, Line, Report};

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

fn span(s: &Span, lang: Lang) -> String {
    match s {
        Span::Fixed(text) => esc(text),
        Span::Recorded(text) => esc(text),
        Span::Digest(hex) => format!("<code>{}</code>", esc(hex)),
        Span::LogLine(text) => esc(text),
        Span::Missing => missing(lang),
        Span::Lines([one]) => line(one, lang),
        Span::Lines(lines) => format!(
            "<ul>{}</ul>",
            lines.iter().map(|x| format!("<li>{}</li>", line(x, lang))).collect::<String>()
        ),
        Span::Note(note) => text(&note.en, &note.ja, lang),
    }
}

/// A table cell; digests and log lines are set in monospace.
fn cell(s: &Span, lang: Lang) -> String {
    match s {
        Span::Digest(text) | Span::LogLine(text) => {
            format!("<td class=\"mono\">{}</td>", esc(text))
        }
        _ => format!("<td>{}</td>", span(s, lang)),
    }
}

fn block(o: &mut String, b: &Block, lang: Lang) {
    match b {
        Block::Meta(text) => {
            let _ = writeln!(o, "<p class=\"meta\">{}</p>", esc(text));
        }
        Block::Section(heading) => {
            let _ = writeln!(o, "<h2>{}</h2>", esc(heading));
        }
        Block::Paragraph(spans) => {
            let text: String = spans.iter().map(|s| span(s, lang)).collect();
            let _ = writeln!(o, "<p>{text}</p>");
        }
        Block::List(items) => {
            let _ = writeln!(o, "<ul>");
            for item in items {
                let _ = writeln!(o, "<li>{}</li>", span(item, lang));
            }
            let _ = writeln!(o, "</ul>");
        }
        Block::Table(t) => {
            let header: String = t.header.iter().map(|h| format!("<th>{}</th>", esc(h))).collect();
            let _ = writeln!(o, "<table>\n<tr>{header}</tr>");
            for cells in &t.rows {
                let mut row = String::new();
                for (i, c) in cells.iter().enumerate() {
                    if i == 0 && t.row_headers {
                        row += &format!("<th>{}</th>", span(c, lang));
                    } else {
                        row += &cell(c, lang);
                    }
                }
                let _ = writeln!(o, "<tr>{row}</tr>");
            }
            let _ = writeln!(o, "</table>");
        }
    }
}

/// The report as one self-contained HTML document.
pub fn html(r: &Report, lang: Lang) -> String {
    let doc = layout(r, lang);
    let title = esc(&doc.title);
    let html_lang = if lang == Lang::Ja { "ja" } else { "en" };
    let mut o = format!(
        "<!DOCTYPE html>\n<html lang=\"{html_lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    for b in &doc.blocks {
        block(&mut o, b, lang);
    }
    o += "</body>\n</html>\n";
    o
}
