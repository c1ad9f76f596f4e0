//! WebDAV dead properties, stored per path.

use super::inline::{Arg, Columns};
use super::{MetaError, Store};

/// A WebDAV dead property as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadProp {
    /// XML namespace URI ("" for none).
    pub namespace: String,
    /// Local name.
    pub name: String,
    /// Prefix the client used, kept for faithful output.
    pub prefix: Option<String>,
    /// The property element as raw XML.
    pub xml: Option<String>,
}

/// The property in the columns `namespace, name, prefix, xml` from `at` on.
fn prop_of(r: &dyn Columns, at: usize) -> Option<DeadProp> {
    Some(DeadProp {
        namespace: r.text(at)?,
        name: r.text(at + 1)?,
        prefix: r.maybe(at + 2)?,
        xml: r.maybe(at + 3)?,
    })
}

impl Store {
    /// Which direct children of a folder have dead properties, in one query.
    pub async fn children_with_props(
        &self,
        parent: &str,
    ) -> Result<std::collections::HashSet<String>, MetaError> {
        let base = if parent == "/" {
            String::new()
        } else {
            parent.to_string()
        };
        let (lo, hi) = (format!("{base}/"), format!("{base}0"));
        // a whole folder's: through the pool (see `read_pooled`)
        let rows = self
            .read_pooled(
                "SELECT DISTINCT d.path FROM dead_props d JOIN entries e ON e.path = d.path
             WHERE e.parent = $1 AND d.path > $2 AND d.path < $3",
                &[Arg::Text(parent), Arg::Text(&lo), Arg::Text(&hi)],
                |r| r.text(0),
            )
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Dead properties of every direct child of a folder, in one query, by child path (each
    /// child's list ordered as `props` orders it).
    pub async fn children_props(
        &self,
        parent: &str,
    ) -> Result<std::collections::HashMap<String, Vec<DeadProp>>, MetaError> {
        let base = if parent == "/" {
            String::new()
        } else {
            parent.to_string()
        };
        let (lo, hi) = (format!("{base}/"), format!("{base}0"));
        // a whole folder's: through the pool (see `read_pooled`)
        let rows = self
            .read_pooled(
                "SELECT d.path, d.namespace, d.name, d.prefix, d.xml
             FROM dead_props d JOIN entries e ON e.path = d.path
             WHERE e.parent = $1 AND d.path > $2 AND d.path < $3
             ORDER BY d.path, d.namespace, d.name",
                &[Arg::Text(parent), Arg::Text(&lo), Arg::Text(&hi)],
                |r| Some((r.text(0)?, prop_of(r, 1)?)),
            )
            .await?;
        let mut out: std::collections::HashMap<String, Vec<DeadProp>> = Default::default();
        for (path, prop) in rows {
            out.entry(path).or_default().push(prop);
        }
        Ok(out)
    }

    /// Dead properties of one entry.
    pub async fn props(&self, path: &str) -> Result<Vec<DeadProp>, MetaError> {
        self.read(
            "SELECT namespace, name, prefix, xml FROM dead_props WHERE path = $1 ORDER BY namespace, name",
            &[Arg::Text(path)],
            |r| prop_of(r, 0),
        )
        .await
    }

    /// Applies a PROPPATCH (true = set, false = remove) atomically.
    pub async fn patch_props(
        &self,
        path: &str,
        patch: &[(bool, DeadProp)],
    ) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        for (set, p) in patch {
            sqlx::query("DELETE FROM dead_props WHERE path = $1 AND namespace = $2 AND name = $3")
                .bind(path)
                .bind(&p.namespace)
                .bind(&p.name)
                .execute(&mut *tx)
                .await?;
            if *set {
                sqlx::query(
                    "INSERT INTO dead_props (path, namespace, name, prefix, xml) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(path)
                .bind(&p.namespace)
                .bind(&p.name)
                .bind(&p.prefix)
                .bind(&p.xml)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
