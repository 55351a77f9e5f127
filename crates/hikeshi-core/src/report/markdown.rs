//! The Markdown renderer. Every dynamic string goes through [`esc`]:
//! Markdown and HTML specials are escaped (GitHub renders inline HTML),
//! and control or invisible characters become visible escapes.

use super::layout::{layout, Block, Span};
use super::text::{label, push_visible_escape, Lang};
use super::{fmt_time, Line, Report, Text};

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

/// Generated text in `lang`; for both, the two escaped and joined by `sep`.
fn generated(t: &Text, lang: Lang, sep: &str) -> String {
    if lang == Lang::Both {
        format!("{}{sep}{}", esc(&t.en), esc(&t.ja))
    } else {
        esc(&t.get(lang, ""))
    }
}

fn line(l: &Line, lang: Lang) -> String {
    match l {
        Line::Generated(t) => generated(t, lang, "<br>"),
        Line::Recorded(r) => {
            format!("{} — {}, {}", esc(&r.text), esc(&r.by), fmt_time(r.at))
        }
    }
}

fn span(s: &Span, lang: Lang) -> String {
    match s {
        Span::Fixed(text) => text.clone(),
        Span::Recorded(text) => esc(text),
        Span::Digest(hex) => format!("`{hex}`"),
        Span::LogLine(text) => esc(text),
        Span::Missing => format!("**{}**", label("missing", lang)),
        Span::Lines(lines) => lines.iter().map(|l| line(l, lang)).collect::<Vec<_>>().join("<br>"),
        Span::Note(note) => generated(note, lang, "\n  "),
    }
}

/// One table row: `| a | b |`.
fn row<T>(cells: impl IntoIterator<Item = T>, cell: impl Fn(T) -> String) -> String {
    cells.into_iter().fold(String::from("|"), |row, c| row + " " + &cell(c) + " |")
}

/// A block's lines, each ending with a newline (none for an empty list).
fn block(b: &Block, lang: Lang) -> String {
    match b {
        Block::Meta(text) => format!("{text}\n"),
        Block::Section(heading) => format!("## {heading}\n"),
        Block::Paragraph(spans) => {
            spans.iter().map(|s| span(s, lang)).chain(["\n".to_string()]).collect()
        }
        Block::List(items) => items.iter().map(|s| format!("- {}\n", span(s, lang))).collect(),
        Block::Table(t) => {
            let mut o = row(&t.header, |h| h.clone()) + "\n";
            o += &"|---".repeat(t.header.len());
            o += "|\n";
            for cells in &t.rows {
                o += &row(cells, |c| span(c, lang));
                o.push('\n');
            }
            o
        }
    }
}

/// The report as Markdown.
pub fn markdown(r: &Report, lang: Lang) -> String {
    let doc = layout(r, lang);
    let title = format!("# {}\n", doc.title);
    // Blocks are separated by one blank line.
    std::iter::once(title)
        .chain(doc.blocks.iter().map(|b| block(b, lang)))
        .collect::<Vec<_>>()
        .join("\n")
}
