//! Projects: each is a git repository under `projects/<slug>/`, indexed in SQLite.

use std::path::{Path, PathBuf};

use api::{CommitInfo, ProjectDetail, ProjectSummary};
use serde::{Deserialize, Serialize};

use crate::{App, DEFAULT_MODEL, Error, Result, now, slug};

/// `vibeflow.toml`: what a project is, versioned with it.
#[derive(Debug, Serialize, Deserialize)]
struct ProjectFile {
    project: ProjectSection,
    model: ModelSection,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProjectSection {
    name: String,
    slug: String,
    created_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ModelSection {
    base: String,
    /// The run that is the project's model now (see [`api::ProjectDetail::model_run`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<String>,
}

/// The `model.run` of a project's `vibeflow.toml` text.
pub(crate) fn model_run_of(text: &str) -> Option<String> {
    toml::from_str::<ProjectFile>(text).ok()?.model.run
}

/// Sets `model.run` in the `vibeflow.toml` of the project at `dir` (the caller commits it).
pub(crate) fn set_model_run(dir: &Path, run: Option<&str>) -> Result<()> {
    let path = dir.join("vibeflow.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut file: ProjectFile =
        toml::from_str(&text).map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
    file.model.run = run.map(str::to_string);
    let text = toml::to_string_pretty(&file)
        .map_err(|e| Error::InvalidInput(format!("cannot write vibeflow.toml: {e}")))?;
    crate::datasets::write_file(&path, text.as_bytes())
}

/// Kept out of every project's git: large or machine-local files.
const GITIGNORE: &str = "# Weights and checkpoints live in the store's objects/, never in git\n\
*.safetensors\n*.gguf\n*.bin\ncheckpoints/\n";

/// The index row a project folder's `vibeflow.toml` describes (`doctor` lists a project the
/// index lost again from it).
pub(crate) fn read_project_file(dir: &Path) -> Option<store::ProjectRow> {
    let text = std::fs::read_to_string(dir.join("vibeflow.toml")).ok()?;
    let f: ProjectFile = toml::from_str(&text).ok()?;
    Some(store::ProjectRow {
        slug: f.project.slug,
        name: f.project.name,
        base_model: f.model.base,
        created_at: f.project.created_at,
    })
}

impl App {
    /// Creates a project named `name`: a git repository with `vibeflow.toml` and one commit.
    /// Nothing is left behind when any step fails.
    pub fn project_new(&self, name: &str) -> Result<ProjectDetail> {
        let slug = slug::slugify(name).map_err(Error::InvalidInput)?;
        let name = name.trim();
        if self.store.project(&slug)?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "a project with the folder name '{slug}' exists already: choose another name"
            )));
        }
        let dir = self.project_dir(&slug);
        // `create_dir`, not `create_dir_all`: it fails when the folder exists, so two processes
        // creating the same project cannot both succeed.
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(format!(
                    "the folder {} exists already: remove it or choose another name",
                    dir.display()
                )));
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let created_at = now();
        let result = self.init_project(&dir, name, &slug, created_at);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result?;
        self.project_show(&slug)
    }

    fn init_project(&self, dir: &Path, name: &str, slug: &str, created_at: i64) -> Result<()> {
        let file = ProjectFile {
            project: ProjectSection { name: name.into(), slug: slug.into(), created_at },
            model: ModelSection { base: DEFAULT_MODEL.into(), run: None },
        };
        let text = toml::to_string_pretty(&file)
            .map_err(|e| Error::InvalidInput(format!("cannot write vibeflow.toml: {e}")))?;
        let path = dir.join("vibeflow.toml");
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        let path = dir.join(".gitignore");
        std::fs::write(&path, GITIGNORE).map_err(|e| Error::io(&path, e))?;
        let head = vcs::init(dir, &format!("Create project {name}"))?;
        self.store.insert_project(&store::ProjectRow {
            slug: slug.into(),
            name: name.into(),
            base_model: DEFAULT_MODEL.into(),
            created_at,
        })?;
        self.store.apply(slug, Some(&head), &[])?;
        Ok(())
    }

    /// All projects, oldest first.
    pub fn project_list(&self) -> Result<Vec<ProjectSummary>> {
        let mut out = Vec::new();
        for p in self.store.projects()? {
            let runs = self.store.runs(&p.slug)?;
            // A `running` row whose process died is not training (its lock is free).
            let training = runs.iter().any(|r| {
                r.status == "running"
                    && crate::lock::FileLock::try_acquire(&crate::lock::run(
                        &self.home, &p.slug, &r.id,
                    ))
                    .is_ok_and(|l| l.is_none())
            });
            let status = if training {
                "training"
            } else if runs.iter().any(|r| r.status == "done") {
                "trained"
            } else {
                "draft"
            };
            out.push(ProjectSummary {
                slug: p.slug,
                name: p.name,
                created_at: p.created_at,
                base_model: p.base_model,
                status: status.into(),
            });
        }
        Ok(out)
    }

    /// This machine: CPU, memory, free disk in the home, the device in use.
    pub fn system_info(&self) -> Result<api::SystemInfo> {
        use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_memory(MemoryRefreshKind::nothing().with_ram())
                .with_cpu(CpuRefreshKind::nothing()),
        );
        let cpu = sys.cpus().first().map(|c| c.brand().trim().to_string()).unwrap_or_default();
        // The disk holding the home: the mount point that is the longest prefix of its path.
        let home = self.home.canonicalize().unwrap_or_else(|_| self.home.clone());
        let disks = Disks::new_with_refreshed_list();
        let free_disk_bytes = disks
            .list()
            .iter()
            .filter(|d| home.starts_with(d.mount_point()))
            .max_by_key(|d| d.mount_point().as_os_str().len())
            .map_or(0, |d| d.available_space());
        let dev = self.device()?;
        let device = engine::device::name(&dev);
        let gpu = match dev.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => Some(api::Gpu {
                name: match engine::device::cuda_capability(&dev) {
                    Some((major, minor)) => format!("CUDA GPU {gpu_id} (compute {major}.{minor})"),
                    None => format!("CUDA GPU {gpu_id}"),
                },
                memory_bytes: engine::device::gpu_memory_total(&dev).unwrap_or(0),
            }),
            // Apple silicon: the GPU shares the machine's memory.
            candle_core::DeviceLocation::Metal { .. } => Some(api::Gpu {
                name: format!("Apple GPU ({cpu})"),
                memory_bytes: sys.total_memory(),
            }),
            candle_core::DeviceLocation::Cpu => None,
        };
        Ok(api::SystemInfo {
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            features: cpu_features(),
            memory_bytes: sys.total_memory(),
            memory_free_bytes: sys.available_memory(),
            gpu,
            free_disk_bytes,
            device,
            home: self.home.display().to_string(),
        })
    }

    /// One project with its repository state.
    pub fn project_show(&self, slug: &str) -> Result<ProjectDetail> {
        let row = self.project_row(slug)?;
        self.sync(&row.slug)?;
        let dir = self.project_dir(&row.slug);
        let history = vcs::history(&dir)?;
        let model_run =
            std::fs::read_to_string(dir.join("vibeflow.toml")).ok().and_then(|t| model_run_of(&t));
        Ok(ProjectDetail {
            model_run,
            head: history.first().map(|c| c.id.clone()).unwrap_or_default(),
            commits: history.len(),
            path: dir.display().to_string(),
            slug: row.slug,
            name: row.name,
            created_at: row.created_at,
            base_model: row.base_model,
        })
    }

    /// Deletes a project: its repository and its index row. The CLI asks for confirmation first.
    pub fn project_rm(&self, slug: &str) -> Result<()> {
        let row = self.project_row(slug)?;
        let dir = self.project_dir(&row.slug);
        // Not while another process changes it or trains in it (a broken folder is removable
        // too, so no recovery first).
        let path = crate::lock::project(&self.home, &row.slug);
        let _held = crate::lock::FileLock::acquire(&path, &|| {})?;
        for r in self.store.runs(&row.slug)?.iter().filter(|r| r.status == "running") {
            let run = crate::lock::run(&self.home, &row.slug, &r.id);
            if crate::lock::FileLock::try_acquire(&run)?.is_none() {
                return Err(Error::Conflict(format!(
                    "run '{}' is training in project '{}': stop it before deleting the project",
                    r.id, row.slug
                )));
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        self.store.delete_project(&row.slug)?;
        Ok(())
    }

    /// Commits of a project, newest first, with tags.
    pub fn history(&self, slug: &str) -> Result<Vec<CommitInfo>> {
        let row = self.project_row(slug)?;
        Ok(vcs::history(&self.project_dir(&row.slug))?
            .into_iter()
            .map(|c| CommitInfo {
                id: c.id,
                summary: c.summary,
                message: c.message,
                author: c.author,
                time: c.time,
                tags: c.tags,
            })
            .collect())
    }

    pub(crate) fn project_row(&self, slug: &str) -> Result<store::ProjectRow> {
        self.store.project(slug)?.ok_or_else(|| {
            Error::NotFound(format!("no project '{slug}': see `vibeflow project list`"))
        })
    }

    /// Slugs come from [`slug::slugify`] or the index, so they are single safe components.
    pub(crate) fn project_dir(&self, slug: &str) -> PathBuf {
        self.projects_dir().join(slug)
    }
}

/// The SIMD features the engine's kernels use, where this CPU has them.
fn cpu_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut out: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("sse2", std::arch::is_x86_feature_detected!("sse2")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ] {
            if on {
                out.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    out.push("neon");
    out.into_iter().map(String::from).collect()
}

/// This machine's memory in bytes (0 when the system does not say).
pub(crate) fn total_memory() -> u64 {
    use sysinfo::{MemoryRefreshKind, RefreshKind, System};
    let ram = RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram());
    System::new_with_specifics(ram).total_memory()
}

#[cfg(test)]
mod tests {
    use crate::{App, Error};

    fn home() -> (tempfile::TempDir, App) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        (dir, app)
    }

    #[test]
    fn new_project_is_a_repository_with_one_commit_and_its_config() {
        let (dir, app) = home();
        let p = app.project_new("Support Bot").unwrap();
        assert_eq!(
            (p.slug.as_str(), p.name.as_str(), p.commits),
            ("support-bot", "Support Bot", 1)
        );
        let repo = dir.path().join("projects/support-bot");
        assert!(vcs::is_repository(&repo));
        let toml = std::fs::read_to_string(repo.join("vibeflow.toml")).unwrap();
        assert!(toml.contains("name = \"Support Bot\""), "{toml}");
        assert!(toml.contains("base = \"smollm2-135m-instruct\""), "{toml}");
        let h = app.history("support-bot").unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].summary, "Create project Support Bot");
        assert_eq!(h[0].id, p.head);
        let list: Vec<_> =
            app.project_list().unwrap().into_iter().map(|p| (p.slug, p.status)).collect();
        assert_eq!(list, [("support-bot".to_string(), "draft".to_string())]);
    }

    #[test]
    fn system_info_describes_this_machine() {
        let (_dir, app) = home();
        let s = app.system_info().unwrap();
        assert!(s.cores >= 1 && s.memory_bytes > 1 << 28, "{s:?}");
        assert!(s.free_disk_bytes > 0, "the home's disk was not found: {s:?}");
        assert!(s.memory_free_bytes > 0 && s.memory_free_bytes <= s.memory_bytes, "{s:?}");
        assert_eq!(s.gpu, None, "the tests run on the CPU");
        assert_eq!((s.os.as_str(), s.device.as_str()), (std::env::consts::OS, "cpu"));
    }

    #[test]
    fn duplicate_slug_is_refused_and_keeps_the_first() {
        let (_dir, app) = home();
        app.project_new("Support Bot").unwrap();
        let err = app.project_new("support  bot").unwrap_err();
        assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
        assert_eq!(app.history("support-bot").unwrap().len(), 1);
    }

    #[test]
    fn stray_folder_blocks_creation_and_is_left_alone() {
        let (dir, app) = home();
        let stray = dir.path().join("projects/bot");
        std::fs::create_dir(&stray).unwrap();
        std::fs::write(stray.join("mine.txt"), "keep").unwrap();
        let err = app.project_new("Bot").unwrap_err();
        assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
        assert_eq!(std::fs::read_to_string(stray.join("mine.txt")).unwrap(), "keep");
        assert!(app.project_list().unwrap().is_empty());
    }

    #[test]
    fn bad_names_write_nothing_anywhere() {
        let (dir, app) = home();
        for name in ["", "..", "../evil", "a/b", "a\\b", "x\u{0}y"] {
            let err = app.project_new(name).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{name:?}: {err}");
        }
        assert_eq!(std::fs::read_dir(dir.path().join("projects")).unwrap().count(), 0);
        assert!(!dir.path().join("evil").exists());
        assert!(!dir.path().parent().unwrap().join("evil").exists());
    }

    #[test]
    fn rm_deletes_folder_and_row() {
        let (dir, app) = home();
        app.project_new("A").unwrap();
        app.project_new("B").unwrap();
        app.project_rm("a").unwrap();
        assert!(!dir.path().join("projects/a").exists());
        assert!(dir.path().join("projects/b").exists());
        let err = app.project_show("a").unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        assert!(matches!(app.project_rm("a").unwrap_err(), Error::NotFound(_)));
        // The slug is free again.
        app.project_new("a").unwrap();
    }
}
