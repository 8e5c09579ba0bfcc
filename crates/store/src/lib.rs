//! The SQLite index (`vibeflow.db`) of a VibeFlow home.
//!
//! The database is an index, not the source of truth for content: project content lives in each
//! project's git repository and model bytes in the model store. It is opened in WAL mode with
//! foreign keys on, and migrated forward with the numbered steps in [`MIGRATIONS`], tracked by
//! SQLite's `user_version`.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row with the same key exists.
    #[error("{0} exists already")]
    Duplicate(String),
    /// The database was written by a newer VibeFlow.
    #[error(
        "database schema version {found} is newer than this VibeFlow supports ({supported}): upgrade VibeFlow"
    )]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
}

/// Result of the store.
pub type Result<T> = std::result::Result<T, Error>;

/// Schema migrations, applied in order; entry `i` moves the schema from version `i` to `i + 1`.
/// Never edit a released entry: append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: projects and installed models.
    "CREATE TABLE projects (
        id          INTEGER PRIMARY KEY,
        slug        TEXT NOT NULL UNIQUE,
        name        TEXT NOT NULL,
        base_model  TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE models (
        id          TEXT PRIMARY KEY,
        file        TEXT NOT NULL,
        format      TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        size_bytes  INTEGER NOT NULL,
        added_at    INTEGER NOT NULL
    );",
];

/// A project row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow {
    /// Path-safe unique identifier.
    pub slug: String,
    /// Human name.
    pub name: String,
    /// Catalog id of the base model.
    pub base_model: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// A model row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRow {
    /// Store id.
    pub id: String,
    /// Path of the file relative to the home's `models/` folder, with `/` separators.
    pub file: String,
    /// `gguf` or `hf`.
    pub format: String,
    /// sha256, hexadecimal.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Seconds since the Unix epoch.
    pub added_at: i64,
}

/// An open, migrated database.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// Opens a private in-memory database (tests).
    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
        // WAL lets the app and a CLI in another process read while one writes.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Store { conn })
    }

    /// Schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Inserts a project; fails with [`Error::Duplicate`] when the slug is taken.
    pub fn insert_project(&self, p: &ProjectRow) -> Result<()> {
        let res = self.conn.execute(
            "INSERT INTO projects (slug, name, base_model, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![p.slug, p.name, p.base_model, p.created_at],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::Duplicate(format!("project '{}'", p.slug)))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    /// All projects, oldest first.
    pub fn projects(&self) -> Result<Vec<ProjectRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT slug, name, base_model, created_at FROM projects ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], project_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The project with this slug, if any.
    pub fn project(&self, slug: &str) -> Result<Option<ProjectRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT slug, name, base_model, created_at FROM projects WHERE slug = ?1",
                [slug],
                project_row,
            )
            .optional()?)
    }

    /// Deletes a project row; returns whether one existed.
    pub fn delete_project(&self, slug: &str) -> Result<bool> {
        Ok(self.conn.execute("DELETE FROM projects WHERE slug = ?1", [slug])? > 0)
    }

    /// Inserts or replaces a model row.
    pub fn upsert_model(&self, m: &ModelRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO models (id, file, format, sha256, size_bytes, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(id) DO UPDATE SET file = excluded.file, format = excluded.format,
               sha256 = excluded.sha256, size_bytes = excluded.size_bytes, added_at = excluded.added_at",
            params![m.id, m.file, m.format, m.sha256, m.size_bytes, m.added_at],
        )?;
        Ok(())
    }

    /// All installed models, by id.
    pub fn models(&self) -> Result<Vec<ModelRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, file, format, sha256, size_bytes, added_at FROM models ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ModelRow {
                id: r.get(0)?,
                file: r.get(1)?,
                format: r.get(2)?,
                sha256: r.get(3)?,
                size_bytes: r.get(4)?,
                added_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn project_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProjectRow> {
    Ok(ProjectRow {
        slug: r.get(0)?,
        name: r.get(1)?,
        base_model: r.get(2)?,
        created_at: r.get(3)?,
    })
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(Error::TooNew { found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        // Each step and its version bump commit together, so a crash never leaves a half step.
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(slug: &str, t: i64) -> ProjectRow {
        ProjectRow { slug: slug.into(), name: slug.into(), base_model: "m".into(), created_at: t }
    }

    #[test]
    fn file_database_is_wal_with_foreign_keys_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vibeflow.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = store.conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(fk, 1);
        store.insert_project(&project("a", 1)).unwrap();
        drop(store);
        // Reopening keeps data and does not re-run migrations.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.projects().unwrap().len(), 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vibeflow.db");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, Error::TooNew { found: 99, .. }), "{err}");
    }

    #[test]
    fn projects_roundtrip_and_slugs_are_unique() {
        let s = Store::open_in_memory().unwrap();
        s.insert_project(&project("b", 2)).unwrap();
        s.insert_project(&project("a", 1)).unwrap();
        let err = s.insert_project(&project("a", 3)).unwrap_err();
        assert!(matches!(err, Error::Duplicate(_)), "{err}");
        let slugs: Vec<_> = s.projects().unwrap().into_iter().map(|p| p.slug).collect();
        assert_eq!(slugs, ["a", "b"]);
        assert_eq!(s.project("b").unwrap(), Some(project("b", 2)));
        assert!(s.delete_project("b").unwrap());
        assert!(!s.delete_project("b").unwrap());
        assert_eq!(s.project("b").unwrap(), None);
    }

    #[test]
    fn models_upsert_replaces() {
        let s = Store::open_in_memory().unwrap();
        let mut m = ModelRow {
            id: "x".into(),
            file: "x/x.gguf".into(),
            format: "gguf".into(),
            sha256: "00".into(),
            size_bytes: 1,
            added_at: 1,
        };
        s.upsert_model(&m).unwrap();
        m.sha256 = "11".into();
        s.upsert_model(&m).unwrap();
        assert_eq!(s.models().unwrap(), vec![m]);
    }
}
