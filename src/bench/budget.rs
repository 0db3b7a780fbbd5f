//! Where the CPU of a measured phase went on this machine: the bench process itself (the fake
//! Graph API), the PostgreSQL server when it runs here, and how busy the cores were. With the
//! worker's own CPU time this gives every process's share of a message, and so the most a phase
//! could reach were every core busy: the figure that limits (a) on a small machine.
//!
//! Everything is read from Linux's `/proc`; where it cannot be read the figure is `None`.

/// Clock ticks per second of `/proc` CPU times (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SEC: u64 = 100;

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// This process, user + system (ms).
    own_ms: u64,
    /// Every `postgres` process here, user + system, with the reaped backends' (ms).
    db_ms: Option<u64>,
    /// All cores: (busy, total) ticks.
    cores: Option<(u64, u64)>,
}

/// What a phase spent between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spent {
    /// The bench process (the fake Graph API), ms.
    pub own_ms: u64,
    /// The PostgreSQL server, ms; `None` for SQLite or a server elsewhere.
    pub db_ms: Option<u64>,
    /// Share of all cores' time that was busy, 0 to 1.
    pub busy: Option<f64>,
}

impl Sample {
    /// Reads the counters now; `postgres` counts the PostgreSQL server's processes too.
    pub fn take(postgres: bool) -> Sample {
        Sample {
            own_ms: own_ms(),
            db_ms: if postgres { postgres_ms() } else { None },
            cores: cores(),
        }
    }

    /// What was spent from `self` to `later`.
    pub fn until(&self, later: &Sample) -> Spent {
        Spent {
            own_ms: later.own_ms.saturating_sub(self.own_ms),
            db_ms: match (self.db_ms, later.db_ms) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            },
            busy: match (self.cores, later.cores) {
                (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                    Some(b1.saturating_sub(b0) as f64 / (t1 - t0) as f64)
                }
                _ => None,
            },
        }
    }
}

/// Busy and total ticks of all cores (`/proc/stat`'s first line: idle and iowait are not busy).
fn cores() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The command name and CPU times of one `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat<'a> {
    pub comm: &'a str,
    /// User and system time, in ms.
    pub own_ms: u64,
    /// User and system time of its children that exited and were waited for, in ms.
    pub children_ms: u64,
}

/// Reads a `stat` line (proc(5)): `pid (comm) state ...`, the command possibly holding spaces
/// and parentheses, so it ends at the last `)`; utime, stime, cutime and cstime are fields 14
/// to 17, in clock ticks.
pub fn parse_stat(stat: &str) -> Option<ProcStat<'_>> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // `fields[0]` is field 3 (the state).
    let tick = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    let ms = |ticks: u64| ticks * 1000 / TICKS_PER_SEC;
    Some(ProcStat {
        comm: stat.get(open + 1..close)?,
        own_ms: ms(tick(14)? + tick(15)?),
        children_ms: ms(tick(16)? + tick(17)?),
    })
}

/// User and system time this process used, all its threads, in ms; 0 where unknown.
pub fn own_ms() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| parse_stat(&stat).map(|s| s.own_ms))
        .unwrap_or(0)
}

/// CPU time this process's threads whose name starts with `prefix` used, in ms (sqlx runs each
/// SQLite connection on a thread named `sqlx-sqlite-worker-N`); 0 where unknown.
pub fn threads_ms(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| {
            let s = parse_stat(&stat)?;
            s.comm.starts_with(prefix).then_some(s.own_ms)
        })
        .sum()
}

/// CPU time of every process named `postgres` on this machine, in ms, counting the backends
/// that already exited (in their parent's child times); `None` when there is none to see.
fn postgres_ms() -> Option<u64> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // it exited meanwhile
        };
        if let Some(s) = parse_stat(&stat).filter(|s| s.comm == "postgres") {
            *total.get_or_insert(0) += s.own_ms + s.children_ms;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_command_and_times_even_with_spaces_and_parentheses_in_the_name() {
        // Fields 14 to 17 (utime stime cutime cstime) are 250 50 7 3 ticks of 10 ms.
        let line = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 9 0 0 0 250 50 7 3 20 0 \
                    3 0 100 1000 200 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                comm: "tokio (rt) worker",
                own_ms: 3_000,
                children_ms: 100,
            })
        );
        // Cut short, or not a stat line at all: nothing is made up.
        assert_eq!(parse_stat("4242 (postgres) S 1 2 3"), None);
        assert_eq!(parse_stat("no parentheses here"), None);
    }

    #[test]
    fn a_phase_spends_what_lies_between_its_samples() {
        let before = Sample {
            own_ms: 1_000,
            db_ms: Some(5_000),
            cores: Some((300, 1_000)),
        };
        let after = Sample {
            own_ms: 1_500,
            db_ms: Some(7_000),
            cores: Some((1_100, 2_000)),
        };
        let spent = before.until(&after);
        assert_eq!(spent.own_ms, 500);
        assert_eq!(spent.db_ms, Some(2_000));
        assert_eq!(spent.busy, Some(0.8));
        let no_server = Sample {
            db_ms: None,
            ..after
        };
        assert_eq!(before.until(&no_server).db_ms, None);
    }
}
