//! Languages, the report's labels in English and Japanese, the escaping
//! shared by the renderers, and the JSON renderer.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Report, Text};

/// The language(s) of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Ja,
    /// English and Japanese side by side.
    Both,
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "en" => Ok(Lang::En),
            "ja" => Ok(Lang::Ja),
            "both" => Ok(Lang::Both),
            _ => Err(format!("unknown language {s:?}: expected en, ja or both")),
        }
    }
}

/// Every fixed string of a report: (key, English, Japanese).
const LABELS: &[(&str, &str, &str)] = &[
    ("title", "Incident report", "インシデント報告書"),
    ("generated", "Generated", "作成日時"),
    ("state", "State", "状態"),
    ("severity", "Severity", "深刻度"),
    ("phase", "NIST SP 800-61 phase", "NIST SP 800-61 フェーズ"),
    ("template", "Report", "報告"),
    ("item", "Item", "項目"),
    ("description", "Description", "内容"),
    ("date", "Date", "発生日"),
    ("detected_by", "Detected by", "検知元"),
    ("summary", "Summary", "概要"),
    ("actions_taken", "Actions Taken", "対応内容"),
    ("root_cause", "Root Cause", "根本原因"),
    ("preventive_measures", "Preventive Measures", "再発防止策"),
    ("suggested", "Suggested measures (from the hardening audit; not yet recorded)", "推奨される対策（堅牢化監査より。未記録）"),
    ("missing", "missing", "未記録"),
    ("timeline", "Timeline", "タイムライン"),
    ("time", "Time", "日時"),
    ("actor", "Actor", "実施者"),
    ("kind", "Event", "種別"),
    ("detail", "Detail", "詳細"),
    ("controls", "ISO/IEC 27001:2022", "ISO/IEC 27001:2022"),
    ("evidence", "Evidence", "証拠"),
    ("evidence_digest", "Chained SHA-256 of all lines", "全行の連鎖 SHA-256"),
    ("file", "File", "ファイル"),
    ("offset", "Offset", "オフセット"),
    ("line", "Line", "ログ行"),
    ("people", "People and roles", "担当者と役割"),
    ("name", "Name", "氏名"),
    ("roles", "Roles", "役割"),
    ("actions", "Recorded actions", "記録された対応"),
    ("lessons", "Lessons learned", "教訓"),
    ("metrics", "Metrics", "指標"),
    ("metric", "Metric", "指標"),
    ("from", "From", "起点"),
    ("to", "To", "終点"),
    ("duration", "Duration", "所要時間"),
    ("time_to_detect", "Time to detect", "検知までの時間"),
    ("time_to_contain", "Time to contain", "封じ込めまでの時間"),
    ("time_to_recover", "Time to recover", "復旧までの時間"),
    ("time_to_close", "Time to close", "クローズまでの時間"),
    ("isms", "ISO/IEC 27001:2022 Annex A controls", "ISO/IEC 27001:2022 附属書 A 管理策"),
    ("control", "Control", "管理策"),
    ("title_col", "Title", "名称"),
    ("timeline_rows", "Timeline rows", "タイムライン件数"),
    ("evidence_rows", "Evidence rows", "証拠件数"),
    (
        "isms_note",
        "The runbook cites A.5.29, A.5.30, A.5.31, A.8.16 and A.8.23; in ISO/IEC 27001:2022 those \
         meanings are controls 6.8, 5.26, 5.27, 8.15 (with 5.28 for evidence) and 8.8, which this \
         report uses.",
        "運用手順書は A.5.29、A.5.30、A.5.31、A.8.16、A.8.23 を挙げていますが、ISO/IEC 27001:2022 \
         でその内容に当たるのは 6.8、5.26、5.27、8.15（証拠は 5.28）、8.8 であり、本報告書はそれを用います。",
    ),
    ("from_opening", "measured from the incident's opening", "起票時点から計測"),
    ("metric_note", "Time to detect runs from the first attack line to the opening; the others from the opening.", "検知までの時間は最初の攻撃ログ行から起票まで、その他は起票から計測。"),
];

/// The label `key` in `lang` (`English / 日本語` for both).
pub(super) fn label(key: &str, lang: Lang) -> String {
    let (_, en, ja) = LABELS
        .iter()
        .find(|(k, _, _)| *k == key)
        .unwrap_or_else(|| panic!("report label {key:?} is missing from LABELS"));
    pick(en, ja, lang, " / ")
}

/// "7 of 9 line(s) kept." in `lang`.
pub(super) fn kept_of(kept: usize, total: u64, lang: Lang) -> String {
    pick(
        &format!("{kept} of {total} line(s) kept."),
        &format!("全 {total} 行中 {kept} 行を保全。"),
        lang,
        " / ",
    )
}

/// `en`, `ja`, or both joined by `sep`.
pub(super) fn pick(en: &str, ja: &str, lang: Lang, sep: &str) -> String {
    match lang {
        Lang::En => en.to_string(),
        Lang::Ja => ja.to_string(),
        Lang::Both if en == ja => en.to_string(),
        Lang::Both => format!("{en}{sep}{ja}"),
    }
}

impl Text {
    /// This text in `lang`, both joined by `sep`.
    pub fn get(&self, lang: Lang, sep: &str) -> String {
        pick(&self.en, &self.ja, lang, sep)
    }
}

/// Characters that change how text is displayed without showing
/// themselves: bidirectional overrides and isolates, zero-width
/// characters, line and paragraph separators, the byte order mark.
pub(super) fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Writes `c` as a visible escape (`\u{1b}`) if it is a control or
/// invisible formatting character; returns whether it did.
pub(super) fn push_visible_escape(out: &mut String, c: char) -> bool {
    if c.is_control() || is_invisible_format(c) {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
        true
    } else {
        false
    }
}

/// The report as pretty JSON. Generated texts are strings in `lang`, or
/// `{"en": .., "ja": ..}` objects for both. Missing fields are `null` and
/// listed in `missing`. Characters a terminal might act on are escaped.
pub fn json(report: &Report, lang: Lang) -> String {
    let mut value = serde_json::to_value(report).expect("a report serialises");
    if lang != Lang::Both {
        localise(&mut value, lang);
    }
    if let Value::Object(map) = &mut value {
        map.insert(
            "lang".into(),
            Value::from(match lang {
                Lang::En => "en",
                Lang::Ja => "ja",
                Lang::Both => "both",
            }),
        );
    }
    let mut text = serde_json::to_string_pretty(&value).expect("a JSON value serialises");
    text.push('\n');
    escape_json_text(&text)
}

/// Escapes, in serialised JSON, the characters serde_json leaves raw that
/// a terminal might act on (DEL, C1 controls, invisible formatting). They
/// can only occur inside strings, where `\uXXXX` means the same character.
pub fn escape_json_text(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) || is_invisible_format(c) {
            let _ = write!(safe, "\\u{:04x}", c as u32);
        } else {
            safe.push(c);
        }
    }
    safe
}

/// Replaces every `{"en", "ja"}` object (a [`Text`]) by its `lang` string.
fn localise(value: &mut Value, lang: Lang) {
    match value {
        Value::Object(map) => {
            let is_text = map.len() == 2
                && map.get("en").is_some_and(Value::is_string)
                && map.get("ja").is_some_and(Value::is_string);
            if is_text {
                let key = if lang == Lang::Ja { "ja" } else { "en" };
                *value = map.remove(key).expect("checked above");
                return;
            }
            map.values_mut().for_each(|v| localise(v, lang));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| localise(v, lang)),
        _ => {}
    }
}
