//! The report's layout, shared by the Markdown and HTML renderers: the
//! sections in their order, the facts each one shows and the words
//! (English, Japanese or both) it uses. [`layout`] builds it once from a
//! [`Report`]; a renderer only turns its blocks and spans into markup,
//! escaping each span as its kind requires.

use std::borrow::Cow;

use super::text::{kept_of, label, Lang};
use super::{fmt_duration, fmt_time, Line, Report, Text};

/// A report laid out for a text renderer.
pub(super) struct Layout<'a> {
    /// The document's title (`Incident report #3`): fixed wording.
    pub title: String,
    /// Everything under the title, in order.
    pub blocks: Vec<Block<'a>>,
}

/// One block of the document.
pub(super) enum Block<'a> {
    /// The line under the title (generated, state, severity, phase): fixed
    /// wording.
    Meta(String),
    /// A section heading: fixed wording.
    Section(String),
    Paragraph(Vec<Span<'a>>),
    /// A bulleted list, one span per item (possibly none).
    List(Vec<Span<'a>>),
    Table(Table<'a>),
}

/// A table with a header row.
pub(super) struct Table<'a> {
    /// Column names: fixed wording.
    pub header: Vec<String>,
    pub rows: Vec<Vec<Span<'a>>>,
    /// Whether the first cell of each row names the row (an HTML `<th>`).
    pub row_headers: bool,
}

/// A piece of text, tagged with what it is so that each markup can show
/// and escape it as it must.
pub(super) enum Span<'a> {
    /// The report's own wording or a value it computed (labels, times,
    /// counts, control numbers and titles). Markdown shows it as it is;
    /// HTML escapes it.
    Fixed(String),
    /// Text from the record (names, kinds, details, file names): hostile,
    /// escaped by every markup.
    Recorded(Cow<'a, str>),
    /// A hex digest, shown in monospace.
    Digest(&'a str),
    /// A log line as it was read (hostile), shown in monospace.
    LogLine(&'a str),
    /// The marker of something nobody recorded.
    Missing,
    /// A template field's lines, generated or written by people.
    Lines(&'a [Line]),
    /// A lessons-learned note.
    Note(&'a Text),
}

/// Lays out `r` in `lang`.
pub(super) fn layout(r: &Report, lang: Lang) -> Layout<'_> {
    let l = |k: &str| label(k, lang);
    let mut blocks = vec![Block::Meta(format!(
        "{}: {} · {}: {} · {}: {} · {}: {}",
        l("generated"),
        fmt_time(r.generated_at),
        l("state"),
        r.state,
        l("severity"),
        r.severity,
        l("phase"),
        r.nist_phase
    ))];

    blocks.push(Block::Section(l("template")));
    let f = &r.fields;
    let fields = [
        ("date", f.date.as_ref().map(std::slice::from_ref)),
        ("detected_by", f.detected_by.as_deref()),
        ("summary", f.summary.as_ref().map(std::slice::from_ref)),
        ("actions_taken", f.actions_taken.as_deref()),
        ("root_cause", f.root_cause.as_deref()),
        ("preventive_measures", f.preventive_measures.as_deref()),
    ];
    blocks.push(Block::Table(Table {
        header: vec![l("item"), l("description")],
        rows: fields
            .into_iter()
            .map(|(key, lines)| vec![Span::Fixed(l(key)), lines.map_or(Span::Missing, Span::Lines)])
            .collect(),
        row_headers: true,
    }));
    if !f.suggested_measures.is_empty() {
        blocks.push(Block::Paragraph(vec![Span::Fixed(format!("{}:", l("suggested")))]));
        blocks.push(Block::List(
            f.suggested_measures.iter().map(|s| Span::Lines(std::slice::from_ref(s))).collect(),
        ));
    }

    blocks.push(Block::Section(l("timeline")));
    blocks.push(Block::Table(Table {
        header: vec![l("time"), l("actor"), l("kind"), l("detail"), l("controls")],
        rows: r
            .timeline
            .iter()
            .map(|row| {
                vec![
                    Span::Fixed(fmt_time(row.at)),
                    Span::Recorded(Cow::Borrowed(&row.actor)),
                    Span::Recorded(Cow::Borrowed(&row.kind)),
                    Span::Recorded(Cow::Borrowed(&row.detail)),
                    Span::Fixed(row.controls.join(", ")),
                ]
            })
            .collect(),
        row_headers: false,
    }));

    blocks.push(Block::Section(l("evidence")));
    blocks.push(Block::Paragraph(vec![
        Span::Fixed(format!(
            "{} {}: ",
            kept_of(r.evidence.len(), r.evidence_lines_total, lang),
            l("evidence_digest")
        )),
        Span::Digest(&r.evidence_digest),
    ]));
    blocks.push(Block::Table(Table {
        header: vec![
            "#".into(),
            l("file"),
            l("offset"),
            "SHA-256".into(),
            l("line"),
            l("controls"),
        ],
        rows: r
            .evidence
            .iter()
            .map(|e| {
                vec![
                    Span::Fixed(e.item.seq.to_string()),
                    Span::Recorded(Cow::Borrowed(&e.item.file)),
                    Span::Fixed(e.item.offset.to_string()),
                    Span::Digest(&e.item.sha256),
                    Span::LogLine(&e.item.line),
                    Span::Fixed(e.controls.join(", ")),
                ]
            })
            .collect(),
        row_headers: false,
    }));

    blocks.push(Block::Section(l("people")));
    if r.people.is_empty() {
        blocks.push(Block::Paragraph(vec![Span::Missing]));
    } else {
        blocks.push(Block::Table(Table {
            header: vec![l("name"), l("roles"), l("actions")],
            rows: r
                .people
                .iter()
                .map(|p| {
                    let roles = if p.roles.is_empty() {
                        Span::Missing
                    } else {
                        Span::Recorded(Cow::Owned(p.roles.join(", ")))
                    };
                    let actions: Vec<String> =
                        p.actions.iter().map(|(kind, n)| format!("{kind} ×{n}")).collect();
                    vec![
                        Span::Recorded(Cow::Borrowed(&p.name)),
                        roles,
                        Span::Recorded(Cow::Owned(actions.join(", "))),
                    ]
                })
                .collect(),
            row_headers: false,
        }));
    }

    blocks.push(Block::Section(l("lessons")));
    blocks.push(Block::List(r.lessons.notes.iter().map(Span::Note).collect()));

    blocks.push(Block::Section(l("metrics")));
    blocks.push(Block::Paragraph(vec![Span::Fixed(l("metric_note"))]));
    blocks.push(Block::Table(Table {
        header: vec![l("metric"), l("from"), l("to"), l("duration")],
        rows: r
            .metrics
            .iter()
            .map(|m| {
                vec![
                    Span::Fixed(l(m.name)),
                    Span::Fixed(fmt_time(m.from)),
                    m.to.map_or(Span::Missing, |to| Span::Fixed(fmt_time(to))),
                    m.seconds.map_or(Span::Missing, |s| Span::Fixed(fmt_duration(s))),
                ]
            })
            .collect(),
        row_headers: true,
    }));

    blocks.push(Block::Section(l("isms")));
    blocks.push(Block::Paragraph(vec![Span::Fixed(l("isms_note"))]));
    blocks.push(Block::Table(Table {
        header: vec![l("control"), l("title_col"), l("timeline_rows"), l("evidence_rows")],
        rows: r
            .controls
            .iter()
            .map(|c| {
                vec![
                    Span::Fixed(format!("A.{}", c.number)),
                    Span::Fixed(c.title.to_string()),
                    Span::Fixed(c.timeline_rows.to_string()),
                    Span::Fixed(c.evidence_rows.to_string()),
                ]
            })
            .collect(),
        row_headers: false,
    }));

    Layout { title: format!("{} #{}", l("title"), r.incident_id), blocks }
}
