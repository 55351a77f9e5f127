//! The baseline diff: a streaming merge of two record sequences sorted in
//! [`path_cmp`] order. It holds one record of each side at a time, so
//! checking a tree of millions of files needs memory for the differences
//! only, never for either tree.

use std::cmp::Ordering;

use thiserror::Error;

use super::path::{display, path_cmp};
use super::record::{AttrChange, FileRecord};

/// One difference between the baseline and the current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// In the current state only.
    Added(FileRecord),
    /// In the baseline only.
    Removed(FileRecord),
    /// In both, with these attributes differing.
    Changed { old: Box<FileRecord>, new: Box<FileRecord>, changes: Vec<AttrChange> },
}

/// Why a merge stopped.
#[derive(Debug, Error)]
pub enum DiffError<E> {
    /// A side produced an error (I/O, a corrupt baseline).
    #[error(transparent)]
    Source(E),
    /// A side was not sorted; merging it would report nonsense.
    #[error("the {side} records are not in path order at {path}")]
    OutOfOrder { side: &'static str, path: String },
}

/// How many records each side had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeCounts {
    pub old: u64,
    pub new: u64,
}

struct Sorted<I> {
    inner: I,
    last: Option<Vec<u8>>,
    side: &'static str,
    count: u64,
}

impl<I, E> Sorted<I>
where
    I: Iterator<Item = Result<FileRecord, E>>,
{
    fn next(&mut self) -> Result<Option<FileRecord>, DiffError<E>> {
        let Some(item) = self.inner.next() else { return Ok(None) };
        let record = item.map_err(DiffError::Source)?;
        if let Some(last) = &self.last {
            if path_cmp(last, &record.path) != Ordering::Less {
                return Err(DiffError::OutOfOrder { side: self.side, path: display(&record.path) });
            }
        }
        self.last = Some(record.path.clone());
        self.count += 1;
        Ok(Some(record))
    }
}

/// Merges `old` (the baseline) and `new` (the current walk), calling
/// `on_change` for each difference in path order.
pub fn diff<E>(
    old: impl Iterator<Item = Result<FileRecord, E>>,
    new: impl Iterator<Item = Result<FileRecord, E>>,
    mut on_change: impl FnMut(Change),
) -> Result<MergeCounts, DiffError<E>> {
    let mut old = Sorted { inner: old, last: None, side: "baseline", count: 0 };
    let mut new = Sorted { inner: new, last: None, side: "current", count: 0 };
    let mut left = old.next()?;
    let mut right = new.next()?;
    loop {
        match (left.take(), right.take()) {
            (None, None) => break,
            (Some(o), None) => {
                on_change(Change::Removed(o));
                left = old.next()?;
            }
            (None, Some(n)) => {
                on_change(Change::Added(n));
                right = new.next()?;
            }
            (Some(o), Some(n)) => match path_cmp(&o.path, &n.path) {
                Ordering::Less => {
                    on_change(Change::Removed(o));
                    left = old.next()?;
                    right = Some(n);
                }
                Ordering::Greater => {
                    on_change(Change::Added(n));
                    left = Some(o);
                    right = new.next()?;
                }
                Ordering::Equal => {
                    let changes = FileRecord::compare(&o, &n);
                    if !changes.is_empty() {
                        on_change(Change::Changed { old: Box::new(o), new: Box::new(n), changes });
                    }
                    left = old.next()?;
                    right = new.next()?;
                }
            },
        }
    }
    Ok(MergeCounts { old: old.count, new: new.count })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::fim::attrs::{Attr, AttrSet};

    fn rec(path: &str, size: u64) -> FileRecord {
        FileRecord {
            path: path.as_bytes().to_vec(),
            attrs: AttrSet::of(&[Attr::Size]),
            size,
            ..FileRecord::default()
        }
    }

    fn ok(records: Vec<FileRecord>) -> impl Iterator<Item = Result<FileRecord, String>> {
        records.into_iter().map(Ok)
    }

    fn summary(old: Vec<FileRecord>, new: Vec<FileRecord>) -> Vec<(char, String)> {
        let mut out = Vec::new();
        diff(ok(old), ok(new), |c| {
            out.push(match c {
                Change::Added(r) => ('+', display(&r.path)),
                Change::Removed(r) => ('-', display(&r.path)),
                Change::Changed { new, .. } => ('~', display(&new.path)),
            })
        })
        .unwrap();
        out
    }

    #[test]
    fn added_removed_changed_in_order() {
        let old = vec![rec("/a", 1), rec("/a/b", 1), rec("/a-c", 1), rec("/d", 1)];
        let new = vec![rec("/a", 1), rec("/a/b", 2), rec("/a/b/z", 1), rec("/d", 1), rec("/e", 1)];
        assert_eq!(
            summary(old, new),
            vec![
                ('~', "/a/b".into()),
                ('+', "/a/b/z".into()),
                ('-', "/a-c".into()),
                ('+', "/e".into())
            ]
        );
    }

    #[test]
    fn unsorted_input_is_an_error_not_a_wrong_answer() {
        let old = vec![rec("/b", 1), rec("/a", 1)];
        let err = diff(ok(old), ok(vec![]), |_| {}).unwrap_err();
        assert!(err.to_string().contains("baseline") && err.to_string().contains("/a"), "{err}");
        let dup = vec![rec("/a", 1), rec("/a", 1)];
        assert!(diff(ok(vec![]), ok(dup), |_| {}).is_err());
    }

    #[test]
    fn source_errors_stop_the_merge() {
        let old = vec![Ok(rec("/a", 1)), Err("corrupt record 2".to_string())];
        let err = diff(old.into_iter(), ok(vec![]), |_| {}).unwrap_err();
        assert!(matches!(err, DiffError::Source(ref e) if e == "corrupt record 2"));
    }

    proptest! {
        /// The merge agrees with a naive comparison of two maps.
        #[test]
        fn merge_matches_a_map_model(
            old in proptest::collection::btree_map("/[ab]{1,2}(/[ab-]{1,2}){0,2}", 0u64..3, 0..20),
            new in proptest::collection::btree_map("/[ab]{1,2}(/[ab-]{1,2}){0,2}", 0u64..3, 0..20),
        ) {
            let sorted = |m: &BTreeMap<String, u64>| {
                let mut v: Vec<FileRecord> = m.iter().map(|(p, s)| rec(p, *s)).collect();
                v.sort_by(|a, b| path_cmp(&a.path, &b.path));
                v.dedup_by(|a, b| path_cmp(&a.path, &b.path) == Ordering::Equal);
                v
            };
            let (old_v, new_v) = (sorted(&old), sorted(&new));
            let old_m: BTreeMap<Vec<u8>, u64> = old_v.iter().map(|r| (r.path.clone(), r.size)).collect();
            let new_m: BTreeMap<Vec<u8>, u64> = new_v.iter().map(|r| (r.path.clone(), r.size)).collect();
            let mut expected = Vec::new();
            for (p, s) in &old_m {
                match new_m.get(p) {
                    None => expected.push(('-', display(p))),
                    Some(n) if n != s => expected.push(('~', display(p))),
                    _ => {}
                }
            }
            for p in new_m.keys().filter(|p| !old_m.contains_key(*p)) {
                expected.push(('+', display(p)));
            }
            let mut got = summary(old_v, new_v);
            expected.sort();
            got.sort();
            prop_assert_eq!(got, expected);
        }
    }
}
