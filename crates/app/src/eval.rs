//! Evaluation: a model (usually a run) and a baseline (usually the base) answer a dataset's
//! held-out rows; the answers are scored against the references (`metrics`), optionally by a
//! judge (a local model or an endpoint, the PRD's rubric, strict JSON, both orders for the
//! pairwise verdict), summed up in the PRD's overall score and gate, with reasons when it is
//! low; the result is committed to the project as `evals/<id>.json` and a self-contained
//! `evals/<id>.html`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use api::chat::{ChatEvent, ChatMessage, ChatModel, ChatRequest, Sampling};
use api::eval::{
    EvalExample, EvalProgress, EvalRequest, EvalSide, EvalSummary, Evaluation, ExampleMetrics,
    JudgeSummary, Judgement, Preference, Reason, ReasonFix,
};

use crate::{App, Error, Playground, Result};

/// The PRD's rubric, asked for as strict JSON.
const RUBRIC: &str = "You are an expert evaluator of AI responses. Rate the response on: \
relevance (1-5: does it answer the question?), coherence (1-5: is it logically structured?), \
factuality (1-5: are its claims accurate, given the reference?), completeness (1-5: does it \
address every aspect?), tone_match (1-5: does it match the reference's tone?). Reply with one \
JSON object and nothing else, for example: {\"relevance\": 4, \"coherence\": 5, \
\"factuality\": 3, \"completeness\": 4, \"tone_match\": 5, \"feedback\": \"one sentence\"}";

/// The pairwise question, asked in both orders (position bias).
const PAIRWISE: &str = "You compare two answers to one question, given a reference answer. \
Reply with one JSON object and nothing else: {\"winner\": \"A\"} if answer A is better, \
{\"winner\": \"B\"} if answer B is better, {\"winner\": \"tie\"} if they are equally good.";

/// Tries per judgement: the first, then two more with a reminder.
const JUDGE_TRIES: usize = 3;

/// Longest wait for one answer of a remote judge.
#[cfg(not(test))]
const JUDGE_TIMEOUT: Duration = Duration::from_secs(30);
#[cfg(test)]
const JUDGE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sequences decoded together (`bench generate`: batch 8 gives most of batch 16's speed on a
/// small CPU for half the cache).
const BATCH: usize = 8;

use crate::aliases::DEFAULT_CONTEXT;

/// Held-out rows evaluated when the request sets no limit (the PRD's test set of a few
/// hundred examples costs minutes on a CPU; this keeps a first look under one).
pub const DEFAULT_LIMIT: usize = 40;

/// One held-out row: the conversation up to its last answer, and that answer.
struct Row {
    id: String,
    messages: Vec<ChatMessage>,
    reference: String,
}

/// Who judges.
enum Judge {
    /// A model answering in-process (kept loaded in the evaluation's own playground).
    Local(ChatModel),
    /// An endpoint (name, model or "" for its first).
    Remote(String, String),
}

impl App {
    /// Evaluates `req.candidate` (against `req.baseline`) on the held-out rows of the dataset
    /// it was trained on (the current one for a model that is not a run), reporting progress
    /// (return `false` to stop); commits the result.
    pub fn evaluate(
        &self,
        req: &EvalRequest,
        on_progress: &mut dyn FnMut(&EvalProgress) -> bool,
    ) -> Result<Evaluation> {
        let row = self.project_row(&req.project)?;
        let slug = row.slug.clone();
        let dataset = match &req.candidate {
            ChatModel::Run(id) => {
                let runs = self.store.runs(&slug)?;
                let run = runs
                    .iter()
                    .find(|r| &r.id == id)
                    .ok_or_else(|| Error::NotFound(format!("no run '{id}' in project '{slug}'")))?;
                // A DPO run learned from preference pairs: its task is the project's dataset.
                match run.method.as_str() {
                    "dpo" => self.dataset_name(&slug, None)?,
                    _ => run.dataset.clone(),
                }
            }
            _ => self.dataset_name(&slug, None)?,
        };
        let rows = self.held_out(&slug, &dataset, req.limit.unwrap_or(DEFAULT_LIMIT))?;
        let refs: Vec<&str> = rows.iter().map(|r| r.reference.as_str()).collect();
        let labels = req.labels.then_some(true);
        let playground = Playground::new();
        let mut sides = Vec::new();
        for model in std::iter::once(&req.candidate).chain(&req.baseline) {
            let total = rows.len();
            let mut on_done = |done: usize| {
                on_progress(&EvalProgress::Generating { model: model.clone(), done, total })
            };
            let (outputs, tps) = self.outputs(&slug, model, &rows, req.max_tokens, &mut on_done)?;
            let preds: Vec<&str> = outputs.iter().map(String::as_str).collect();
            let mut metrics = metrics::score(&preds, &refs, labels);
            if !on_progress(&EvalProgress::Scoring) {
                return Err(Error::Cancelled(
                    "the evaluation was stopped: nothing was saved".into(),
                ));
            }
            let conversations: Vec<Vec<ChatMessage>> = rows
                .iter()
                .map(|r| {
                    let mut m = r.messages.clone();
                    m.push(ChatMessage { role: "assistant".into(), content: r.reference.clone() });
                    m
                })
                .collect();
            metrics.perplexity = Some(self.perplexity_of(&slug, model, &conversations)?);
            sides.push((model.clone(), outputs, metrics, tps));
        }

        // The judge: each output on the rubric, then the pairwise verdict in both orders.
        let mut judgements: Vec<Vec<Option<Judgement>>> = vec![vec![None; rows.len()]; sides.len()];
        let mut errors: Vec<Option<String>> = vec![None; rows.len()];
        let mut preferences: Vec<Option<Preference>> = vec![None; rows.len()];
        let mut judge_note = None;
        if let Some(with) = &req.judge {
            let judge = self.judge_of(with)?;
            let pairs = if sides.len() == 2 { 2 } else { 0 };
            let total = rows.len() * (sides.len() + pairs);
            let mut done = 0;
            'rows: for (i, r) in rows.iter().enumerate() {
                let question = last_user(&r.messages);
                for (s, side) in sides.iter().enumerate() {
                    let text = format!(
                        "Question:\n{question}\n\nReference answer:\n{}\n\nResponse to rate:\n{}",
                        r.reference, side.1[i]
                    );
                    match self.ask_judge(&playground, &slug, &judge, RUBRIC, &text, parse_rubric) {
                        Ok(j) => judgements[s][i] = Some(j),
                        Err(JudgeError::Unparsed(e)) => errors[i] = Some(e),
                        Err(JudgeError::Down(e)) => {
                            judge_note = Some(format!(
                                "the judge ({with}) did not answer: {e}; the automatic metrics are \
                                 kept, the judge's scores cover {i} of {} examples",
                                rows.len()
                            ));
                            break 'rows;
                        }
                    }
                    done += 1;
                    if !on_progress(&EvalProgress::Judging { done, total }) {
                        return Err(Error::Cancelled(
                            "the evaluation was stopped: nothing was saved".into(),
                        ));
                    }
                }
                if pairs == 2 {
                    let ask = |a: &str, b: &str| {
                        format!(
                            "Question:\n{question}\n\nReference answer:\n{}\n\nAnswer A:\n{a}\n\nAnswer B:\n{b}",
                            r.reference
                        )
                    };
                    let (cand, base) = (&sides[0].1[i], &sides[1].1[i]);
                    let first = self.ask_judge(
                        &playground,
                        &slug,
                        &judge,
                        PAIRWISE,
                        &ask(cand, base),
                        parse_winner,
                    );
                    let second = self.ask_judge(
                        &playground,
                        &slug,
                        &judge,
                        PAIRWISE,
                        &ask(base, cand),
                        parse_winner,
                    );
                    done += 2;
                    match (first, second) {
                        (Ok(a), Ok(b)) => preferences[i] = Some(verdict(a, b)),
                        (Err(JudgeError::Down(e)), _) | (_, Err(JudgeError::Down(e))) => {
                            judge_note = Some(format!(
                                "the judge ({with}) did not answer: {e}; the automatic metrics \
                                 are kept"
                            ));
                            break 'rows;
                        }
                        (Err(JudgeError::Unparsed(e)), _) | (_, Err(JudgeError::Unparsed(e))) => {
                            errors[i].get_or_insert(e);
                        }
                    }
                    if !on_progress(&EvalProgress::Judging { done, total }) {
                        return Err(Error::Cancelled(
                            "the evaluation was stopped: nothing was saved".into(),
                        ));
                    }
                }
            }
        }

        let mut built = Vec::new();
        for (s, (model, _, metrics, tps)) in sides.iter().enumerate() {
            let judge = req.judge.as_ref().map(|_| summary(&judgements[s], rows.len()));
            let average = judge.as_ref().filter(|j| j.judged > 0).map(|j| j.average);
            let overall = metrics::overall(metrics, average);
            built.push(EvalSide {
                model: model.clone(),
                metrics: metrics.clone(),
                judge,
                overall,
                tokens_per_second: *tps,
            });
        }
        let examples: Vec<EvalExample> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let cand = metrics::example(&sides[0].1[i], &r.reference);
                let base = sides.get(1).map(|b| metrics::example(&b.1[i], &r.reference));
                let (cj, bj) =
                    (judgements[0][i].clone(), judgements.get(1).and_then(|j| j[i].clone()));
                let regression = base.is_some_and(|b| {
                    example_score(&cand, cj.as_ref()) < example_score(&b, bj.as_ref())
                });
                EvalExample {
                    id: r.id.clone(),
                    prompt: last_user(&r.messages).to_string(),
                    reference: r.reference.clone(),
                    candidate: sides[0].1[i].clone(),
                    baseline: sides.get(1).map(|b| b.1[i].clone()),
                    candidate_scores: cand,
                    baseline_scores: base,
                    candidate_judgement: cj,
                    baseline_judgement: bj,
                    preference: preferences[i],
                    judge_error: errors[i].clone(),
                    regression,
                }
            })
            .collect();
        let pairwise = (req.judge.is_some() && sides.len() == 2).then(|| {
            let count = |p: Preference| preferences.iter().filter(|x| **x == Some(p)).count();
            [count(Preference::Candidate), count(Preference::Baseline), count(Preference::Tie)]
        });
        let mut built = built.into_iter();
        let candidate = built.next().ok_or_else(|| Error::Data("nothing was evaluated".into()))?;
        let baseline = built.next();
        let reasons = self.reasons(&slug, &dataset, &candidate, baseline.as_ref());
        let mut eval = Evaluation {
            id: String::new(),
            project: slug.clone(),
            dataset,
            created_at: crate::now(),
            candidate,
            baseline,
            judge: req.judge.clone(),
            pairwise,
            judge_note,
            reasons,
            examples,
            commit: None,
        };
        self.save_eval(&mut eval)?;
        Ok(eval)
    }

    /// A project's evaluations, newest first.
    pub fn eval_list(&self, project: &str) -> Result<Vec<EvalSummary>> {
        let slug = self.project_row(project)?.slug;
        let dir = self.project_dir(&slug).join("evals");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut out: Vec<EvalSummary> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Evaluation>(&b).ok())
            .map(|e| EvalSummary {
                id: e.id.clone(),
                candidate: e.candidate.model.clone(),
                baseline: e.baseline.as_ref().map(|b| b.model.clone()),
                score: e.candidate.overall.score,
                baseline_score: e.baseline.as_ref().map(|b| b.overall.score),
                gate: e.candidate.overall.gate,
                examples: e.examples.len(),
                created_at: e.created_at,
                commit: e.commit.clone(),
            })
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse((e.created_at, eval_number(&e.id))));
        Ok(out)
    }

    /// One evaluation as saved.
    pub fn eval_show(&self, project: &str, id: &str) -> Result<Evaluation> {
        let path = self.eval_path(project, id, "json")?;
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(format!("no evaluation '{id}'")),
            _ => Error::io(&path, e),
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Integrity(format!("{}: {e}", path.display())))
    }

    /// The self-contained HTML report of an evaluation.
    pub fn eval_report(&self, project: &str, id: &str) -> Result<PathBuf> {
        let path = self.eval_path(project, id, "html")?;
        if !path.exists() {
            return Err(Error::NotFound(format!("no report of evaluation '{id}'")));
        }
        Ok(path)
    }

    /// Copies an evaluation's HTML report into `dir` as `vibeflow-<project>-<id>.html`.
    pub fn eval_report_save(&self, project: &str, id: &str, dir: &Path) -> Result<PathBuf> {
        let from = self.eval_report(project, id)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let slug = self.project_row(project)?.slug;
        let to = dir.join(format!("vibeflow-{slug}-{id}.html"));
        std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
        Ok(to)
    }

    fn eval_path(&self, project: &str, id: &str, ext: &str) -> Result<PathBuf> {
        let slug = self.project_row(project)?.slug;
        if eval_number(id) == 0 {
            return Err(Error::NotFound(format!(
                "no evaluation '{id}' (ids are eval-1, eval-2, …)"
            )));
        }
        Ok(self.project_dir(&slug).join("evals").join(format!("{id}.{ext}")))
    }

    /// The test split's rows of `dataset` (at most `limit`), each cut before its last answer.
    fn held_out(&self, slug: &str, dataset: &str, limit: usize) -> Result<Vec<Row>> {
        let (lines, is_test, _) = self.dataset_rows(slug, Some(dataset))?;
        let mut rows = Vec::new();
        for (n, (line, test)) in lines.iter().zip(is_test).enumerate() {
            if !test || rows.len() >= limit {
                continue;
            }
            let chat: data::chat::Conversation = serde_json::from_str(line)
                .map_err(|e| Error::Data(format!("data/{dataset}.jsonl:{}: {e}", n + 1)))?;
            let mut messages: Vec<ChatMessage> = chat
                .messages
                .into_iter()
                .map(|m| ChatMessage { role: m.role, content: m.content })
                .collect();
            let Some(last) = messages.iter().rposition(|m| m.role == "assistant") else { continue };
            let reference = messages[last].content.clone();
            messages.truncate(last);
            rows.push(Row { id: (n + 1).to_string(), messages, reference });
        }
        if rows.is_empty() {
            return Err(Error::InvalidInput(format!(
                "dataset '{dataset}' has no held-out rows to evaluate on: split it in the Data pane \
                 (vibeflow data split -p {slug})"
            )));
        }
        Ok(rows)
    }

    /// Greedy outputs of `model` for every row: in batches on the quantized path (a GGUF on
    /// our kernels, the adapter unmerged beside it), else one after another; generated tokens
    /// per second overall.
    fn outputs(
        &self,
        slug: &str,
        model: &ChatModel,
        rows: &[Row],
        max_tokens: usize,
        on_done: &mut dyn FnMut(usize) -> bool,
    ) -> Result<(Vec<String>, f64)> {
        let sampling = Sampling { temperature: 0.0, max_tokens, ..Sampling::default() };
        let (path, adapter) = self.chat_model_files(slug, model)?;
        let start = std::time::Instant::now();
        let device = self.device()?;
        let quantized = (!path.is_dir())
            .then(|| engine::generate::QuantDecoder::open(&path, &device).ok())
            .flatten()
            .filter(engine::generate::QuantDecoder::native);
        let Some(mut dec) = quantized else {
            return self.outputs_one_by_one(slug, model, rows, &sampling, on_done);
        };
        if let Some(dir) = &adapter {
            dec.apply_adapter(dir)?;
        }
        let chat = engine::bundle::Chat::open(&path)?;
        let context = chat.context.unwrap_or(DEFAULT_CONTEXT);
        // A prompt the context cannot hold gets no answer (it scores as empty) instead of
        // failing the evaluation.
        let mut prompts = Vec::new();
        let mut index = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let messages: Vec<engine::template::Message> = r
                .messages
                .iter()
                .map(|m| engine::template::Message::new(&m.role, &m.content))
                .collect();
            let text = chat.template.render(&messages, true)?;
            let ids = engine::tokenizer::encode(&chat.tokenizer, &text)?;
            if engine::generate::room(ids.len(), context, 1).is_ok() {
                prompts.push(ids);
                index.push(i);
            }
        }
        let batching = engine::generate::Batching { size: BATCH, context };
        let mut done = 0;
        let mut go_on = true;
        let outs = engine::generate::generate_batch(
            &mut dec,
            &chat.tokenizer,
            &prompts,
            &chat.eos,
            &sampling,
            batching,
            &mut |_, _| {
                done += 1;
                go_on = on_done(done);
                go_on
            },
        )?;
        if !go_on {
            return Err(Error::Cancelled("the evaluation was stopped: nothing was saved".into()));
        }
        let tokens: usize = outs.iter().map(|o| o.tokens.len()).sum();
        let mut outputs = vec![String::new(); rows.len()];
        for (i, o) in index.into_iter().zip(outs) {
            outputs[i] = o.text;
        }
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        Ok((outputs, tokens as f64 / secs))
    }

    /// The outputs through the Playground's path (f32 weights, candle's decoder), one by one.
    fn outputs_one_by_one(
        &self,
        slug: &str,
        model: &ChatModel,
        rows: &[Row],
        sampling: &Sampling,
        on_done: &mut dyn FnMut(usize) -> bool,
    ) -> Result<(Vec<String>, f64)> {
        let playground = Playground::new();
        let start = std::time::Instant::now();
        let mut outputs = Vec::with_capacity(rows.len());
        let mut tokens = 0usize;
        for (i, r) in rows.iter().enumerate() {
            let req = ChatRequest {
                id: format!("eval-{i}"),
                project: slug.to_string(),
                model: model.clone(),
                messages: r.messages.clone(),
                sampling: sampling.clone(),
            };
            let mut text = String::new();
            playground.send(self, &req, &mut |e| match e {
                ChatEvent::Delta { text: t } => text.push_str(&t),
                ChatEvent::Done { completion_tokens, .. } => tokens += completion_tokens,
                _ => {}
            })?;
            outputs.push(text);
            if !on_done(i + 1) {
                return Err(Error::Cancelled(
                    "the evaluation was stopped: nothing was saved".into(),
                ));
            }
        }
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        Ok((outputs, tokens as f64 / secs))
    }

    fn perplexity_of(
        &self,
        slug: &str,
        model: &ChatModel,
        conversations: &[Vec<ChatMessage>],
    ) -> Result<f64> {
        let (path, adapter) = self.chat_model_files(slug, model)?;
        self.perplexity(&path, adapter.as_deref(), conversations)
    }

    fn judge_of(&self, with: &str) -> Result<Judge> {
        if with == "local" {
            return Ok(Judge::Local(ChatModel::Base));
        }
        if self.models_list()?.iter().any(|m| m.id == with) {
            return Ok(Judge::Local(ChatModel::Installed(with.to_string())));
        }
        let (name, model) = with.split_once(':').unwrap_or((with, ""));
        self.endpoint_row(name).map_err(|_| {
            Error::NotFound(format!(
                "the judge '{with}' is neither 'local', an installed model nor an endpoint: add \
                 one in Settings → API keys (vibeflow keys add), or use --judge local"
            ))
        })?;
        Ok(Judge::Remote(name.to_string(), model.to_string()))
    }

    /// One judgement: the judge's reply parsed by `parse`, retried with a reminder when it
    /// does not parse. A judge that cannot be reached is `Down` at once (no retries: the
    /// evaluation keeps its metrics and says why).
    fn ask_judge<T>(
        &self,
        playground: &Playground,
        slug: &str,
        judge: &Judge,
        system: &str,
        text: &str,
        parse: fn(&str) -> std::result::Result<T, String>,
    ) -> std::result::Result<T, JudgeError> {
        let mut last = String::new();
        for attempt in 0..JUDGE_TRIES {
            let text = match attempt {
                0 => text.to_string(),
                _ => format!(
                    "{text}\n\nYour previous reply was not valid: {last}. Reply with the JSON object only."
                ),
            };
            let reply = match judge {
                Judge::Local(model) => {
                    let req = ChatRequest {
                        id: "judge".into(),
                        project: slug.to_string(),
                        model: model.clone(),
                        messages: vec![
                            ChatMessage { role: "system".into(), content: system.into() },
                            ChatMessage { role: "user".into(), content: text },
                        ],
                        // Greedy first; later tries sample, or they would repeat the reply.
                        sampling: Sampling {
                            temperature: if attempt == 0 { 0.0 } else { 0.7 },
                            seed: attempt as u64,
                            max_tokens: 160,
                            ..Sampling::default()
                        },
                    };
                    let mut out = String::new();
                    playground
                        .send(self, &req, &mut |e| {
                            if let ChatEvent::Delta { text } = e {
                                out.push_str(&text)
                            }
                        })
                        .map_err(|e| JudgeError::Down(e.to_string()))?;
                    out
                }
                Judge::Remote(name, model) => self
                    .endpoint_chat(name, model, system, &text, JUDGE_TIMEOUT)
                    .map_err(|e| JudgeError::Down(e.to_string()))?,
            };
            match parse(&reply) {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
        }
        Err(JudgeError::Unparsed(format!(
            "the judge's reply did not parse after {JUDGE_TRIES} tries: {last}"
        )))
    }

    /// Why a score may be low, each with the numbers behind it and where the fix is.
    fn reasons(
        &self,
        slug: &str,
        dataset: &str,
        cand: &EvalSide,
        base: Option<&EvalSide>,
    ) -> Vec<Reason> {
        if cand.overall.gate == api::eval::Gate::Ready {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Ok(d) = self.data_report(slug, Some(dataset)) {
            let r = &d.outcome.result;
            let flagged = r.low_score_rows + r.duplicates + r.missing_output;
            if flagged > 0 {
                out.push(Reason {
                    text: format!(
                        "Training data quality: {flagged} of {} rows have issues (low score, \
                         duplicates or empty answers)",
                        r.rows
                    ),
                    fix: ReasonFix::DataReport,
                });
            }
            if d.split.train < 1000 {
                out.push(Reason {
                    text: format!(
                        "Few training examples: {} is on the small side (1,000 or more usually \
                         help)",
                        d.split.train
                    ),
                    fix: ReasonFix::MoreData,
                });
            }
        }
        let m = &cand.metrics;
        let no_gain = base.is_some_and(|b| cand.overall.score <= b.overall.score);
        if no_gain || !matches!(m.length_band, api::eval::LengthBand::Ideal) {
            let mut text = format!(
                "Settings might not be right: answers are {:.2}× the references' length",
                m.length_ratio
            );
            if let Some(b) = base.filter(|_| no_gain) {
                text.push_str(&format!(
                    " and the score ({:.0}) is not above the base model's ({:.0})",
                    cand.overall.score, b.overall.score
                ));
            }
            out.push(Reason { text, fix: ReasonFix::Settings });
        }
        if let Ok(row) = self.project_row(slug) {
            let params = crate::card(&row.base_model).map(|c| c.architecture.parameters);
            if let Some(p) = params.filter(|p| *p < 1_000_000_000) {
                out.push(Reason {
                    text: format!(
                        "The model might be too small for this task ({:.0} M parameters): try a \
                         larger one",
                        p as f64 / 1e6
                    ),
                    fix: ReasonFix::LargerModel,
                });
            }
        }
        out
    }

    /// Gives the evaluation its id, writes its JSON and HTML into `evals/` and commits them,
    /// under the project's lock.
    fn save_eval(&self, eval: &mut Evaluation) -> Result<()> {
        let slug = eval.project.clone();
        let _held = self.lock_project(&slug)?;
        let dir = self.project_dir(&slug).join("evals");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let n = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                Some(eval_number(name.strip_suffix(".json")?))
            })
            .max()
            .unwrap_or(0);
        eval.id = format!("eval-{}", n + 1);
        let json = dir.join(format!("{}.json", eval.id));
        let html = dir.join(format!("{}.html", eval.id));
        crate::datasets::write_file(&html, crate::report::html(eval).as_bytes())?;
        let text = serde_json::to_string_pretty(eval).unwrap_or_default();
        crate::datasets::write_file(&json, text.as_bytes())?;
        let vs =
            eval.baseline.as_ref().map(|b| format!(" vs {}", b.model.label())).unwrap_or_default();
        let message = format!(
            "Evaluate {}{vs}: {:.0}/100 ({})",
            eval.candidate.model.label(),
            eval.candidate.overall.score,
            eval.candidate.overall.gate.label().to_lowercase()
        );
        let rel = |p: &Path| p.strip_prefix(self.project_dir(&slug)).map(Path::to_path_buf);
        let paths: Vec<PathBuf> = [&json, &html].iter().filter_map(|p| rel(p).ok()).collect();
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let commit = self.commit_with_rows(&slug, &refs, &message, |_| Vec::new());
        match commit {
            Ok(c) => {
                // The commit id goes into the copy a reader sees, not into the committed file
                // (which cannot name its own commit).
                eval.commit = Some(c);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&json);
                let _ = std::fs::remove_file(&html);
                Err(e)
            }
        }
    }
}

enum JudgeError {
    /// The judge answered, but not as asked (after the retries).
    Unparsed(String),
    /// The judge could not be reached or failed.
    Down(String),
}

/// `eval-7` → 7 (0 for anything else).
fn eval_number(id: &str) -> u64 {
    id.strip_prefix("eval-").and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn last_user(messages: &[ChatMessage]) -> &str {
    messages.iter().rev().find(|m| m.role == "user").map_or("", |m| m.content.as_str())
}

/// The score an example is compared on between the two sides: the judge's average (0–1)
/// where both were judged, else the mean of token F1 and ROUGE-L.
fn example_score(m: &ExampleMetrics, j: Option<&Judgement>) -> f64 {
    match j {
        Some(j) => (j.average() - 1.0) / 4.0,
        None => (m.f1 + m.rouge_l) / 2.0,
    }
}

/// The pairwise verdict from both orders: the first asked with the candidate as A, the
/// second with it as B. Disagreement is position bias: a tie.
fn verdict(first: Winner, second: Winner) -> Preference {
    match (first, second) {
        (Winner::A, Winner::B) => Preference::Candidate,
        (Winner::B, Winner::A) => Preference::Baseline,
        _ => Preference::Tie,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Winner {
    A,
    B,
    Tie,
}

/// The reply as one JSON object: whitespace and a Markdown code fence around it are allowed,
/// nothing else.
fn json_object(
    reply: &str,
) -> std::result::Result<serde_json::Map<String, serde_json::Value>, String> {
    let t = reply.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(t)
        .trim();
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => {
            let shown: String = t.chars().take(60).collect();
            Err(format!("not JSON ({e}): {shown:?}"))
        }
    }
}

fn parse_rubric(reply: &str) -> std::result::Result<Judgement, String> {
    let m = json_object(reply)?;
    let score = |k: &str| -> std::result::Result<u8, String> {
        match m.get(k).and_then(serde_json::Value::as_u64) {
            Some(v @ 1..=5) => Ok(v as u8),
            Some(v) => Err(format!("\"{k}\" is {v}, not 1 to 5")),
            None => Err(format!("\"{k}\" is missing or not a whole number")),
        }
    };
    Ok(Judgement {
        relevance: score("relevance")?,
        coherence: score("coherence")?,
        factuality: score("factuality")?,
        completeness: score("completeness")?,
        tone_match: score("tone_match")?,
        feedback: m.get("feedback").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
    })
}

fn parse_winner(reply: &str) -> std::result::Result<Winner, String> {
    let m = json_object(reply)?;
    match m.get("winner").and_then(|v| v.as_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("a") => Ok(Winner::A),
        Some("b") => Ok(Winner::B),
        Some("tie") => Ok(Winner::Tie),
        _ => Err("\"winner\" must be \"A\", \"B\" or \"tie\"".into()),
    }
}

fn summary(judged: &[Option<Judgement>], total: usize) -> JudgeSummary {
    let got: Vec<&Judgement> = judged.iter().flatten().collect();
    let n = got.len().max(1) as f64;
    let mean = |f: fn(&Judgement) -> u8| got.iter().map(|j| f64::from(f(j))).sum::<f64>() / n;
    JudgeSummary {
        judged: got.len(),
        failed: total - got.len(),
        relevance: mean(|j| j.relevance),
        coherence: mean(|j| j.coherence),
        factuality: mean(|j| j.factuality),
        completeness: mean(|j| j.completeness),
        tone_match: mean(|j| j.tone_match),
        average: got.iter().map(|j| j.average()).sum::<f64>() / n,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::{ProjectTrainRequest, Resume, TrainConfig};

    /// A project on the sample dataset with one short run (`None` without the real model).
    pub(crate) fn trained(app: &App, name: &str, runs: usize) -> Option<String> {
        let gguf = crate::models::tests_default_gguf()?;
        app.model_import(&gguf, None).unwrap();
        let slug = app.project_new(name).unwrap().slug;
        let req = crate::ImportRequest {
            project: slug.clone(),
            source: crate::ImportSource::Sample("tech-qa".into()),
            name: None,
            mapping: None,
            language: None,
        };
        app.data_import(&req).unwrap();
        for seed in 0..runs {
            let mut config = TrainConfig {
                steps: Some(3),
                batch_size: 2,
                max_len: 64,
                ..TrainConfig::default()
            };
            // Big steps, so three of them visibly change greedy answers.
            config.adamw.lr = 5e-3;
            config.seed = seed as u64;
            let run = ProjectTrainRequest {
                project: slug.clone(),
                dataset: None,
                eval_rows: 2,
                config,
                resume: Resume::No,
            };
            app.train_project(&run, &mut |_| true).unwrap();
        }
        Some(slug)
    }

    /// An OpenAI-compatible judge: the rubric answered as prose first and as JSON when asked
    /// again, the pairwise question always answered "A" (a judge with position bias), every
    /// answer after `delay`. Counts the requests.
    fn judge(delay: Duration, calls: Arc<AtomicUsize>) -> String {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", server.server_addr().to_ip().unwrap());
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                std::thread::sleep(delay);
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let answer = if body.contains("compare two answers") {
                    r#"{"winner": "A"}"#.to_string()
                } else if body.contains("previous reply was not valid") {
                    r#"{"relevance": 4, "coherence": 4, "factuality": 3, "completeness": 3, "tone_match": 5, "feedback": "ok"}"#.to_string()
                } else {
                    format!("Sure! I rate it well ({n}).")
                };
                let body = serde_json::json!({"choices": [{"message": {"role": "assistant", "content": answer}}]});
                let _ = req.respond(tiny_http::Response::from_string(body.to_string()));
            }
        });
        url
    }

    fn add_judge(app: &App, name: &str, url: String) -> bool {
        let add = api::EndpointAdd { name: name.into(), base_url: url, key: String::new() };
        match app.endpoint_add(&add) {
            Ok(_) => true,
            Err(Error::Keyring(m)) if std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none() => {
                eprintln!("skipped: {m}");
                false
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// A short run against the base on four held-out rows, judged by an endpoint that needs a
    /// second try for every rubric and always prefers position A: scores in range, the
    /// judge's retries taken, its position bias turned into ties, the report committed with
    /// the evaluation and listed.
    #[test]
    fn a_run_is_evaluated_against_base_judged_and_committed() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        let Some(p) = trained(&app, "Judged", 1) else { return };
        let calls = Arc::new(AtomicUsize::new(0));
        if !add_judge(&app, "judge", judge(Duration::ZERO, calls.clone())) {
            return;
        }
        let req = EvalRequest {
            project: p.clone(),
            candidate: ChatModel::Run("run-1".into()),
            baseline: Some(ChatModel::Base),
            judge: Some("judge:any".into()),
            limit: Some(4),
            max_tokens: 12,
            labels: false,
        };
        let mut phases = Vec::new();
        let e = app
            .evaluate(&req, &mut |p| {
                phases.push(p.clone());
                true
            })
            .unwrap();
        assert_eq!(e.id, "eval-1");
        assert_eq!(e.examples.len(), 4);
        assert!(phases.contains(&EvalProgress::Generating {
            model: ChatModel::Base,
            done: 4,
            total: 4
        }));
        assert!(phases.contains(&EvalProgress::Judging { done: 16, total: 16 }));
        for side in [&e.candidate, e.baseline.as_ref().unwrap()] {
            let m = &side.metrics;
            assert_eq!(m.count, 4);
            assert!((0.0..=1.0).contains(&m.f1) && (0.0..=100.0).contains(&m.bleu.score));
            assert!(m.perplexity.is_some_and(|p| p.is_finite() && p > 1.0), "{:?}", m.perplexity);
            let j = side.judge.as_ref().unwrap();
            assert_eq!((j.judged, j.failed), (4, 0));
            assert_eq!(j.average, 3.8);
            assert!((0.0..=100.0).contains(&side.overall.score));
            assert_eq!(side.overall.gate, api::eval::Gate::of(side.overall.score));
        }
        // 8 rubric judgements × 2 tries + 4 × 2 pairwise questions.
        assert_eq!(calls.load(Ordering::SeqCst), 24);
        assert_eq!(e.pairwise, Some([0, 0, 4]), "always 'A' is position bias: ties");
        assert!(e.examples.iter().all(|x| x.preference == Some(Preference::Tie)));
        let subject = vcs::history(&app.project_dir(&p)).unwrap()[0].summary.clone();
        assert!(subject.starts_with("Evaluate run-1 vs base model: "), "{subject}");
        assert_eq!(e.commit.as_deref(), Some(vcs::head(&app.project_dir(&p)).unwrap().as_str()));
        let html = std::fs::read_to_string(app.eval_report(&p, "eval-1").unwrap()).unwrap();
        assert!(html.contains("<svg"));
        assert_eq!(html.contains("Possible reasons"), !e.reasons.is_empty());
        // Self-contained: nothing fetched (the SVGs' xmlns is a name, not a fetch).
        for fetch in ["src=", "href=", "<script", "<link", "@import", "url("] {
            assert!(!html.contains(fetch), "{fetch} in the report");
        }
        let listed = app.eval_list(&p).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].score, e.candidate.overall.score);
        assert_eq!(app.eval_show(&p, "eval-1").unwrap().examples, e.examples);
        let saved = app.eval_report_save(&p, "eval-1", &dir.path().join("out")).unwrap();
        assert!(saved.ends_with(format!("vibeflow-{p}-eval-1.html")));
    }

    /// A judge slower than the timeout: the evaluation ends with its metrics and says why
    /// the judge's scores are missing; nothing is scored by a judge that did not answer.
    #[test]
    fn a_slow_judge_times_out_and_the_metrics_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        let Some(p) = trained(&app, "Slow", 1) else { return };
        let calls = Arc::new(AtomicUsize::new(0));
        if !add_judge(&app, "slow", judge(JUDGE_TIMEOUT * 2, calls)) {
            return;
        }
        let req = EvalRequest {
            project: p.clone(),
            candidate: ChatModel::Run("run-1".into()),
            baseline: None,
            judge: Some("slow:any".into()),
            limit: Some(2),
            max_tokens: 8,
            labels: false,
        };
        let e = app.evaluate(&req, &mut |_| true).unwrap();
        let note = e.judge_note.clone().unwrap();
        assert!(
            note.contains("did not answer within 2 s") && note.contains("metrics are kept"),
            "{note}"
        );
        assert_eq!(e.candidate.judge.as_ref().unwrap().judged, 0);
        assert_eq!(e.candidate.metrics.count, 2);
        assert!(e.baseline.is_none() && e.pairwise.is_none());
        // Without a judge's scores the overall score is the metrics' own.
        assert!(e.candidate.overall.judge.is_none());
    }

    #[test]
    fn judge_replies_parse_strictly() {
        let ok = r#"{"relevance": 4, "coherence": 5, "factuality": 3, "completeness": 4, "tone_match": 5, "feedback": "fine"}"#;
        let j = parse_rubric(ok).unwrap();
        assert_eq!(j.average(), 4.2);
        assert_eq!(parse_rubric(&format!("```json\n{ok}\n```")).unwrap(), j);
        // Prose around the object, a score out of range, a missing one: not scored.
        assert!(parse_rubric(&format!("Sure! {ok}")).is_err());
        let e = parse_rubric(&ok.replace("\"coherence\": 5", "\"coherence\": 7")).unwrap_err();
        assert_eq!(e, "\"coherence\" is 7, not 1 to 5");
        let e = parse_rubric(&ok.replace("\"factuality\": 3,", "")).unwrap_err();
        assert_eq!(e, "\"factuality\" is missing or not a whole number");
        assert_eq!(parse_winner(r#"{"winner": "B"}"#).unwrap(), Winner::B);
        assert!(parse_winner(r#"{"winner": "C"}"#).is_err());
    }

    /// Both orders must agree for a win; a judge that always picks the first position is a
    /// tie, not a win for whoever was asked first.
    #[test]
    fn position_bias_is_a_tie() {
        assert_eq!(verdict(Winner::A, Winner::B), Preference::Candidate);
        assert_eq!(verdict(Winner::B, Winner::A), Preference::Baseline);
        assert_eq!(verdict(Winner::A, Winner::A), Preference::Tie);
        assert_eq!(verdict(Winner::B, Winner::B), Preference::Tie);
        assert_eq!(verdict(Winner::Tie, Winner::B), Preference::Tie);
    }
}
