//! Incident snapshots (docs/DESIGN.md, "State between runs"): before every kill, the
//! evidence of what the server looked like — its FDs, health, reasons and process info —
//! goes to `state.dir/incidents/`. The leak the restart papers over stays diagnosable.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::json;

use crate::decide::Reason;
use crate::probe::Observation;
use crate::probe::census;
use crate::probe::os::ProcessInfo;
use crate::safe_fs;
use crate::trend::FdSample;
use crate::units::rfc3339;

/// Snapshots kept; older ones are deleted.
pub const KEEP: usize = 20;

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("incidents")
}

/// Writes the snapshot of `target` and prunes old ones. The census is re-read here in
/// full (every path, not only the top ones) because it is the last chance to see it.
/// `incidents/` must be a real directory of this user's inside the checked state
/// directory (a symlink there is moved aside, never followed: the prune deletes files
/// in it), and the snapshot is written atomically through `safe_fs` (docs/SECURITY.md).
pub fn write(
    state_dir: &Path,
    target: &ProcessInfo,
    obs: &Observation,
    reasons: &[Reason],
    samples: &[FdSample],
    rules: &[crate::config::FdPathRule],
) -> std::io::Result<PathBuf> {
    let dir = dir(state_dir);
    if let Some(moved) = safe_fs::ensure_private_subdir(&dir)? {
        eprintln!(
            "watchdog: {} was not a directory of this user's; moved it aside to {}",
            dir.display(),
            moved.display()
        );
    }
    let census = match census::take(target.pid(), rules) {
        Ok(reading) => serde_json::to_value(reading).unwrap_or_default(),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let recent: Vec<&FdSample> = samples
        .iter()
        .filter(|s| s.pid == target.pid())
        .rev()
        .take(60)
        .collect();
    let snapshot = json!({
        "ts": rfc3339(obs.at),
        "pid": target.pid(),
        "process": {
            "pid": target.pid(),
            "ppid": target.ppid,
            "uid": target.uid,
            "start_time": rfc3339(target.start_time),
            "argv": target.argv,
            "cwd": target.cwd,
            "rss_bytes": target.rss_bytes,
            "state": target.state.as_str(),
        },
        "reasons": reasons,
        "health": obs.health,
        "fds": census,
        "recent_fd_samples": recent,
    });
    let name = format!(
        "{}-{}.json",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        target.pid()
    );
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
    safe_fs::write_atomic(&path, text.as_bytes(), 0o600, true)?;
    prune(&dir, KEEP)?;
    Ok(path)
}

/// The newest `count` snapshots, newest first.
pub fn latest(state_dir: &Path, count: usize) -> Vec<PathBuf> {
    // Only a real directory: `status` lists nothing from where a planted link leads.
    if !fs::symlink_metadata(dir(state_dir)).is_ok_and(|m| m.is_dir()) {
        return Vec::new();
    }
    let Ok(entries) = fs::read_dir(dir(state_dir)) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    names.into_iter().rev().take(count).collect()
}

/// Keeps the newest `keep` snapshots; names start with a UTC timestamp, so name order
/// is time order.
fn prune(dir: &Path, keep: usize) -> std::io::Result<()> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    for old in &names[..excess] {
        fs::remove_file(old)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_link_at_incidents_is_never_listed_or_written_through() {
        let state = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let victim = elsewhere.path().join("20200101T000000.000Z-1.json");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir(state.path())).unwrap();
        assert!(latest(state.path(), 5).is_empty());
        safe_fs::ensure_private_subdir(&dir(state.path())).unwrap();
        assert!(fs::symlink_metadata(dir(state.path())).unwrap().is_dir());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn prune_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..25 {
            fs::write(
                dir.path().join(format!("20261128T1200{i:02}.000Z-1.json")),
                "{}",
            )
            .unwrap();
        }
        fs::write(dir.path().join("notes.txt"), "kept").unwrap();
        prune(dir.path(), 20).unwrap();
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 21);
        assert_eq!(left[0], "20261128T120005.000Z-1.json");
        assert!(left.contains(&"notes.txt".to_string()));
    }
}
