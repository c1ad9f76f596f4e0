//! Files as one zip, streamed: entries are STORE'd (no compression) with data descriptors and
//! zip64 fields, written into a small pipe as the files are read, so neither memory nor disk
//! ever holds the archive. Every file is opened through the core as the caller, so a file it
//! may not read is left out. Share links (a shared folder) and the user API (a selection)
//! both serve it.

use std::io;
use std::time::SystemTime;

use async_zip::base::write::ZipFileWriter;
use async_zip::{Compression, ZipDateTimeBuilder, ZipEntryBuilder};
use bytes::Bytes;
use futures_util::io::AsyncWriteExt;
use futures_util::stream::{self, Stream, StreamExt};
use tokio_util::io::ReaderStream;

use crate::vfs::{Caller, VPath, Vfs, VfsError};

/// Bytes buffered between the zip writer and the response.
const PIPE: usize = 256 * 1024;
/// Files fetched from the metadata per query.
const PAGE: usize = 500;

/// Why the archive could not be completed (the response is then cut off, never passed off as
/// complete).
#[derive(Debug, thiserror::Error)]
enum ZipFailure {
    #[error(transparent)]
    Vfs(#[from] VfsError),
    #[error(transparent)]
    Zip(#[from] async_zip::error::ZipError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The zip of the files `roots` (files, or folders with every file below them) that `caller`
/// may read, named relative to the folder `base` that holds them all, as a body stream.
pub fn stream(
    vfs: Vfs,
    caller: Caller,
    base: VPath,
    roots: Vec<VPath>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (rd, wr) = tokio::io::duplex(PIPE);
    let task = tokio::spawn(async move {
        let r = write(&vfs, &caller, &base, &roots, wr).await;
        if let Err(e) = &r {
            tracing::warn!(dir = %base, error = %e, "zip ended early");
        }
        r
    });
    // after the last byte, a failed writer turns into a body error so the client sees a cut
    let tail = stream::once(async move {
        match task.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(Err(io::Error::other(e))),
            Err(e) => Some(Err(io::Error::other(e))),
        }
    })
    .filter_map(|x| async move { x });
    ReaderStream::with_capacity(rd, crate::wire::PIECE).chain(tail)
}

/// The part of `path` below the folder `base`, as the entry's name: each segment the name a
/// download saves a file under (`headers::saved_name`: no bidi controls).
fn relative(base: &VPath, path: &VPath) -> String {
    let skip = if base.is_root() {
        1
    } else {
        base.as_str().len() + 1
    };
    let below = path.as_str().get(skip..).unwrap_or_default();
    below
        .split('/')
        .map(super::headers::saved_name)
        .collect::<Vec<_>>()
        .join("/")
}

async fn write(
    vfs: &Vfs,
    caller: &Caller,
    base: &VPath,
    roots: &[VPath],
    out: tokio::io::DuplexStream,
) -> Result<(), ZipFailure> {
    let mut zip = ZipFileWriter::with_tokio(out);
    for root in roots {
        let top = match vfs.stat(caller, root).await {
            Ok(e) => e,
            Err(VfsError::Forbidden(_) | VfsError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        if !top.is_dir {
            add(vfs, caller, base, root, &mut zip).await?;
            continue;
        }
        let mut after = String::new();
        loop {
            let page = match vfs.files_below(caller, root, "", &after, PAGE).await {
                Ok(p) => p,
                Err(VfsError::Forbidden(_) | VfsError::NotFound) => break,
                Err(e) => return Err(e.into()),
            };
            let Some(last) = page.last() else { break };
            after = relative(root, &last.path);
            for file in &page {
                add(vfs, caller, base, &file.path, &mut zip).await?;
            }
            if page.len() < PAGE {
                break;
            }
        }
    }
    let mut out = zip.close().await?;
    out.close().await?;
    Ok(())
}

/// Adds one file, read through the core as `caller`; one it may not read is left out, and so is
/// an SSE-C file (it opens only with the key its S3 client keeps).
async fn add(
    vfs: &Vfs,
    caller: &Caller,
    base: &VPath,
    path: &VPath,
    zip: &mut ZipFileWriter<tokio_util::compat::Compat<tokio::io::DuplexStream>>,
) -> Result<(), ZipFailure> {
    let (entry, download) = match vfs.open_read(caller, path).await {
        Ok(x) => x,
        Err(
            VfsError::Forbidden(_)
            | VfsError::NotFound
            | VfsError::WrongKind(_)
            | VfsError::CustomerKey(_),
        ) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let opts = ZipEntryBuilder::new(relative(base, &entry.path).into(), Compression::Stored)
        .last_modification_date(zip_date(entry.mtime))
        .unix_permissions(0o644);
    let mut w = zip.write_entry_stream(opts).await?;
    let mut bytes = download.into_stream(0..entry.size).await?;
    while let Some(chunk) = bytes.next().await {
        w.write_all(&chunk?).await?;
    }
    w.close().await?;
    Ok(())
}

fn zip_date(t: SystemTime) -> async_zip::ZipDateTime {
    let t = time::OffsetDateTime::from(t);
    // zip dates start in 1980
    let year = t.year().max(1980);
    ZipDateTimeBuilder::new()
        .year(year)
        .month(u32::from(u8::from(t.month())))
        .day(u32::from(t.day()))
        .hour(u32::from(t.hour()))
        .minute(u32::from(t.minute()))
        .second(u32::from(t.second()))
        .build()
}
