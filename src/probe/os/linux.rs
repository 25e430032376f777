//! Linux: everything read from `/proc`.

use super::{FdEntry, FdLimit, Identity, OsError, PortOwner, ProcessInfo};

pub fn process_info(_pid: u32) -> Result<ProcessInfo, OsError> {
    todo!()
}
pub fn process_environ(_pid: u32) -> Result<Vec<(String, String)>, OsError> {
    todo!()
}
pub fn identity(_pid: u32) -> Result<Option<Identity>, OsError> {
    todo!()
}
pub fn list_fds(_pid: u32) -> Result<Vec<FdEntry>, OsError> {
    todo!()
}
pub fn fd_limit(_pid: u32) -> Result<Option<FdLimit>, OsError> {
    todo!()
}
pub fn all_pids() -> Result<Vec<u32>, OsError> {
    todo!()
}
pub fn port_owner(_port: u16, _candidates: &[u32]) -> Result<PortOwner, OsError> {
    todo!()
}
