//! Core behaviour on the `memory` service: what every protocol relies on.

use bytes::Bytes;

use super::*;

async fn vfs() -> Vfs {
    let op = Operator::new(opendal::services::Memory::default()).unwrap();
    let staging = Operator::new(opendal::services::Memory::default()).unwrap();
    Vfs::new(op, staging, Store::in_memory().await.unwrap(), None)
}

fn ann() -> Caller {
    Caller {
        user: "ann".into(),
        is_admin: false,
    }
}

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

async fn put(v: &Vfs, path: &str, body: &[u8]) -> Entry {
    let mut up = v
        .upload(&ann(), &p(path), UploadOptions::default())
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
