//! The server side of the file transfer: `jsp serve --files DIR`.

use std::collections::HashMap;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, OwnedMutexGuard};

use super::{
    digest_bytes, hash_file, hash_prefix, partial_name, Offer, CHUNK, ERROR, OK, PROGRESS,
    PROGRESS_INTERVAL, READY,
};
use crate::keyfile::describe_io;
use crate::protocol::{write_text_message, write_u64_message};

/// How a transfer that did not fail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// The file was stored: `resumed_from` bytes were already there, the rest arrived.
    Stored {
        /// The file name.
        name: String,
        /// Its size.
        size: u64,
        /// Bytes already held from an earlier transfer.
        resumed_from: u64,
    },
    /// The same file (name, size and hash) was already in the directory.
    AlreadyThere {
        /// The file name.
        name: String,
        /// Its size.
        size: u64,
    },
}

/// Why a transfer did not store the file (the client has been told, when it can still hear).
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The offer or data was refused; the message went to the client.
    #[error("{0}")]
    Refused(String),
    /// The stream broke off; the partial file is kept for resumption.
    #[error("interrupted after {have} of {size} bytes of {name}: {source}")]
    Interrupted {
        /// The file name.
        name: String,
        /// Bytes on disk.
        have: u64,
        /// The announced size.
        size: u64,
        /// What broke.
        source: io::Error,
    },
    /// A newer transfer of the same name took over.
    #[error("a newer transfer of {0} took over")]
    Superseded(String),
    /// The stream failed before an offer was read.
    #[error("{0}")]
    Stream(io::Error),
}

/// One name's transfers: the newest generation wins, and one runs at a time.
#[derive(Debug)]
struct Slot {
    generation: watch::Sender<u64>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

type Slots = Arc<Mutex<HashMap<String, Arc<Slot>>>>;

/// The right to write one name's partial file, until dropped.
struct Claim {
    slots: Slots,
    name: String,
    slot: Arc<Slot>,
    generation: u64,
    changes: watch::Receiver<u64>,
    _guard: OwnedMutexGuard<()>,
}

impl Claim {
    fn superseded(&self) -> bool {
        *self.changes.borrow() != self.generation
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the map and this claim hold it: nobody is waiting for the name.
        if Arc::strong_count(&self.slot) == 2 {
            slots.remove(&self.name);
        }
    }
}

/// Receives files into a directory.
#[derive(Debug)]
pub struct Receiver {
    dir: PathBuf,
    slots: Slots,
}

impl Receiver {
    /// Receives into `dir`, creating it if needed.
    pub fn new(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        if !std::fs::metadata(dir)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Self {
            dir: dir.to_owned(),
            slots: Arc::default(),
        })
    }

    /// The receiving directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs the server side of one transfer on a stream whose magic header was read.
    pub async fn receive<R, W>(&self, recv: &mut R, send: &mut W) -> Result<Received, ReceiveError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let offer = match Offer::read(recv).await.map_err(ReceiveError::Stream)? {
            Ok(offer) => offer,
            Err(why) => return refuse(send, why).await,
        };
        let mut claim = self.claim(&offer.name).await;
        if claim.superseded() {
            return refuse(send, format!("a newer transfer of {} arrived", offer.name)).await;
        }
        let target = self.dir.join(&offer.name);
        match tokio::fs::metadata(&target).await {
            Ok(_) => return self.already_there(recv, send, &offer, &target).await,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                let why = format!("cannot check {}: {}", target.display(), describe_io(&e));
                return refuse(send, why).await;
            }
        }
        let partial_file = partial_name(&offer.name, &offer.sha256);
        self.remove_other_partials(&offer.name, &partial_file).await;
        let partial = self.dir.join(&partial_file);
        match self
            .write_partial(recv, send, &offer, &partial, &mut claim)
            .await?
        {
            Some(resumed_from) => {
                // Synced: now make it visible, never over a file that appeared meanwhile.
                if let Err(e) = link_no_clobber(&partial, &target).await {
                    let why = format!(
                        "cannot store {}: {}; the data is kept in {}",
                        target.display(),
                        describe_io(&e),
                        partial.display()
                    );
                    return refuse(send, why).await;
                }
                let _ = tokio::fs::remove_file(&partial).await;
                write_u64_message(send, OK, offer.size)
                    .await
                    .map_err(ReceiveError::Stream)?;
                Ok(Received::Stored {
                    name: offer.name,
                    size: offer.size,
                    resumed_from,
                })
            }
            None => Err(ReceiveError::Superseded(offer.name)),
        }
    }

    /// Waits for the right to write `name`, telling an older transfer of it to stop.
    async fn claim(&self, name: &str) -> Claim {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots
                .entry(name.to_owned())
                .or_insert_with(|| {
                    Arc::new(Slot {
                        generation: watch::Sender::new(0),
                        lock: Arc::default(),
                    })
                })
                .clone()
        };
        let mut generation = 0;
        slot.generation.send_modify(|g| {
            *g += 1;
            generation = *g;
        });
        let changes = slot.generation.subscribe();
        let guard = slot.lock.clone().lock_owned().await;
        Claim {
            slots: self.slots.clone(),
            name: name.to_owned(),
            slot,
            generation,
            changes,
            _guard: guard,
        }
    }

    /// `DIR/NAME` exists: fine if it is this very file (say so), refused otherwise.
    async fn already_there<R, W>(
        &self,
        recv: &mut R,
        send: &mut W,
        offer: &Offer,
        target: &Path,
    ) -> Result<Received, ReceiveError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let same = match hash_file(target).await {
            Ok((sha, len)) => len == offer.size && sha == offer.sha256,
            Err(_) => false,
        };
        if !same {
            let why = format!(
                "the server already has a different file named {}; \
                 send it under another name with --name, or remove the old one from the server",
                offer.name
            );
            return refuse(send, why).await;
        }
        write_u64_message(send, READY, offer.size)
            .await
            .map_err(ReceiveError::Stream)?;
        let offset = recv.read_u64().await.map_err(ReceiveError::Stream)?;
        let mut rest = [0u8; 1];
        let extra = recv.read(&mut rest).await.map_err(ReceiveError::Stream)?;
        if offset != offer.size || extra != 0 {
            return refuse(send, "data beyond the announced size".to_owned()).await;
        }
        write_u64_message(send, OK, offer.size)
            .await
            .map_err(ReceiveError::Stream)?;
        Ok(Received::AlreadyThere {
            name: offer.name.clone(),
            size: offer.size,
        })
    }

    /// Deletes partial files of `name` other than `keep` (older versions of the file).
    async fn remove_other_partials(&self, name: &str, keep: &str) {
        let prefix = format!(".{name}.");
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let is_version = file_name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".partial"))
                .is_some_and(|hash| hash.len() == 16 && !hash.contains('.'));
            if is_version && file_name != keep {
                tracing::info!(
                    file = file_name,
                    "removing a partial file of an older version"
                );
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }

    /// Appends the client's data to the partial file and checks the hash. `Some(resumed_from)`
    /// when the whole file is there, verified and synced; `None` when superseded.
    async fn write_partial<R, W>(
        &self,
        recv: &mut R,
        send: &mut W,
        offer: &Offer,
        partial: &Path,
        claim: &mut Claim,
    ) -> Result<Option<u64>, ReceiveError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let opened = open_partial(partial, offer.size).await;
        let (mut file, mut hasher, resumed_from) = match opened {
            Ok(x) => x,
            Err(e) => {
                let why = format!("cannot write {}: {}", partial.display(), describe_io(&e));
                return refuse(send, why).await;
            }
        };
        write_u64_message(send, READY, resumed_from)
            .await
            .map_err(ReceiveError::Stream)?;
        let offset = recv.read_u64().await.map_err(ReceiveError::Stream)?;
        if offset != resumed_from {
            let why = format!("the data starts at byte {offset}, not at {resumed_from}");
            return refuse(send, why).await;
        }
        let mut have = resumed_from;
        let mut reported = have / PROGRESS_INTERVAL;
        let mut buf = vec![0u8; CHUNK];
        let interrupted = |have, source| ReceiveError::Interrupted {
            name: offer.name.clone(),
            have,
            size: offer.size,
            source,
        };
        loop {
            let n = tokio::select! {
                r = recv.read(&mut buf) => match r {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = file.flush().await;
                        return Err(interrupted(have, e));
                    }
                },
                Ok(()) = claim.changes.changed() => {
                    if claim.superseded() {
                        let _ = file.flush().await;
                        let _ = write_text_message(send, ERROR, "a newer transfer of this file took over").await;
                        return Ok(None);
                    }
                    continue;
                }
            };
            if n == 0 {
                break;
            }
            let data = buf.get(..n).unwrap_or_default();
            if have + n as u64 > offer.size {
                drop(file);
                let _ = tokio::fs::remove_file(partial).await;
                let why = format!(
                    "more data than the announced {} bytes; the partial file was deleted",
                    offer.size
                );
                return refuse(send, why).await;
            }
            if let Err(e) = file.write_all(data).await {
                let why = format!("cannot write {}: {}", partial.display(), describe_io(&e));
                return refuse(send, why).await;
            }
            hasher.update(data);
            have += n as u64;
            if have / PROGRESS_INTERVAL > reported {
                reported = have / PROGRESS_INTERVAL;
                // Report only what the file system has.
                file.flush().await.map_err(|e| interrupted(have, e))?;
                write_u64_message(send, PROGRESS, have)
                    .await
                    .map_err(|e| interrupted(have, e))?;
            }
        }
        let synced = async {
            file.flush().await?;
            file.sync_all().await
        };
        if let Err(e) = synced.await {
            let why = format!("cannot write {}: {}", partial.display(), describe_io(&e));
            return refuse(send, why).await;
        }
        drop(file);
        if have < offer.size {
            let why = format!(
                "the stream ended after {have} of {} bytes; the partial file is kept: \
                 send again to resume",
                offer.size
            );
            return refuse(send, why).await;
        }
        if digest_bytes(hasher) != offer.sha256 {
            let _ = tokio::fs::remove_file(partial).await;
            let why = "the SHA-256 of the data received does not match the one announced; \
                       the partial file was deleted: send again"
                .to_owned();
            return refuse(send, why).await;
        }
        Ok(Some(resumed_from))
    }
}

/// Opens (or creates) a partial file, hashing what it holds; a partial file longer than the
/// announced size is not a prefix of this file and starts over.
async fn open_partial(
    path: &Path,
    size: u64,
) -> io::Result<(tokio::fs::File, aws_lc_rs::digest::Context, u64)> {
    let path = path.to_owned();
    let (file, hasher, have) = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut have = file.metadata()?.len();
        if have > size {
            file.set_len(0)?;
            have = 0;
        }
        let (hasher, _) = hash_prefix(&mut file, have)?;
        Ok::<_, io::Error>((file, hasher, have))
    })
    .await
    .map_err(io::Error::other)??;
    let mut file = tokio::fs::File::from_std(file);
    file.seek(SeekFrom::Start(have)).await?;
    Ok((file, hasher, have))
}

/// Makes `to` name the file `from` names, failing if `to` exists: atomically with a hard link,
/// or, on file systems without hard links, with a rename after checking.
async fn link_no_clobber(from: &Path, to: &Path) -> io::Result<()> {
    match tokio::fs::hard_link(from, to).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            if tokio::fs::try_exists(to).await? {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            tokio::fs::rename(from, to).await
        }
    }
}

async fn refuse<W: AsyncWrite + Unpin, T>(send: &mut W, why: String) -> Result<T, ReceiveError> {
    let _ = write_text_message(send, ERROR, &why).await;
    Err(ReceiveError::Refused(why))
}
