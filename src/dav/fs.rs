//! dav-server's `GuardedFileSystem` over the core: translation only, no rules.

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavMetaData, DavProp, FsError, FsFuture, FsStream, GuardedFileSystem,
    OpenOptions, ReadDirMeta,
};
use futures_util::{FutureExt, StreamExt};
use http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::errors::to_fs_error;
use super::file::{DirEntry, Meta, ReadFile, WriteFile};
use super::live_props;
use crate::vfs::DeadProp;
use crate::vfs::{Caller, Entry, UploadOptions, VPath, Vfs};

/// Entries of a folder read at a time by a PROPFIND (its memory is in proportion).
const LIST_CHUNK: usize = 500;

/// Dead properties of the children of one folder, by child path (`Vfs::children_props`).
type FolderProps = (VPath, Arc<HashMap<String, Vec<DeadProp>>>);
/// The quota answer (used, total) for one bucket.
type BucketQuota = (String, (u64, Option<u64>));

/// The WebDAV view of the namespace for one request's caller.
#[derive(Clone)]
pub struct KuraFs {
    vfs: Vfs,
    /// Whether this client is told RFC 4331 quotas (`finder::gets_quota`).
    quota: bool,
    /// The dead properties of the folder a PROPFIND lists, read in one query when the first
    /// entry that has some is answered (not one query per entry).
    folder_props: Arc<Mutex<Option<FolderProps>>>,
    /// The quota answer of the last bucket asked (the same for every entry of a listing).
    quota_memo: Arc<Mutex<Option<BucketQuota>>>,
}

impl KuraFs {
    /// The filesystem of one request (its memos live as long as the request).
    pub fn new(vfs: Vfs, quota: bool) -> Self {
        KuraFs {
            vfs,
            quota,
            folder_props: Arc::default(),
            quota_memo: Arc::default(),
        }
    }

    /// The dead properties of `p`, an entry of a listing known to have some: from the memo of
    /// its folder's properties, read in one query the first time.
    async fn listed_props(&self, caller: &Caller, p: &VPath) -> Result<Vec<DeadProp>, FsError> {
        let dir = p.parent();
        let memo = lock(&self.folder_props)
            .as_ref()
            .filter(|(d, _)| *d == dir)
            .map(|(_, m)| m.clone());
        let map = match memo {
            Some(m) => m,
            None => {
                let m = Arc::new(
                    self.vfs
                        .children_props(caller, &dir)
                        .await
                        .map_err(to_fs_error)?,
                );
                *lock(&self.folder_props) = Some((dir, m.clone()));
                m
            }
        };
        Ok(map.get(p.as_str()).cloned().unwrap_or_default())
    }

    /// The dead properties of `p` from the folder memo when this request has read it and it
    /// holds them; `None` otherwise.
    fn memo_props(&self, p: &VPath) -> Option<Vec<DeadProp>> {
        let dir = p.parent();
        lock(&self.folder_props)
            .as_ref()
            .filter(|(d, _)| *d == dir)
            .and_then(|(_, m)| m.get(p.as_str()).cloned())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The live properties, and the dead ones given, of an entry.
fn all_props(entry: &Entry, readable: bool, dead: Vec<DeadProp>, do_content: bool) -> Vec<DavProp> {
    let mut out: Vec<DavProp> = live_props::NAMES
        .iter()
        .filter(|n| readable || !live_props::PRIVATE.contains(n))
        .map(|n| live_props::prop(entry, n, do_content))
        .collect();
    out.extend(dead.into_iter().map(|d| from_dead(d, do_content)));
    out
}

pub(super) fn vpath(p: &DavPath) -> Result<VPath, FsError> {
    let s = std::str::from_utf8(p.as_bytes()).map_err(|_| FsError::Forbidden)?;
    VPath::parse(s).map_err(|_| FsError::Forbidden)
}

fn to_dead(p: &DavProp) -> DeadProp {
    DeadProp {
        namespace: p.namespace.clone().unwrap_or_default(),
        name: p.name.clone(),
        prefix: p.prefix.clone(),
        xml: p
            .xml
            .as_ref()
            .map(|x| String::from_utf8_lossy(x).into_owned()),
    }
}

fn from_dead(p: DeadProp, with_content: bool) -> DavProp {
    DavProp {
        name: p.name,
        prefix: p.prefix,
        namespace: if p.namespace.is_empty() {
            None
        } else {
            Some(p.namespace)
        },
        xml: if with_content {
            p.xml.map(String::into_bytes)
        } else {
            None
        },
    }
}

impl GuardedFileSystem<Caller> for KuraFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        caller: &'a Caller,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let p = vpath(path)?;
            if options.write {
                let lock_null = !options.truncate && !options.append && options.size.is_none();
                if !options.truncate && !lock_null {
                    // partial updates (Content-Range PUT, SabreDAV PATCH) would break atomic commits
                    return Err(FsError::NotImplemented);
                }
                let opts = UploadOptions {
                    create_new: options.create_new || lock_null,
                    must_exist: !options.create,
                    if_match: options.if_match.clone(),
                    expected_size: options.size,
                    // new content for the same resource: its tags and description stay
                    keep_annotations: true,
                    ..Default::default()
                };
                // LOCK on an unmapped URL creates the resource under the lock just taken,
                // whose token the client does not know yet
                let caller = if lock_null {
                    let mut tokens = caller.lock_tokens.clone();
                    tokens.extend(
                        self.vfs
                            .own_locks_on(caller, &p)
                            .await
                            .map_err(to_fs_error)?,
                    );
                    &caller.clone().with_lock_tokens(tokens)
                } else {
                    caller
                };
                let mut upload = self
                    .vfs
                    .upload(caller, &p, opts)
                    .await
                    .map_err(to_fs_error)?;
                // LOCK on an unmapped URL creates an empty resource (RFC 4918 7.3) and never
                // flushes the handle, so commit it here.
                let committed = if lock_null {
                    Some(upload.commit().await.map_err(to_fs_error)?)
                } else {
                    None
                };
                Ok(Box::new(WriteFile { upload, committed }) as Box<dyn DavFile>)
            } else {
                // the row is read again with the open: the one `metadata` found may describe
                // bytes a commit has replaced since (its ETag would not be the body's)
                let (entry, download) =
                    self.vfs.open_read(caller, &p).await.map_err(to_fs_error)?;
                Ok(Box::new(ReadFile {
                    entry,
                    download,
                    pos: 0,
                }) as Box<dyn DavFile>)
            }
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
        caller: &'a Caller,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let p = vpath(path)?;
            // the first chunk answers errors (not found, no right to list) before the 207
            let first = self
                .vfs
                .list_chunk(caller, &p, "", LIST_CHUNK)
                .await
                .map_err(to_fs_error)?;
            let (vfs, caller) = (self.vfs.clone(), caller.clone());
            let chunks = futures_util::stream::unfold(Some(first), move |chunk| {
                let (vfs, caller, p) = (vfs.clone(), caller.clone(), p.clone());
                async move {
                    let chunk = chunk?;
                    let last = chunk.last()?.path.as_str().to_string();
                    let next = match vfs.list_chunk(&caller, &p, &last, LIST_CHUNK).await {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::warn!(path = %p, error = %e, "listing cut short");
                            None
                        }
                    };
                    Some((chunk, next))
                }
            });
            let items = chunks.flat_map(|chunk| {
                futures_util::stream::iter(
                    chunk
                        .into_iter()
                        .map(|e| Ok(Box::new(DirEntry(e)) as Box<dyn DavDirEntry>)),
                )
            });
            Ok(Box::pin(items) as FsStream<Box<dyn DavDirEntry>>)
        }
        .boxed()
    }

    fn metadata<'a>(
        &'a self,
        path: &'a DavPath,
        caller: &'a Caller,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let p = vpath(path)?;
            let e = self.vfs.stat(caller, &p).await.map_err(to_fs_error)?;
            Ok(Box::new(Meta(e)) as Box<dyn DavMetaData>)
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            self.vfs
                .mkdir(caller, &vpath(path)?)
                .await
                .map_err(to_fs_error)
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            self.vfs
                .delete(caller, &vpath(path)?)
                .await
                .map_err(to_fs_error)
        }
        .boxed()
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, caller: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            self.vfs
                .delete(caller, &vpath(path)?)
                .await
                .map_err(to_fs_error)
        }
        .boxed()
    }

    fn remove_file_if<'a>(
        &'a self,
        path: &'a DavPath,
        if_match: &'a str,
        caller: &'a Caller,
    ) -> FsFuture<'a, ()> {
        async move {
            self.vfs
                .delete_if_match(caller, &vpath(path)?, if_match)
                .await
                .map_err(to_fs_error)
        }
        .boxed()
    }

    fn may_replace<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        copy: bool,
        caller: &'a Caller,
    ) -> FsFuture<'a, ()> {
        async move {
            self.vfs
                .check_replace(caller, &vpath(from)?, &vpath(to)?, copy)
                .await
                .map_err(to_fs_error)
        }
        .boxed()
    }

    fn rename<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        caller: &'a Caller,
    ) -> FsFuture<'a, ()> {
        async move {
            self.vfs
                .rename(caller, &vpath(from)?, &vpath(to)?)
                .await
                .map_err(to_fs_error)
        }
        .boxed()
    }

    fn copy<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        caller: &'a Caller,
    ) -> FsFuture<'a, ()> {
        async move {
            self.vfs
                .copy(caller, &vpath(from)?, &vpath(to)?)
                .await
                .map_err(to_fs_error)
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        _path: &'a DavPath,
        _caller: &'a Caller,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(std::future::ready(true))
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
        caller: &'a Caller,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        async move {
            let p = vpath(path)?;
            let is_live = |d: &DavProp| d.namespace.as_deref() == Some(live_props::NS);
            // Kura's own properties change through the core (chmod/chown rules); a refusal
            // fails the whole PROPPATCH (424 for the rest) before any dead property changes
            let mut failed = None;
            for (set, prop) in patch.iter().filter(|(_, d)| is_live(d)) {
                let value = prop.xml.as_deref().and_then(live_props::text);
                let res = match (set, prop.name.as_str(), value) {
                    (true, "mode", Some(v)) => match u32::from_str_radix(&v, 8) {
                        Ok(m) => self.vfs.chmod(caller, &p, m).await,
                        _ => Err(crate::vfs::VfsError::InvalidArgument(
                            "mode is octal, 000 to 777",
                        )),
                    },
                    (true, "group", Some(g)) => self.vfs.chown(caller, &p, None, Some(&g)).await,
                    (true, "owner", Some(u)) => self.vfs.chown(caller, &p, Some(&u), None).await,
                    (set, "tags", v) => match crate::vfs::tags::parse_query(
                        v.as_deref().filter(|_| *set).unwrap_or_default(),
                    ) {
                        Ok(t) => self.vfs.set_tags(caller, &p, &t).await.map(|_| ()),
                        Err(e) => Err(e),
                    },
                    (set, "description", v) => self
                        .vfs
                        .set_description(caller, &p, v.as_deref().filter(|_| *set))
                        .await
                        .map(|_| ()),
                    _ => Err(crate::vfs::VfsError::Forbidden(
                        "this property cannot be removed or set so",
                    )),
                };
                if let Err(e) = res {
                    tracing::debug!(error = %e, prop = %prop.name, "PROPPATCH refused");
                    failed = Some(prop.name.clone());
                    break;
                }
            }
            if let Some(bad) = failed {
                return Ok(patch
                    .into_iter()
                    .map(|(_, mut prop)| {
                        prop.xml = None;
                        let code = if is_live(&prop) && prop.name == bad {
                            StatusCode::FORBIDDEN
                        } else {
                            StatusCode::FAILED_DEPENDENCY
                        };
                        (code, prop)
                    })
                    .collect());
            }
            let dead: Vec<(bool, DeadProp)> = patch
                .iter()
                .filter(|(_, d)| !is_live(d))
                .map(|(set, prop)| (*set, to_dead(prop)))
                .collect();
            if !dead.is_empty() {
                self.vfs
                    .patch_props(caller, &p, &dead)
                    .await
                    .map_err(to_fs_error)?;
            }
            Ok(patch
                .into_iter()
                .map(|(_, mut prop)| {
                    prop.xml = None;
                    (StatusCode::OK, prop)
                })
                .collect())
        }
        .boxed()
    }

    fn get_props<'a>(
        &'a self,
        path: &'a DavPath,
        do_content: bool,
        caller: &'a Caller,
    ) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            let p = vpath(path)?;
            let entry = self.vfs.stat(caller, &p).await.map_err(to_fs_error)?;
            let readable = self.vfs.require_readable(caller, &entry).await.is_ok();
            let props = self.vfs.props(caller, &p).await.map_err(to_fs_error)?;
            Ok(all_props(&entry, readable, props, do_content))
        }
        .boxed()
    }

    fn get_props_of<'a>(
        &'a self,
        path: &'a DavPath,
        meta: &'a dyn DavMetaData,
        do_content: bool,
        caller: &'a Caller,
    ) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            let Some(Meta(entry)) = meta.as_any().and_then(|a| a.downcast_ref::<Meta>()) else {
                return self.get_props(path, do_content, caller).await;
            };
            let readable = self.vfs.require_readable(caller, entry).await.is_ok();
            let props = match entry.has_props {
                Some(false) => Vec::new(),
                // an entry of a listing: its folder's properties are read once
                Some(true) => self.listed_props(caller, &entry.path).await?,
                None => self
                    .vfs
                    .props(caller, &entry.path)
                    .await
                    .map_err(to_fs_error)?,
            };
            Ok(all_props(entry, readable, props, do_content))
        }
        .boxed()
    }

    fn get_prop<'a>(
        &'a self,
        path: &'a DavPath,
        prop: DavProp,
        caller: &'a Caller,
    ) -> FsFuture<'a, Vec<u8>> {
        async move {
            let p = vpath(path)?;
            let ns = prop.namespace.unwrap_or_default();
            if ns == live_props::NS && live_props::NAMES.contains(&prop.name.as_str()) {
                let entry = self.vfs.stat(caller, &p).await.map_err(to_fs_error)?;
                if live_props::PRIVATE.contains(&prop.name.as_str()) {
                    self.vfs
                        .require_readable(caller, &entry)
                        .await
                        .map_err(to_fs_error)?;
                }
                return live_props::prop(&entry, &prop.name, true)
                    .xml
                    .ok_or(FsError::NotFound);
            }
            let props = match self.memo_props(&p) {
                Some(props) => props,
                None => self.vfs.props(caller, &p).await.map_err(to_fs_error)?,
            };
            props
                .into_iter()
                .find(|d| d.namespace == ns && d.name == prop.name)
                .and_then(|d| d.xml)
                .map(String::into_bytes)
                .ok_or(FsError::NotFound)
        }
        .boxed()
    }

    fn get_quota_at<'a>(
        &'a self,
        path: &'a DavPath,
        caller: &'a Caller,
    ) -> FsFuture<'a, (u64, Option<u64>)> {
        async move {
            if !self.quota {
                // dav-server then answers the quota properties 404, as for a server without
                return Err(FsError::NotImplemented);
            }
            let p = vpath(path)?;
            // the answer is the bucket's (its group's quota), the same for all its entries
            let bucket = p.as_str().split('/').nth(1).unwrap_or_default();
            if let Some((b, q)) = lock(&self.quota_memo).as_ref() {
                if b == bucket {
                    return Ok(*q);
                }
            }
            let q = self.vfs.quota_at(caller, &p).await.map_err(to_fs_error)?;
            *lock(&self.quota_memo) = Some((bucket.to_string(), q));
            Ok(q)
        }
        .boxed()
    }

    fn get_quota<'a>(&'a self, caller: &'a Caller) -> FsFuture<'a, (u64, Option<u64>)> {
        async move {
            if !self.quota {
                return Err(FsError::NotImplemented);
            }
            let used = self.vfs.used_bytes(caller).await.map_err(to_fs_error)?;
            let free = self.vfs.available_bytes();
            Ok((used, free.map(|f| used + f)))
        }
        .boxed()
    }
}
