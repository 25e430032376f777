//! FD reading of the target: total, limit, counts by kind, top paths and the
//! `[[fds.paths]]` pattern counts. The raw list comes from the per-OS layer; everything
//! here is platform-free and pure apart from `read`.

use std::collections::HashMap;

use serde::Serialize;

use crate::config::FdPathRule;
use crate::probe::os::{self, FdEntry, FdKind, FdLimit, OsError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    pub file: u64,
    pub socket: u64,
    pub pipe: u64,
    pub other: u64,
}

impl KindCounts {
    fn add(&mut self, kind: FdKind) {
        match kind {
            FdKind::File => self.file += 1,
            FdKind::Socket => self.socket += 1,
            FdKind::Pipe => self.pipe += 1,
            FdKind::Other => self.other += 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathCount {
    /// The path as the kernel reports it; a deleted file keeps its ` (deleted)` mark.
    pub path: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatternCount {
    pub pattern: String,
    pub count: u64,
    pub max: u64,
}

impl PatternCount {
    /// `"state.db": 420 (max 200)  OVER`, as `status` and `fds` print it.
    pub fn describe(&self) -> String {
        let flag = if self.count > self.max { "  OVER" } else { "" };
        format!(
            "{:?}: {} (max {}){flag}",
            self.pattern, self.count, self.max
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FdReading {
    pub total: u64,
    /// `None` where the platform cannot read another process's limit (macOS).
    pub limit: Option<FdLimit>,
    pub by_kind: KindCounts,
    pub top_paths: Vec<PathCount>,
    pub patterns: Vec<PatternCount>,
}

impl FdReading {
    /// The limit as `status` and `fds` print it, saying what to do where it is unknown.
    pub fn describe_limit(&self) -> String {
        match self.limit {
            Some(l) => format!("limit {}", l.describe()),
            None => "limit unknown on this platform, so fds.max_percent does not apply: \
                     set fds.max"
                .into(),
        }
    }

    /// The target's open FDs as a share of its soft limit, when both are known.
    pub fn percent_of_soft_limit(&self) -> Option<f64> {
        let soft = self.limit?.soft?;
        (soft > 0).then(|| self.total as f64 * 100.0 / soft as f64)
    }
}

/// Reads the target's FDs and limit. A permission error stays an error: it is never
/// reported as zero FDs.
pub fn read(pid: u32, rules: &[FdPathRule], top: usize) -> Result<FdReading, OsError> {
    let entries = os::list_fds(pid)?;
    let limit = os::fd_limit(pid)?;
    Ok(summarize(&entries, limit, rules, top))
}

pub fn summarize(
    entries: &[FdEntry],
    limit: Option<FdLimit>,
    rules: &[FdPathRule],
    top: usize,
) -> FdReading {
    let mut by_kind = KindCounts::default();
    let mut paths: HashMap<&str, u64> = HashMap::new();
    for entry in entries {
        let kind = FdKind::of(&entry.link);
        by_kind.add(kind);
        if kind == FdKind::File {
            *paths.entry(entry.link.as_str()).or_default() += 1;
        }
    }
    let patterns = rules
        .iter()
        .map(|rule| PatternCount {
            pattern: rule.pattern.clone(),
            // Paths only: a socket's description ("tcp 127.0.0.1:8787 ...") is not a
            // path, and `check` and the census must count the same thing.
            count: paths
                .iter()
                .filter(|(path, _)| path.contains(&rule.pattern))
                .map(|(_, count)| count)
                .sum(),
            max: rule.max,
        })
        .collect();
    FdReading {
        total: entries.len() as u64,
        limit,
        by_kind,
        top_paths: top_paths(paths, top),
        patterns,
    }
}

/// Most-held paths first; ties in path order so that output is stable between runs.
fn top_paths(paths: HashMap<&str, u64>, top: usize) -> Vec<PathCount> {
    let mut counted: Vec<PathCount> = paths
        .into_iter()
        .map(|(path, count)| PathCount {
            path: path.to_string(),
            count,
        })
        .collect();
    counted.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
    counted.truncate(top);
    counted
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// FD entries numbered 0, 1, 2... with these targets.
    pub(crate) fn entries(targets: &[&str]) -> Vec<FdEntry> {
        targets
            .iter()
            .enumerate()
            .map(|(fd, t)| FdEntry {
                fd: fd as i32,
                link: t.to_string(),
            })
            .collect()
    }

    #[test]
    fn pattern_and_limit_descriptions() {
        let over = PatternCount {
            pattern: "state.db".into(),
            count: 420,
            max: 200,
        };
        assert_eq!(over.describe(), "\"state.db\": 420 (max 200)  OVER");
        let under = PatternCount { count: 200, ..over };
        assert_eq!(under.describe(), "\"state.db\": 200 (max 200)");
        let list = entries(&["/a"]);
        let unknown = summarize(&list, None, &[], 5);
        assert!(unknown.describe_limit().contains("set fds.max"));
        let known = FdLimit {
            soft: Some(256),
            hard: None,
        };
        assert_eq!(
            summarize(&list, Some(known), &[], 5).describe_limit(),
            "limit soft 256 / hard unlimited"
        );
    }

    #[test]
    fn kinds_follow_the_kernel_names() {
        let table = [
            ("/home/me/.hermes/state.db", FdKind::File),
            ("/tmp/x (deleted)", FdKind::File),
            ("socket:[12345]", FdKind::Socket),
            ("pipe:[999]", FdKind::Pipe),
            ("anon_inode:[eventfd]", FdKind::Other),
            ("anon_inode:inotify", FdKind::Other),
            ("net:[4026531840]", FdKind::Other),
        ];
        for (target, kind) in table {
            assert_eq!(FdKind::of(target), kind, "{target}");
        }
    }

    #[test]
    fn counts_kinds_paths_and_patterns() {
        let list = entries(&[
            "/data/state.db",
            "/data/state.db",
            "/data/state.db-wal",
            "/data/state.db-shm",
            "/dev/null",
            "socket:[1]",
            "socket:[2]",
            "pipe:[3]",
            "anon_inode:[eventfd]",
            "/tmp/gone (deleted)",
        ]);
        let rules = vec![
            FdPathRule {
                pattern: "state.db".into(),
                max: 200,
            },
            FdPathRule {
                pattern: "-wal".into(),
                max: 5,
            },
        ];
        let limit = Some(FdLimit {
            soft: Some(1024),
            hard: None,
        });
        let reading = summarize(&list, limit, &rules, 2);
        assert_eq!(reading.total, 10);
        assert_eq!(
            reading.by_kind,
            KindCounts {
                file: 6,
                socket: 2,
                pipe: 1,
                other: 1
            }
        );
        assert_eq!(
            reading.top_paths,
            vec![
                PathCount {
                    path: "/data/state.db".into(),
                    count: 2
                },
                PathCount {
                    path: "/data/state.db-shm".into(),
                    count: 1
                },
            ]
        );
        assert_eq!(reading.patterns[0].count, 4);
        assert_eq!(reading.patterns[1].count, 1);
        assert_eq!(reading.patterns[1].max, 5);
    }

    #[test]
    fn percent_needs_a_known_soft_limit() {
        let list = entries(&["/a"; 10]);
        let with = summarize(
            &list,
            Some(FdLimit {
                soft: Some(40),
                hard: Some(80),
            }),
            &[],
            5,
        );
        assert_eq!(with.percent_of_soft_limit(), Some(25.0));
        let unlimited = summarize(
            &list,
            Some(FdLimit {
                soft: None,
                hard: None,
            }),
            &[],
            5,
        );
        assert_eq!(unlimited.percent_of_soft_limit(), None);
        assert_eq!(summarize(&list, None, &[], 5).percent_of_soft_limit(), None);
    }
}
