//! ListObjects (v1, v2) from SQL: one query per page, S3's byte order.

use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::dto::ts;
use super::errors::object_error;
use super::names;
use super::service::KuraS3;
use crate::vfs::{Caller, Entry, VfsError};

/// What `encoding-type=url` leaves as it is.
const KEY_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// One page of a listing.
struct Page {
    objects: Vec<(String, Entry)>,
    prefixes: Vec<String>,
    truncated: bool,
    last: Option<String>,
}

enum Item {
    Object(String, Box<Entry>),
    Prefix(String),
}

impl Item {
    fn key(&self) -> &str {
        match self {
            Item::Object(k, _) | Item::Prefix(k) => k,
        }
    }
}

impl Page {
    fn from_items(mut items: Vec<Item>, max: usize) -> Page {
        let truncated = items.len() > max;
        items.truncate(max);
        let last = items.last().map(|i| i.key().to_string());
        let mut page = Page {
            objects: Vec::new(),
            prefixes: Vec::new(),
            truncated,
            last,
        };
        for i in items {
            match i {
                Item::Object(k, e) => page.objects.push((k, *e)),
                Item::Prefix(p) => page.prefixes.push(p),
            }
        }
        page
    }
}

pub(super) fn encode(s: &str, url: bool) -> String {
    if url {
        utf8_percent_encode(s, KEY_SAFE).to_string()
    } else {
        s.to_string()
    }
}

pub(super) fn wants_url(e: Option<&EncodingType>) -> bool {
    e.is_some_and(|e| e.as_str() == EncodingType::URL)
}

impl KuraS3 {
    /// The keys of `bucket` after `after` that start with `prefix`, grouped at `delimiter`.
    async fn page(
        &self,
        who: &Caller,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: &str,
        max: usize,
    ) -> S3Result<Page> {
        let bucket_path = self.require_bucket(who, bucket).await?;
        if max == 0 {
            return Ok(Page::from_items(Vec::new(), 0));
        }
        if delimiter == Some("/") {
            // the direct children of one folder: one query
            let (parent, name_prefix) = match prefix.rfind('/') {
                Some(i) => (&prefix[..=i], &prefix[i + 1..]),
                None => ("", prefix),
            };
            let dir = if parent.is_empty() {
                bucket_path.clone()
            } else {
                match names::object(bucket, parent) {
                    Ok(o) => o.path,
                    Err(_) => return Ok(Page::from_items(Vec::new(), max)),
                }
            };
            // the marker as a name in this folder: before it, the whole folder; past it, nothing
            let after_name = match after.strip_prefix(parent) {
                Some(rest) => rest,
                None if after < parent => "",
                None => return Ok(Page::from_items(Vec::new(), max)),
            };
            let children = match self
                .vfs
                .list_page(who, &dir, name_prefix, after_name, max + 1)
                .await
            {
                Ok(c) => c,
                Err(VfsError::NotFound) | Err(VfsError::WrongKind(_)) => Vec::new(),
                Err(e) => return Err(object_error(e)),
            };
            let items: Vec<Item> = children
                .into_iter()
                .map(|e| {
                    let key = format!("{parent}{}", e.path.name());
                    if e.is_dir {
                        Item::Prefix(format!("{key}/"))
                    } else {
                        Item::Object(key, Box::new(e))
                    }
                })
                .collect();
            return Ok(Page::from_items(items, max));
        }
        // every file below the prefix, in key order, optionally grouped at another delimiter
        let mut items = Vec::new();
        let mut cursor = after.to_string();
        'fill: while items.len() <= max {
            let batch = self
                .vfs
                .files_below(who, &bucket_path, prefix, &cursor, max + 1 - items.len())
                .await
                .map_err(object_error)?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                let key = names::key_of(&bucket_path, &e.path);
                cursor = key.clone();
                let group = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                    key[prefix.len()..]
                        .find(d)
                        .map(|i| key[..prefix.len() + i + d.len()].to_string())
                });
                match group {
                    Some(cp) => {
                        cursor = format!("{cp}{}", char::MAX);
                        if cp.as_str() > after {
                            items.push(Item::Prefix(cp));
                        }
                        continue 'fill;
                    }
                    None => items.push(Item::Object(key, Box::new(e))),
                }
                if items.len() > max {
                    break 'fill;
                }
            }
        }
        Ok(Page::from_items(items, max))
    }

    pub(super) async fn list_v2(
        &self,
        who: Caller,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let who = &who;
        let input = req.input;
        let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = match &input.continuation_token {
            Some(t) => {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t)
                    .map_err(|_| s3_error!(InvalidArgument, "invalid continuation token"))?;
                String::from_utf8(raw)
                    .map_err(|_| s3_error!(InvalidArgument, "invalid continuation token"))?
            }
            None => input.start_after.clone().unwrap_or_default(),
        };
        let page = self
            .page(
                who,
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                &after,
                max,
            )
            .await?;
        let url = wants_url(input.encoding_type.as_ref());
        let owner = input.fetch_owner.unwrap_or(false);
        let key_count = (page.objects.len() + page.prefixes.len()) as i32;
        let next = page
            .truncated
            .then(|| {
                page.last
                    .as_ref()
                    .map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k))
            })
            .flatten();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encode(&prefix, url)),
            delimiter: input.delimiter.map(|d| encode(&d, url)),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            is_truncated: Some(page.truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            start_after: input.start_after.map(|s| encode(&s, url)),
            encoding_type: input.encoding_type,
            contents: Some(objects(page.objects, url, owner)),
            common_prefixes: Some(prefixes(page.prefixes, url)),
            ..Default::default()
        }))
    }

    pub(super) async fn list_v1(
        &self,
        who: Caller,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let who = &who;
        let input = req.input;
        let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = input.marker.clone().unwrap_or_default();
        let page = self
            .page(
                who,
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                &after,
                max,
            )
            .await?;
        let url = wants_url(input.encoding_type.as_ref());
        let owner = true;
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encode(&prefix, url)),
            delimiter: input.delimiter.map(|d| encode(&d, url)),
            marker: Some(encode(&after, url)),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            next_marker: page
                .truncated
                .then(|| page.last.as_deref().map(|k| encode(k, url)))
                .flatten(),
            encoding_type: input.encoding_type,
            contents: Some(objects(page.objects, url, owner)),
            common_prefixes: Some(prefixes(page.prefixes, url)),
            ..Default::default()
        }))
    }
}

/// The object's own owner (not the caller's name, which every object showed before).
fn owner_of(e: &Entry) -> Option<Owner> {
    e.owner.as_ref().map(|o| Owner {
        display_name: Some(o.clone()),
        id: Some(o.clone()),
    })
}

fn objects(list: Vec<(String, Entry)>, url: bool, owner: bool) -> Vec<Object> {
    list.into_iter()
        .map(|(k, e)| Object {
            owner: owner.then(|| owner_of(&e)).flatten(),
            key: Some(encode(&k, url)),
            size: Some(e.size as i64),
            e_tag: Some(ETag::Strong(e.etag.clone())),
            last_modified: Some(ts(e.http_mtime())),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect()
}

pub(super) fn prefixes(list: Vec<String>, url: bool) -> Vec<CommonPrefix> {
    list.into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(encode(&p, url)),
        })
        .collect()
}
