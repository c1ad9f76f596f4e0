//! Core behaviour on the `memory` service: what every protocol relies on.

use bytes::Bytes;

use md5::Digest;

use crate::config::StorageConfig;
use crate::store::DeadProp;

use super::*;

async fn vfs() -> Vfs {
    let op = Operator::new(opendal::services::Memory::default()).unwrap();
    let staging = Operator::new(opendal::services::Memory::default()).unwrap();
    Vfs::new(op, staging, Store::in_memory().await.unwrap(), None)
}

/// The caller of these storage tests: an administrator, since they keep files at the root,
/// where only administrators may (permissions are tested in tests/conformance/permissions.rs).
pub(super) fn ann() -> Caller {
    Caller {
        user: "ann".into(),
        is_admin: true,
        groups: vec!["family".into()],
        primary_group: Some("family".into()),
        can_create_buckets: true,
        lock_tokens: Vec::new(),
    }
}

pub(super) fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

async fn put(v: &Vfs, path: &str, body: &[u8]) -> Entry {
    put_as(v, &ann(), path, body).await
}

/// Writes `body` to `path` as `c` (the core's tests in other modules use it too).
pub(super) async fn put_as(v: &Vfs, c: &Caller, path: &str, body: &[u8]) -> Entry {
    let mut up = v
        .upload(c, &p(path), UploadOptions::default())
        .await
        .unwrap();
    up.write(Bytes::copy_from_slice(body)).await.unwrap();
    up.commit().await.unwrap()
}

async fn read_all(v: &Vfs, path: &str) -> Vec<u8> {
    let (e, dl) = v.open_read(&ann(), &p(path)).await.unwrap();
    dl.read_at(0, e.size as usize + 1).await.unwrap().to_vec()
}

#[tokio::test]
async fn upload_is_invisible_until_commit_and_etag_is_md5() {
    let v = vfs().await;
    let mut up = v
        .upload(&ann(), &p("/a.txt"), UploadOptions::default())
        .await
        .unwrap();
    up.write(Bytes::from_static(b"hello ")).await.unwrap();
    assert!(matches!(
        v.stat(&ann(), &p("/a.txt")).await,
        Err(VfsError::NotFound)
    ));
    up.write(Bytes::from_static(b"world")).await.unwrap();
    let e = up.commit().await.unwrap();
    assert_eq!(e.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
    assert_eq!(e.size, 11);
    assert_eq!(e.content_type, "text/plain");
    assert_eq!(e.owner.as_deref(), Some("ann"));
    assert_eq!(read_all(&v, "/a.txt").await, b"hello world");
}

#[tokio::test]
async fn dropped_or_short_upload_leaves_nothing_and_keeps_the_old_version() {
    let v = vfs().await;
    put(&v, "/f", b"old").await;
    {
        let mut up = v
            .upload(&ann(), &p("/f"), UploadOptions::default())
            .await
            .unwrap();
        up.write(Bytes::from_static(b"partial new")).await.unwrap();
        // dropped: the connection went away
    }
    let opts = UploadOptions {
        expected_size: Some(10),
        ..Default::default()
    };
    let mut up = v.upload(&ann(), &p("/f"), opts).await.unwrap();
    up.write(Bytes::from_static(b"short")).await.unwrap();
    assert!(matches!(
        up.commit().await,
        Err(VfsError::Incomplete {
            expected: 10,
            got: 5
        })
    ));
    let opts = UploadOptions {
        expected_size: Some(2),
        ..Default::default()
    };
    let mut up = v.upload(&ann(), &p("/g"), opts).await.unwrap();
    assert!(up.write(Bytes::from_static(b"too long")).await.is_err());
    drop(up);
    tokio::task::yield_now().await;
    assert_eq!(read_all(&v, "/f").await, b"old");
    assert!(matches!(
        v.stat(&ann(), &p("/g")).await,
        Err(VfsError::NotFound)
    ));
    assert_eq!(v.used_bytes(&ann()).await.unwrap(), 3);
}

#[tokio::test]
async fn parents_must_exist_and_kinds_must_match() {
    let v = vfs().await;
    let r = v
        .upload(&ann(), &p("/no/file"), UploadOptions::default())
        .await;
    assert!(matches!(r, Err(VfsError::Conflict(_))));
    assert!(matches!(
        v.mkdir(&ann(), &p("/x/y")).await,
        Err(VfsError::Conflict(_))
    ));
    v.mkdir(&ann(), &p("/d")).await.unwrap();
    assert!(matches!(
        v.mkdir(&ann(), &p("/d")).await,
        Err(VfsError::Exists)
    ));
    let r = v.upload(&ann(), &p("/d"), UploadOptions::default()).await;
    assert!(matches!(r, Err(VfsError::WrongKind(_))));
    put(&v, "/file", b"x").await;
    assert!(matches!(
        v.mkdir(&ann(), &p("/file/sub")).await,
        Err(VfsError::Conflict(_))
    ));
    let opts = UploadOptions {
        create_new: true,
        ..Default::default()
    };
    assert!(matches!(
        v.upload(&ann(), &p("/file"), opts).await,
        Err(VfsError::Exists)
    ));
    let opts = UploadOptions {
        must_exist: true,
        ..Default::default()
    };
    assert!(matches!(
        v.upload(&ann(), &p("/none"), opts).await,
        Err(VfsError::NotFound)
    ));
}

#[tokio::test]
async fn folder_move_carries_everything_below_without_rename_support() {
    let v = vfs().await;
    v.mkdir(&ann(), &p("/src")).await.unwrap();
    v.mkdir(&ann(), &p("/src/sub")).await.unwrap();
    put(&v, "/src/sub/a", b"aaa").await;
    put(&v, "/src/b", b"bb").await;
    v.mkdir(&ann(), &p("/dst")).await.unwrap();
    v.rename(&ann(), &p("/src"), &p("/dst/moved"))
        .await
        .unwrap();
    assert!(matches!(
        v.stat(&ann(), &p("/src")).await,
        Err(VfsError::NotFound)
    ));
    assert_eq!(read_all(&v, "/dst/moved/sub/a").await, b"aaa");
    assert_eq!(read_all(&v, "/dst/moved/b").await, b"bb");
    let names: Vec<String> = v
        .list(&ann(), &p("/dst/moved"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path.name().to_string())
        .collect();
    assert_eq!(names, ["b", "sub"]);
    assert!(matches!(
        v.rename(&ann(), &p("/dst"), &p("/dst/moved/inside")).await,
        Err(VfsError::Conflict(_))
    ));
}

#[tokio::test]
async fn file_move_replaces_a_file_but_never_a_folder() {
    let v = vfs().await;
    put(&v, "/a", b"new").await;
    put(&v, "/b", b"old!").await;
    v.mkdir(&ann(), &p("/d")).await.unwrap();
    assert!(matches!(
        v.rename(&ann(), &p("/a"), &p("/d")).await,
        Err(VfsError::Exists)
    ));
    v.rename(&ann(), &p("/a"), &p("/b")).await.unwrap();
    assert_eq!(read_all(&v, "/b").await, b"new");
    assert_eq!(v.used_bytes(&ann()).await.unwrap(), 3);
}

#[tokio::test]
async fn copy_keeps_bytes_etag_and_dead_props() {
    let v = vfs().await;
    let e = put(&v, "/a", b"content").await;
    let prop = DeadProp {
        namespace: "urn:x".into(),
        name: "tag".into(),
        prefix: Some("x".into()),
        xml: Some("<x:tag xmlns:x=\"urn:x\">v</x:tag>".into()),
    };
    v.patch_props(&ann(), &p("/a"), &[(true, prop.clone())])
        .await
        .unwrap();
    v.copy(&ann(), &p("/a"), &p("/b")).await.unwrap();
    let b = v.stat(&ann(), &p("/b")).await.unwrap();
    assert_eq!(b.etag, e.etag);
    assert_eq!(read_all(&v, "/b").await, b"content");
    assert_eq!(v.props(&ann(), &p("/b")).await.unwrap(), vec![prop]);
    assert_eq!(v.used_bytes(&ann()).await.unwrap(), 14);
}

#[tokio::test]
async fn delete_removes_the_tree_and_its_props() {
    let v = vfs().await;
    v.mkdir(&ann(), &p("/d")).await.unwrap();
    put(&v, "/d/f", b"12345").await;
    put(&v, "/dd", b"1").await;
    v.delete(&ann(), &p("/d")).await.unwrap();
    assert!(matches!(
        v.stat(&ann(), &p("/d/f")).await,
        Err(VfsError::NotFound)
    ));
    assert_eq!(v.list(&ann(), &VPath::root()).await.unwrap().len(), 1);
    assert_eq!(v.used_bytes(&ann()).await.unwrap(), 1);
    assert!(v.delete(&ann(), &VPath::root()).await.is_err());
}

#[tokio::test]
async fn ranged_reads() {
    let v = vfs().await;
    put(&v, "/r", b"0123456789").await;
    let (_, dl) = v.open_read(&ann(), &p("/r")).await.unwrap();
    assert_eq!(&dl.read_at(3, 4).await.unwrap()[..], b"3456");
    assert_eq!(&dl.read_at(8, 100).await.unwrap()[..], b"89");
    assert!(dl.read_at(10, 1).await.unwrap().is_empty());
}

#[tokio::test]
async fn nfd_and_nfc_names_are_one_file() {
    let v = vfs().await;
    put(&v, "/Cafe\u{301}.txt", b"nfd").await;
    assert_eq!(read_all(&v, "/Caf\u{e9}.txt").await, b"nfd");
}

#[tokio::test]
async fn folder_copy_copies_the_tree_and_leaves_the_source() {
    let v = vfs().await;
    v.mkdir(&ann(), &p("/src")).await.unwrap();
    v.mkdir(&ann(), &p("/src/sub")).await.unwrap();
    put(&v, "/src/sub/a", b"aaa").await;
    v.copy(&ann(), &p("/src"), &p("/copy")).await.unwrap();
    assert_eq!(read_all(&v, "/copy/sub/a").await, b"aaa");
    assert_eq!(read_all(&v, "/src/sub/a").await, b"aaa");
    assert_eq!(v.used_bytes(&ann()).await.unwrap(), 6);
    assert!(matches!(
        v.copy(&ann(), &p("/src"), &p("/src/sub/inner")).await,
        Err(VfsError::Conflict(_))
    ));
}

#[tokio::test]
async fn multipart_assembles_in_order_with_the_s3_etag() {
    let v = vfs().await;
    v.mkdir(&ann(), &p("/b")).await.unwrap();
    let target = p("/b/deep/obj");
    let id = v
        .multipart_start(
            &ann(),
            &target,
            (Some("application/x-t".into()), Default::default()),
            None,
        )
        .await
        .unwrap();
    let big = vec![1u8; multipart::MIN_PART_SIZE as usize];
    let mut p2 = v
        .multipart_part(&ann(), (&id, &target), 2, Some(3), None)
        .await
        .unwrap();
    p2.write(Bytes::from_static(b"end")).await.unwrap();
    let r2 = p2.commit().await.unwrap();
    let mut p1 = v
        .multipart_part(&ann(), (&id, &target), 1, None, None)
        .await
        .unwrap();
    p1.write(Bytes::from(big.clone())).await.unwrap();
    let r1 = p1.commit().await.unwrap();
    assert!(matches!(
        v.stat(&ann(), &target).await,
        Err(VfsError::NotFound)
    ));
    let part = |r: &crate::store::PartRow| CompletedPart {
        number: r.number,
        etag: format!("\"{}\"", r.etag),
    };
    assert!(matches!(
        v.multipart_complete(
            &ann(),
            (None, None),
            &id,
            &target,
            (&[part(&r2), part(&r1)], &Default::default())
        )
        .await,
        Err(VfsError::InvalidPartOrder)
    ));
    let e = v
        .multipart_complete(
            &ann(),
            (None, None),
            &id,
            &target,
            (&[part(&r1), part(&r2)], &Default::default()),
        )
        .await
        .unwrap();
    let mut md5s = Vec::new();
    md5s.extend(hex::decode(&r1.etag).unwrap());
    md5s.extend(hex::decode(&r2.etag).unwrap());
    assert_eq!(e.etag, format!("{:x}-2", md5::Md5::digest(&md5s)));
    assert_eq!(e.content_type, "application/x-t");
    let mut want = big;
    want.extend_from_slice(b"end");
    assert_eq!(read_all(&v, "/b/deep/obj").await, want);
    assert!(matches!(
        v.multipart_parts(&ann(), &id, &target).await,
        Err(VfsError::NoSuchUpload)
    ));
}

#[tokio::test]
async fn small_parts_and_unknown_uploads_are_refused() {
    let v = vfs().await;
    v.mkdir(&ann(), &p("/b")).await.unwrap();
    let target = p("/b/o");
    assert!(matches!(
        v.multipart_part(&ann(), ("nope", &target), 1, None, None)
            .await,
        Err(VfsError::NoSuchUpload)
    ));
    let id = v
        .multipart_start(&ann(), &target, (None, Default::default()), None)
        .await
        .unwrap();
    assert!(v
        .multipart_part(&ann(), (&id, &target), 10_001, None, None)
        .await
        .is_err());
    let mut parts = Vec::new();
    for n in 1..=2 {
        let mut up = v
            .multipart_part(&ann(), (&id, &target), n, None, None)
            .await
            .unwrap();
        up.write(Bytes::from_static(b"tiny")).await.unwrap();
        let r = up.commit().await.unwrap();
        parts.push(CompletedPart {
            number: r.number,
            etag: r.etag,
        });
    }
    assert!(matches!(
        v.multipart_complete(
            &ann(),
            (None, None),
            &id,
            &target,
            (&parts, &Default::default())
        )
        .await,
        Err(VfsError::EntityTooSmall)
    ));
    v.multipart_abort(&ann(), &id, &target).await.unwrap();
    assert!(matches!(
        v.multipart_parts(&ann(), &id, &target).await,
        Err(VfsError::NoSuchUpload)
    ));
    // an abandoned upload is removed once it is older than the configured age
    let stale = v
        .multipart_start(&ann(), &target, (None, Default::default()), None)
        .await
        .unwrap();
    assert_eq!(
        v.multipart_expire(std::time::Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        v.multipart_expire(std::time::Duration::ZERO).await.unwrap(),
        1
    );
    assert!(matches!(
        v.multipart_parts(&ann(), &stale, &target).await,
        Err(VfsError::NoSuchUpload)
    ));
}

#[tokio::test]
async fn files_below_lists_keys_in_byte_order_after_a_marker() {
    let v = vfs().await;
    v.mkdir(&ann(), &p("/b")).await.unwrap();
    let opts = || UploadOptions {
        create_parents: true,
        ..Default::default()
    };
    for key in ["a/x", "a-b", "a/y/z", "b", "ab"] {
        let mut up = v
            .upload(&ann(), &p(&format!("/b/{key}")), opts())
            .await
            .unwrap();
        up.write(Bytes::from_static(b"1")).await.unwrap();
        up.commit().await.unwrap();
    }
    let names = |es: Vec<Entry>| {
        es.into_iter()
            .map(|e| e.path.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(v.files_below(&ann(), &p("/b"), "a", "", 10).await.unwrap()),
        ["/b/a-b", "/b/a/x", "/b/a/y/z", "/b/ab"]
    );
    assert_eq!(
        names(
            v.files_below(&ann(), &p("/b"), "a", "a/x", 2)
                .await
                .unwrap()
        ),
        ["/b/a/y/z", "/b/ab"]
    );
    assert!(matches!(
        v.upload(&ann(), &p("/b/b/c"), opts()).await,
        Err(VfsError::Conflict(_))
    ));
}

#[tokio::test]
async fn hidden_macos_files_never_shorten_a_listing_page() {
    let v = vfs().await.with_macos_metadata(MacosMetadata::Hide);
    v.mkdir(&ann(), &p("/docs")).await.unwrap();
    for name in ["._a", "._b", "._c", "a", "b", "c", ".DS_Store", "d"] {
        put(&v, &format!("/docs/{name}"), b"x").await;
    }
    let names =
        |es: Vec<Entry>| -> Vec<String> { es.iter().map(|e| e.path.name().to_string()).collect() };
    let docs = p("/docs");
    let page = v.files_below(&ann(), &docs, "", "", 2).await.unwrap();
    assert_eq!(names(page), ["a", "b"]);
    let page = v.files_below(&ann(), &docs, "", "b", 2).await.unwrap();
    assert_eq!(names(page), ["c", "d"]);
    assert_eq!(
        names(v.list(&ann(), &docs).await.unwrap()),
        ["a", "b", "c", "d"]
    );
    // hidden is not refused: readable by name
    assert_eq!(read_all(&v, "/docs/._a").await, b"x");
}

#[tokio::test]
async fn a_listing_read_in_chunks_is_the_whole_listing_with_its_props_flags() {
    let v = vfs().await.with_macos_metadata(MacosMetadata::Hide);
    v.mkdir(&ann(), &p("/docs")).await.unwrap();
    v.mkdir(&ann(), &p("/docs/sub")).await.unwrap();
    for name in [
        "._a",
        "._b",
        "._c",
        "a",
        "b",
        "c",
        ".DS_Store",
        "d",
        "sub-x",
    ] {
        put(&v, &format!("/docs/{name}"), b"x").await;
    }
    put(&v, "/docs/sub/inner", b"x").await;
    let prop = DeadProp {
        namespace: "urn:x".into(),
        name: "color".into(),
        prefix: None,
        xml: Some("<color xmlns=\"urn:x\">red</color>".into()),
    };
    v.patch_props(&ann(), &p("/docs/c"), &[(true, prop)])
        .await
        .unwrap();
    let docs = p("/docs");
    // chunks of 2: the three hidden names in a row do not end the listing early
    let (mut all, mut after) = (Vec::new(), String::new());
    loop {
        let chunk = v.list_chunk(&ann(), &docs, &after, 2).await.unwrap();
        let Some(last) = chunk.last() else { break };
        after = last.path.as_str().to_string();
        all.extend(chunk);
    }
    let whole = v.list(&ann(), &docs).await.unwrap();
    let key = |es: &[Entry]| -> Vec<(String, Option<bool>)> {
        let mut k: Vec<_> = es
            .iter()
            .map(|e| (e.path.to_string(), e.has_props))
            .collect();
        k.sort();
        k
    };
    assert_eq!(key(&all), key(&whole));
    assert_eq!(all.len(), 6);
    assert!(all
        .iter()
        .all(|e| e.has_props == Some(e.path.name() == "c")));
    // dead properties of the folder's children in one read, only those that have some
    let props = v.children_props(&ann(), &docs).await.unwrap();
    assert_eq!(props.keys().collect::<Vec<_>>(), ["/docs/c"]);
}

#[tokio::test]
async fn lock_timeouts_are_capped_unless_the_cap_is_zero() {
    use std::time::Duration;
    let path = p("/f");
    for (cap, asked, granted) in [
        (600, None, Some(600)),
        (600, Some(60), Some(60)),
        (600, Some(86_400), Some(600)),
        (0, None, None),
    ] {
        let v = vfs().await.with_lock_timeout_max(Duration::from_secs(cap));
        let l = v
            .lock(
                &Caller::admin("ann"),
                locks::LockRequest {
                    path: &path,
                    collection: false,
                    owner_xml: None,
                    timeout: asked.map(Duration::from_secs),
                    shared: false,
                    deep: false,
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(l.timeout, granted.map(Duration::from_secs), "cap {cap}");
    }
}

#[tokio::test]
async fn core_writes_need_the_token_and_deletes_take_the_locks_along() {
    let v = vfs().await;
    let c = ann();
    v.mkdir(&c, &p("/docs")).await.unwrap();
    v.mkdir(&c, &p("/docs/sub")).await.unwrap();
    let lock = v
        .lock(
            &c,
            locks::LockRequest {
                path: &p("/docs/sub"),
                collection: true,
                owner_xml: None,
                timeout: None,
                shared: false,
                deep: true,
            },
        )
        .await
        .unwrap()
        .unwrap();
    // without the token (as S3 and share visitors are): every write below is refused
    let locked = |r: Result<(), VfsError>| matches!(r, Err(VfsError::Locked(_)));
    assert!(locked(v.mkdir(&c, &p("/docs/sub/x")).await));
    assert!(
        locked(v.delete(&c, &p("/docs")).await),
        "deleting above the lock"
    );
    assert!(locked(
        v.rename(&c, &p("/docs/sub"), &p("/docs/moved")).await
    ));
    assert!(matches!(
        v.upload(&c, &p("/docs/sub/f"), UploadOptions::default())
            .await,
        Err(VfsError::Locked(_))
    ));
    // the token of another user does not count
    let mut bob = ann();
    bob.user = "bob".into();
    bob.is_admin = false;
    let bob = bob.with_lock_tokens(vec![lock.token.clone()]);
    assert!(locked(v.mkdir(&bob, &p("/docs/sub/x")).await));
    assert!(matches!(
        v.unlock(&bob, &p("/docs/sub"), &lock.token).await,
        Err(VfsError::Forbidden(_))
    ));
    // the holder with the token writes, and a delete removes the lock with the rows
    let held = c.clone().with_lock_tokens(vec![lock.token.clone()]);
    v.mkdir(&held, &p("/docs/sub/x")).await.unwrap();
    v.delete(&held, &p("/docs/sub")).await.unwrap();
    assert!(v
        .all_locks(&Caller::admin("root"))
        .await
        .unwrap()
        .is_empty());
    v.mkdir(&c, &p("/docs/sub")).await.unwrap();
}

/// Ships `body` to `path` the way a replication peer does (S3 user metadata).
async fn ship(v: &Vfs, path: &str, body: &[u8], r: &replica::ReplicaMeta) -> Entry {
    let headers = r
        .user_metadata()
        .into_iter()
        .map(|(k, val)| (format!("x-amz-meta-{k}"), val))
        .collect();
    let opts = UploadOptions {
        headers,
        ..Default::default()
    };
    let peer = replica::Peer {
        name: "peer".into(),
    };
    let mut up = v
        .receive(&ann(), Some(&peer), &p(path), opts)
        .await
        .unwrap();
    assert!(matches!(up, replica::Incoming::Shipped(_)));
    up.write(Bytes::copy_from_slice(body)).await.unwrap();
    up.commit().await.unwrap()
}

fn from_peer(mtime_ms: i64, base: Option<&str>, body: &[u8]) -> replica::ReplicaMeta {
    replica::ReplicaMeta {
        origin: "kura-peer".into(),
        from: "kura-peer".into(),
        mtime_ms,
        base: base.map(str::to_string),
        etag: Some(hex::encode(md5::Md5::digest(body))),
        tombstone: false,
        mirror: false,
        owner: None,
        group: None,
        perm: None,
        deleted: None,
    }
}

#[tokio::test]
async fn replication_metadata_from_anyone_but_a_peer_is_plain_metadata() {
    let v = vfs().await;
    let r = from_peer(4_102_444_800_000, None, b"v1");
    let headers: BTreeMap<String, String> = r
        .user_metadata()
        .into_iter()
        .map(|(k, val)| (format!("x-amz-meta-{k}"), val))
        .collect();
    let opts = UploadOptions {
        headers: headers.clone(),
        ..Default::default()
    };
    let mut up = v.receive(&ann(), None, &p("/f"), opts).await.unwrap();
    assert!(matches!(up, replica::Incoming::Plain(_)));
    up.write(Bytes::from_static(b"v1")).await.unwrap();
    let e = up.commit().await.unwrap();
    let row = v.store.entry("/f").await.unwrap().unwrap();
    assert_eq!(row.origin, None, "no peer origin");
    assert!(row.mtime_ms < 4_102_444_800_000, "no chosen mtime");
    assert_eq!(e.headers, headers, "kept as the user's own metadata");
    assert_eq!(v.store.mark("kura-peer", "/f").await.unwrap(), None);
}

#[tokio::test]
async fn shipped_versions_apply_cleanly_once_and_never_echo() {
    let v = vfs().await;
    let r = from_peer(1_000, None, b"v1");
    let e = ship(&v, "/f", b"v1", &r).await;
    let row = v.store.entry("/f").await.unwrap().unwrap();
    assert_eq!(
        (row.mtime_ms, row.origin.as_deref()),
        (1_000, Some("kura-peer"))
    );
    assert!(e.headers.is_empty(), "replication keys are not stored");
    // the same version again changes nothing (this is what cuts loops)
    ship(&v, "/f", b"v1", &r).await;
    assert_eq!(v.store.entry("/f").await.unwrap().unwrap(), row);
    // a newer version based on what is here replaces it without a conflict copy
    ship(&v, "/f", b"v2", &from_peer(2_000, Some(&row.etag), b"v2")).await;
    assert_eq!(read_all(&v, "/f").await, b"v2");
    assert!(v.store.entry("/f.conflict1").await.unwrap().is_none());
}

#[tokio::test]
async fn concurrent_versions_keep_the_loser_as_a_numbered_copy() {
    let v = vfs().await;
    put(&v, "/f", b"local").await;
    let local = v.store.entry("/f").await.unwrap().unwrap();
    // an older version from the peer, based on something else: the local one wins
    ship(
        &v,
        "/f",
        b"old peer",
        &from_peer(local.mtime_ms - 10, Some("x"), b"old peer"),
    )
    .await;
    assert_eq!(read_all(&v, "/f").await, b"local");
    assert_eq!(read_all(&v, "/f.conflict1").await, b"old peer");
    // the copy is a change of this node's, so it reaches the peer too
    let copy = v.store.entry("/f.conflict1").await.unwrap().unwrap();
    assert_eq!((copy.origin, copy.mtime_ms), (None, local.mtime_ms - 10));
    // a newer one wins: the local version moves to the next free number
    ship(
        &v,
        "/f",
        b"new peer",
        &from_peer(local.mtime_ms + 10, Some("x"), b"new peer"),
    )
    .await;
    assert_eq!(read_all(&v, "/f").await, b"new peer");
    assert_eq!(read_all(&v, "/f.conflict2").await, b"local");
    // the same loser shipped again finds its copy and adds none
    ship(
        &v,
        "/f",
        b"old peer",
        &from_peer(local.mtime_ms - 10, Some("y"), b"old peer"),
    )
    .await;
    assert!(v.store.entry("/f.conflict3").await.unwrap().is_none());
}

#[tokio::test]
async fn a_tombstone_deletes_only_what_the_peer_saw() {
    let v = vfs().await;
    put(&v, "/seen", b"a").await;
    put(&v, "/changed", b"b").await;
    let seen = v.store.entry("/seen").await.unwrap().unwrap();
    let tomb = |base: &str| replica::ReplicaMeta {
        tombstone: true,
        etag: None,
        ..from_peer(5, Some(base), b"")
    };
    ship(&v, "/seen", b"", &tomb(&seen.etag)).await;
    assert!(v.store.entry("/seen").await.unwrap().is_none());
    // delete versus update: the update stays
    ship(&v, "/changed", b"", &tomb("an older version")).await;
    assert_eq!(read_all(&v, "/changed").await, b"b");
    // a tombstone for nothing is harmless
    ship(&v, "/never", b"", &tomb("x")).await;
    assert!(v.store.entry("/never").await.unwrap().is_none());
}

#[tokio::test]
async fn an_upload_cancelled_anywhere_completes_or_leaves_nothing() {
    // a client that disconnects drops the request's future at some point of the upload: on
    // `fs`, while the temporary file is created, or between the fsync, the rename and the
    // metadata row of the commit
    let (dir, v) = fs_vfs().await;
    let tmp = storage::temp_dir(dir.path());
    for k in 0..40u64 {
        let path = format!("/c{k:02}");
        let mut up = v
            .upload(&ann(), &p(&path), UploadOptions::default())
            .await
            .unwrap();
        up.write(Bytes::from(vec![b'x'; 64 << 10])).await.unwrap();
        let cut = std::time::Duration::from_micros(k * 150);
        let _ = tokio::time::timeout(cut, up.commit()).await;
        // and a client gone during the first write, which creates the temporary file
        let mut up = v
            .upload(&ann(), &p(&format!("/w{k:02}")), UploadOptions::default())
            .await
            .unwrap();
        let cut = std::time::Duration::from_micros(k * 50);
        let _ = tokio::time::timeout(cut, up.write(Bytes::from(vec![b'y'; 64 << 10]))).await;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&tmp).unwrap().next().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "cancelled uploads left temporary files"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let report = v.fsck(false).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    for k in 0..40 {
        if let Ok(e) = v.stat(&ann(), &p(&format!("/c{k:02}"))).await {
            assert_eq!(e.size, 64 << 10);
        }
    }
}

/// A core on the `fs` backend in a temporary folder (kept alive by the returned guard).
pub(super) async fn fs_vfs() -> (tempfile::TempDir, Vfs) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        backend: "fs".into(),
        ..Default::default()
    };
    let (op, local) = build_operator(&cfg, dir.path()).unwrap();
    let staging = build_staging(&cfg, dir.path()).unwrap();
    let v = Vfs::new(op, staging, Store::in_memory().await.unwrap(), local);
    (dir, v)
}

#[tokio::test]
async fn disk_reads_are_ranged_and_keep_the_version_they_opened() {
    use futures_util::TryStreamExt;
    use std::os::unix::fs::PermissionsExt;
    let (dir, v) = fs_vfs().await;
    let big: Vec<u8> = (0..(3 * CHUNK + 5)).map(|i| (i % 251) as u8).collect();
    put(&v, "/f", &big).await;
    // a stored file has the mode disk_umask gives (0600 by default), whatever the process umask
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("files/f")), 0o600);
    let v = v.with_disk_umask(0o027);
    put(&v, "/g", b"g").await;
    assert_eq!(mode(&dir.path().join("files/g")), 0o640);
    v.mkdir(&ann(), &p("/d")).await.unwrap();
    assert_eq!(mode(&dir.path().join("files/d")), 0o750);
    let (e, dl) = v.open_read(&ann(), &p("/f")).await.unwrap();
    assert_eq!(&dl.read_at(3, 4).await.unwrap()[..], &big[3..7]);
    // replaced after the first read: this download goes on with the bytes it started with
    put(&v, "/f", b"new").await;
    assert_eq!(
        &dl.read_at(CHUNK as u64, 10).await.unwrap()[..],
        &big[CHUNK..CHUNK + 10]
    );
    assert!(dl.read_at(e.size, 1).await.unwrap().is_empty());
    let (_, dl) = v.open_read(&ann(), &p("/f")).await.unwrap();
    assert_eq!(dl.read_at(0, 100).await.unwrap().to_vec(), b"new");
    put(&v, "/f", &big).await;
    let (_, dl) = v.open_read(&ann(), &p("/f")).await.unwrap();
    let chunks: Vec<Bytes> = dl
        .into_stream(1..big.len() as u64)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let piece = crate::wire::PIECE;
    assert_eq!(
        chunks.len(),
        (big.len() - 1).div_ceil(piece),
        "pieces of at most PIECE"
    );
    assert!(chunks.iter().all(|c| c.len() <= piece));
    assert_eq!(chunks.concat(), &big[1..]);
}

/// Issue 26: the interleavings found under load, made one at a time on a real `fs` backend.
/// Each ends with storage and metadata in agreement (`fsck` clean) and no 5xx-class error.
#[tokio::test]
async fn a_folder_deleted_while_an_upload_into_it_commits_takes_the_upload_or_refuses_it() {
    let (dir, v) = fs_vfs().await;
    v.mkdir(&ann(), &p("/d")).await.unwrap();
    // the upload passed its checks and holds its bytes; the folder goes before its commit
    let mut up = v
        .upload(&ann(), &p("/d/f"), UploadOptions::default())
        .await
        .unwrap();
    up.write(Bytes::from_static(b"late")).await.unwrap();
    v.delete(&ann(), &p("/d")).await.unwrap();
    assert!(matches!(up.commit().await, Err(VfsError::Conflict(_))));
    assert!(!dir.path().join("files/d").exists());
    // committed first, it is deleted with its folder
    v.mkdir(&ann(), &p("/e")).await.unwrap();
    put(&v, "/e/f", b"early").await;
    v.delete(&ann(), &p("/e")).await.unwrap();
    assert!(matches!(
        v.stat(&ann(), &p("/e/f")).await,
        Err(VfsError::NotFound)
    ));
    assert!(v.fsck(false).await.unwrap().is_clean());
    // what a delete set aside is removed off the commit gate, by a task of its own (journal.rs)
    let tmp_left = || std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
    for _ in 0..200 {
        if tmp_left() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(tmp_left(), 0, "tmp/ still holds what the delete set aside");
}

#[tokio::test]
async fn a_folder_moved_onto_a_folder_that_gained_a_child_is_refused_whole() {
    let (dir, v) = fs_vfs().await;
    v.mkdir(&ann(), &p("/src")).await.unwrap();
    put(&v, "/src/a", b"a").await;
    // the destination appears (with a child) after the move's checks: the move's transaction
    // sees it and refuses, so neither tree changes
    v.mkdir(&ann(), &p("/dst")).await.unwrap();
    put(&v, "/dst/child", b"c").await;
    let to_parent = "/".to_string();
    let r = v
        .store
        .move_tree(
            "/src",
            "/dst",
            &to_parent,
            None,
            (None, &Default::default()),
            async { Ok::<(), VfsError>(()) },
        )
        .await;
    assert!(matches!(
        r,
        Err(crate::store::Committed::Meta(MetaError::Duplicate))
    ));
    assert!(matches!(
        v.rename(&ann(), &p("/src"), &p("/dst")).await,
        Err(VfsError::Exists)
    ));
    assert_eq!(read_all(&v, "/src/a").await, b"a");
    assert_eq!(read_all(&v, "/dst/child").await, b"c");
    assert!(dir.path().join("files/src/a").exists());
    assert!(v.fsck(false).await.unwrap().is_clean());
}

#[tokio::test]
async fn deleting_what_a_move_just_moved_finds_nothing_and_harms_nothing() {
    let (dir, v) = fs_vfs().await;
    v.mkdir(&ann(), &p("/b")).await.unwrap();
    put(&v, "/b/f", b"moved").await;
    v.rename(&ann(), &p("/b/f"), &p("/b/g")).await.unwrap();
    // DeleteObjects of the old key, listed a moment before the move
    assert!(matches!(
        v.delete(&ann(), &p("/b/f")).await,
        Err(VfsError::NotFound)
    ));
    assert_eq!(read_all(&v, "/b/g").await, b"moved");
    // a delete whose row vanished between its checks and its transaction is NotFound too
    assert!(matches!(
        v.store
            .delete_tree_with("/b/f", Default::default(), None, None, async {
                Ok::<(), VfsError>(())
            })
            .await,
        Err(crate::store::Committed::Meta(MetaError::Gone))
    ));
    assert!(dir.path().join("files/b/g").exists());
    assert!(v.fsck(false).await.unwrap().is_clean());
}

#[tokio::test]
async fn a_journal_left_by_a_kill_is_undone_or_finished_at_start() {
    let (dir, v) = fs_vfs().await;
    v.mkdir(&ann(), &p("/k")).await.unwrap();
    put(&v, "/k/f", b"acknowledged").await;
    let files = dir.path().join("files");
    let tmp = dir.path().join("tmp");
    // a kill after the storage steps, before the COMMIT: new bytes in place, old ones aside
    let new = tmp.join("upload");
    std::fs::write(&new, b"never acknowledged").unwrap();
    let j = journal::Journal::new(tmp.clone(), false, 0o700);
    let pending = j
        .begin(vec![journal::Step::Put {
            from: new.clone(),
            to: files.join("k/f"),
            keep: None,
        }])
        .await;
    pending.run().await.unwrap();
    assert_eq!(
        std::fs::read(files.join("k/f")).unwrap(),
        b"never acknowledged"
    );
    std::mem::forget(pending);
    let (finished, undone) = journal::Journal::recover(&tmp, &v.store).await.unwrap();
    assert_eq!((finished, undone), (0, 1));
    assert_eq!(read_all(&v, "/k/f").await, b"acknowledged");
    crate::vfs::sweep_temp(dir.path()).unwrap();
    assert!(v.fsck(false).await.unwrap().is_clean());

    // a kill after the COMMIT, before the journal was removed, and a power cut that lost the
    // rename although the commit (and its mark) survived: the rename is made again at start
    let new = tmp.join("upload2");
    let body = b"acknowledged later";
    std::fs::write(&new, body).unwrap();
    // a new process's journal (the forgotten commit above still holds the first one's gate)
    let j = journal::Journal::new(tmp.clone(), false, 0o700);
    let pending = j
        .begin(vec![journal::Step::Put {
            from: new.clone(),
            to: files.join("k/f"),
            keep: None,
        }])
        .await;
    pending.run().await.unwrap();
    let row = crate::store::EntryRow {
        size: body.len() as i64,
        etag: hex::encode(md5::Md5::digest(body)),
        ..v.store.entry("/k/f").await.unwrap().unwrap()
    };
    v.store
        .commit_file(
            &row,
            Default::default(),
            Some(&pending.mark()),
            &Default::default(),
            async { Ok::<(), VfsError>(()) },
        )
        .await
        .unwrap();
    std::mem::forget(pending);
    std::fs::rename(files.join("k/f"), &new).unwrap();
    let (finished, undone) = journal::Journal::recover(&tmp, &v.store).await.unwrap();
    assert_eq!((finished, undone), (1, 0));
    assert_eq!(read_all(&v, "/k/f").await, body);
    crate::vfs::sweep_temp(dir.path()).unwrap();
    assert!(v.fsck(false).await.unwrap().is_clean());
}

/// A commit abandoned after its storage steps ran, before its COMMIT (its task cancelled when
/// the runtime stops at shutdown, or a panic): its journal must outlive the process's last
/// handle and the process's next commit, so that the next start undoes the steps.
#[tokio::test]
async fn a_journal_of_an_abandoned_commit_survives_until_the_next_start() {
    let (dir, v) = fs_vfs().await;
    v.mkdir(&ann(), &p("/k")).await.unwrap();
    put(&v, "/k/f", b"acknowledged").await;
    put(&v, "/k/g", b"acknowledged too").await;
    let files = dir.path().join("files");
    let tmp = dir.path().join("tmp");
    let j = journal::Journal::new(tmp.clone(), false, 0o700);
    let abandon = |name: &'static str, to: &'static str| {
        let (j, tmp, files) = (j.clone(), tmp.clone(), files.clone());
        async move {
            let new = tmp.join(name);
            std::fs::write(&new, b"never acknowledged").unwrap();
            let pending = j
                .begin(vec![journal::Step::Put {
                    from: new,
                    to: files.join(to),
                    keep: None,
                }])
                .await;
            pending.run().await.unwrap();
            // dropped without `committed` or `failed`: the SQL transaction rolled back
            drop(pending);
        }
    };
    abandon("upload1", "k/f").await;
    // the process goes on: its next commit is abandoned too
    abandon("upload2", "k/g").await;
    // then it ends (its last handle on the journal drops)
    drop(j);
    let (finished, undone) = journal::Journal::recover(&tmp, &v.store).await.unwrap();
    assert_eq!((finished, undone), (0, 2));
    assert_eq!(read_all(&v, "/k/f").await, b"acknowledged");
    assert_eq!(read_all(&v, "/k/g").await, b"acknowledged too");
    crate::vfs::sweep_temp(dir.path()).unwrap();
    assert!(v.fsck(false).await.unwrap().is_clean());
}

/// The anonymous caller holds no class: in a folder everyone may write, it still writes,
/// lists and deletes nothing, and reads a file only once an ACL makes it public.
#[tokio::test]
async fn anonymous_callers_read_public_files_and_nothing_else() {
    let v = vfs().await;
    let anon = Caller::anonymous();
    v.mkdir(&ann(), &p("/b")).await.unwrap();
    put(&v, "/b/f.txt", b"bytes").await;
    v.chmod(&ann(), &p("/b"), 0o777).await.unwrap();
    v.chmod(&ann(), &p("/b/f.txt"), 0o666).await.unwrap();
    // the range is the core's rule: a mode beyond 777 is refused, never masked
    assert!(matches!(
        v.chmod(&ann(), &p("/b/f.txt"), 0o4666).await,
        Err(VfsError::InvalidArgument(_))
    ));
    let forbidden = |r: Result<(), VfsError>| matches!(r, Err(VfsError::Forbidden(_)));
    assert!(forbidden(v.stat(&anon, &p("/b/f.txt")).await.map(|_| ())));
    assert!(forbidden(v.stat(&anon, &p("/b/none")).await.map(|_| ())));
    assert!(forbidden(
        v.upload(&anon, &p("/b/new"), UploadOptions::default())
            .await
            .map(|_| ())
    ));
    assert!(forbidden(v.delete(&anon, &p("/b/f.txt")).await));
    assert!(forbidden(v.list(&anon, &p("/b")).await.map(|_| ())));
    assert!(forbidden(v.chmod(&anon, &p("/b/f.txt"), 0o666).await));
    assert!(forbidden(v.mkdir(&anon, &p("/c")).await));

    v.set_acl(&ann(), &p("/b/f.txt"), 0o644, Some(true))
        .await
        .unwrap();
    let (e, dl) = v.open_read(&anon, &p("/b/f.txt")).await.unwrap();
    assert_eq!(dl.read_at(0, e.size as usize).await.unwrap(), &b"bytes"[..]);
    // still no listing, no write, no folder
    assert!(forbidden(v.list(&anon, &p("/b")).await.map(|_| ())));
    assert!(forbidden(v.delete(&anon, &p("/b/f.txt")).await));
    assert!(forbidden(v.stat(&anon, &p("/b")).await.map(|_| ())));
    // the mode still decides: "other" may not read, nobody anonymous may
    v.chmod(&ann(), &p("/b/f.txt"), 0o640).await.unwrap();
    assert!(forbidden(v.stat(&anon, &p("/b/f.txt")).await.map(|_| ())));
    // the block ignores public ACLs
    v.chmod(&ann(), &p("/b/f.txt"), 0o644).await.unwrap();
    let block = public::PublicBlock {
        ignore_public_acls: true,
        ..Default::default()
    };
    v.set_public_block(&ann(), &p("/b"), Some(block))
        .await
        .unwrap();
    assert!(forbidden(v.stat(&anon, &p("/b/f.txt")).await.map(|_| ())));
}

#[tokio::test]
async fn resumable_uploads_append_keep_a_broken_append_and_commit_once_whole() {
    use futures_util::stream;
    let v = vfs().await;
    v.mkdir(&ann(), &p("/b")).await.unwrap();
    let target = p("/b/dir/file.bin");
    let up = v
        .resumable_start(&ann(), &target, 10, Some("application/x-t".into()))
        .await
        .unwrap();
    assert_eq!((up.offset, up.length, up.id.len()), (0, 10, 32));
    let ok = |b: &'static [u8]| Ok::<_, std::io::Error>(Bytes::from_static(b));
    // an append at the wrong offset changes nothing
    let r = v
        .resumable_append(&ann(), &up.id, 3, stream::iter(vec![ok(b"abc")]))
        .await;
    assert!(matches!(
        r,
        Err(VfsError::Conflict(resumable::OFFSET_MISMATCH))
    ));
    // a body that breaks off keeps what arrived
    let broken = stream::iter(vec![
        ok(b"abc"),
        Err(std::io::Error::other("cut")),
        ok(b"zz"),
    ]);
    let r = v.resumable_append(&ann(), &up.id, 0, broken).await.unwrap();
    assert_eq!(r.offset, 3);
    // running past the length keeps nothing of that append
    let r = v
        .resumable_append(&ann(), &up.id, 3, stream::iter(vec![ok(b"defghijk")]))
        .await;
    assert!(matches!(r, Err(VfsError::TooLarge(_))));
    assert_eq!(v.resumable_get(&ann(), &up.id).await.unwrap().offset, 3);
    // another user does not see it; S3 does not list it
    let mut bea = ann();
    bea.user = "bea".into();
    assert!(matches!(
        v.resumable_get(&bea, &up.id).await,
        Err(VfsError::NotFound)
    ));
    let listed = v
        .multipart_list(&ann(), &p("/b"), "", "", None, 100)
        .await
        .unwrap();
    assert!(listed.is_empty());
    assert!(matches!(
        v.stat(&ann(), &target).await,
        Err(VfsError::NotFound)
    ));
    let r = v
        .resumable_append(
            &ann(),
            &up.id,
            3,
            stream::iter(vec![ok(b"defg"), ok(b"hij")]),
        )
        .await
        .unwrap();
    let e = r.done.expect("committed");
    assert_eq!((e.size, e.content_type.as_str()), (10, "application/x-t"));
    assert_eq!(read_all(&v, "/b/dir/file.bin").await, b"abcdefghij");
    assert!(matches!(
        v.resumable_get(&ann(), &up.id).await,
        Err(VfsError::NotFound)
    ));
    // an abandoned upload expires
    let stale = v
        .resumable_start(&ann(), &p("/b/s"), 5, None)
        .await
        .unwrap();
    assert_eq!(v.resumable_expire(resumable::IDLE).await.unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(
        v.resumable_expire(std::time::Duration::ZERO).await.unwrap(),
        1
    );
    assert!(matches!(
        v.resumable_get(&ann(), &stale.id).await,
        Err(VfsError::NotFound)
    ));
}

#[tokio::test]
async fn a_content_type_that_is_no_header_value_is_refused_on_every_way_in() {
    let v = vfs().await;
    v.mkdir(&ann(), &p("/b")).await.unwrap();
    let f = p("/b/f.html");
    for bad in ["text/html\r\nSet-Cookie: a=b", "text/plain\0", "text/pläin"] {
        let opts = UploadOptions {
            content_type: Some(bad.into()),
            ..Default::default()
        };
        let invalid = |r: Result<(), VfsError>| matches!(r, Err(VfsError::InvalidArgument(_)));
        assert!(
            invalid(v.upload(&ann(), &f, opts).await.map(|_| ())),
            "{bad:?}"
        );
        let r = v.resumable_start(&ann(), &f, 1, Some(bad.into())).await;
        assert!(invalid(r.map(|_| ())), "{bad:?}");
        let r = v
            .multipart_start(&ann(), &f, (Some(bad.into()), Default::default()), None)
            .await;
        assert!(invalid(r.map(|_| ())), "{bad:?}");
    }
    put(&v, "/b/f.html", b"<b>").await;
    let r = v
        .set_headers(&ann(), &f, Some("a\nb"), &Default::default())
        .await;
    assert!(matches!(r, Err(VfsError::InvalidArgument(_))));
    assert_eq!(v.stat(&ann(), &f).await.unwrap().content_type, "text/html");
}

#[tokio::test]
async fn the_expiry_sweep_leaves_an_upload_whose_append_is_under_way() {
    let v = vfs().await;
    v.mkdir(&ann(), &p("/b")).await.unwrap();
    let up = v
        .resumable_start(&ann(), &p("/b/slow.bin"), 6, None)
        .await
        .unwrap();
    // a slow PATCH: its first bytes are in, the rest still on the way
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Bytes, std::io::Error>>();
    tx.send(Ok(Bytes::from_static(b"abc"))).unwrap();
    let rx = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let (v2, id) = (v.clone(), up.id.clone());
    let append = tokio::spawn(async move { v2.resumable_append(&ann(), &id, 0, rx).await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // the sweep runs meanwhile (an idle time of zero makes every upload stale)
    assert_eq!(
        v.resumable_expire(std::time::Duration::ZERO).await.unwrap(),
        0
    );
    tx.send(Ok(Bytes::from_static(b"def"))).unwrap();
    drop(tx);
    let done = append.await.unwrap().unwrap();
    assert!(done.done.is_some());
    assert_eq!(read_all(&v, "/b/slow.bin").await, b"abcdef");
}
