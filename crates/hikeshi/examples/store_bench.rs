//! Evidence-insert throughput of the incident store (run it through
//! `bench/store-evidence.sh`, which builds it in release mode).
//!
//! A 1M-line attack log gives about 500k evidence lines. This writes 500k
//! lines the way `hikeshi scan` does (one observation per failed line,
//! one transaction per batch with a cursor update) in two shapes:
//!
//! - `one-attacker`: every line belongs to one incident, so the evidence
//!   cap applies (first/latest lines kept, all counted and digested);
//! - `500 attackers`: a botnet, lines interleaved, 1,000 lines each, so
//!   the cap applies to each;
//! - `many-attackers`: 50,000 sources with 10 lines each, all under the
//!   cap, so every line is written: the worst case for the database;
//!   once with an observation per line, once with one per 10 lines (a
//!   detector's finding carrying its lines).
//!
//! The peer measured in the same run is the floor any scan pays for
//! those lines: splitting the log into lines and hashing each one.
//!
//! Each scenario runs twice: with the audit trail (every write chained
//! by the `audit_log` triggers, as shipped) and without it (the schema
//! before the audit migration), so its cost is measured in the same run.
//!
//! Usage: store_bench [LINES] [BATCH_LINES] [SCENARIO-SUBSTRING]

use std::hint::black_box;
use std::time::Duration;

use hikeshi::store::{schema, Migration, Store, StoreOptions, MIGRATIONS};
use hikeshi_core::incident::{CampaignKey, Evidence, Observation};
use hikeshi_core::Severity;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

fn main() {
    let mut args = std::env::args().skip(1);
    let lines: usize = args.next().map_or(500_000, |a| a.parse().expect("LINES"));
    let batch_lines: usize = args.next().map_or(10_000, |a| a.parse().expect("BATCH_LINES"));
    let only: Option<String> = args.next();

    let log = synthetic_log(lines);
    println!("lines: {lines}, batch: {batch_lines} lines, log: {} MiB", log.len() >> 20);

    let floor = time_best(3, || {
        let mut n = 0usize;
        for line in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            black_box(Sha256::digest(line));
            n += 1;
        }
        assert_eq!(n, lines);
    });
    report("peer: split + SHA-256 per line", lines, floor, floor);
    let building = time_best(3, || {
        let mut offset = 0u64;
        for (i, line) in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            black_box(observation(i, i % 500, offset, line));
            offset += line.len() as u64 + 1;
        }
    });
    report("  of which building the observations (no store)", lines, building, floor);

    for (name, sources, lines_per_obs) in [
        ("one-attacker, an observation per line", 1usize, 1usize),
        ("500 attackers, an observation per line", 500, 1),
        ("many-attackers, an observation per line", lines / 10, 1),
        ("many-attackers, an observation per 10 lines", lines / 10, 10),
    ] {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let audit = time_best(3, || {
            run_store(&log, lines, sources, lines_per_obs, batch_lines, MIGRATIONS)
        });
        report(&format!("store: {name} ({sources} incidents)"), lines, audit, floor);
        let plain = time_best(3, || {
            run_store(&log, lines, sources, lines_per_obs, batch_lines, without_audit())
        });
        report("  the same without the audit trail", lines, plain, floor);
        println!(
            "  audit trail cost: {:.2}x the store without it",
            audit.as_secs_f64() / plain.as_secs_f64()
        );
    }
}

fn synthetic_log(lines: usize) -> Vec<u8> {
    let mut log = Vec::with_capacity(lines * 100);
    for i in 0..lines {
        log.extend_from_slice(
            format!(
                "Mar  1 10:{:02}:{:02} web1 sshd[{}]: Failed password for invalid user u{} from 203.0.113.{} port {} ssh2\n",
                (i / 60) % 60,
                i % 60,
                1000 + i % 30000,
                i % 997,
                i % 250,
                1024 + i % 60000
            )
            .as_bytes(),
        );
    }
    log
}

/// The migrations with the audit trail's steps left out (no-ops).
fn without_audit() -> &'static [Migration] {
    let migrations: Vec<Migration> = MIGRATIONS
        .iter()
        .map(|m| match m.name {
            "audit_log" => Migration { sql: "SELECT 1;", ..*m },
            "evidence_lines" => Migration { sql: schema::EVIDENCE_LINES_UNAUDITED, ..*m },
            _ => *m,
        })
        .collect();
    Box::leak(migrations.into_boxed_slice())
}

fn run_store(
    log: &[u8],
    lines: usize,
    sources: usize,
    lines_per_obs: usize,
    batch_lines: usize,
    migrations: &'static [Migration],
) {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions { migrations, ..StoreOptions::default() };
    let mut store = Store::open_with(&dir.path().join("hikeshi.db"), options).unwrap();
    let mut offset = 0u64;
    let mut batch = store.batch().unwrap();
    let mut in_batch = 0;
    let mut pending: Option<Observation> = None;
    for (i, line) in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        // Consecutive runs of `lines_per_obs` lines share a source, as a
        // detector's finding would carry them.
        let source = (i / lines_per_obs) % sources;
        let one = observation(i, source, offset, line);
        let obs = pending.get_or_insert_with(|| Observation {
            attempts: 0,
            users: Vec::new(),
            evidence: Vec::new(),
            ..one.clone()
        });
        obs.attempts += one.attempts;
        obs.users.extend(one.users);
        obs.evidence.extend(one.evidence);
        offset += line.len() as u64 + 1;
        if obs.evidence.len() == lines_per_obs {
            batch.open_or_update_incident(pending.take().unwrap()).unwrap();
        }
        in_batch += 1;
        if in_batch >= batch_lines && pending.is_none() || i + 1 == lines {
            if let Some(obs) = pending.take() {
                batch.open_or_update_incident(obs).unwrap();
            }
            batch.set_cursor("file:/var/log/auth.log", &offset.to_le_bytes()).unwrap();
            batch.commit().unwrap();
            batch = store.batch().unwrap();
            in_batch = 0;
        }
    }
    drop(batch);
}

/// The best of `runs` runs, in CPU time (user + system) rather than wall
/// time: on a shared machine, waiting for a core says nothing about the
/// code.
/// What a scan builds for one failed line: an observation of its source
/// with its user and the line as evidence (SHA-256 included).
fn observation(i: usize, source: usize, offset: u64, line: &[u8]) -> Observation {
    let addr = std::net::Ipv4Addr::from(0xcb00_7100u32.wrapping_add(source as u32));
    let at: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
    let mut obs = Observation::new(
        CampaignKey::for_addr(addr.into()),
        "ssh-bruteforce",
        Severity::Medium,
        at,
        1,
    );
    obs.users.push(format!("u{}", i % 997));
    obs.evidence.push(Evidence::new("/var/log/auth.log", offset, line));
    obs
}

fn time_best(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = cpu_time();
            f();
            cpu_time() - start
        })
        .min()
        .unwrap()
}

/// This process's CPU time so far, from /proc/self/stat (clock ticks of
/// 10 ms: run enough lines for that to be small).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the command name (which may contain spaces) start at
    // field 3; utime and stime are fields 14 and 15.
    let after_comm = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn report(name: &str, lines: usize, elapsed: Duration, floor: Duration) {
    println!(
        "{name:<70} {:>7.2} s CPU  {:>9.0} lines/s  {:>5.1}x peer",
        elapsed.as_secs_f64(),
        lines as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / floor.as_secs_f64()
    );
}
