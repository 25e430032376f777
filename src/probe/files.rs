//! Sizes of the `[[files]]` the operator asked about (an unbounded SQLite WAL, a log).

use std::path::PathBuf;

use crate::config::{FileAction, FileRule};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReading {
    pub path: PathBuf,
    /// `None` when the file does not exist (not a problem) or could not be read.
    pub size: Option<u64>,
    pub max_size: u64,
    pub action: FileAction,
    /// Why the size could not be read, when the file exists but is unreadable.
    pub error: Option<String>,
}

pub fn read(rules: &[FileRule]) -> Vec<FileReading> {
    rules.iter().map(read_one).collect()
}

fn read_one(rule: &FileRule) -> FileReading {
    let (size, error) = match std::fs::metadata(&rule.path) {
        Ok(meta) => (Some(meta.len()), None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
        Err(e) => (None, Some(e.to_string())),
    };
    FileReading {
        path: rule.path.clone(),
        size,
        max_size: rule.max_size,
        action: rule.action,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sizes_and_treats_a_missing_file_as_no_reading() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("state.db-wal");
        std::fs::write(&present, vec![0u8; 4096]).unwrap();
        let rules = vec![
            FileRule {
                path: present.clone(),
                max_size: 1024,
                action: FileAction::Warn,
            },
            FileRule {
                path: dir.path().join("absent"),
                max_size: 1,
                action: FileAction::Restart,
            },
        ];
        let readings = read(&rules);
        assert_eq!(readings[0].size, Some(4096));
        assert_eq!(readings[0].error, None);
        assert_eq!(readings[1].size, None);
        assert_eq!(readings[1].error, None);
    }
}
