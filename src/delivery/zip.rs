//! Files as one zip, streamed: entries are STORE'd (no compression) with data descriptors and
//! zip64 fields, written into a small pipe as the files are read, so neither memory nor disk
//! ever holds the archive. The writer runs only as the body is polled (no task of its own),
//! so a client that stops reading holds at most the pipe, the piece in hand and the one sent
//! (within the listener's read-ahead budget of a piece, `http::ahead`). Every file is opened through the core as the caller, so a file it
//! may not read is left out. Share links (a shared folder) and the user API (a selection)
//! both serve it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::SystemTime;

use async_zip::base::write::ZipFileWriter;
use async_zip::{Compression, ZipDateTimeBuilder, ZipEntryBuilder};
use bytes::Bytes;
use futures_util::io::AsyncWriteExt;
use futures_util::stream::Stream;
use tokio_util::io::ReaderStream;

use crate::vfs::{Caller, VPath, Vfs, VfsError};

/// Bytes buffered between the zip writer and the response (at most one piece sent at a time).
const PIPE: usize = 64 * 1024;
/// Bytes read from a file at a time: with the pipe and the piece sent, a stalled zip holds at
/// most `wire::PIECE` plus `PIPE`, what the read-ahead budget counts a piece.
const READ: usize = crate::wire::PIECE - PIPE;
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
    // made at the first poll: a body still waiting for its turn holds no writer's state
    let start = move || -> Writer {
        Box::pin(async move {
            let r = write(&vfs, &caller, &base, &roots, wr).await;
            if let Err(e) = &r {
                tracing::warn!(dir = %base, error = %e, "zip ended early");
            }
            r
        })
    };
    Zipping {
        start: Some(Box::new(start)),
        writer: None,
        failed: None,
        out: ReaderStream::with_capacity(rd, PIPE),
    }
}

/// The zip writer's work, to its end.
type Writer = Pin<Box<dyn Future<Output = Result<(), ZipFailure>> + Send>>;

/// The zip's body: the writer, driven as the body is polled, and what it wrote.
struct Zipping {
    start: Option<Box<dyn FnOnce() -> Writer + Send>>,
    writer: Option<Writer>,
    /// The writer failed: after its last byte the body fails, so the client sees a cut.
    failed: Option<ZipFailure>,
    out: ReaderStream<tokio::io::DuplexStream>,
}

impl Stream for Zipping {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(start) = self.start.take() {
            self.writer = Some(start());
        }
        if let Some(w) = self.writer.as_mut() {
            if let Poll::Ready(r) = w.as_mut().poll(cx) {
                self.writer = None;
                self.failed = r.err();
            }
        }
        match ready!(Pin::new(&mut self.out).poll_next(cx)) {
            Some(piece) => Poll::Ready(Some(piece)),
            None => Poll::Ready(self.failed.take().map(|e| Err(io::Error::other(e)))),
        }
    }
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
    let mut at = 0;
    while at < entry.size {
        let piece = download.read_at(at, READ).await?;
        if piece.is_empty() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        w.write_all(&piece).await?;
        at += piece.len() as u64;
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
