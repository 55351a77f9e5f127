//! `hikeshi recent`: the runbook's `find / -mtime -1 -type f -exec ls -l
//! {} \;`, faster and harder to fool. Lists regular files whose mtime *or
//! ctime* falls in the window (a backdated mtime cannot hide a fresh
//! ctime), walking each root in parallel on its own filesystem, never
//! following symlinks, skipping `proc`, `sys`, `dev` and `run`.
//!
//! Output is sorted by path. Unreadable directories are reported on
//! stderr and counted, never fatal. Exit code 0 (recent files are normal
//! on a live host; it is the list that matters), 2 on errors.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use hikeshi_core::eradicate::parse_window;
use hikeshi_core::incident::{Actor, IncidentId};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::Context;
use crate::eradicate::collect::default_roots;
use crate::eradicate::ls::{ls_line, DateCache, Names};
use crate::eradicate::report::{after, rfc3339, RecentFile};
use crate::eradicate::rootfs::{Meta, RootFs};
use crate::eradicate::walk::{path_bytes, walk, WalkOptions};
use crate::evidence::{self, Document, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `ls -l` lines, as `find ... -exec ls -l {} \;` prints them.
    Ls,
    /// One JSON object per file.
    Jsonl,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The window: files changed within this long ago (24h, 1d, 30m, 2w).
    #[arg(long, value_name = "DURATION", default_value = "24h", conflicts_with = "newer_than")]
    pub since: String,
    /// Files changed after this file's modification time instead (like `find -newer`).
    #[arg(long, value_name = "FILE")]
    pub newer_than: Option<PathBuf>,
    /// A tree to walk (repeatable); default /.
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// Skip paths matching GLOB (over the full path; repeatable). A matching
    /// directory is not entered.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    #[arg(long, value_enum, default_value = "ls")]
    pub format: Format,
    /// Also enter other filesystems mounted inside a root (default: one
    /// filesystem per root, like `find -xdev`).
    #[arg(long)]
    pub all_filesystems: bool,
    /// Worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Attach the list (as `--format jsonl` prints it, with its SHA-256)
    /// to incident N as evidence, with a timeline entry.
    #[arg(long, value_name = "N")]
    pub incident: Option<IncidentId>,
}

/// Compiles exclude globs; a bad glob is an error that names it.
pub fn build_globs<'a>(globs: impl IntoIterator<Item = &'a String>) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for g in globs {
        builder.add(Glob::new(g).with_context(|| format!("bad --exclude glob {g:?}"))?);
    }
    Ok(builder.build()?)
}

/// The modification time of `file` (following links, as `find -newer` does).
pub fn mtime_of(file: &Path) -> Result<(Timestamp, i64, u32)> {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::metadata(file).with_context(|| format!("--newer-than {}", file.display()))?;
    let nsec = u32::try_from(meta.mtime_nsec()).unwrap_or(0);
    let t = Timestamp::new(meta.mtime(), nsec as i32)?;
    Ok((t, meta.mtime(), nsec))
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    // Checked first: a wrong incident number must not cost a whole walk.
    let mut target = args.incident.map(|id| Target::open(ctx, id)).transpose()?;
    let now = Timestamp::now();
    let start: (i64, u32) = match &args.newer_than {
        Some(file) => {
            let (_, sec, nsec) = mtime_of(file)?;
            (sec, nsec)
        }
        None => {
            let seconds = parse_window(&args.since).map_err(anyhow::Error::msg)?;
            (now.as_second() - seconds, now.subsec_nanosecond().max(0) as u32)
        }
    };
    let roots = default_roots(args.roots);
    for root in &roots {
        // A root that is not there is a usage error, not an unreadable subdirectory.
        let meta = std::fs::metadata(root).with_context(|| format!("--root {}", root.display()))?;
        anyhow::ensure!(meta.is_dir(), "--root {} is not a directory", root.display());
    }
    let excludes = build_globs(ctx.config.eradicate.exclude.iter().chain(&args.exclude))?;
    let options =
        WalkOptions { roots: roots.clone(), excludes, all_filesystems: args.all_filesystems };
    let select =
        |m: &Meta| after(m.mtime, m.mtime_nsec, start) || after(m.ctime, m.ctime_nsec, start);
    let result = match args.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()?
            .install(|| walk(&options, select)),
        None => walk(&options, select),
    };

    // Names come from each root's own /etc/passwd (an image's, or the host's for /).
    let names: Vec<(PathBuf, Names)> = roots
        .iter()
        .map(|r| (r.clone(), RootFs::open(r).map(|fs| Names::load(&fs)).unwrap_or_default()))
        .collect();
    let names_for = |path: &Path| {
        if names.len() == 1 {
            return names.first().map(|(_, n)| n);
        }
        names
            .iter()
            .filter(|(r, _)| path.starts_with(r))
            .max_by_key(|(r, _)| r.as_os_str().len())
            .map(|(_, n)| n)
    };
    let tz = TimeZone::system();
    let empty = Names::default();
    let mut dates = DateCache::default();
    let mut out = BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
    // The JSONL of every hit, kept whole when it is to be attached.
    let mut jsonl: Vec<u8> = Vec::new();
    for hit in &result.hits {
        let names = names_for(&hit.path).unwrap_or(&empty);
        let m = &hit.meta;
        if args.format == Format::Ls {
            out.write_all(&ls_line(path_bytes(&hit.path), m, names, &mut dates, now, &tz))?;
        }
        if args.format == Format::Jsonl || target.is_some() {
            let file = RecentFile::new(path_bytes(&hit.path), m, names, start);
            let line_start = jsonl.len();
            serde_json::to_writer(&mut jsonl, &file)?;
            jsonl.push(b'\n');
            if args.format == Format::Jsonl {
                out.write_all(&jsonl[line_start..])?;
                if target.is_none() {
                    jsonl.clear();
                }
            }
        }
    }
    out.flush()?;
    drop(out);
    let mut stderr = std::io::stderr().lock();
    for e in &result.errors {
        writeln!(stderr, "hikeshi: recent: cannot read {}: {}", e.path.display(), e.error)?;
    }
    writeln!(
        stderr,
        "hikeshi: recent: {} files changed since {} ({} files in {} directories examined; {} unreadable; {} other filesystems not entered)",
        result.hits.len(),
        rfc3339(start.0, start.1),
        result.files_seen,
        result.dirs_seen,
        result.errors.len(),
        result.other_filesystems
    )?;
    if let Some(target) = &mut target {
        let mut args_named: Vec<(&str, String)> =
            roots.iter().map(|r| ("root", r.display().to_string())).collect();
        match &args.newer_than {
            Some(file) => args_named.push(("newer-than", file.display().to_string())),
            None => args_named.push(("since", args.since.clone())),
        }
        let roots_text: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        let doc = Document {
            producer: evidence::producer("recent", &args_named),
            bytes: jsonl,
            extension: "jsonl",
            summary: format!(
                "recent files under {}: {} changed since {} ({} files examined, {} unreadable)",
                roots_text.join(", "),
                result.hits.len(),
                rfc3339(start.0, start.1),
                result.files_seen,
                result.errors.len()
            ),
        };
        let attached = target.attach(&doc, now, &Actor::Automatic)?;
        writeln!(stderr, "hikeshi: recent: {}", attached.describe())?;
    }
    Ok(ExitCode::SUCCESS)
}
