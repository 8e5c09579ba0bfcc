//! The SQLite index (`vibeflow.db`) of a VibeFlow home.
//!
//! The database is an index, not the source of truth for content: project content lives in each
//! project's git repository and model bytes in the model store. It is opened in WAL mode with
//! foreign keys on, and migrated forward with the numbered steps in [`MIGRATIONS`], tracked by
//! SQLite's `user_version`.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

mod traces;

pub use traces::{TraceFigures, TraceQuery, TraceRow};

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
    // 2: dataset versions and training runs, per project.
    "CREATE TABLE datasets (
        project     TEXT NOT NULL REFERENCES projects(slug) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        version     INTEGER NOT NULL,
        rows        INTEGER NOT NULL,
        sha256      TEXT NOT NULL,
        source      TEXT NOT NULL,
        commit_id   TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (project, name, version)
    );
    CREATE TABLE runs (
        id          TEXT NOT NULL,
        project     TEXT NOT NULL REFERENCES projects(slug) ON DELETE CASCADE,
        dataset     TEXT NOT NULL,
        dataset_sha256 TEXT NOT NULL,
        base_model  TEXT NOT NULL,
        method      TEXT NOT NULL,
        status      TEXT NOT NULL,
        steps       INTEGER NOT NULL,
        train_loss  REAL,
        eval_loss   REAL,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        PRIMARY KEY (project, id)
    );",
    // 3: the project commit the rows above describe. Rows are written in one transaction with
    // it, so a HEAD that differs means git moved without the index (a crash between the two,
    // or a change made with git itself): the rows are rebuilt from git.
    "ALTER TABLE projects ADD COLUMN head TEXT NOT NULL DEFAULT '';",
    // 4: background jobs (training started by the app or the CLI).
    "CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        project     TEXT NOT NULL,
        run         TEXT,
        state       TEXT NOT NULL,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        message     TEXT
    );",
    // 5: remote OpenAI-compatible endpoints (their keys are in the OS keyring, never here).
    "CREATE TABLE endpoints (
        name        TEXT PRIMARY KEY,
        base_url    TEXT NOT NULL,
        added_at    INTEGER NOT NULL
    );",
    // 6: arena sessions and their turns with the votes (not in git: like endpoints, SQLite is
    // where they live). `models`, `answers` and `vote` are JSON the app reads. `project` is ''
    // for a session of installed models outside any project; a project's go with it.
    "CREATE TABLE arena_sessions (
        project     TEXT NOT NULL,
        id          TEXT NOT NULL,
        models      TEXT NOT NULL,
        blind       INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (project, id)
    );
    CREATE TABLE arena_turns (
        project     TEXT NOT NULL,
        session     TEXT NOT NULL,
        turn        INTEGER NOT NULL,
        prompt      TEXT NOT NULL,
        answers     TEXT NOT NULL,
        vote        TEXT,
        why         TEXT,
        voted_at    INTEGER,
        PRIMARY KEY (project, session, turn),
        FOREIGN KEY (project, session) REFERENCES arena_sessions(project, id) ON DELETE CASCADE
    );
    CREATE TRIGGER arena_sessions_of_a_deleted_project AFTER DELETE ON projects BEGIN
        DELETE FROM arena_sessions WHERE project = OLD.slug;
    END;",
    // 7: traces of the requests the local server answered (see traces.rs). AUTOINCREMENT:
    // the retention deletes the oldest, and a deleted trace's id is never handed out again.
    "CREATE TABLE traces (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at  INTEGER NOT NULL,
        endpoint    TEXT NOT NULL,
        model       TEXT NOT NULL,
        alias       TEXT,
        request     TEXT NOT NULL,
        response    TEXT NOT NULL,
        status      INTEGER NOT NULL,
        stream      INTEGER NOT NULL,
        latency_ms  INTEGER NOT NULL,
        ttft_ms     INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        feedback    INTEGER,
        tags        TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX traces_by_time ON traces(created_at);
    CREATE INDEX traces_by_model ON traces(model, created_at);",
];

/// An arena session row (`models`: JSON of the panels' models).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArenaSessionRow {
    /// Project slug ('' outside any project).
    pub project: String,
    /// `arena-N`.
    pub id: String,
    /// JSON array of the panels' models.
    pub models: String,
    /// Names hidden until the vote.
    pub blind: bool,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// An arena turn row (`answers` and `vote`: JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArenaTurnRow {
    /// Project slug.
    pub project: String,
    /// Session id.
    pub session: String,
    /// 0, 1, …
    pub turn: i64,
    /// The user's message.
    pub prompt: String,
    /// JSON array of the answers.
    pub answers: String,
    /// JSON of the vote, once cast.
    pub vote: Option<String>,
    /// Its reason.
    pub why: Option<String>,
    /// When it was cast.
    pub voted_at: Option<i64>,
}

/// An endpoint row: where a remote OpenAI-compatible API is (its key is in the OS keyring).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRow {
    /// The name it is chosen by.
    pub name: String,
    /// Base URL of its API.
    pub base_url: String,
    /// Seconds since the Unix epoch.
    pub added_at: i64,
}

/// A dataset version row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRow {
    /// Project slug.
    pub project: String,
    /// Dataset name.
    pub name: String,
    /// 1, 2, …
    pub version: i64,
    /// Rows kept.
    pub rows: i64,
    /// sha256 of the normalized JSONL.
    pub sha256: String,
    /// Source file name.
    pub source: String,
    /// The git commit that recorded it.
    pub commit_id: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// A training run row.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Run id (unique within the project).
    pub id: String,
    /// Project slug.
    pub project: String,
    /// Dataset name.
    pub dataset: String,
    /// sha256 of the dataset JSONL trained on.
    pub dataset_sha256: String,
    /// Base model reference.
    pub base_model: String,
    /// `lora`, `qlora` or `full`.
    pub method: String,
    /// `running`, `done`, `stopped` (asked to stop; resumable), `interrupted` (its process
    /// died; resumable) or `failed`.
    pub status: String,
    /// Optimizer steps done.
    pub steps: i64,
    /// Last training loss.
    pub train_loss: Option<f64>,
    /// Last held-out loss.
    pub eval_loss: Option<f64>,
    /// Seconds since the Unix epoch.
    pub started_at: i64,
    /// When it ended.
    pub finished_at: Option<i64>,
}

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

/// An open, migrated database. Shareable between threads (the window's commands run on
/// several): calls take turns on the one connection, each short.
pub struct Store {
    conn: std::sync::Mutex<Connection>,
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
        // Writers queue: one project's changes are short, but eight processes may want them.
        conn.busy_timeout(std::time::Duration::from_secs(60))?;
        migrate(&mut conn)?;
        Ok(Store { conn: std::sync::Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding it leaves SQLite consistent (transactions roll back on drop).
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn().query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Inserts a project; fails with [`Error::Duplicate`] when the slug is taken.
    pub fn insert_project(&self, p: &ProjectRow) -> Result<()> {
        let res = self.conn().execute(
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
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT slug, name, base_model, created_at FROM projects ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], project_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The project with this slug, if any.
    pub fn project(&self, slug: &str) -> Result<Option<ProjectRow>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT slug, name, base_model, created_at FROM projects WHERE slug = ?1",
                [slug],
                project_row,
            )
            .optional()?)
    }

    /// Deletes a project row; returns whether one existed.
    pub fn delete_project(&self, slug: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM projects WHERE slug = ?1", [slug])? > 0)
    }

    /// Inserts or replaces a model row.
    pub fn upsert_model(&self, m: &ModelRow) -> Result<()> {
        self.conn().execute(
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
        let conn = self.conn();
        let mut stmt = conn.prepare(
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

impl Store {
    /// Records a dataset version.
    pub fn insert_dataset(&self, d: &DatasetRow) -> Result<()> {
        insert_dataset(&self.conn(), d)
    }

    /// Every version of every dataset of a project, by name then version.
    pub fn datasets(&self, project: &str) -> Result<Vec<DatasetRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT project, name, version, rows, sha256, source, commit_id, created_at
             FROM datasets WHERE project = ?1 ORDER BY name, version",
        )?;
        let rows = stmt.query_map([project], |r| {
            Ok(DatasetRow {
                project: r.get(0)?,
                name: r.get(1)?,
                version: r.get(2)?,
                rows: r.get(3)?,
                sha256: r.get(4)?,
                source: r.get(5)?,
                commit_id: r.get(6)?,
                created_at: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Inserts a run or replaces its row (status and losses change as it goes).
    pub fn upsert_run(&self, r: &RunRow) -> Result<()> {
        upsert_run(&self.conn(), r)
    }

    /// Runs of a project, oldest first.
    pub fn runs(&self, project: &str) -> Result<Vec<RunRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, project, dataset, dataset_sha256, base_model, method, status, steps,
                    train_loss, eval_loss, started_at, finished_at
             FROM runs WHERE project = ?1 ORDER BY started_at, id",
        )?;
        let rows = stmt.query_map([project], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                project: r.get(1)?,
                dataset: r.get(2)?,
                dataset_sha256: r.get(3)?,
                base_model: r.get(4)?,
                method: r.get(5)?,
                status: r.get(6)?,
                steps: r.get(7)?,
                train_loss: r.get(8)?,
                eval_loss: r.get(9)?,
                started_at: r.get(10)?,
                finished_at: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A background job row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Unique id.
    pub id: String,
    /// `train`.
    pub kind: String,
    /// Project slug.
    pub project: String,
    /// The run, once known.
    pub run: Option<String>,
    /// `running`, `done`, `stopped`, `failed` or `interrupted`.
    pub state: String,
    /// Seconds since the Unix epoch.
    pub started_at: i64,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// Why it failed.
    pub message: Option<String>,
}

impl Store {
    /// Inserts or replaces a job's row.
    pub fn upsert_job(&self, j: &JobRow) -> Result<()> {
        self.conn().execute(
            "INSERT INTO jobs (id, kind, project, run, state, started_at, finished_at, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET run = excluded.run, state = excluded.state,
               finished_at = excluded.finished_at, message = excluded.message",
            params![
                j.id,
                j.kind,
                j.project,
                j.run,
                j.state,
                j.started_at,
                j.finished_at,
                j.message
            ],
        )?;
        Ok(())
    }

    /// Every job, newest first.
    pub fn jobs(&self) -> Result<Vec<JobRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, kind, project, run, state, started_at, finished_at, message
             FROM jobs ORDER BY started_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(JobRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                project: r.get(2)?,
                run: r.get(3)?,
                state: r.get(4)?,
                started_at: r.get(5)?,
                finished_at: r.get(6)?,
                message: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// One change of a project's rows, applied with [`Store::apply`].
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new dataset version.
    Dataset(DatasetRow),
    /// A run inserted or updated.
    Run(RunRow),
}

impl Store {
    /// The project commit the rows describe (`""` before the first sync).
    pub fn head(&self, project: &str) -> Result<String> {
        Ok(self
            .conn()
            .query_row("SELECT head FROM projects WHERE slug = ?1", [project], |r| r.get(0))
            .optional()?
            .unwrap_or_default())
    }

    /// Applies `changes` and, when given, records `head` as the commit they describe, in one
    /// transaction: all or nothing.
    pub fn apply(&self, project: &str, head: Option<&str>, changes: &[Change]) -> Result<()> {
        let mut conn = self.conn();
        // Takes SQLite's write lock at once (waiting up to the busy timeout), so it never
        // fails half way on a lock another process holds.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for c in changes {
            match c {
                Change::Dataset(d) => insert_dataset(&tx, d)?,
                Change::Run(r) => upsert_run(&tx, r)?,
            }
        }
        if let Some(head) = head {
            tx.execute("UPDATE projects SET head = ?2 WHERE slug = ?1", params![project, head])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces a project's dataset rows with `datasets`, upserts `runs`, and records `head`,
    /// in one transaction: the rows rebuilt from git. Runs not in `runs` keep their rows.
    pub fn resync(
        &self,
        project: &str,
        head: &str,
        datasets: &[DatasetRow],
        runs: &[RunRow],
    ) -> Result<()> {
        let mut conn = self.conn();
        // Takes SQLite's write lock at once (waiting up to the busy timeout), so it never
        // fails half way on a lock another process holds.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM datasets WHERE project = ?1", [project])?;
        for d in datasets {
            insert_dataset(&tx, d)?;
        }
        for r in runs {
            upsert_run(&tx, r)?;
        }
        tx.execute("UPDATE projects SET head = ?2 WHERE slug = ?1", params![project, head])?;
        tx.commit()?;
        Ok(())
    }

    /// Sets a run's status when it is `from`; returns whether it was.
    pub fn set_run_status(&self, project: &str, id: &str, from: &str, to: &str) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE runs SET status = ?4 WHERE project = ?1 AND id = ?2 AND status = ?3",
            params![project, id, from, to],
        )? > 0)
    }

    /// Removes a run's row (a run that never got past its start).
    pub fn delete_run(&self, project: &str, id: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM runs WHERE project = ?1 AND id = ?2", params![project, id])?;
        Ok(())
    }

    /// Inserts or replaces an endpoint row.
    pub fn upsert_endpoint(&self, e: &EndpointRow) -> Result<()> {
        self.conn().execute(
            "INSERT INTO endpoints (name, base_url, added_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET base_url = excluded.base_url",
            params![e.name, e.base_url, e.added_at],
        )?;
        Ok(())
    }

    /// Every endpoint, by name.
    pub fn endpoints(&self) -> Result<Vec<EndpointRow>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT name, base_url, added_at FROM endpoints ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(EndpointRow { name: r.get(0)?, base_url: r.get(1)?, added_at: r.get(2)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes an endpoint's row; whether there was one.
    pub fn delete_endpoint(&self, name: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM endpoints WHERE name = ?1", [name])? > 0)
    }

    /// Inserts an arena session; [`Error::Duplicate`] when its id is taken.
    pub fn insert_arena_session(&self, r: &ArenaSessionRow) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO arena_sessions (project, id, models, blind, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.project, r.id, r.models, r.blind, r.created_at],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Error::Duplicate(r.id.clone())
                }
                e => e.into(),
            })?;
        Ok(())
    }

    /// A project's arena sessions (every project's with `None`), newest first.
    pub fn arena_sessions(&self, project: Option<&str>) -> Result<Vec<ArenaSessionRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT project, id, models, blind, created_at FROM arena_sessions
             WHERE ?1 IS NULL OR project = ?1 ORDER BY created_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([project], |r| {
            Ok(ArenaSessionRow {
                project: r.get(0)?,
                id: r.get(1)?,
                models: r.get(2)?,
                blind: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Inserts or replaces an arena turn.
    pub fn upsert_arena_turn(&self, t: &ArenaTurnRow) -> Result<()> {
        self.conn().execute(
            "INSERT INTO arena_turns (project, session, turn, prompt, answers, vote, why, voted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(project, session, turn) DO UPDATE SET prompt = excluded.prompt,
               answers = excluded.answers, vote = excluded.vote, why = excluded.why,
               voted_at = excluded.voted_at",
            params![t.project, t.session, t.turn, t.prompt, t.answers, t.vote, t.why, t.voted_at],
        )?;
        Ok(())
    }

    /// The turns of arena sessions, in order: one session's, a project's (`session` `None`),
    /// or every project's (both `None`).
    pub fn arena_turns(
        &self,
        project: Option<&str>,
        session: Option<&str>,
    ) -> Result<Vec<ArenaTurnRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT project, session, turn, prompt, answers, vote, why, voted_at FROM arena_turns
             WHERE (?1 IS NULL OR project = ?1) AND (?2 IS NULL OR session = ?2)
             ORDER BY project, session, turn",
        )?;
        let rows = stmt.query_map(params![project, session], |r| {
            Ok(ArenaTurnRow {
                project: r.get(0)?,
                session: r.get(1)?,
                turn: r.get(2)?,
                prompt: r.get(3)?,
                answers: r.get(4)?,
                vote: r.get(5)?,
                why: r.get(6)?,
                voted_at: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes an installed model's row.
    pub fn delete_model(&self, id: &str) -> Result<()> {
        self.conn().execute("DELETE FROM models WHERE id = ?1", [id])?;
        Ok(())
    }

    /// SQLite's own consistency check of the file (`PRAGMA quick_check`): the problems found,
    /// none when it is sound.
    pub fn quick_check(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("PRAGMA quick_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let found: Vec<String> = rows.collect::<rusqlite::Result<_>>()?;
        Ok(found.into_iter().filter(|r| r != "ok").collect())
    }
}

fn insert_dataset(conn: &Connection, d: &DatasetRow) -> Result<()> {
    conn.execute(
        "INSERT INTO datasets (project, name, version, rows, sha256, source, commit_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            d.project,
            d.name,
            d.version,
            d.rows,
            d.sha256,
            d.source,
            d.commit_id,
            d.created_at
        ],
    )?;
    Ok(())
}

fn upsert_run(conn: &Connection, r: &RunRow) -> Result<()> {
    conn.execute(
        "INSERT INTO runs (id, project, dataset, dataset_sha256, base_model, method, status, steps,
                           train_loss, eval_loss, started_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT(project, id) DO UPDATE SET dataset = excluded.dataset,
           dataset_sha256 = excluded.dataset_sha256, method = excluded.method,
           status = excluded.status, steps = excluded.steps,
           train_loss = excluded.train_loss, eval_loss = excluded.eval_loss,
           started_at = excluded.started_at, finished_at = excluded.finished_at",
        params![
            r.id,
            r.project,
            r.dataset,
            r.dataset_sha256,
            r.base_model,
            r.method,
            r.status,
            r.steps,
            r.train_loss,
            r.eval_loss,
            r.started_at,
            r.finished_at
        ],
    )?;
    Ok(())
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
        let mode: String = store.conn().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = store.conn().query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
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
    fn arena_turns_keep_their_votes_and_go_with_their_project() {
        let s = Store::open_in_memory().unwrap();
        s.insert_project(&project("a", 1)).unwrap();
        let session = ArenaSessionRow {
            project: "a".into(),
            id: "arena-1".into(),
            models: "[]".into(),
            blind: true,
            created_at: 5,
        };
        s.insert_arena_session(&session).unwrap();
        assert!(matches!(s.insert_arena_session(&session), Err(Error::Duplicate(_))));
        let mut turn = ArenaTurnRow {
            project: "a".into(),
            session: "arena-1".into(),
            turn: 0,
            prompt: "hi".into(),
            answers: "[]".into(),
            vote: None,
            why: None,
            voted_at: None,
        };
        s.upsert_arena_turn(&turn).unwrap();
        turn.vote = Some("{}".into());
        turn.voted_at = Some(6);
        s.upsert_arena_turn(&turn).unwrap();
        assert_eq!(s.arena_turns(Some("a"), Some("arena-1")).unwrap(), vec![turn.clone()]);
        assert_eq!(s.arena_turns(None, None).unwrap(), vec![turn]);
        assert_eq!(s.arena_sessions(None).unwrap(), vec![session]);
        // A turn of a session that does not exist is refused.
        let orphan = ArenaTurnRow {
            session: "arena-9".into(),
            ..s.arena_turns(None, None).unwrap()[0].clone()
        };
        assert!(s.upsert_arena_turn(&orphan).is_err());
        s.delete_project("a").unwrap();
        assert!(s.arena_turns(None, None).unwrap().is_empty());
        assert!(s.arena_sessions(Some("a")).unwrap().is_empty());
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

    #[test]
    fn datasets_and_runs_go_with_their_project() {
        let store = Store::open_in_memory().unwrap();
        store.insert_project(&project("p", 1)).unwrap();
        let d = DatasetRow {
            project: "p".into(),
            name: "support".into(),
            version: 1,
            rows: 300,
            sha256: "ab".into(),
            source: "support.csv".into(),
            commit_id: "c1".into(),
            created_at: 2,
        };
        store.insert_dataset(&d).unwrap();
        store.insert_dataset(&DatasetRow { version: 2, rows: 290, ..d.clone() }).unwrap();
        assert!(store.insert_dataset(&d).is_err(), "a version is recorded once");
        let mut run = RunRow {
            id: "run-1".into(),
            project: "p".into(),
            dataset: "support".into(),
            dataset_sha256: "ab".into(),
            base_model: "m".into(),
            method: "lora".into(),
            status: "running".into(),
            steps: 0,
            train_loss: None,
            eval_loss: None,
            started_at: 3,
            finished_at: None,
        };
        store.upsert_run(&run).unwrap();
        run.status = "done".into();
        run.steps = 30;
        run.eval_loss = Some(0.5);
        store.upsert_run(&run).unwrap();
        assert_eq!(store.runs("p").unwrap(), [run]);
        assert_eq!(
            store.datasets("p").unwrap().iter().map(|d| d.rows).collect::<Vec<_>>(),
            [300, 290]
        );
        store.delete_project("p").unwrap();
        assert!(store.datasets("p").unwrap().is_empty());
        assert!(store.runs("p").unwrap().is_empty());
    }
}
