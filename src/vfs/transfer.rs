//! Moving and copying bytes inside the storage service (or through Kura where it cannot).

use super::{VPath, Vfs, VfsError};
use crate::store::EntryRow;

impl Vfs {
    pub(super) async fn move_file_bytes(&self, from: &VPath, to: &VPath) -> Result<(), VfsError> {
        self.move_key(&from.storage_key(false), &to.storage_key(false))
            .await
    }

    /// Moves one stored object (rename where the service can, else copy and delete).
    pub(super) async fn move_key(&self, f: &str, t: &str) -> Result<(), VfsError> {
        if self.op.info().capability().rename {
            self.op.rename(f, t).await?;
        } else {
            self.copy_key(f, t).await?;
            self.op.delete(f).await?;
        }
        Ok(())
    }

    pub(super) async fn copy_file_bytes(&self, from: &VPath, to: &VPath) -> Result<(), VfsError> {
        self.copy_key(&from.storage_key(false), &to.storage_key(false))
            .await
    }

    /// Copies one stored object, inside the service when it can copy.
    pub(super) async fn copy_key(&self, f: &str, t: &str) -> Result<(), VfsError> {
        let (f, t) = (f.to_string(), t.to_string());
        if self.op.info().capability().copy {
            self.op.copy(&f, &t).await?;
            return Ok(());
        }
        let reader = self.op.reader(&f).await?;
        let mut stream = reader.into_bytes_stream(..).await?;
        let mut writer = self.op.writer(&t).await?;
        use futures_util::TryStreamExt;
        let res: Result<(), opendal::Error> =
            async {
                while let Some(chunk) = stream.try_next().await.map_err(|e| {
                    opendal::Error::new(opendal::ErrorKind::Unexpected, e.to_string())
                })? {
                    writer.write(chunk).await?;
                }
                Ok(())
            }
            .await;
        match res {
            Ok(()) => {
                writer.close().await?;
                Ok(())
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e.into())
            }
        }
    }

    /// Copies a folder tree in storage, file by file.
    /// `rows` are the metadata rows below `from` (read before any transaction starts).
    pub(super) async fn copy_tree_bytes(
        &self,
        from: &VPath,
        to: &VPath,
        rows: &[EntryRow],
    ) -> Result<(), VfsError> {
        self.op.create_dir(&to.storage_key(true)).await?;
        for row in rows {
            let path = VPath::parse(&row.path)?;
            let target = path.rebase(from, to);
            if row.is_dir {
                self.op.create_dir(&target.storage_key(true)).await?;
            } else {
                self.copy_file_bytes(&path, &target).await?;
            }
        }
        Ok(())
    }
}
