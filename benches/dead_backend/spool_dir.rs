//! The spool mode's directory and what it holds, read from the files themselves.

use std::path::PathBuf;

use crate::common::env_number;
use crate::mib;

/// The spool mode's directory: fresh, under the system's temporary directory, and removed
/// when dropped.
pub(crate) struct SpoolDir {
    pub(crate) path: PathBuf,
    pub(crate) max_bytes: u64,
}

impl SpoolDir {
    /// `Some` with `TOWER_OPIK_BENCH_SPOOL=1`, bounded by `TOWER_OPIK_BENCH_SPOOL_MIB`.
    pub(crate) fn from_env() -> Option<Self> {
        if env_number("TOWER_OPIK_BENCH_SPOOL", 0u8) == 0 {
            return None;
        }
        let mib: u64 = env_number("TOWER_OPIK_BENCH_SPOOL_MIB", 1024);
        let path = std::env::temp_dir().join(format!(
            "tower-opik-dead-backend-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir(&path).expect("a fresh spool directory");
        Some(Self {
            path,
            max_bytes: mib << 20,
        })
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            ", spooling to {} (at most {:.0} MiB)",
            self.path.display(),
            mib(self.max_bytes)
        )
    }
}

impl Drop for SpoolDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What the spool directory holds, read from the files themselves.
#[derive(Debug, Default)]
pub(crate) struct OnDisk {
    /// Complete spool files (`*.json` named as the spool names them).
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    /// Records, as the files' names count them.
    pub(crate) records: u64,
    pub(crate) largest: u64,
    /// Files whose content does not match the CRC-32 in their name.
    pub(crate) bad_crc: u64,
    /// Anything else but the lock: `*.tmp`, `*.corrupt`, unexpected names.
    pub(crate) others: Vec<String>,
}

impl OnDisk {
    /// With `verify`, reads each file to check its CRC-32.
    pub(crate) fn read(dir: &std::path::Path, verify: bool) -> Self {
        let mut disk = Self::default();
        for entry in std::fs::read_dir(dir).expect("the spool directory") {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".lock" {
                continue;
            }
            // `{uuid}-{kind}-{records}-{crc32}.json`
            let parsed = name.strip_suffix(".json").and_then(|stem| {
                let parts: Vec<&str> = stem.split('-').collect();
                match parts[..] {
                    [_, _, records, crc] => Some((
                        records.parse::<u64>().ok()?,
                        u32::from_str_radix(crc, 16).ok()?,
                    )),
                    _ => None,
                }
            });
            let Some((records, crc)) = parsed else {
                disk.others.push(name);
                continue;
            };
            let Ok(meta) = entry.metadata() else {
                continue; // gone since listed
            };
            let bytes = meta.len();
            disk.files += 1;
            disk.bytes += bytes;
            disk.records += records;
            disk.largest = disk.largest.max(bytes);
            if verify
                && std::fs::read(entry.path())
                    .map(|c| crc32fast::hash(&c))
                    .ok()
                    != Some(crc)
            {
                disk.bad_crc += 1;
            }
        }
        disk
    }
}
