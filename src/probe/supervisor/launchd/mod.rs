//! launchd (docs/DESIGN.md, "Supervisors"; docs/SECURITY.md, "launchd"). What
//! `launchctl` prints is read in `launchctl.rs`, pure text handling; its names are
//! re-exported here, so `launchd::parse_print` and the rest keep their paths.

pub mod launchctl;

pub use launchctl::{
    LastExit, LaunchctlParseError, LaunchdJob, Listed, candidate_domains, default_domain,
    domain_target, is_launchd_label, is_oneshot, is_starting, label_of, parse_domain_services,
    parse_list, parse_print,
};
