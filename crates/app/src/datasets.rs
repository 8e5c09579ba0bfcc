//! Datasets of a project: import (detect, report, normalize), fix, split, list, and the sample
//! datasets shipped for offline discovery.
//!
//! A dataset version is `data/<name>.toml` (manifest), `data/<name>.report.json` (what the data
//! pane shows) and `data/<name>.jsonl` (normalized chat) committed to the project's git; above
//! [`data::thresholds::GIT_MAX_BYTES`] the JSONL goes to the home's `objects/` by hash instead.
//! The source file is kept in `objects/` too, so every fix is rebuilt from it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use api::dataset::{
    DatasetDetail, DatasetSummary, DetectionView, SampleDataset, SourceView, SplitView,
};
use data::manifest::{DatasetInfo, DetectionInfo, Manifest, ResultInfo, SourceInfo, SplitInfo};
use data::read::{Format, Sniffed};
use data::shape::{Detection, Mapping};
use data::thresholds::{GIT_MAX_BYTES, MIN_CONFIDENCE};
pub use data::transform::Transform;
use sha2::{Digest, Sha256};

use crate::lock::FileLock;
use crate::recover::ProjectLock;
use crate::{App, Error, Result, now, slug};

pub use api::dataset::{ColumnMapping, ImportRequest, ImportSource};

/// Training cutoff the report measures against (the engine's default `max_len`).
pub const DEFAULT_CUTOFF: usize = 512;

/// Seed of the default split.
pub const DEFAULT_SPLIT_SEED: u64 = 42;

impl App {
    /// Imports a file (or a sample) into a project: detect, report, normalize, commit.
    ///
    /// The file is read once, into a temporary copy that everything after works on (so a pipe
    /// works too), and enters the home's `objects/` only when its version is committed.
    pub fn data_import(&self, req: &ImportRequest) -> Result<DatasetDetail> {
        self.data_import_watched(req, &|_| true)
    }

    /// [`App::data_import`], telling `on_rows` the rows read so far as it goes; when it
    /// answers `false` the import stops ([`Error::Cancelled`]) and nothing changes.
    pub fn data_import_watched(
        &self,
        req: &ImportRequest,
        on_rows: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<DatasetDetail> {
        let row = self.project_row(&req.project)?;
        let (shown, file_name, staged, sha256) = self.stage(&req.source)?;
        let file = StagedFile { shown: &shown, name: file_name, path: &staged, sha256 };
        let result = self.import_staged(req, &row, file, on_rows);
        // Gone into objects/ when committed; a failed import leaves nothing behind.
        let _ = std::fs::remove_file(&staged);
        result
    }

    /// What a file (or sample) looks like before it is imported: its columns and the detected
    /// mapping. Reads only the first rows.
    pub fn data_inspect(&self, source: &ImportSource) -> Result<api::dataset::Inspection> {
        let (shown, file_name, staged, _) = self.stage(source)?;
        let result = (|| {
            let ours = staged.display().to_string();
            let named = |e: data::Error| Error::Data(e.to_string().replace(&ours, &shown));
            let sniffed = data::read::sniff(&staged).map_err(named)?;
            let (columns, sample) = data::pipeline::sample(&staged, &sniffed).map_err(named)?;
            let d = data::shape::detect(&columns, &sample)
                .map_err(|e| Error::Data(format!("{shown}: {e}")))?;
            let guess = match &d.mapping {
                Mapping::Columns { input, output, system } => Some(ColumnMapping {
                    input: input.clone(),
                    output: output.clone(),
                    system: system.clone(),
                }),
                Mapping::Alpaca { instruction, output, system, .. } => Some(ColumnMapping {
                    input: instruction.clone(),
                    output: output.clone(),
                    system: system.clone(),
                }),
                _ => None,
            };
            Ok(api::dataset::Inspection {
                file: file_name,
                format: format_name(sniffed.format).into(),
                needs_mapping: d.confidence < MIN_CONFIDENCE,
                detection: DetectionView {
                    shape: shape_name(&d.mapping).into(),
                    mapping: d.mapping.describe(),
                    confidence: d.confidence,
                    confirmed: d.confirmed,
                    evidence: d.evidence,
                    unused: d.unused,
                },
                columns,
                guess,
            })
        })();
        let _ = std::fs::remove_file(&staged);
        result
    }

    /// Copies the source once into this process's scratch folder: (name shown in messages,
    /// file name, the copy, its sha256).
    fn stage(&self, source: &ImportSource) -> Result<(String, String, PathBuf, String)> {
        Ok(match source {
            ImportSource::File(p) => {
                let file_name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| Error::InvalidInput(format!("{}: not a file", p.display())))?;
                let mut input = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
                if input.metadata().is_ok_and(|m| m.is_dir()) {
                    return Err(Error::InvalidInput(format!(
                        "{}: a folder, not a file",
                        p.display()
                    )));
                }
                let staged = self.scratch_path(&staged_name(&file_name))?;
                let sha = copy_hashed(&mut input, p, &staged)?;
                (p.display().to_string(), file_name, staged, sha)
            }
            ImportSource::Sample(id) => {
                let (sample, bytes) = sample_bytes(id)?;
                let staged = self.scratch_path(&staged_name(&sample.file))?;
                let sha = copy_hashed(&mut &bytes[..], Path::new(&sample.file), &staged)?;
                (sample.file.clone(), sample.file.clone(), staged, sha)
            }
        })
    }

    /// [`App::data_fix`] with the fixes as the report's issues write them (`--drop-duplicates`,
    /// `--max-tokens 512` …): the Data pane's one-click fixes.
    pub fn data_fix_flags(
        &self,
        project: &str,
        name: Option<&str>,
        flags: &[String],
    ) -> Result<DatasetDetail> {
        let fixes = flags
            .iter()
            .map(|f| Transform::from_flag(f).map_err(Error::InvalidInput))
            .collect::<Result<Vec<_>>>()?;
        self.data_fix(project, name, &fixes)
    }

    fn import_staged(
        &self,
        req: &ImportRequest,
        row: &store::ProjectRow,
        file: StagedFile<'_>,
        on_rows: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<DatasetDetail> {
        let StagedFile { shown, name: file_name, path: staged, sha256 } = file;
        // Errors name the user's file, not our copy of it.
        let ours = staged.display().to_string();
        let named = |e: Error| match e {
            Error::Io { source, .. } => Error::Io { path: shown.to_string(), source },
            Error::Data(m) => Error::Data(m.replace(&ours, shown)),
            other => other,
        };
        let name = match &req.name {
            Some(n) => slug::slugify_as("dataset name", n).map_err(Error::InvalidInput)?,
            None => {
                let stem = Path::new(&file_name).file_stem().map(|s| s.to_string_lossy());
                slug::slugify_as("dataset name", stem.as_deref().unwrap_or("dataset"))
                    .map_err(Error::InvalidInput)?
            }
        };
        let sniffed = data::read::sniff(staged).map_err(|e| named(e.into()))?;
        let (columns, sample) =
            data::pipeline::sample(staged, &sniffed).map_err(|e| named(e.into()))?;
        let detection = match &req.mapping {
            Some(m) => data::shape::confirmed(&columns, &m.input, &m.output, m.system.as_deref())
                .map_err(|e| Error::InvalidInput(format!("{shown}: {e}")))?,
            None => data::shape::detect(&columns, &sample)
                .map_err(|e| Error::Data(format!("{shown}: {e}")))?,
        };
        if detection.confidence < MIN_CONFIDENCE {
            return Err(Error::MappingUncertain(format!(
                "not sure which columns to train on ({:.0} % sure): the best guess is {}, because {}; confirm with --input COL --output COL [--system COL]",
                detection.confidence * 100.0,
                detection.mapping.describe(),
                detection.evidence.join("; ")
            )));
        }
        let source = SourceInfo {
            file: file_name,
            sha256,
            bytes: sniffed.bytes,
            format: sniffed.format,
            encoding: sniffed.encoding_name(),
            converted: sniffed.converted,
            delimiter: (sniffed.format == Format::Csv)
                .then(|| (sniffed.delimiter as char).to_string()),
        };
        let spec = Spec {
            name,
            source,
            sniffed,
            detection,
            transforms: Vec::new(),
            language: req.language.clone(),
            seed: DEFAULT_SPLIT_SEED,
            test_fraction: None,
        };
        // The pipeline runs before the project is locked: imports into one project measure
        // their files side by side and queue only to record their versions.
        let built = self.run_spec(&row.base_model, &spec, staged, Some(on_rows))?;
        let held = self.lock_project(&row.slug)?;
        self.record(&held, &row.slug, spec, built, Some(staged), "Import")
    }

    /// Adds fixes to a dataset and rebuilds it from its source (a new version).
    pub fn data_fix(
        &self,
        project: &str,
        name: Option<&str>,
        fixes: &[Transform],
    ) -> Result<DatasetDetail> {
        if fixes.is_empty() {
            return Err(Error::InvalidInput(
                "no fix given: use --drop-missing, --drop-duplicates, --drop-near-duplicates, --max-tokens N, --language CODE or --min-score N".into(),
            ));
        }
        for f in fixes {
            f.validate().map_err(Error::InvalidInput)?;
        }
        let row = self.project_row(project)?;
        // Locked from reading the manifest on: a fix made meanwhile is never lost.
        let held = self.lock_project(&row.slug)?;
        let (row, manifest) = self.current_manifest(&row.slug, name)?;
        let mut spec = self.spec_of(&row.slug, &manifest)?;
        for f in fixes {
            // A fix given again replaces its earlier setting.
            spec.transforms.retain(|t| std::mem::discriminant(t) != std::mem::discriminant(f));
            spec.transforms.push(f.clone());
        }
        self.rebuild(&held, &row, spec, "Fix")
    }

    /// Changes a dataset's split (a new version; the rows are unchanged).
    pub fn data_split(
        &self,
        project: &str,
        name: Option<&str>,
        test_fraction: Option<f64>,
        seed: Option<u64>,
    ) -> Result<DatasetDetail> {
        if let Some(f) = test_fraction.filter(|f| !(0.0..1.0).contains(f) || *f == 0.0) {
            return Err(Error::InvalidInput(format!(
                "--test-fraction must be above 0 and below 1, got {f}"
            )));
        }
        let row = self.project_row(project)?;
        let held = self.lock_project(&row.slug)?;
        let (row, manifest) = self.current_manifest(&row.slug, name)?;
        let mut spec = self.spec_of(&row.slug, &manifest)?;
        spec.test_fraction = test_fraction.or(Some(manifest.split.test_fraction));
        spec.seed = seed.unwrap_or(manifest.split.seed);
        self.rebuild(&held, &row, spec, "Split")
    }

    /// The report of a dataset's current version (as committed).
    pub fn data_report(&self, project: &str, name: Option<&str>) -> Result<DatasetDetail> {
        let row = self.project_row(project)?;
        self.sync(&row.slug)?;
        self.report_of(&row.slug, name)
    }

    /// The committed report of a dataset of project `slug` (no sync: callers holding the
    /// project's lock use it too).
    fn report_of(&self, slug: &str, name: Option<&str>) -> Result<DatasetDetail> {
        let row = self.project_row(slug)?;
        let name = self.dataset_name(&row.slug, name)?;
        let path = self.project_dir(&row.slug).join("data").join(format!("{name}.report.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let mut detail: DatasetDetail = serde_json::from_str(&text).map_err(|e| {
            Error::Data(format!("{}: {e}: import the dataset again", path.display()))
        })?;
        // The file is written before its commit exists: the index knows the commit.
        detail.commit = self
            .store
            .datasets(&row.slug)?
            .into_iter()
            .find(|d| d.name == detail.name && d.version == detail.version as i64)
            .map(|d| d.commit_id)
            .unwrap_or_default();
        detail.changed = false;
        Ok(detail)
    }

    /// Every version of every dataset of a project.
    pub fn data_list(&self, project: &str) -> Result<Vec<DatasetSummary>> {
        let row = self.project_row(project)?;
        self.sync(&row.slug)?;
        let rows = self.store.datasets(&row.slug)?;
        let current = self.dataset_name(&row.slug, None).ok();
        let newest = |name: &str| rows.iter().filter(|r| r.name == name).map(|r| r.version).max();
        Ok(rows
            .iter()
            .map(|r| DatasetSummary {
                current: Some(&r.name) == current.as_ref() && Some(r.version) == newest(&r.name),
                name: r.name.clone(),
                version: r.version as u32,
                rows: r.rows as usize,
                sha256: r.sha256.clone(),
                source: r.source.clone(),
                commit: r.commit_id.clone(),
                created_at: r.created_at,
            })
            .collect())
    }

    /// The sample datasets shipped with VibeFlow.
    pub fn data_samples(&self) -> Result<Vec<SampleDataset>> {
        samples()
    }

    /// The normalized rows of a dataset's current version and which are held out: (JSONL lines,
    /// is_test, manifest). Read under the project's lock: an import or fix replaces the
    /// manifest and the rows one file at a time.
    pub(crate) fn dataset_rows(
        &self,
        project: &str,
        name: Option<&str>,
    ) -> Result<(Vec<String>, Vec<bool>, Manifest)> {
        let _held = self.lock_project(&self.project_row(project)?.slug)?;
        let (row, manifest) = self.current_manifest(project, name)?;
        let path = match manifest.result.stored.as_str() {
            "objects" => self.object_path(&manifest.result.sha256),
            _ => self
                .project_dir(&row.slug)
                .join("data")
                .join(format!("{}.jsonl", manifest.dataset.name)),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        if format!("{:x}", Sha256::digest(text.as_bytes())) != manifest.result.sha256 {
            return Err(Error::Integrity(format!(
                "{}: its content differs from the manifest's hash: import or fix the dataset again",
                path.display()
            )));
        }
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let is_test = data::split::assign(&refs, manifest.split.seed, manifest.split.test);
        Ok((lines, is_test, manifest))
    }

    /// The current dataset's name: `name` when given (checked), else the newest dataset.
    pub(crate) fn dataset_name(&self, slug: &str, name: Option<&str>) -> Result<String> {
        let rows = self.store.datasets(slug)?;
        match name {
            Some(n) if rows.iter().any(|r| r.name == n) => Ok(n.to_string()),
            Some(n) => Err(Error::NotFound(format!("no dataset '{n}' in project '{slug}'"))),
            None => rows
                .iter()
                .max_by_key(|r| (r.created_at, r.version))
                .map(|r| r.name.clone())
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "project '{slug}' has no dataset yet: vibeflow data import FILE -p {slug}"
                    ))
                }),
        }
    }

    fn current_manifest(
        &self,
        project: &str,
        name: Option<&str>,
    ) -> Result<(store::ProjectRow, Manifest)> {
        let row = self.project_row(project)?;
        let name = self.dataset_name(&row.slug, name)?;
        let path = self.project_dir(&row.slug).join("data").join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let manifest =
            Manifest::parse(&text).map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
        Ok((row, manifest))
    }

    /// What rebuilds `manifest`'s dataset from its source object. The detection's evidence and
    /// unused columns are what the import saw, as its committed report records them.
    fn spec_of(&self, slug: &str, manifest: &Manifest) -> Result<Spec> {
        let src = self.object_path(&manifest.source.sha256);
        if !src.exists() {
            return Err(Error::NotFound(format!(
                "the source of dataset '{}' ({}) is no longer in {}: import it again",
                manifest.dataset.name,
                manifest.source.file,
                src.display()
            )));
        }
        let sniffed = data::read::sniff(&src)?;
        let seen = self.report_of(slug, Some(&manifest.dataset.name)).ok();
        let (evidence, unused) =
            seen.map(|d| (d.detection.evidence, d.detection.unused)).unwrap_or_default();
        Ok(Spec {
            name: manifest.dataset.name.clone(),
            source: manifest.source.clone(),
            sniffed,
            detection: Detection {
                mapping: manifest.mapping.clone(),
                confidence: manifest.detection.confidence,
                evidence,
                unused,
                confirmed: manifest.detection.confirmed,
            },
            transforms: manifest.transforms.clone(),
            language: manifest.detection.language.clone(),
            seed: manifest.split.seed,
            test_fraction: Some(manifest.split.test_fraction),
        })
    }

    /// Runs the pipeline for `spec` from its source object and records the result: fixes and
    /// splits, under the project's lock.
    fn rebuild(
        &self,
        held: &ProjectLock,
        row: &store::ProjectRow,
        spec: Spec,
        verb: &str,
    ) -> Result<DatasetDetail> {
        let src = self.object_path(&spec.source.sha256);
        let built = self.run_spec(&row.base_model, &spec, &src, None)?;
        self.record(held, &row.slug, spec, built, None, verb)
    }

    /// Runs the import pipeline for `spec` over the source at `src` into a temporary file.
    fn run_spec(
        &self,
        base: &str,
        spec: &Spec,
        src: &Path,
        on_rows: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Result<Built> {
        let tokens = self.model_tokens(base)?;
        let tmp = self.scratch_path(&format!("{}.jsonl", spec.name))?;
        let how = PipelineRun {
            detection: &spec.detection,
            transforms: &spec.transforms,
            expected_language: spec.language.as_deref(),
            on_rows,
        };
        let outcome = run_pipeline(src, &spec.sniffed, &how, &tokens, &tmp)
            // Errors name the user's file, not our copy of it.
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                if let data::Error::Cancelled = e {
                    return Error::from(e);
                }
                let msg = e.to_string().replace(&src.display().to_string(), &spec.source.file);
                Error::Data(msg)
            })?;
        Ok(Built { outcome, tmp })
    }

    /// Records a built dataset as a new version (unless it equals the current one): the source
    /// and big results into `objects/`, the files into `data/`, one git commit and its index
    /// rows, all or nothing. `staged` is the source's temporary copy for an import.
    fn record(
        &self,
        _held: &ProjectLock,
        slug: &str,
        spec: Spec,
        built: Built,
        staged: Option<&Path>,
        verb: &str,
    ) -> Result<DatasetDetail> {
        let dir = self.project_dir(slug);
        let data_dir = dir.join("data");
        let created = !data_dir.exists();
        let tmp = built.tmp.clone();
        let result = std::fs::create_dir_all(&data_dir)
            .map_err(|e| Error::io(&data_dir, e))
            .and_then(|()| self.record_in(slug, spec, built, staged, verb, &dir, &data_dir));
        let _ = std::fs::remove_file(&tmp);
        if result.is_err() {
            // Whatever was placed goes: data/ as HEAD has it (a failed first import leaves no
            // folder). A failure here is repaired by the next lock holder.
            let _ = vcs::restore(&dir, "data");
            if created {
                let _ = std::fs::remove_dir(&data_dir);
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn record_in(
        &self,
        slug: &str,
        spec: Spec,
        built: Built,
        staged: Option<&Path>,
        verb: &str,
        dir: &Path,
        data_dir: &Path,
    ) -> Result<DatasetDetail> {
        let Built { outcome, tmp } = built;
        let plan = match spec.test_fraction {
            Some(f) => data::quality::split_with(outcome.kept, f),
            None => outcome.result.split,
        };
        let manifest_path = data_dir.join(format!("{}.toml", spec.name));
        let previous =
            std::fs::read_to_string(&manifest_path).ok().and_then(|t| Manifest::parse(&t).ok());
        let split = SplitInfo {
            seed: spec.seed,
            test_fraction: plan.test_fraction,
            train: plan.train,
            test: plan.test,
        };
        let stored = if outcome.bytes <= GIT_MAX_BYTES { "git" } else { "objects" };
        let result = ResultInfo {
            rows: outcome.kept,
            dropped: outcome.dropped,
            sha256: outcome.sha256.clone(),
            bytes: outcome.bytes,
            stored: stored.into(),
        };
        if let Some(prev) = &previous
            && prev.result == result
            && prev.mapping == spec.detection.mapping
            && prev.transforms == spec.transforms
            && prev.split == split
            && prev.source.sha256 == spec.source.sha256
        {
            return self.report_of(slug, Some(&spec.name));
        }
        let version = previous.as_ref().map_or(1, |p| p.dataset.version + 1);
        let manifest = Manifest {
            dataset: DatasetInfo { name: spec.name.clone(), version, created_at: now() },
            source: spec.source.clone(),
            mapping: spec.detection.mapping.clone(),
            detection: DetectionInfo {
                confidence: spec.detection.confidence,
                confirmed: spec.detection.confirmed,
                language: spec.language.clone(),
            },
            transforms: spec.transforms.clone(),
            split: split.clone(),
            result: result.clone(),
        };
        // Objects enter the store just before the commit that refers to them, under the
        // objects lock until that commit is indexed: an object this import placed is removed if
        // it fails, and `doctor` removes one a crash left (no other import can have come to
        // rely on it meanwhile).
        let _objects = FileLock::acquire(&crate::lock::objects(&self.home), &|| {})?;
        let mut placed = Vec::new();
        let result = self.place_and_commit(
            slug,
            &spec,
            outcome,
            &tmp,
            staged,
            &mut placed,
            dir,
            verb,
            version,
            &split,
            stored,
            &manifest,
        );
        if result.is_err() {
            for obj in placed {
                let _ = std::fs::remove_file(obj);
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn place_and_commit(
        &self,
        slug: &str,
        spec: &Spec,
        outcome: data::pipeline::Outcome,
        tmp: &Path,
        staged: Option<&Path>,
        placed: &mut Vec<PathBuf>,
        dir: &Path,
        verb: &str,
        version: u32,
        split: &SplitInfo,
        stored: &str,
        manifest: &Manifest,
    ) -> Result<DatasetDetail> {
        if let Some(staged) = staged {
            let obj = self.object_path(&spec.source.sha256);
            if !obj.exists() {
                self.copy_into_objects(staged, &obj)?;
                placed.push(obj);
            }
        }
        let jsonl_rel = PathBuf::from("data").join(format!("{}.jsonl", spec.name));
        let jsonl = dir.join(&jsonl_rel);
        if stored == "git" {
            move_file(tmp, &jsonl)?;
        } else {
            let obj = self.object_path(&outcome.sha256);
            if !obj.exists() {
                self.copy_into_objects(tmp, &obj)?;
                placed.push(obj);
            }
            if jsonl.exists() {
                std::fs::remove_file(&jsonl).map_err(|e| Error::io(&jsonl, e))?;
            }
        }
        let mut detail = DatasetDetail {
            project: slug.into(),
            name: spec.name.clone(),
            version,
            changed: true,
            source: SourceView {
                file: spec.source.file.clone(),
                format: format_name(spec.source.format).into(),
                encoding: spec.source.encoding.clone(),
                converted: spec.source.converted,
                bytes: spec.source.bytes,
                sha256: spec.source.sha256.clone(),
            },
            detection: DetectionView {
                shape: shape_name(&spec.detection.mapping).into(),
                mapping: spec.detection.mapping.describe(),
                confidence: spec.detection.confidence,
                confirmed: spec.detection.confirmed,
                evidence: spec.detection.evidence.clone(),
                unused: spec.detection.unused.clone(),
            },
            transforms: spec.transforms.iter().map(Transform::describe).collect(),

            split: SplitView {
                seed: split.seed,
                test_fraction: split.test_fraction,
                train: split.train,
                test: split.test,
            },
            outcome,
            stored: stored.into(),
            commit: String::new(),
        };
        let toml_rel = PathBuf::from("data").join(format!("{}.toml", spec.name));
        let report_rel = PathBuf::from("data").join(format!("{}.report.json", spec.name));
        write_file(&dir.join(&toml_rel), manifest.to_toml().as_bytes())?;
        let report_json = serde_json::to_string_pretty(&detail).unwrap_or_default();
        write_file(&dir.join(&report_rel), report_json.as_bytes())?;
        let message = match verb {
            "Split" => format!(
                "Split dataset {} v{version}: {} train / {} test (seed {})",
                spec.name, split.train, split.test, split.seed
            ),
            _ => format!(
                "{verb} dataset {} v{version} from {}: {} rows{}",
                spec.name,
                spec.source.file,
                detail.outcome.kept,
                if detail.outcome.dropped > 0 {
                    format!(
                        " ({} dropped: {})",
                        detail.outcome.dropped,
                        detail.transforms.join(", ")
                    )
                } else {
                    String::new()
                }
            ),
        };
        let row = store::DatasetRow {
            project: slug.into(),
            name: spec.name.clone(),
            version: version as i64,
            rows: detail.outcome.kept as i64,
            sha256: detail.outcome.sha256.clone(),
            source: spec.source.file.clone(),
            commit_id: String::new(),
            created_at: manifest.dataset.created_at,
        };
        let paths = [toml_rel.as_path(), report_rel.as_path(), jsonl_rel.as_path()];
        detail.commit = self.commit_with_rows(slug, &paths, &message, |commit| {
            vec![store::Change::Dataset(store::DatasetRow {
                commit_id: commit.to_string(),
                ..row.clone()
            })]
        })?;
        Ok(detail)
    }

    /// Commits `paths` of project `slug` and writes the index rows `rows(commit)` with the new
    /// HEAD in one SQLite transaction; when that fails, the commit is undone, so git and the
    /// index never disagree (if even the undo fails, the next lock holder rebuilds the rows
    /// from git). Call with the project's lock held.
    pub(crate) fn commit_with_rows(
        &self,
        slug: &str,
        paths: &[&Path],
        message: &str,
        rows: impl FnOnce(&str) -> Vec<store::Change>,
    ) -> Result<String> {
        let dir = self.project_dir(slug);
        let commit = vcs::commit(&dir, paths, message)?;
        if let Err(e) = self.store.apply(slug, Some(&commit), &rows(&commit)) {
            let _ = vcs::undo(&dir, &commit);
            return Err(e.into());
        }
        Ok(commit)
    }

    /// A fresh folder in this process's temporary files, removed when dropped.
    pub(crate) fn temp_dir(&self, prefix: &str) -> Result<tempfile::TempDir> {
        let probe = self.scratch_path(prefix)?;
        let parent = probe.parent().unwrap_or(&self.home).to_path_buf();
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))
    }

    /// `objects/sha256/ab/cdef…` of a hash.
    pub(crate) fn object_path(&self, sha256: &str) -> PathBuf {
        let (a, b) = sha256.split_at(2.min(sha256.len()));
        self.home.join("objects").join("sha256").join(a).join(b)
    }

    /// Copies (or moves, when `from` is ours to give) a file into `objects/` at `to`, through a
    /// temporary name, so an object under its hash is always whole.
    fn copy_into_objects(&self, from: &Path, to: &Path) -> Result<()> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let partial = self.scratch_path("object")?;
        std::fs::copy(from, &partial).map_err(|e| Error::io(to, e))?;
        let placed = std::fs::rename(&partial, to).map_err(|e| Error::io(to, e));
        if placed.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        placed
    }

    /// The base model's tokenizer, for token counts.
    pub(crate) fn model_tokens(&self, base: &str) -> Result<ModelTokens> {
        let path = self.resolve_model(base)?;
        let chat = engine::bundle::Chat::open(&path)?;
        let context = match chat.context {
            Some(context) => context,
            // A folder's config.json that cannot be read: say why.
            None if path.is_dir() => engine::weights::context_length(&path)?,
            None => 2048,
        };
        ModelTokens::new(chat, context)
    }
}

/// One run of the import pipeline (`data::pipeline::run`) with the base model's token counts,
/// its context and the default cutoff. Batches of rows are freed and allocated again all
/// along, so freed pages are kept while it runs.
pub(crate) fn run_pipeline(
    src: &Path,
    sniffed: &Sniffed,
    how: &PipelineRun<'_>,
    tokens: &ModelTokens,
    out: &Path,
) -> data::Result<data::pipeline::Outcome> {
    let opts = data::pipeline::Options {
        detection: how.detection,
        transforms: how.transforms,
        tokens,
        quality: data::quality::Config {
            context: tokens.context,
            cutoff: DEFAULT_CUTOFF,
            expected_language: how.expected_language.map(str::to_string),
        },
        on_rows: how.on_rows,
    };
    let _hold = crate::memory::HoldPages::new();
    data::pipeline::run(src, sniffed, &opts, out)
}

/// What one run of the pipeline applies, beside the file and the tokenizer.
pub(crate) struct PipelineRun<'a> {
    pub(crate) detection: &'a Detection,
    pub(crate) transforms: &'a [Transform],
    pub(crate) expected_language: Option<&'a str>,
    /// Told the rows read; `false` cancels.
    pub(crate) on_rows: Option<&'a (dyn Fn(usize) -> bool + Sync)>,
}

/// A file copied into the home's scratch space for an import.
struct StagedFile<'a> {
    /// Its path as the user gave it (errors name it).
    shown: &'a str,
    /// Its file name.
    name: String,
    /// The copy.
    path: &'a Path,
    sha256: String,
}

/// What a dataset version is built from.
struct Spec {
    name: String,
    source: SourceInfo,
    sniffed: Sniffed,
    detection: Detection,
    transforms: Vec<Transform>,
    language: Option<String>,
    seed: u64,
    test_fraction: Option<f64>,
}

/// Token counts with the model's own tokenizer; template overhead measured by rendering.
pub(crate) struct ModelTokens {
    /// Boxed: the token counts' caches belong to the tokenizer at its address, which moving
    /// the `ModelTokens` would change.
    chat: Box<engine::bundle::Chat>,
    pub(crate) context: usize,
    /// Template tokens around [user, assistant] and [system, user, assistant].
    pair: usize,
    with_system: usize,
    /// Per extra message.
    per_message: usize,
}

impl ModelTokens {
    fn new(chat: engine::bundle::Chat, context: usize) -> Result<ModelTokens> {
        use engine::template::Message;
        let chat = Box::new(chat);
        engine::tokenizer::prepare_count(&chat.tokenizer);
        let render = |roles: &[&str]| -> Result<usize> {
            let msgs: Vec<Message> = roles.iter().map(|r| Message::new(r, "")).collect();
            let text = chat.template.render(&msgs, false)?;
            Ok(engine::tokenizer::count(&chat.tokenizer, &text))
        };
        let pair = render(&["user", "assistant"])?;
        let with_system = render(&["system", "user", "assistant"])?;
        let two_pairs = render(&["user", "assistant", "user", "assistant"])?;
        Ok(ModelTokens {
            per_message: two_pairs.saturating_sub(pair) / 2,
            pair,
            with_system,
            chat,
            context,
        })
    }
}

impl data::quality::Tokens for ModelTokens {
    fn count(&self, text: &str) -> usize {
        engine::tokenizer::count(&self.chat.tokenizer, text)
    }

    fn overhead(&self, messages: usize) -> usize {
        match messages {
            0..=2 => self.pair,
            3 => self.with_system,
            n => self.pair + (n - 2) * self.per_message,
        }
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Csv => "csv",
        Format::Json => "json",
        Format::Jsonl => "jsonl",
        Format::Parquet => "parquet",
    }
}

fn shape_name(m: &data::shape::Mapping) -> &'static str {
    match m {
        data::shape::Mapping::Messages { .. } => "messages",
        data::shape::Mapping::Sharegpt { .. } => "sharegpt",
        data::shape::Mapping::Alpaca { .. } => "alpaca",
        data::shape::Mapping::Columns { .. } => "columns",
    }
}

/// Writes through a temporary file and a rename, so a crash leaves the old file or the new one
/// (and the temporary file, in `data/`, which the next writer's recovery removes).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let written = std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e));
    let placed = written.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed
}

/// Renames `from` to `to`, copying when they are on different disks.
fn move_file(from: &Path, to: &Path) -> Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| Error::io(to, e))?;
    let _ = std::fs::remove_file(from);
    Ok(())
}

/// Copies `input` to `to` and returns the sha256 of what it copied.
fn copy_hashed(input: &mut dyn Read, shown: &Path, to: &Path) -> Result<String> {
    let mut out = std::fs::File::create(to).map_err(|e| Error::io(to, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(shown, e)),
        };
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::io(to, e))?;
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// The temporary copy's name: the extension is what format sniffing reads; the rest of a
/// user's file name (any length, any characters) stays out of our paths.
fn staged_name(file_name: &str) -> String {
    match Path::new(file_name).extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.len() <= 16 => format!("source.{ext}"),
        _ => "source".into(),
    }
}

/// A dataset built into a temporary file, not yet recorded.
struct Built {
    outcome: data::pipeline::Outcome,
    tmp: PathBuf,
}

const SAMPLES_INDEX: &str = include_str!("../../../assets/datasets/index.toml");

/// The sample files, compiled in so that discovery works offline anywhere.
const SAMPLE_FILES: &[(&str, &[u8])] = &[
    ("customer-support.csv", include_bytes!("../../../assets/datasets/customer-support.csv")),
    ("tech-qa.jsonl", include_bytes!("../../../assets/datasets/tech-qa.jsonl")),
    ("review-sentiment.json", include_bytes!("../../../assets/datasets/review-sentiment.json")),
];

fn samples() -> Result<Vec<SampleDataset>> {
    #[derive(serde::Deserialize)]
    struct Index {
        dataset: Vec<SampleDataset>,
    }
    let index: Index = toml::from_str(SAMPLES_INDEX)
        .map_err(|e| Error::Data(format!("assets/datasets/index.toml: {e}")))?;
    Ok(index.dataset)
}

fn sample_bytes(id: &str) -> Result<(SampleDataset, &'static [u8])> {
    let all = samples()?;
    let ids = all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ");
    let sample = all.iter().find(|s| s.id == id).cloned().ok_or_else(|| {
        Error::NotFound(format!("no sample dataset '{id}': the samples are {ids}"))
    })?;
    let bytes =
        SAMPLE_FILES.iter().find(|(f, _)| *f == sample.file).map(|(_, b)| *b).ok_or_else(|| {
            Error::NotFound(format!("sample file {} is not built in", sample.file))
        })?;
    Ok((sample, bytes))
}
