//! The disk under the data directory: how much is free, and whether an error says it is
//! full. A full disk is nobody's fault in a request: work waits for space instead of
//! failing, the status page says so, and the API answers 503.

use std::path::Path;

use serde::Serialize;

/// Below this much free space the disk counts as full.
pub const FULL_BELOW_BYTES: u64 = 1024 * 1024;

/// Whether an error's text says the disk (or the database's disk) is full: the OS's
/// ENOSPC text, SQLite's `SQLITE_FULL`, PostgreSQL's failure to extend a file.
pub fn says_full(text: &str) -> bool {
    text.contains("No space left on device")
        || text.contains("database or disk is full")
        || text.contains("could not extend file")
}

/// Free and total space of the file system holding `path`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Space {
    /// The directory looked at.
    pub path: String,
    /// Bytes an unprivileged writer may still use.
    pub free_bytes: u64,
    /// Size of the file system.
    pub total_bytes: u64,
    /// Less than [`FULL_BELOW_BYTES`] free.
    pub full: bool,
}

/// The space of the file system holding `path`, or `None` if it cannot be read.
// statvfs's field types differ between platforms (u32 on some): the conversions stay.
#[allow(clippy::useless_conversion)]
pub fn space(path: &Path) -> Option<Space> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes only into the struct we pass; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    let block = u64::from(stat.f_frsize);
    let free_bytes = u64::from(stat.f_bavail).saturating_mul(block);
    Some(Space {
        path: path.display().to_string(),
        free_bytes,
        total_bytes: u64::from(stat.f_blocks).saturating_mul(block),
        full: free_bytes < FULL_BELOW_BYTES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_messages_are_recognised() {
        assert!(says_full(
            "error: unable to write file: No space left on device"
        ));
        assert!(says_full(
            "database error: error returned from database: (code: 13) database or disk is full"
        ));
        assert!(says_full(
            "could not extend file \"base/1/2\": wrote only 4096 of 8192 bytes"
        ));
        assert!(!says_full("fatal: unable to connect to 127.0.0.1"));
    }

    #[test]
    fn the_space_of_a_real_directory_is_read() {
        let here = space(Path::new(".")).unwrap();
        assert!(here.total_bytes > 0 && here.free_bytes <= here.total_bytes);
        assert!(space(Path::new("/no/such/dir")).is_none());
    }
}
