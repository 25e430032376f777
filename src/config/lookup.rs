//! Where the configuration file is (docs/CONFIG.md, "Where the file is"): `--config`,
//! `$WATCHDOG_CONFIG`, `$XDG_CONFIG_HOME/watchdog/watchdog.toml` (default `~/.config/...`),
//! `/etc/watchdog/watchdog.toml`. No file at all is valid.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::raw::expand_tilde;
use super::{Config, ConfigError};
use crate::safe_fs::{self, SafeFsError};

/// The system-wide file, tried last.
pub const SYSTEM_CONFIG: &str = "/etc/watchdog/watchdog.toml";

/// Which file to read, and whether it must exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Named by `--config` or `$WATCHDOG_CONFIG`: a missing file is an error, since
    /// silently running on defaults would ignore what the operator asked for.
    Required(PathBuf),
    /// The default locations in order: the first that exists is read; if none exists
    /// the defaults apply.
    FirstExisting(Vec<PathBuf>),
}

/// The effective configuration and the file it came from (`None`: defaults only).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub source: Option<PathBuf>,
}

/// Decides where to look, without touching the file system. Empty values count as
/// unset. `explicit` wins over `env_watchdog_config`; when the CLI already copied
/// `$WATCHDOG_CONFIG` into `explicit` (clap's `env`), both name the same file and it
/// is reported once. A relative `$XDG_CONFIG_HOME` is ignored, as the XDG spec says.
pub fn lookup_path(
    explicit: Option<&Path>,
    env_watchdog_config: Option<&Path>,
    xdg_config_home: Option<&Path>,
    home: Option<&Path>,
) -> Lookup {
    if let Some(named) = non_empty(explicit).or(non_empty(env_watchdog_config)) {
        // `~` too: a path in $WATCHDOG_CONFIG (a plist, a crontab) is not expanded by a shell.
        let path = match named.to_str() {
            Some(text) => expand_tilde(text, home),
            None => named.to_path_buf(),
        };
        return Lookup::Required(path);
    }
    let user_dir = match non_empty(xdg_config_home).filter(|p| p.is_absolute()) {
        Some(xdg) => Some(xdg.to_path_buf()),
        None => non_empty(home).map(|h| h.join(".config")),
    };
    let mut candidates: Vec<PathBuf> = user_dir
        .map(|dir| dir.join("watchdog").join("watchdog.toml"))
        .into_iter()
        .collect();
    candidates.push(PathBuf::from(SYSTEM_CONFIG));
    Lookup::FirstExisting(candidates)
}

/// Finds, reads and validates the configuration, reading `HOME`, `WATCHDOG_CONFIG`
/// and `XDG_CONFIG_HOME` from the environment. Without `HOME` the home directory
/// comes from the user database; if that fails too, any `~` path is an error.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let env_config: Option<OsString> = env("WATCHDOG_CONFIG");
    let xdg: Option<OsString> = env("XDG_CONFIG_HOME");
    let home = std::env::home_dir().filter(|h| !h.as_os_str().is_empty());
    let lookup = lookup_path(
        explicit,
        env_config.as_deref().map(Path::new),
        xdg.as_deref().map(Path::new),
        home.as_deref(),
    );
    load_from(&lookup, home.as_deref())
}

/// `load` after the environment has been read: reads the file `lookup` names.
pub fn load_from(lookup: &Lookup, home: Option<&Path>) -> Result<Loaded, ConfigError> {
    let found = match lookup {
        Lookup::Required(path) => Some((path.clone(), read_required(path)?)),
        Lookup::FirstExisting(candidates) => read_first_existing(candidates)?,
    };
    let loaded = match found {
        Some((path, text)) => {
            let config = Config::from_toml_str(&text, &path, home)?;
            super::tls::check_ca_file(&config, &text, &path)?;
            Loaded {
                config,
                source: Some(path),
            }
        }
        None => Loaded {
            config: super::defaults(home),
            source: None,
        },
    };
    match loaded.config.unexpanded_tilde() {
        Some(key) if home.is_none() => Err(ConfigError::NoHome { key }),
        _ => Ok(loaded),
    }
}

fn non_empty(path: Option<&Path>) -> Option<&Path> {
    path.filter(|p| !p.as_os_str().is_empty())
}

/// A config file larger than this is not one: refused rather than read into memory.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Opened without blocking and read only if it is a regular file: a FIFO or a device
/// at the config path would otherwise hold the run before its bound is even known
/// (src/safe_fs.rs). A symlink is followed: the operator's own file may be a link. The
/// file must be this user's or root's and writable by nobody else: its commands
/// (`restart.command`, `start_command`) run as this user, root often (docs/SECURITY.md).
fn read_config(path: &Path) -> Result<String, ConfigError> {
    let euid = safe_fs::own_euid();
    let read = safe_fs::read_trusted_following(path, MAX_CONFIG_BYTES, euid);
    let bytes = read.map_err(|e| match e {
        SafeFsError::Io { source, .. } => ConfigError::Read {
            path: path.to_path_buf(),
            source,
        },
        SafeFsError::Untrusted { why, .. } => ConfigError::Read {
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "refusing it: it {why}. Another user could make this run execute what                      they choose (restart.command, start_command run as uid {euid})"
                ),
            ),
        },
        other => ConfigError::Read {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, NotAConfig(other)),
        },
    })?;
    String::from_utf8(bytes).map_err(|_| ConfigError::Read {
        path: path.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ),
    })
}

/// Why a path is not a config file (a FIFO, too large), said without repeating it.
#[derive(Debug, thiserror::Error)]
#[error("{}: the configuration must be a regular TOML file", strip_path(.0))]
struct NotAConfig(SafeFsError);

fn strip_path(e: &SafeFsError) -> String {
    match e {
        SafeFsError::NotRegular { kind, .. } => format!("it is {kind}, not a regular file"),
        SafeFsError::TooLarge { max, .. } => format!("it is larger than {max} bytes"),
        other => other.to_string(),
    }
}

fn read_required(path: &Path) -> Result<String, ConfigError> {
    read_config(path).map_err(|e| match e {
        ConfigError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound => {
            ConfigError::NotFound {
                path: path.to_path_buf(),
            }
        }
        other => other,
    })
}

/// A default location that is absent is skipped; one that exists but cannot be read
/// is an error, since skipping it would silently drop the operator's settings.
fn read_first_existing(candidates: &[PathBuf]) -> Result<Option<(PathBuf, String)>, ConfigError> {
    for path in candidates {
        match read_config(path) {
            Ok(text) => return Ok(Some((path.clone(), text))),
            Err(ConfigError::Read { source, .. }) if is_absent(&source) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}
