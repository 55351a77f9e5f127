//! Lessons learned: threshold suggestions drawn from the record.
//!
//! Sources outside the attack that failed and then logged in are taken as
//! legitimate users: the most failures one of them made before succeeding
//! bounds how low `maxretry` may go. The attack's own sources give how
//! many failures each made and how fast, which says whether a threshold
//! separates the two at all and what `findtime` catches the attack. When
//! the record holds no legitimate login, the lessons say so instead of
//! guessing.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;

use super::{fmt_duration, LoginAttempt, ReportInput, Text};

/// What the record says about legitimate users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegitimateLogins {
    /// Sources outside the attack with at least one success.
    pub sources: usize,
    pub successes: u64,
    /// The most failures one source made before a success.
    pub max_failures_before_success: u64,
    /// The longest time such a run of failures took (seconds).
    pub longest_failure_run_seconds: i64,
}

/// What the record says about the attack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttackLogins {
    pub sources: usize,
    /// Failures of the attack's sources among the recorded attempts.
    pub failures: u64,
    /// The most failures from one source.
    pub max_failures_one_source: u64,
}

/// A suggested fail2ban-style threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThresholdAdvice {
    /// Failures within `findtime_seconds` that trigger a ban.
    pub maxretry: u64,
    pub findtime_seconds: i64,
    /// Whether this threshold bans the attack's busiest source and spares
    /// every recorded legitimate user.
    pub separates: bool,
    /// How long the attack's fastest source took to make `maxretry`
    /// failures (seconds); `None` if no source made that many.
    pub attack_window_seconds: Option<i64>,
}

/// The lessons section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lessons {
    /// `None`: the record holds no successful login outside the attack.
    pub legitimate: Option<LegitimateLogins>,
    pub attack: AttackLogins,
    pub advice: Option<ThresholdAdvice>,
    /// Successful logins from the attack's own sources: a compromise.
    pub attack_successes: Vec<LoginAttempt>,
    /// The findings as sentences.
    pub notes: Vec<Text>,
}

/// The smallest maxretry suggested (one typo and a retry stay unbanned).
const MIN_MAXRETRY: u64 = 3;
/// The smallest findtime suggested: fail2ban's default, 10 minutes.
const MIN_FINDTIME_SECS: i64 = 600;

pub(super) fn analyse(input: &ReportInput) -> Lessons {
    let attackers: BTreeSet<&str> = input.attack_sources.iter().map(String::as_str).collect();
    let mut logins: Vec<&LoginAttempt> = input.logins.iter().collect();
    logins.sort_by_key(|l| l.at);

    // Legitimate: runs of failures ended by a success, per source.
    let mut runs: BTreeMap<&str, (u64, Option<Timestamp>)> = BTreeMap::new();
    let mut legit_sources = BTreeSet::new();
    let (mut successes, mut max_before, mut longest) = (0u64, 0u64, 0i64);
    // Attack: failure times per source.
    let mut attack_fail: BTreeMap<&str, Vec<Timestamp>> = BTreeMap::new();
    let mut attack_successes = Vec::new();
    for l in &logins {
        if attackers.contains(l.source.as_str()) {
            if l.success {
                attack_successes.push((*l).clone());
            } else {
                attack_fail.entry(&l.source).or_default().push(l.at);
            }
            continue;
        }
        let run = runs.entry(&l.source).or_insert((0, None));
        if l.success {
            legit_sources.insert(l.source.as_str());
            successes += 1;
            max_before = max_before.max(run.0);
            if let Some(start) = run.1 {
                longest = longest.max((l.at - start).as_secs());
            }
            *run = (0, None);
        } else {
            run.0 += 1;
            run.1.get_or_insert(l.at);
        }
    }
    let legitimate = (!legit_sources.is_empty()).then_some(LegitimateLogins {
        sources: legit_sources.len(),
        successes,
        max_failures_before_success: max_before,
        longest_failure_run_seconds: longest,
    });
    let attack = AttackLogins {
        sources: attack_fail.len(),
        failures: attack_fail.values().map(|v| v.len() as u64).sum(),
        max_failures_one_source: attack_fail.values().map(|v| v.len() as u64).max().unwrap_or(0),
    };

    let mut notes = Vec::new();
    for s in &attack_successes {
        let user = s.user.as_deref().unwrap_or("?");
        notes.push(Text::new(
            format!(
                "A source of the attack logged in: {} as {user} at {}. Treat the account as \
                 compromised.",
                s.source,
                super::fmt_time(s.at)
            ),
            format!(
                "攻撃元 {} が {user} としてログインに成功しています（{}）。アカウント侵害として扱うこと。",
                s.source,
                super::fmt_time(s.at)
            ),
        ));
    }
    let advice = match &legitimate {
        None => {
            notes.push(Text::new(
                "The record holds no successful login outside the attack, so it does not show how \
                 many failures legitimate users make: no maxretry is suggested. Give the \
                 authentication log (`--auth-log`) to compare.",
                "記録に攻撃元以外のログイン成功が無いため、正規利用者の失敗回数が分かりません。\
                 maxretry は提案しません。比較には認証ログ（`--auth-log`）を指定してください。",
            ));
            None
        }
        Some(legit) => {
            let maxretry = (legit.max_failures_before_success + 2).max(MIN_MAXRETRY);
            let window = fastest_window(&attack_fail, maxretry);
            let findtime = window
                .map(|w| round_up_minutes(w).max(MIN_FINDTIME_SECS))
                .unwrap_or(MIN_FINDTIME_SECS);
            let separates = attack.max_failures_one_source >= maxretry;
            notes.push(Text::new(
                format!(
                    "Legitimate users ({} source(s), {} successful login(s)) failed at most {} \
                     time(s) before succeeding; the attack's busiest source failed {} time(s).",
                    legit.sources,
                    legit.successes,
                    legit.max_failures_before_success,
                    attack.max_failures_one_source
                ),
                format!(
                    "正規利用者（送信元 {} 件、ログイン成功 {} 回）の成功前の失敗は最大 {} 回、\
                     攻撃元の最多は {} 回でした。",
                    legit.sources,
                    legit.successes,
                    legit.max_failures_before_success,
                    attack.max_failures_one_source
                ),
            ));
            if separates {
                let w = window.map(fmt_duration).unwrap_or_else(|| "-".into());
                notes.push(Text::new(
                    format!(
                        "Suggested threshold: maxretry = {maxretry}, findtime = {} (the attack \
                         reached {maxretry} failures in {w}; legitimate users stay below).",
                        fmt_duration(findtime)
                    ),
                    format!(
                        "推奨しきい値: maxretry = {maxretry}、findtime = {}（攻撃は {w} で \
                         {maxretry} 回に到達、正規利用者はそれ未満）。",
                        fmt_duration(findtime)
                    ),
                ));
            } else {
                notes.push(Text::new(
                    format!(
                        "No per-source threshold separates them: sparing legitimate users needs \
                         maxretry ≥ {maxretry}, but no attacking source failed that often \
                         (a distributed attack). Rely on keys-only authentication and per-user \
                         rules instead."
                    ),
                    format!(
                        "送信元単位のしきい値では区別できません。正規利用者を遮断しないには \
                         maxretry ≥ {maxretry} が必要ですが、その回数に達した攻撃元はありません（分散攻撃）。\
                         鍵認証のみとユーザー単位のルールで対処してください。"
                    ),
                ));
            }
            Some(ThresholdAdvice {
                maxretry,
                findtime_seconds: findtime,
                separates,
                attack_window_seconds: window,
            })
        }
    };
    if attack.failures == 0 {
        notes.push(Text::new(
            format!(
                "No attack attempt could be read back from the kept evidence; the incident \
                 counted {} attempt(s).",
                input.incident.attempts
            ),
            format!(
                "保全された証拠から攻撃の試行を読み取れませんでした（インシデントの試行数は {} 回）。",
                input.incident.attempts
            ),
        ));
    }
    Lessons { legitimate, attack, advice, attack_successes, notes }
}

/// The shortest time any one source took to make `n` failures.
fn fastest_window(failures: &BTreeMap<&str, Vec<Timestamp>>, n: u64) -> Option<i64> {
    let n = usize::try_from(n).ok()?.max(1);
    failures
        .values()
        .filter(|times| times.len() >= n)
        .flat_map(|times| times.windows(n).map(|w| (w[n - 1] - w[0]).as_secs()))
        .min()
}

fn round_up_minutes(seconds: i64) -> i64 {
    (seconds + 59).div_euclid(60) * 60
}
