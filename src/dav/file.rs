//! dav-server file handles over core downloads and uploads, plus metadata and directory entries.

use std::io::SeekFrom;
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use dav_server::fs::{DavDirEntry, DavFile, DavMetaData, FsError, FsFuture, FsResult};
use futures_util::FutureExt;

use super::errors::to_fs_error;
use crate::vfs::{Download, Entry, Upload};

/// Metadata as dav-server wants it; the ETag is the content MD5.
#[derive(Clone, Debug)]
pub struct Meta(pub Entry);

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.0.size
    }
    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.0.http_mtime())
    }
    fn is_dir(&self) -> bool {
        self.0.is_dir
    }
    fn etag(&self) -> Option<String> {
        Some(self.0.etag.clone())
    }
    fn content_type(&self) -> Option<String> {
        Some(self.0.content_type.clone())
    }
    fn created(&self) -> FsResult<SystemTime> {
        Ok(self.0.http_mtime())
    }
    fn has_dead_props(&self) -> Option<bool> {
        self.0.has_props
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// A listing entry built from the folder's one SQL query.
pub struct DirEntry(pub Entry);

impl DavDirEntry for DirEntry {
    fn name(&self) -> Vec<u8> {
        self.0.path.name().as_bytes().to_vec()
    }
    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(Meta(self.0.clone()));
        async move { Ok(m) }.boxed()
    }
    fn is_dir(&self) -> FsFuture<'_, bool> {
        let d = self.0.is_dir;
        async move { Ok(d) }.boxed()
    }
}

/// A file opened for GET: positional reads of bounded size.
pub struct ReadFile {
    pub entry: Entry,
    pub download: Download,
    pub pos: u64,
}

impl std::fmt::Debug for ReadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadFile({})", self.entry.path)
    }
}

impl DavFile for ReadFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(Meta(self.entry.clone()));
        async move { Ok(m) }.boxed()
    }
    fn write_buf(&mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }
    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }
    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            let b = self
                .download
                .read_at(self.pos, count)
                .await
                .map_err(to_fs_error)?;
            self.pos += b.len() as u64;
            Ok(b)
        }
        .boxed()
    }
    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        let size = self.entry.size as i64;
        let new = match pos {
            SeekFrom::Start(n) => Some(n as i64),
            SeekFrom::Current(d) => (self.pos as i64).checked_add(d),
            SeekFrom::End(d) => size.checked_add(d),
        };
        async move {
            match new {
                Some(n) if n >= 0 => {
                    self.pos = n as u64;
                    Ok(self.pos)
                }
                _ => Err(FsError::GeneralFailure),
            }
        }
        .boxed()
    }
    fn flush(&mut self) -> FsFuture<'_, ()> {
        async { Ok(()) }.boxed()
    }
}

/// A file opened for PUT (or LOCK on an unmapped URL): an atomic upload committed on flush.
pub struct WriteFile {
    pub upload: Upload,
    pub committed: Option<Entry>,
}

impl std::fmt::Debug for WriteFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriteFile({:?})", self.upload)
    }
}

impl DavFile for WriteFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m = self.committed.clone();
        async move {
            match m {
                Some(e) => Ok(Box::new(Meta(e)) as Box<dyn DavMetaData>),
                None => Err(FsError::NotFound),
            }
        }
        .boxed()
    }
    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        self.write_bytes(bytes)
    }
    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move { self.upload.write(buf).await.map_err(to_fs_error) }.boxed()
    }
    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        async { Err(FsError::Forbidden) }.boxed()
    }
    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        // Only "seek to where we are" is meaningful for a streaming upload.
        let here = self.upload.written();
        async move {
            match pos {
                SeekFrom::Start(n) if n == here => Ok(here),
                SeekFrom::Current(0) => Ok(here),
                _ => Err(FsError::NotImplemented),
            }
        }
        .boxed()
    }
    fn flush(&mut self) -> FsFuture<'_, ()> {
        async move {
            if self.committed.is_none() {
                let e = self.upload.commit().await.map_err(to_fs_error)?;
                self.committed = Some(e);
            }
            Ok(())
        }
        .boxed()
    }
}
