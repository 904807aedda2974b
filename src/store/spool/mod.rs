//! The disk spool (opt-in, [`SpanStoreBuilder::spool_dir`](crate::store::SpanStoreBuilder::spool_dir)):
//! batches that cannot be delivered now are written to a directory instead of dropped, and
//! replayed when Opik answers again, in this process or the next one to open the directory.
//!
//! A plain directory of files, one per batch (`file.rs`), not an embedded database: a batch
//! is written once, read once and deleted once, never updated, so a file per batch gives
//! all that is needed (all-or-nothing by write, fsync and rename; oldest first by name;
//! delivered means deleted, so no compaction) with no format of our own beyond a name, and
//! an operator can read, copy or delete a file with the usual tools. The crash-safe write
//! is the standard one (write `*.tmp`, `fsync`, rename, `fsync` the directory).
//!
//! One store per directory: the directory is locked (`.lock`, an advisory lock held until
//! the store shuts down; the OS releases it when the process dies, even by SIGKILL).

mod file;
mod replay;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, watch};

use self::file::{CORRUPT_SUFFIX, FileName, TMP_SUFFIX, Unreadable};
pub(crate) use self::replay::{Drain, Replayer};
use super::ExportBatch;
use super::counters::Counters;
use super::stats::LossReason;
use crate::warn::RateLimit;

/// The default of [`SpanStoreBuilder::spool_max_bytes`](crate::store::SpanStoreBuilder::spool_max_bytes): 1 GiB.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 1 << 30;

static UNREADABLE_WARNING: RateLimit = RateLimit::new();
static FULL_WARNING: RateLimit = RateLimit::new();
static IO_WARNING: RateLimit = RateLimit::new();

/// A spool directory, open and locked.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Holds the directory's lock until the store shuts down (or is dropped).
    lock: std::sync::Mutex<Option<File>>,
    counters: Arc<Counters>,
    /// Exports are failing transiently: new batches go straight to the spool, and the
    /// replayer probes Opik with its oldest file until one is delivered.
    outage: AtomicBool,
    /// `shutdown` ran out of time: everything still undelivered goes to the spool now.
    abandon: watch::Sender<bool>,
    /// A file was written.
    written: Notify,
    /// Files delivered but not deleted (a read-only file system, permissions): never
    /// listed again, so never sent again.
    undeletable: std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>,
}

/// Why a batch was not written to the spool.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// It would take the spool over its byte bound.
    Full,
    /// The file system refused (disk full, permissions).
    Io(std::io::Error),
}

/// A complete file of the spool, listed.
#[derive(Debug)]
pub(crate) struct Listed {
    name: FileName,
    bytes: u64,
}

impl Spool {
    /// Opens (creating) `dir` and locks it; removes writes a crash cut short and counts
    /// what the files left by an earlier run hold.
    pub(crate) fn open(
        dir: &Path,
        max_bytes: u64,
        counters: Arc<Counters>,
    ) -> Result<Self, crate::Error> {
        let fail = |source: std::io::Error| crate::Error::Spool {
            dir: dir.to_owned(),
            source,
        };
        let lock = create_and_lock(dir).map_err(fail)?;
        let (mut bytes, mut records, mut torn) = (0u64, 0u64, 0usize);
        for entry in std::fs::read_dir(dir).map_err(fail)? {
            let entry = entry.map_err(fail)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(TMP_SUFFIX) {
                // A write a crash cut short: never renamed, never counted as spooled.
                if std::fs::remove_file(entry.path()).is_ok() {
                    torn += 1;
                }
            } else if let Some(parsed) = FileName::parse(name)
                && entry.file_type().is_ok_and(|t| t.is_file())
            {
                bytes += entry.metadata().map_err(fail)?.len();
                records += parsed.records;
            }
        }
        if torn > 0 {
            tracing::warn!(
                target: "tower_opik",
                dir = %dir.display(),
                files = torn,
                "removed Opik spool files whose write was cut short (a crash while writing): \
                 their batches had not reached the spool"
            );
        }
        if records > 0 {
            tracing::info!(
                target: "tower_opik",
                dir = %dir.display(),
                records,
                bytes,
                "the Opik spool holds records from an earlier run: replaying them"
            );
        }
        counters.spool_holds(records, bytes, false);
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            lock: std::sync::Mutex::new(lock),
            counters,
            outage: AtomicBool::new(false),
            abandon: watch::Sender::new(false),
            written: Notify::new(),
            undeletable: Default::default(),
        })
    }

    /// Writes `batch` as one file, all or nothing (blocking: call it off the runtime's
    /// workers). The newest batch is the one refused when the spool is full.
    pub(crate) fn write(&self, batch: &ExportBatch) -> Result<(), WriteError> {
        let body = batch.json_body();
        let size = body.len() as u64;
        if !self.counters.reserve_spool_bytes(size, self.max_bytes) {
            if let Some(suppressed) = FULL_WARNING.check() {
                tracing::warn!(
                    target: "tower_opik",
                    suppressed,
                    dir = %self.dir.display(),
                    max_bytes = self.max_bytes,
                    "the Opik spool is full: the newest batches are dropped (counted in \
                     stats().spool_dropped) until Opik takes the spooled ones"
                );
            }
            return Err(WriteError::Full);
        }
        let name = FileName::for_batch(batch).name();
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        let write = || {
            let mut file = File::create(&tmp)?;
            file.write_all(body)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, self.dir.join(&name))?;
            sync_dir(&self.dir)
        };
        let written = match write() {
            // The directory was removed under us (a tmp cleaner, a remount): made again,
            // and locked again, once.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.recreate().and_then(|()| {
                    // The gauges were reset with the directory: this write's room again.
                    self.counters.reserve_spool_bytes(size, self.max_bytes);
                    write()
                })
            }
            other => other,
        };
        match written {
            Ok(()) => {
                self.counters.spool_holds(batch.len() as u64, size, true);
                self.written.notify_one();
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                self.counters.spool_released(0, size);
                if let Some(suppressed) = IO_WARNING.check() {
                    tracing::warn!(
                        target: "tower_opik",
                        suppressed,
                        dir = %self.dir.display(),
                        error = %e,
                        "cannot write to the Opik spool: batches are dropped (counted in \
                         stats().spool_dropped)"
                    );
                }
                Err(WriteError::Io(e))
            }
        }
    }

    /// The complete files now, oldest first (blocking).
    pub(crate) fn list(&self) -> Vec<Listed> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::NotFound {
                    // Removed under us: nothing is on disk any more.
                    self.counters.spool_reset();
                } else if let Some(suppressed) = IO_WARNING.check() {
                    tracing::warn!(
                        target: "tower_opik",
                        suppressed,
                        dir = %self.dir.display(),
                        error = %e,
                        "cannot list the Opik spool directory: nothing is replayed until it can be"
                    );
                }
                return Vec::new();
            }
        };
        let undeletable = self.undeletable.lock().unwrap_or_else(|p| p.into_inner());
        let mut files: Vec<Listed> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = FileName::parse(entry.file_name().to_str()?)?;
                if undeletable.contains(&name.id) || !entry.file_type().ok()?.is_file() {
                    return None;
                }
                let bytes = entry.metadata().ok()?.len();
                Some(Listed { name, bytes })
            })
            .collect();
        files.sort_by_key(|f| f.name.id);
        files
    }

    /// The batch `file` holds (blocking). `Ok(None)`: the file is gone. A file that cannot
    /// be read back is set aside (renamed `*.corrupt`), warned about and counted, and
    /// `Ok(None)` returned.
    pub(crate) fn read(&self, file: &Listed) -> std::io::Result<Option<ExportBatch>> {
        let path = self.dir.join(file.name.name());
        if file.bytes > file::MAX_FILE_BYTES {
            let why = Unreadable::TooLarge { bytes: file.bytes };
            self.set_aside(file, &path, &why);
            return Ok(None);
        }
        let content = match std::fs::read(&path) {
            Ok(content) => content,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match file::decode(&file.name, &content) {
            Ok(batch) => Ok(Some(batch)),
            Err(why) => {
                self.set_aside(file, &path, &why);
                Ok(None)
            }
        }
    }

    fn set_aside(&self, file: &Listed, path: &Path, why: &Unreadable) {
        let aside = path.with_extension(format!("json{CORRUPT_SUFFIX}"));
        if std::fs::rename(path, &aside).is_err() {
            let _ = std::fs::remove_file(path);
        }
        self.forget(file);
        let n = file.name.records;
        self.counters
            .lose_spooled(LossReason::SpoolUnreadable, n, std::iter::empty(), || {
                format!("{}: {why}", aside.display())
            });
        if let Some(suppressed) = UNREADABLE_WARNING.check() {
            tracing::warn!(
                target: "tower_opik",
                suppressed,
                file = %aside.display(),
                records = n,
                "an Opik spool file cannot be read back ({why}): skipped and set aside; its \
                 records are lost (counted in stats().spool_dropped)"
            );
        }
    }

    /// Deletes a file whose records are accounted for (delivered, or given up). One that
    /// cannot be deleted is warned about and never listed again by this store.
    pub(crate) fn remove(&self, file: &Listed) {
        let path = self.dir.join(file.name.name());
        match std::fs::remove_file(&path) {
            Ok(()) => self.forget(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                self.undeletable
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(file.name.id);
                self.forget(file);
                if let Some(suppressed) = IO_WARNING.check() {
                    tracing::warn!(
                        target: "tower_opik",
                        suppressed,
                        file = %path.display(),
                        error = %e,
                        "an Opik spool file was delivered but cannot be deleted: this store \
                         will not send it again, the next one to open the directory will \
                         (harmless: Opik's batch writes are upserts); delete it by hand"
                    );
                }
            }
        }
    }

    fn forget(&self, file: &Listed) {
        self.counters.spool_released(file.name.records, file.bytes);
    }

    /// Makes the directory again after it was removed, and takes its lock again (refused
    /// when another store has taken the new one meanwhile).
    fn recreate(&self) -> std::io::Result<()> {
        let mut held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_none() {
            // Unlocked: the store has shut down (or the file system has no locks).
            std::fs::create_dir_all(&self.dir)?;
            return Ok(());
        }
        if held.as_ref().is_some_and(|lock| self.holds(lock)) {
            // Another write of this store made it again while this one waited.
            return Ok(());
        }
        let lock = create_and_lock(&self.dir)?;
        self.counters.spool_reset();
        tracing::warn!(
            target: "tower_opik",
            dir = %self.dir.display(),
            "the Opik spool directory was removed while in use: made again (what it held is lost)"
        );
        *held = lock;
        Ok(())
    }

    /// Whether `lock` is the directory's `.lock` now (not one removed with an earlier
    /// directory). Where the OS gives no file identity, whether there is one.
    fn holds(&self, lock: &File) -> bool {
        let Ok(now) = std::fs::metadata(self.dir.join(".lock")) else {
            return false;
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            lock.metadata()
                .is_ok_and(|held| (held.dev(), held.ino()) == (now.dev(), now.ino()))
        }
        #[cfg(not(unix))]
        {
            let _ = (lock, now);
            true
        }
    }

    /// Lets another store open the directory (the store has shut down).
    pub(crate) fn unlock(&self) {
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Whether batches go straight to the spool now (an outage, or a shutdown out of time).
    pub(crate) fn offline(&self) -> bool {
        self.outage.load(Ordering::Relaxed) || self.is_abandoned()
    }

    pub(crate) fn set_outage(&self, outage: bool) {
        self.outage.store(outage, Ordering::Relaxed);
    }

    /// `shutdown` ran out of time: every batch still undelivered goes to the spool, and
    /// attempts in progress stop.
    pub(crate) fn abandon(&self) {
        self.abandon.send_replace(true);
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        *self.abandon.borrow()
    }

    /// Resolves once [`abandon`](Self::abandon) is called (at once if it was).
    pub(crate) fn abandoned(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.abandon.subscribe();
        async move {
            let _ = rx.wait_for(|a| *a).await;
        }
    }

    /// Resolves when a file is written (or was since the last call).
    pub(crate) async fn written(&self) {
        self.written.notified().await;
    }
}

/// Creates `dir` if missing and takes its lock: `ResourceBusy` when another store holds it,
/// `None` (with a warning) on a file system without locks.
fn create_and_lock(dir: &Path) -> std::io::Result<Option<File>> {
    std::fs::create_dir_all(dir)?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::new(
            std::io::ErrorKind::ResourceBusy,
            "in use by another span store (in this process or another): give each store \
             its own directory",
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            tracing::warn!(
                target: "tower_opik",
                dir = %dir.display(),
                error = %e,
                "the Opik spool directory cannot be locked (a file system without locks?): \
                 make sure no other store uses it"
            );
            Ok(None)
        }
    }
}

/// Runs blocking file work off the runtime's workers, under the caller's `tracing`
/// subscriber (a scoped one too: its warnings go where the application's logs go).
pub(crate) fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    tokio::task::spawn_blocking(move || tracing::dispatcher::with_default(&dispatch, work))
}

/// Makes a rename in `dir` durable. Directories cannot be opened as files everywhere
/// (Windows): there the rename is as durable as the OS makes it.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
