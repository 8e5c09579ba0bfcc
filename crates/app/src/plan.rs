//! The recommended run for a project (`advisor`'s rules over the catalog card, the dataset's
//! report and this machine), its pre-flight checks, and the assistant's conversation.

use api::advisor::{AskReply, AskRequest, Brief, CatalogModel, RecommendRequest, Recommendation};
use api::train::{Check, TrainPlan};

use crate::{App, Result, advisor};

/// Free disk a run needs at least: checkpoints and adapters of small models, with room.
const MIN_FREE_DISK: u64 = 1 << 30;

impl App {
    /// The recommended run for `project`'s current dataset, with a reason per setting and the
    /// pre-flight checks.
    pub fn train_plan(&self, project: &str) -> Result<TrainPlan> {
        let row = self.project_row(project)?;
        let system = self.system_info()?;
        let brief = Brief { model: Some(row.base_model.clone()), ..Brief::default() };
        let rec = self.recommend_with(&row, &brief, &system)?;
        let checks = self.checks(&row, &rec, &system)?;
        Ok(TrainPlan { checks, ..rec.plan })
    }

    /// The pre-flight checks of a recommendation: the dataset, the model, disk and memory.
    fn checks(
        &self,
        row: &store::ProjectRow,
        rec: &Recommendation,
        system: &api::SystemInfo,
    ) -> Result<Vec<Check>> {
        let mut checks = Vec::new();
        let report = self.data_report(&row.slug, None);
        checks.push(match &report {
            Ok(d) if d.split.test > 0 && d.split.train > 0 => Check {
                id: "dataset".into(),
                ok: true,
                message: format!(
                    "{} v{}: {} rows to train on, {} held out to measure progress",
                    d.name, d.version, d.split.train, d.split.test
                ),
            },
            Ok(d) => Check {
                id: "dataset".into(),
                ok: false,
                message: format!(
                    "{} v{} has no held-out rows ({} train / {} test): split it in the Data pane",
                    d.name, d.version, d.split.train, d.split.test
                ),
            },
            Err(e) => Check { id: "dataset".into(), ok: false, message: e.to_string() },
        });
        let model = self.models_list()?.into_iter().find(|m| m.id == rec.model);
        checks.push(match &model {
            Some(m) if m.id == row.base_model => Check {
                id: "model".into(),
                ok: true,
                message: format!(
                    "{} is installed ({:.0} M parameters)",
                    m.id,
                    m.parameters as f64 / 1e6
                ),
            },
            Some(m) => Check {
                id: "model".into(),
                ok: false,
                message: format!(
                    "{} is installed, but the project trains {}: choose \"Use this configuration\" to switch",
                    m.id, row.base_model
                ),
            },
            None => Check {
                id: "model".into(),
                ok: false,
                message: format!(
                    "{} is not installed: download it (`vibeflow models pull {}`, or Settings → Models)",
                    rec.model, rec.model
                ),
            },
        });
        checks.push(Check {
            id: "disk".into(),
            ok: system.free_disk_bytes >= MIN_FREE_DISK,
            message: format!(
                "{:.1} GB free where VibeFlow keeps its data (a run needs about 1 GB)",
                system.free_disk_bytes as f64 / 1e9
            ),
        });
        let usable = (rec.target_memory_bytes as f64 * advisor::tables::MEMORY_SHARE) as u64;
        checks.push(Check {
            id: "memory".into(),
            ok: rec.memory_bytes <= usable,
            message: format!(
                "about {} needed of {} (Estimate measures it)",
                advisor::gb(rec.memory_bytes),
                advisor::gb(rec.target_memory_bytes)
            ),
        });
        Ok(checks)
    }

    /// The assistant's recommendation for `req.project` (its model, method and settings with
    /// reasons, the warnings and open questions), with the measured estimate if asked for.
    pub fn recommend(&self, req: &RecommendRequest) -> Result<Recommendation> {
        let row = self.project_row(&req.project)?;
        let system = self.system_info()?;
        let mut rec = self.recommend_with(&row, &req.brief, &system)?;
        rec.plan.checks = self.checks(&row, &rec, &system)?;
        if req.measure && rec.feasible && rec.model == row.base_model {
            let mut e = self.train_estimate(&rec.plan.request)?;
            advisor::price(&mut e, &req.brief);
            advisor::estimate_facts(&mut rec.facts, &e);
            rec.estimate = Some(e);
        }
        Ok(rec)
    }

    /// A message to the assistant: what it changes in the brief (kept for the next message),
    /// and the reply about the recommendation that follows. The reply is the rules' own words unless `phrase_with`
    /// names a model that words it, and then only if every number in its wording has a source.
    pub fn ask(&self, req: &AskRequest) -> Result<AskReply> {
        let base = self.project_row(&req.project)?.base_model;
        let brief = advisor::understand(&req.text, &req.brief, &crate::catalog(), &base);
        let measure = advisor::wants_measure(&req.text);
        let rec = self.recommend(&RecommendRequest {
            project: req.project.clone(),
            brief: brief.clone(),
            measure,
        })?;
        let text = advisor::reply(&req.text, &rec);
        let (text, phrased_by) = match &req.phrase_with {
            Some(with) => self.phrase(&text, &rec, &base, with),
            None => (text, "rules".to_string()),
        };
        self.brief_save(&req.project, &brief)?;
        Ok(AskReply { text, brief, recommendation: rec, phrased_by })
    }

    /// What will likely go wrong with `req`'s settings on this machine and data (the Train
    /// pane's warnings as the user edits): memory, overfitting, truncation, learning rate.
    pub fn train_review(
        &self,
        req: &api::train::ProjectTrainRequest,
    ) -> Result<Vec<api::advisor::Warning>> {
        let row = self.project_row(&req.project)?;
        let machine = self.machine(&self.system_info()?);
        let cards = self.cards_for(&row.base_model)?;
        let card = cards.iter().find(|c| c.id == row.base_model);
        let data = self.data_facts(&row.slug, req.dataset.as_deref());
        let memory = advisor::target_memory(&Brief::default(), &machine);
        Ok(advisor::review(&req.config, card, data.as_ref(), memory))
    }

    /// What the user told the assistant about `project` so far (saved by [`App::brief_save`]
    /// beside the project's conversations, outside git); the default when nothing was said.
    pub fn brief(&self, project: &str) -> Result<Brief> {
        let path = self.brief_path(project)?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| crate::Error::Data(format!("{}: {e}", path.display()))),
            Err(_) => Ok(Brief::default()),
        }
    }

    /// Keeps `brief` for `project`'s next conversation; the default brief removes it.
    pub fn brief_save(&self, project: &str, brief: &Brief) -> Result<()> {
        let path = self.brief_path(project)?;
        if *brief == Brief::default() {
            let _ = std::fs::remove_file(&path);
            return Ok(());
        }
        let dir = path.parent().unwrap_or(&self.home);
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        let text = serde_json::to_vec_pretty(brief).unwrap_or_default();
        // Written aside and renamed: a crash leaves the old brief or the new one.
        let tmp = self.scratch_path("brief.json")?;
        std::fs::write(&tmp, text).map_err(|e| crate::Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| crate::Error::io(&path, e))
    }

    fn brief_path(&self, project: &str) -> Result<std::path::PathBuf> {
        let row = self.project_row(project)?;
        Ok(self.home.join("chats").join(&row.slug).join("brief.json"))
    }

    /// The catalog, with what is installed.
    pub fn catalog_list(&self) -> Result<Vec<CatalogModel>> {
        let installed: Vec<String> = self.models_list()?.into_iter().map(|m| m.id).collect();
        Ok(crate::catalog()
            .into_iter()
            .map(|c| CatalogModel {
                installed: installed.contains(&c.id),
                lora_memory_bytes: (c.memory.lora_gb * 1e9) as u64,
                id: c.id,
                name: c.name,
                family: c.family,
                parameters: c.architecture.parameters,
                context: c.architecture.context,
                license: c.license,
                gated: c.gated,
                description: c.description,
                strengths: c.strengths,
                repo: c.hub.repo,
            })
            .collect())
    }

    fn recommend_with(
        &self,
        row: &store::ProjectRow,
        brief: &Brief,
        system: &api::SystemInfo,
    ) -> Result<Recommendation> {
        let data = self.data_facts(&row.slug, None);
        let installed: Vec<String> = self.models_list()?.into_iter().map(|m| m.id).collect();
        let cards = self.cards_for(&row.base_model)?;
        let inputs = advisor::Inputs {
            brief,
            data,
            machine: self.machine(system),
            installed,
            base_model: row.base_model.clone(),
            project: row.slug.clone(),
            cards: &cards,
        };
        Ok(advisor::recommend(&inputs))
    }

    /// This machine as the rules see it, with the throughput a cached probe measured here.
    fn machine(&self, system: &api::SystemInfo) -> advisor::Machine {
        advisor::Machine {
            memory_bytes: system.memory_bytes,
            cores: system.cores,
            gpu: system.gpu.as_ref().map(|g| (g.name.clone(), g.memory_bytes)),
            measured_param_tokens: crate::estimate::cached_throughput(&self.home),
        }
    }

    /// What the report of `project`'s dataset (`name`, else the current one) says, as the
    /// rules use it; none without a dataset.
    fn data_facts(&self, project: &str, name: Option<&str>) -> Option<advisor::Data> {
        let d = self.data_report(project, name).ok()?;
        let t = &d.outcome.result.tokens;
        Some(advisor::Data {
            name: format!("{} v{}", d.name, d.version),
            train_rows: d.split.train,
            test_rows: d.split.test,
            mean_tokens: t.total.mean,
            p95_tokens: t.total.p95 as usize,
            max_tokens: t.total.max as usize,
            language: d.outcome.result.language.as_ref().map(|l| l.name.clone()),
        })
    }

    /// The catalog, plus a card for `base_model` when it is an installed model outside it:
    /// the shape of the catalog model closest in size, under its own name.
    fn cards_for(&self, base_model: &str) -> Result<Vec<crate::Card>> {
        let mut cards = crate::catalog();
        if cards.iter().any(|c| c.id == base_model) {
            return Ok(cards);
        }
        let installed = self.models_list()?;
        if let Some(m) = installed.iter().find(|m| m.id == base_model)
            && let Some(near) =
                cards.iter().min_by_key(|c| c.architecture.parameters.abs_diff(m.parameters))
        {
            let mut card = near.clone();
            card.id = m.id.clone();
            card.name = m.id.clone();
            card.architecture.parameters = m.parameters;
            cards.push(card);
            cards.sort_by_key(|c| c.architecture.parameters);
        }
        Ok(cards)
    }
}
