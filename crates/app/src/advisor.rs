//! The brainstorm assistant's rules: pure functions from what the user said, the dataset's
//! report, the catalog and the hardware to a recommended run with its reasons, the warnings
//! for a configuration, and the answers to follow-up questions. No IO: `App::recommend` and
//! `App::ask` gather the inputs and add the measured estimate.
//!
//! Every number the assistant says is a [`Fact`] with its source; [`ungrounded`] finds any
//! other number in a text, which is how a model's wording is checked before it is shown.

use api::advisor::{
    Brief, Candidate, Change, Fact, Priority, Question, Recommendation, Target, Task, Warning,
};
use api::train::{
    AdamWConfig, LoraConfig, Method, MethodKind, ProjectTrainRequest, Quant, Reason, Resume,
    TrainConfig, TrainPlan,
};

use crate::catalog::{Architecture, Card};

/// The PRD's tables and this engine's measured constants, in one place.
pub mod tables {
    /// Learning rate of full fine-tuning by training rows (PRD: 1e-4 small … 1e-5 very large).
    pub fn full_lr(rows: usize) -> f64 {
        match rows {
            0..1_000 => 1e-4,
            1_000..10_000 => 5e-5,
            10_000..100_000 => 2e-5,
            _ => 1e-5,
        }
    }
    /// The usual LoRA learning rates: outside them a run is likely to stall or diverge.
    pub const LORA_LR: (f64, f64) = (1e-5, 1e-3);
    /// The usual full fine-tuning learning rates.
    pub const FULL_LR: (f64, f64) = (1e-6, 2e-4);
    /// Fewer training rows than this and the model memorizes (PRD: "< 100 examples").
    pub const SMALL_DATA: usize = 100;
    /// Passes over the data above which small datasets overfit (PRD: 5–10 for < 1K rows).
    pub const MAX_EPOCHS_SMALL: usize = 10;
    /// Passes above which medium and large datasets overfit (PRD: 3–5 for 1K–10K, 1–2 above).
    pub fn max_epochs(rows: usize) -> usize {
        match rows {
            0..1_000 => MAX_EPOCHS_SMALL,
            1_000..10_000 => 5,
            _ => 2,
        }
    }
    /// Hours a run may take when the user gave no budget, by priority.
    pub fn default_hours(p: api::advisor::Priority) -> f64 {
        match p {
            api::advisor::Priority::Speed => 0.5,
            api::advisor::Priority::Balanced => 2.0,
            api::advisor::Priority::Quality => 12.0,
        }
    }
    /// Share of the target's memory a run may plan to use (the rest: the system, other
    /// programs, the allocator's slack).
    pub const MEMORY_SHARE: f64 = 0.75;
    /// Training throughput of a 7B model on one data-centre GPU, tokens/s, by method (PRD:
    /// LoRA 800, QLoRA 400, full 200); scaled by parameters for other sizes. DPO is LoRA over
    /// twice the sequences (each pair's chosen and rejected completion): LoRA's tokens/s.
    pub fn gpu_tokens_per_second_7b(m: api::train::MethodKind) -> f64 {
        match m {
            api::train::MethodKind::Lora | api::train::MethodKind::Dpo => 800.0,
            api::train::MethodKind::Qlora => 400.0,
            api::train::MethodKind::Full => 200.0,
        }
    }
    /// CPU training throughput before any probe: parameter-tokens per second per core (this
    /// engine's LoRA on SmolLM2-135M, about 75 tokens/s per core of a 2020s x86 CPU). The
    /// probe replaces it with this machine's own figure.
    pub const CPU_PARAM_TOKENS_PER_CORE: f64 = 1.0e10;
    /// Typical power a machine draws while training, watts: about 15 W a CPU core, 350 W
    /// a data-centre GPU (for the energy and its cost; a rule of thumb, said as such).
    pub fn watts(s: &api::SystemInfo) -> f64 {
        match &s.gpu {
            Some(_) => 350.0,
            None => 15.0 * s.cores as f64,
        }
    }
    /// Padding the run adds to the data's own tokens (batches pad to their longest row).
    pub const PADDING: f64 = 1.2;
}

/// Bytes of one f32.
const F32: u64 = 4;

/// Peak training memory of `arch` under `method` for `batch` sequences of `seq` tokens, on the
/// CPU in f32: the weights (4-bit blocks for QLoRA's projections), the trainable state (value,
/// gradient, two AdamW moments), the activations kept per block, one block's attention scores,
/// the loss's chunk and the process itself. The constants are fitted to `bench train` on
/// SmolLM2-135M (1×128 … 2×1024, within 5 %); `vibeflow bench estimate` checks the measured
/// estimate, which replaces this one for installed models. DPO counts as LoRA over twice the
/// sequences (`batch` pairs run as `2 × batch` sequences).
pub fn training_memory(
    a: &Architecture,
    method: MethodKind,
    batch: usize,
    seq: usize,
    checkpointing: bool,
) -> u64 {
    let (h, l, i, v) =
        (a.hidden_size as u64, a.layers as u64, a.intermediate_size as u64, a.vocab_size as u64);
    let (q, kv) = ((a.heads * a.head_dim) as u64, (a.kv_heads * a.head_dim) as u64);
    let p = a.parameters;
    let batch = if method == MethodKind::Dpo { 2 * batch } else { batch };
    let projections = l * (h * q + 2 * h * kv + q * h + 3 * h * i);
    let weights = match method {
        MethodKind::Lora | MethodKind::Dpo => p * F32,
        // Q4_1: 20 bytes per 32 weights; the embedding, head and norms stay f32.
        MethodKind::Qlora => projections * 20 / 32 + (p - projections) * F32,
        // Weights, gradients, AdamW's two moments.
        MethodKind::Full => p * F32 * 4,
    };
    // LoRA pairs (r = 16 on all seven projections: the largest rank the tiers use) × four
    // copies (value, gradient, two moments).
    let r = 16;
    let adapters = match method {
        MethodKind::Full => 0,
        _ => l * r * ((h + q) + 2 * (h + kv) + (q + h) + 3 * (h + i)) * F32 * 4,
    };
    let tokens = (batch * seq) as u64;
    // Kept per token and block by the written-out backward: the block's input, q, k, v, the
    // residual, gate and up; without checkpointing also the attention's output (and its
    // probabilities, below). With checkpointing a run keeps more where memory allows
    // (`engine::train::recompute_for`): this is what it needs, not what it may take.
    let kept = h + q + 2 * kv + h + 2 * i;
    let per_token = if checkpointing { l * kept * F32 } else { l * (kept + q) * F32 };
    // Scores, probabilities and their gradients of the block at hand; without checkpointing
    // every block's probabilities too.
    let block_scores = (batch as u64) * a.heads as u64 * (seq as u64).pow(2) * F32;
    let scores = block_scores * 6 + if checkpointing { 0 } else { l * block_scores };
    // The loss: 128 rows of logits and their gradient at a time.
    let loss = 128 * v * F32 * 3;
    // The process: code, tokenizer, runtime, the allocator's pools.
    let process = 160_000_000;
    weights + adapters + tokens * per_token + scores + loss + process
}

/// What the report says of the dataset, as the rules use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    /// Dataset name and version (`support v2`).
    pub name: String,
    /// Training rows.
    pub train_rows: usize,
    /// Held-out rows.
    pub test_rows: usize,
    /// Mean tokens of a templated row.
    pub mean_tokens: f64,
    /// 95th percentile.
    pub p95_tokens: usize,
    /// Longest row.
    pub max_tokens: usize,
    /// The dominant language's English name, when one dominates.
    pub language: Option<String>,
}

/// The machine, as the rules use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// Installed memory, bytes.
    pub memory_bytes: u64,
    /// Logical cores.
    pub cores: usize,
    /// The GPU training runs on: name and memory.
    pub gpu: Option<(String, u64)>,
    /// Training throughput measured by a probe here, as parameter-tokens per second (tokens/s
    /// × parameters), when one was measured.
    pub measured_param_tokens: Option<f64>,
}

/// Everything `recommend` decides from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// What the user said.
    pub brief: &'a Brief,
    /// The project's current dataset, if it has one.
    pub data: Option<Data>,
    /// This machine.
    pub machine: Machine,
    /// Installed model ids.
    pub installed: Vec<String>,
    /// The project's base model.
    pub base_model: String,
    /// The project.
    pub project: String,
    /// The catalog.
    pub cards: &'a [Card],
}

/// Keywords that name a task, most specific first.
const TASK_WORDS: &[(Task, &[&str])] = &[
    (Task::Code, &["code", "program", "python", "sql", "function", "bug", "developer"]),
    (Task::Classification, &["classif", "label", "sentiment", "categor", "tag ", "spam", "detect"]),
    (Task::Extraction, &["extract", "json", "fields", "parse", "entities", "invoice"]),
    (Task::Summarization, &["summar", "shorten", "tl;dr", "digest", "condense"]),
    (
        Task::Support,
        &["support", "customer", "help desk", "helpdesk", "ticket", "refund", "billing"],
    ),
    (Task::Style, &["style", "tone", "voice", "rewrite", "rephrase", "brand"]),
    (Task::Qa, &["question", "answer", "q&a", "faq", "docs", "knowledge", "explain"]),
];

/// The task a goal describes.
pub fn detect_task(goal: &str) -> Task {
    let g = format!("{} ", goal.to_lowercase());
    TASK_WORDS
        .iter()
        .find(|(_, words)| words.iter().any(|w| g.contains(w)))
        .map_or(Task::General, |(t, _)| *t)
}

/// The memory the plan may use on the target, bytes.
pub fn target_memory(brief: &Brief, m: &Machine) -> u64 {
    match (brief.target, &m.gpu) {
        (Target::Gpu { memory_bytes }, _) => memory_bytes,
        (Target::ThisMachine, Some((_, gpu))) => *gpu,
        (Target::ThisMachine, None) => m.memory_bytes,
    }
}

/// Whether the target is a GPU.
fn on_gpu(brief: &Brief, m: &Machine) -> bool {
    matches!(brief.target, Target::Gpu { .. }) || m.gpu.is_some()
}

/// Training tokens per second of `arch` under `method` on the target (before the probe: the
/// probe's own figure for the project's model replaces it).
fn throughput(a: &Architecture, method: MethodKind, brief: &Brief, m: &Machine) -> f64 {
    let p = a.parameters as f64;
    if on_gpu(brief, m) {
        return tables::gpu_tokens_per_second_7b(method) * 7e9 / p;
    }
    let param_tokens =
        m.measured_param_tokens.unwrap_or(tables::CPU_PARAM_TOKENS_PER_CORE * m.cores as f64);
    // QLoRA dequantizes every projection per use; full fine-tuning adds the weight gradients.
    let factor = match method {
        MethodKind::Lora | MethodKind::Dpo => 1.0,
        MethodKind::Qlora => 0.8,
        MethodKind::Full => 0.6,
    };
    param_tokens * factor / p
}

/// Where a throughput figure came from.
fn throughput_source(brief: &Brief, m: &Machine) -> &'static str {
    if on_gpu(brief, m) {
        "tables"
    } else if m.measured_param_tokens.is_some() {
        "probe"
    } else {
        "tables"
    }
}

/// The recommended run, its reasons, what was traded away, the candidates, warnings and the
/// questions still open. `plan.checks` is left empty for the caller (it needs the disk).
pub fn recommend(inp: &Inputs) -> Recommendation {
    let brief = inp.brief;
    let task = detect_task(&brief.goal);
    let mut facts = Vec::new();
    let mut fact = |label: &str, value: f64, shown: String, source: &str| {
        facts.push(Fact { label: label.into(), value, shown, source: source.into() });
    };
    let data = inp.data.clone();
    let rows = data.as_ref().map_or(0, |d| d.train_rows);
    let mean = data.as_ref().map_or(0.0, |d| d.mean_tokens);
    let p95 = data.as_ref().map_or(0, |d| d.p95_tokens);
    if let Some(d) = &data {
        fact("training rows", rows as f64, thousands(rows as u64), "report");
        fact("held-out rows", d.test_rows as f64, thousands(d.test_rows as u64), "report");
        fact("mean tokens per row", mean, format!("{mean:.0}"), "report");
        fact("95th percentile of tokens per row", p95 as f64, thousands(p95 as u64), "report");
    }
    let memory = target_memory(brief, &inp.machine);
    let usable = (memory as f64 * tables::MEMORY_SHARE) as u64;
    fact("memory of the target", memory as f64, gb(memory), "hardware");
    fact("memory a run may use", usable as f64, gb(usable), "hardware");
    let budget = brief.max_hours.unwrap_or(tables::default_hours(brief.priority));
    fact(
        "hours the run may take",
        budget,
        hours(budget),
        if brief.max_hours.is_some() { "brief" } else { "tables" },
    );

    // Each card: the lightest method that fits, the rough time.
    let seq = (p95.max(64)).next_multiple_of(64).min(2048);
    let batch = if seq > 512 { 2 } else { 4 };
    let multilingual =
        data.as_ref().and_then(|d| d.language.clone()).is_some_and(|l| l != "English");
    let epochs_for = |c: &Card| epochs(c, rows, brief.priority);
    let mut candidates = Vec::new();
    for c in inp.cards {
        let a = &c.architecture;
        let methods: Vec<MethodKind> = match brief.method {
            Some(m) => vec![m],
            None => vec![MethodKind::Lora, MethodKind::Qlora],
        };
        let fit = methods
            .iter()
            .map(|&m| (m, training_memory(a, m, batch, seq, true)))
            .find(|&(_, b)| b <= usable);
        let (method, bytes) = fit.unwrap_or((
            *methods.last().unwrap(),
            training_memory(a, *methods.last().unwrap(), batch, seq, true),
        ));
        let tokens = rows as f64 * mean.min(seq as f64) * epochs_for(c) as f64 * tables::PADDING;
        let h = tokens / throughput(a, method, brief, &inp.machine) / 3600.0;
        let installed = inp.installed.contains(&c.id);
        let note = match (fit.is_some(), h <= budget) {
            (false, _) => format!(
                "needs {} with {}, more than the {} a run may use",
                gb(bytes),
                method.label(),
                gb(usable)
            ),
            (true, false) => format!(
                "about {} with {}: over the {} budget",
                hours(h),
                method.label(),
                hours(budget)
            ),
            (true, true) => {
                format!("fits: {} with {}, about {}", gb(bytes), method.label(), hours(h))
            }
        };
        candidates.push((
            c,
            Candidate {
                model: c.id.clone(),
                name: c.name.clone(),
                method,
                memory_bytes: bytes,
                fits: fit.is_some(),
                installed,
                note,
            },
            h,
        ));
    }
    // The choice: the user's model; else among those that fit in memory and time, the
    // smallest for speed, the largest otherwise, the task's family first (Qwen for code,
    // extraction and other languages than English).
    let suits = |c: &Card| {
        let qwen_first = multilingual || matches!(task, Task::Code | Task::Extraction);
        !qwen_first || c.family == "qwen2"
    };
    let ok: Vec<&(&Card, Candidate, f64)> =
        candidates.iter().filter(|(_, c, h)| c.fits && *h <= budget).collect();
    let preferred: Vec<&&(&Card, Candidate, f64)> = ok.iter().filter(|(c, ..)| suits(c)).collect();
    let pool: Vec<&(&Card, Candidate, f64)> =
        if preferred.is_empty() { ok.clone() } else { preferred.into_iter().copied().collect() };
    let pinned = brief.model.as_deref().and_then(|m| candidates.iter().find(|(c, ..)| c.id == m));
    // A model that does not speak the data's language is no answer: when none of the
    // family that does fits the time, the smallest that fits the memory, over the budget.
    let speaks = (multilingual && !pool.iter().any(|(c, ..)| suits(c)))
        .then(|| candidates.iter().find(|(c, cand, _)| suits(c) && cand.fits))
        .flatten();
    // Without data every model "finishes" at once: the smallest, until the data says more.
    let chosen = pinned.or(speaks).or(match brief.priority {
        _ if rows == 0 => pool.first().copied(),
        Priority::Speed => pool.first().copied(),
        _ => pool.last().copied(),
    });
    // Nothing fits: the smallest model, honestly marked as beyond this machine.
    let feasible = rows > 0 && chosen.is_some_and(|(_, c, h)| c.fits && *h <= budget);
    let (card, cand, est_hours) = chosen
        .or(candidates.first())
        .map(|(c, cand, h)| (*c, cand.clone(), *h))
        .expect("the catalog is not empty");

    // Settings from the card's tier for this many rows, the PRD's tables and the priority.
    let tier = card.tier(rows);
    let ep = epochs(card, rows, brief.priority);
    let method = cand.method;
    let lr = match method {
        MethodKind::Full => tables::full_lr(rows),
        _ => tier.learning_rate,
    };
    let max_len = seq.min(card.architecture.context);
    let total_steps = rows.div_ceil(batch) * ep;
    let eval_rows = data.as_ref().map_or(0, |d| d.test_rows.min(32));
    let lora = LoraConfig {
        r: tier.lora_r,
        alpha: tier.lora_alpha,
        dropout: if rows < 1000 { 0.05 } else { 0.0 },
        ..LoraConfig::default()
    };
    let config = TrainConfig {
        method: Method::of_kind(method, lora, Quant::Q4_1),
        steps: None,
        epochs: ep,
        batch_size: batch,
        max_len,
        adamw: AdamWConfig { lr, ..AdamWConfig::default() },
        warmup_steps: (total_steps * 3 / 100).max(1),
        eval_every: (total_steps / 5).max(1),
        checkpoint_every: (total_steps / 10).clamp(5, 50),
        ..TrainConfig::default()
    };
    fact("LoRA rank", tier.lora_r as f64, tier.lora_r.to_string(), "catalog");
    fact("LoRA alpha", tier.lora_alpha, format!("{}", tier.lora_alpha), "catalog");
    fact(
        "learning rate",
        lr,
        format!("{lr:e}"),
        if method == MethodKind::Full { "tables" } else { "catalog" },
    );
    fact("epochs", ep as f64, ep.to_string(), "catalog");
    fact("batch size", batch as f64, batch.to_string(), "tables");
    fact("max length", max_len as f64, thousands(max_len as u64), "report");
    fact("optimizer steps", total_steps as f64, thousands(total_steps as u64), "settings");
    fact("held-out rows evaluated", eval_rows as f64, eval_rows.to_string(), "report");
    fact(
        "parameters",
        card.architecture.parameters as f64,
        params(card.architecture.parameters),
        "catalog",
    );
    fact(
        "context",
        card.architecture.context as f64,
        thousands(card.architecture.context as u64),
        "catalog",
    );
    fact("training memory", cand.memory_bytes as f64, gb(cand.memory_bytes), "catalog");
    fact("rough hours", est_hours, hours(est_hours), throughput_source(brief, &inp.machine));
    let full = training_memory(&card.architecture, MethodKind::Full, batch, seq, true);
    fact("full fine-tuning memory", full as f64, gb(full), "catalog");
    let lora_mem = training_memory(&card.architecture, MethodKind::Lora, batch, seq, true);
    fact("LoRA memory", lora_mem as f64, gb(lora_mem), "catalog");
    fact("percentile", 95.0, "95".into(), "tables");
    fact("bits of QLoRA's base", 4.0, "4".into(), "tables");
    // The card's own words (its strengths) may name figures too.
    for v in numbers(&card.strengths) {
        fact("in the card's strengths", v, format!("{v}"), "catalog");
    }
    let gpu_brief = Brief { target: Target::Gpu { memory_bytes: 80_000_000_000 }, ..brief.clone() };
    let gpu_hours = est_hours * throughput(&card.architecture, cand.method, brief, &inp.machine)
        / throughput(&card.architecture, cand.method, &gpu_brief, &inp.machine);
    fact("hours on a GPU", gpu_hours, hours(gpu_hours), "tables");
    for (c, cand, h) in &candidates {
        fact(
            &format!("{} memory", c.name),
            cand.memory_bytes as f64,
            gb(cand.memory_bytes),
            "catalog",
        );
        fact(&format!("{} hours", c.name), *h, hours(*h), throughput_source(brief, &inp.machine));
        fact(
            &format!("{} parameters", c.name),
            c.architecture.parameters as f64,
            params(c.architecture.parameters),
            "catalog",
        );
    }

    let mut limits = Vec::new();
    if !cand.fits {
        limits.push(format!(
            "{} needs about {} to train with {}, and a run may use {} here: choose a smaller model{}, or train on a GPU with more memory",
            card.name,
            gb(cand.memory_bytes),
            cand.method.label(),
            gb(usable),
            if cand.method == MethodKind::Lora { ", QLoRA" } else { "" }
        ));
    }
    if est_hours > budget {
        limits.push(format!(
            "{} would take about {} here, over the {} budget: use a smaller model, fewer epochs, or a GPU (about {} on one)",
            card.name,
            hours(est_hours),
            hours(budget),
            hours(gpu_hours),
        ));
    }
    if rows == 0 {
        limits.push("the project has no dataset yet: import one in the Data pane (or pick a sample) before training".into());
    }

    let mut reasons = Vec::new();
    let mut why = |setting: &str, value: String, why: String| {
        reasons.push(Reason { setting: setting.into(), value, why });
    };
    why(
        "Model",
        card.name.clone(),
        format!(
            "{} parameters, {}. {}",
            params(card.architecture.parameters),
            match brief.priority {
                Priority::Speed => "the smallest model that fits, for a first result soon",
                _ if pinned.is_some_and(|(c, ..)| c.id == inp.base_model) => "the project's model",
                _ if pinned.is_some() => "the model you chose",
                _ => "the largest model that fits this machine's memory and the time budget",
            },
            card.strengths
        ),
    );
    why(
        "Method",
        method.label().into(),
        match method {
            MethodKind::Lora => format!(
                "trains small adapters beside the frozen model: about {} in all, against {} for full fine-tuning",
                gb(cand.memory_bytes),
                gb(full)
            ),
            MethodKind::Qlora => format!(
                "LoRA over a 4-bit copy of the model: about {} instead of {} with LoRA, at a small cost in quality and speed",
                gb(cand.memory_bytes),
                gb(lora_mem)
            ),
            MethodKind::Full => {
                "every weight trains: the most capacity, and the most memory and time".into()
            }
            MethodKind::Dpo => format!(
                "LoRA adapters trained on your votes (chosen over rejected answers): about {}, two sequences per pair",
                gb(cand.memory_bytes)
            ),
        },
    );
    if method != MethodKind::Full {
        why(
            "LoRA rank",
            tier.lora_r.to_string(),
            format!(
                "the adapters' size: {} suits {} training rows ({}'s card)",
                tier.lora_r,
                thousands(rows as u64),
                card.name
            ),
        );
        why(
            "LoRA alpha",
            format!("{}", tier.lora_alpha),
            "scales the adapters' update; twice the rank is the usual choice".into(),
        );
    }
    why(
        "Learning rate",
        format!("{lr:e}"),
        format!(
            "the usual rate for {} at this data size; halve it if the loss jumps around",
            method.label()
        ),
    );
    why(
        "Epochs",
        ep.to_string(),
        format!(
            "{} training rows: small datasets need several passes, large ones one or two{}",
            thousands(rows as u64),
            match brief.priority {
                Priority::Speed => " (fewer for speed)",
                Priority::Quality => " (one more for quality)",
                Priority::Balanced => "",
            }
        ),
    );
    why(
        "Max length",
        format!("{max_len} tokens"),
        format!("95 % of the rows fit in {} tokens; longer ones are cut", thousands(p95 as u64)),
    );
    why(
        "Batch size",
        batch.to_string(),
        "examples per step: smoother updates without running out of memory".into(),
    );
    why("Held-out rows evaluated", eval_rows.to_string(), "measured before, during and after training to show whether the model generalizes; more is slower".into());

    let mut tradeoffs = Vec::new();
    match method {
        MethodKind::Lora => tradeoffs.push(format!(
            "LoRA instead of full fine-tuning: slightly less capacity to change the model, for about {} instead of {}",
            gb(cand.memory_bytes),
            gb(full)
        )),
        MethodKind::Qlora => tradeoffs.push("QLoRA instead of LoRA: the 4-bit base costs a little quality and speed, and saves most of the weights' memory".into()),
        MethodKind::Full | MethodKind::Dpo => {}
    }
    if let Some((bigger, bc, bh)) =
        candidates.iter().find(|(c, ..)| c.architecture.parameters > card.architecture.parameters)
    {
        tradeoffs.push(format!(
            "{} instead of {}: {}",
            card.name,
            bigger.name,
            if !bc.fits {
                format!("{} would need {}", bigger.name, gb(bc.memory_bytes))
            } else {
                format!("{} would take about {} here", bigger.name, hours(*bh))
            }
        ));
    }
    if max_len < data.as_ref().map_or(0, |d| d.max_tokens) {
        tradeoffs.push(format!(
            "max length {max_len}: the longest rows are cut, to keep memory and time down"
        ));
    }

    let plan = TrainPlan {
        request: ProjectTrainRequest {
            project: inp.project.clone(),
            dataset: None,
            eval_rows,
            config: config.clone(),
            resume: Resume::No,
        },
        reasons,
        checks: Vec::new(),
        train_rows: rows,
        mean_tokens: mean,
        total_steps,
    };
    let warnings = review(&config, Some(card), data.as_ref(), memory);
    let mut questions = Vec::new();
    if brief.goal.trim().is_empty() {
        questions.push(Question {
            id: "goal".into(),
            text: "What should the model do? Describe it in a sentence (\"reply to customers about billing\").".into(),
            options: vec!["Customer support replies".into(), "Answer questions about our docs".into(), "Classify reviews".into(), "Extract fields as JSON".into()],
        });
    }
    if data.is_none() {
        questions.push(Question {
            id: "data".into(),
            text: "Which examples will it learn from? Import a file in the Data pane, or start from a sample.".into(),
            options: vec!["Open the Data pane".into()],
        });
    }
    if brief.priority == Priority::Balanced && brief.max_hours.is_none() {
        questions.push(Question {
            id: "priority".into(),
            text: "What matters most: a result soon, or the best quality this machine can reach?"
                .into(),
            options: vec!["Speed".into(), "Balanced".into(), "Quality".into()],
        });
    }
    if brief.max_hours.is_none() && brief.price_per_hour.is_none() && brief.price_per_kwh.is_none()
    {
        questions.push(Question {
            id: "budget".into(),
            text: "How long may training take, and what does an hour of this machine (or a kWh) cost you?".into(),
            options: vec!["Under 30 minutes".into(), "A few hours".into(), "Overnight".into()],
        });
    }
    if brief.target == Target::ThisMachine && inp.machine.gpu.is_none() {
        questions.push(Question {
            id: "hardware".into(),
            text: "No GPU was found here: training runs on the CPU. Do you have a GPU elsewhere?"
                .into(),
            options: vec!["Plan for this machine".into(), "What if I had a 24 GB GPU?".into()],
        });
    }
    Recommendation {
        task,
        model: card.id.clone(),
        model_name: card.name.clone(),
        plan,
        tradeoffs,
        feasible,
        limits,
        memory_bytes: cand.memory_bytes,
        target_memory_bytes: memory,
        candidates: candidates.into_iter().map(|(_, c, _)| c).collect(),
        warnings,
        questions,
        estimate: None,
        facts,
    }
}

fn epochs(card: &Card, rows: usize, p: Priority) -> usize {
    let e = card.tier(rows).epochs;
    match p {
        Priority::Speed => e.div_ceil(2).max(1),
        Priority::Balanced => e,
        Priority::Quality => (e + 1).min(tables::max_epochs(rows)),
    }
}

/// What will likely go wrong with `c` (the user's edits of a plan): memory, overfitting,
/// truncation, a learning rate outside the method's range; each with the change that avoids
/// it. `memory` is the target's memory.
pub fn review(
    c: &TrainConfig,
    card: Option<&Card>,
    data: Option<&Data>,
    memory: u64,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let kind = c.method.kind();
    if let Some(card) = card {
        let need = training_memory(
            &card.architecture,
            kind,
            c.batch_size,
            c.max_len,
            c.gradient_checkpointing,
        );
        let usable = (memory as f64 * tables::MEMORY_SHARE) as u64;
        if need > usable {
            let fix = if c.batch_size > 1 {
                Change::BatchSize(c.batch_size / 2)
            } else if kind == MethodKind::Lora {
                Change::Method(MethodKind::Qlora)
            } else {
                Change::MaxLen((c.max_len / 2).max(64))
            };
            out.push(Warning {
                kind: "memory".into(),
                message: format!(
                    "{} at batch {} × {} tokens needs about {}, more than the {} a run may use: it will run out of memory or swap",
                    kind.label(), c.batch_size, c.max_len, gb(need), gb(usable)
                ),
                fix: Some(fix),
            });
        }
    }
    if let Some(d) = data {
        let max = tables::max_epochs(d.train_rows);
        if c.steps.is_none() && c.epochs > max {
            out.push(Warning {
                kind: "overfitting".into(),
                message: format!(
                    "{} epochs over {} training rows: the model will memorize them (more than {} passes rarely help at this size); watch the held-out loss",
                    c.epochs, thousands(d.train_rows as u64), max
                ),
                fix: Some(Change::Epochs(max)),
            });
        }
        if d.train_rows < tables::SMALL_DATA {
            out.push(Warning {
                kind: "small_data".into(),
                message: format!(
                    "only {} training rows: expect the model to repeat them; a few hundred examples make a real difference",
                    d.train_rows
                ),
                fix: None,
            });
        }
        if c.max_len < d.p95_tokens {
            out.push(Warning {
                kind: "truncation".into(),
                message: format!(
                    "max length {} is below the {} tokens that 95 % of the rows need: more than one row in twenty loses its end, often the reply it should learn",
                    c.max_len, d.p95_tokens
                ),
                fix: Some(Change::MaxLen(d.p95_tokens.next_multiple_of(64))),
            });
        }
    }
    let (lo, hi) = if kind == MethodKind::Full { tables::FULL_LR } else { tables::LORA_LR };
    let lr = c.adamw.lr;
    if lr < lo || lr > hi {
        let fix = if kind == MethodKind::Full {
            tables::full_lr(data.map_or(0, |d| d.train_rows))
        } else {
            card.map_or(2e-4, |k| k.tier(data.map_or(0, |d| d.train_rows)).learning_rate)
        };
        out.push(Warning {
            kind: "learning_rate".into(),
            message: format!(
                "learning rate {lr:e} is outside {}'s usual {lo:e} to {hi:e}: {}",
                kind.label(),
                if lr > hi {
                    "the loss will likely jump around or become NaN"
                } else {
                    "the model will barely change"
                }
            ),
            fix: Some(Change::LearningRate(fix)),
        });
    }
    out
}

/// What a user's message changes in the brief: a goal, a priority, a time budget, prices, a
/// GPU to plan for, a model ("use the installed model": `installed`, the one the project
/// trains) or a method.
pub fn understand(text: &str, brief: &Brief, cards: &[Card], installed: &str) -> Brief {
    let t = text.to_lowercase();
    let mut b = brief.clone();
    let words = |ws: &[&str]| ws.iter().any(|w| t.contains(w));
    if words(&["speed", "fast", "quick", "soon", "asap"]) {
        b.priority = Priority::Speed;
    } else if words(&["quality", "accura", "best"]) {
        b.priority = Priority::Quality;
    } else if words(&["balanced"]) {
        b.priority = Priority::Balanced;
    }
    // "under 30 minutes", "2 hours", "overnight".
    let nums = numbers(&t);
    if words(&["overnight"]) {
        b.max_hours = Some(10.0);
    } else if let Some(&n) = nums.first() {
        if words(&["minute", "min "]) || t.ends_with("min") {
            b.max_hours = Some(n / 60.0);
        } else if words(&["hour", " h ", "hrs"])
            && !words(&["per hour", "/h", "an hour cost", "/hour"])
        {
            b.max_hours = Some(n);
        }
    }
    if words(&["kwh"]) {
        b.price_per_kwh = nums.first().copied();
    } else if words(&["per hour", "/h", "/hour", "an hour"])
        && words(&["$", "€", "£", "cost", "price", "pay"])
    {
        b.price_per_hour = nums.first().copied();
    }
    if words(&["gpu", "cuda", "a100", "h100", "4090", "3090"])
        && !words(&["no gpu", "don't have a gpu", "without a gpu"])
    {
        let gb = nums.iter().copied().find(|&n| (4.0..=200.0).contains(&n)).unwrap_or(24.0);
        b.target = Target::Gpu { memory_bytes: (gb * 1e9) as u64 };
    } else if words(&["this machine", "no gpu", "cpu", "laptop"]) {
        b.target = Target::ThisMachine;
    }
    if let Some(c) = cards.iter().find(|c| t.contains(&c.id) || t.contains(&c.name.to_lowercase()))
    {
        b.model = Some(c.id.clone());
    }
    if words(&["installed"]) {
        b.model = Some(installed.to_string());
    }
    if words(&["use qlora", "with qlora"]) {
        b.method = Some(MethodKind::Qlora);
    } else if words(&["use lora", "with lora"]) {
        b.method = Some(MethodKind::Lora);
    } else if words(&["use full", "with full"]) {
        b.method = Some(MethodKind::Full);
    }
    // A first message that is none of the above, or that names a task, is the goal.
    let said_nothing_else = b == *brief && !is_question(&t);
    if b.goal.trim().is_empty() && (said_nothing_else || detect_task(text) != Task::General) {
        b.goal = text.trim().to_string();
    }
    b
}

fn is_question(t: &str) -> bool {
    t.trim_end().ends_with('?')
        || ["why", "what", "how", "which"].iter().any(|w| t.trim_start().starts_with(w))
}

/// The assistant's reply to `text`, in its own words, given the recommendation for the brief
/// `text` led to. Every number in it is one of `rec.facts` (checked by a test).
pub fn reply(text: &str, rec: &Recommendation) -> String {
    let t = text.to_lowercase();
    let f = |label: &str| {
        rec.facts.iter().find(|f| f.label == label).map_or(String::new(), |f| f.shown.clone())
    };
    let has = |ws: &[&str]| ws.iter().any(|w| t.contains(w));
    let method = rec.plan.request.config.method.kind();
    let mut out = String::new();
    if has(&["why not full", "full fine"]) {
        let full = rec
            .facts
            .iter()
            .find(|x| x.label == "full fine-tuning memory")
            .map(|x| x.shown.clone());
        out.push_str(&format!(
            "Full fine-tuning trains every one of {}'s {} parameters: {}. {} reaches nearly the same quality on a task like {} for {}.",
            rec.model_name,
            f("parameters"),
            full.map_or("several times the memory and time".into(), |m| format!("about {m} of memory")),
            method.label(),
            rec.task.label(),
            f("training memory"),
        ));
    } else if has(&["gpu"]) {
        out.push_str(&format!(
            "Planning for a GPU with {} of memory: {} with {}, about {} of training (before measuring).",
            f("memory of the target"),
            rec.model_name,
            method.label(),
            f("rough hours"),
        ));
    } else if has(&["why this model", "which model", "why ", "model"]) && !has(&["how long"]) {
        let r = rec
            .plan
            .reasons
            .iter()
            .find(|r| r.setting == "Model")
            .map_or(String::new(), |r| r.why.clone());
        out.push_str(&format!("{}: {r}", rec.model_name));
    } else if has(&["how long", "time", "cost", "price"]) {
        match &rec.estimate {
            Some(e) => out.push_str(&format!(
                "Measured here: about {} for the whole run, peaking at {}{}.",
                hours(e.seconds / 3600.0),
                gb(e.peak_memory_bytes),
                e.cost.map_or(String::new(), |c| format!(", costing {c:.2}"))
            )),
            None => out.push_str(&format!(
                "Roughly {} before measuring; press Estimate to measure it on this machine.",
                f("rough hours")
            )),
        }
    } else if rec.plan.train_rows == 0 {
        out.push_str(&format!("For {} I need examples to learn from first.", rec.task.label()));
    } else {
        out.push_str(&format!(
            "For {} with {} training rows I recommend {} with {}: {} epochs at learning rate {}, batch {}, max length {}.",
            rec.task.label(),
            f("training rows"),
            rec.model_name,
            method.label(),
            f("epochs"),
            f("learning rate"),
            f("batch size"),
            f("max length"),
        ));
    }
    if !rec.feasible && rec.plan.train_rows > 0 {
        for l in &rec.limits {
            out.push_str(&format!(" Beyond this machine: {l}."));
        }
    }
    if let Some(q) = rec.questions.first() {
        out.push_str(&format!(" {}", q.text));
    }
    out
}

/// The numbers in `text` that are none of `facts` (as shown or as values): an empty list means
/// every figure has a source. Numbers inside words (`Qwen2.5`, `SmolLM2-135M`, `v2`) and in
/// the catalog's names are not figures.
pub fn ungrounded(text: &str, facts: &[Fact], names: &[&str]) -> Vec<String> {
    let mut cleaned = text.to_string();
    for n in names {
        cleaned = cleaned.replace(n, " ");
    }
    let shown: Vec<f64> = facts
        .iter()
        .flat_map(|f| numbers(&f.shown.to_lowercase()).into_iter().chain([f.value]))
        .collect();
    let mut out = Vec::new();
    let b = cleaned.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit()
            && (i == 0
                || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.' || b[i - 1] == b'-'));
        if !starts {
            i += 1;
            continue;
        }
        let s = i;
        while i < b.len()
            && (b[i].is_ascii_alphanumeric()
                || b[i] == b'.'
                || b[i] == b','
                || ((b[i] == b'-' || b[i] == b'+') && b[i - 1] == b'e'))
        {
            i += 1;
        }
        let token = cleaned[s..i].trim_end_matches(['.', ',']);
        let Some(v) = numbers(&token.to_lowercase()).first().copied() else { continue };
        if !shown.iter().any(|&x| close(x, v)) {
            out.push(token.to_string());
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9_f64.max(a.abs().max(b.abs()) * 1e-3)
}

/// The numbers in `t` (`1,200`, `2e-4`, `0.5`), in order.
pub fn numbers(t: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let s = i;
        while i < b.len()
            && (b[i].is_ascii_digit()
                || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
                || (b[i] == b','
                    && b.get(i + 1..i + 4).is_some_and(|d| d.iter().all(u8::is_ascii_digit)))
                || (b[i] == b'e'
                    && b.get(i + 1)
                        .is_some_and(|c| *c == b'-' || *c == b'+' || c.is_ascii_digit())))
        {
            if b[i] == b'e' && matches!(b.get(i + 1), Some(b'-' | b'+')) {
                i += 1;
            }
            i += 1;
        }
        if let Ok(v) = t[s..i].replace(',', "").parse::<f64>() {
            out.push(v);
        }
    }
    out
}

/// `1,200`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `3.1 GB`.
pub fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// `135M`, `1.5B`.
pub fn params(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.1}B", n as f64 / 1e9)
    } else {
        format!("{}M", (n as f64 / 1e6).round())
    }
}

/// `25 minutes`, `3.5 hours`.
pub fn hours(h: f64) -> String {
    if h < 1.0 {
        format!("{} minutes", (h * 60.0).ceil().max(1.0))
    } else {
        format!("{h:.1} hours")
    }
}

/// Whether a message asks for the measured figures ("how long", "measure", "estimate").
pub fn wants_measure(text: &str) -> bool {
    let t = text.to_lowercase();
    ["how long", "measure", "estimate", "time", "cost", "price"].iter().any(|w| t.contains(w))
}

/// Fills in the estimate's cost from the prices in the brief.
pub fn price(e: &mut api::train::Estimate, brief: &Brief) {
    let hourly = brief.price_per_hour.map(|p| p * e.seconds / 3600.0);
    let energy = brief.price_per_kwh.map(|p| p * e.energy_kwh);
    e.cost = match (hourly, energy) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    };
}

/// The estimate's figures as facts (source `probe`), in the forms the replies show them.
pub fn estimate_facts(facts: &mut Vec<Fact>, e: &api::train::Estimate) {
    let mut add = |label: &str, value: f64, shown: String| {
        facts.push(Fact { label: label.into(), value, shown, source: "probe".into() });
    };
    add("measured hours", e.seconds / 3600.0, hours(e.seconds / 3600.0));
    add("measured peak memory", e.peak_memory_bytes as f64, gb(e.peak_memory_bytes));
    add("measured tokens per second", e.tokens_per_second, format!("{:.0}", e.tokens_per_second));
    add("energy", e.energy_kwh, format!("{:.3} kWh", e.energy_kwh));
    if let Some(c) = e.cost {
        add("cost", c, format!("{c:.2}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::catalog;

    fn data(rows: usize, mean: f64, p95: usize) -> Data {
        Data {
            name: "support v1".into(),
            train_rows: rows,
            test_rows: rows / 9,
            mean_tokens: mean,
            p95_tokens: p95,
            max_tokens: p95 * 2,
            language: Some("English".into()),
        }
    }

    fn laptop() -> Machine {
        Machine { memory_bytes: 16_000_000_000, cores: 8, gpu: None, measured_param_tokens: None }
    }

    fn inputs<'a>(brief: &'a Brief, d: Option<Data>, m: Machine, cards: &'a [Card]) -> Inputs<'a> {
        Inputs {
            brief,
            data: d,
            machine: m,
            installed: vec!["smollm2-135m-instruct".into()],
            base_model: "smollm2-135m-instruct".into(),
            project: "bot".into(),
            cards,
        }
    }

    #[test]
    fn tasks_are_read_from_plain_words() {
        assert_eq!(detect_task("I want a support bot for billing questions"), Task::Support);
        assert_eq!(detect_task("Classify product reviews by sentiment"), Task::Classification);
        assert_eq!(detect_task("pull the invoice number and total out as JSON"), Task::Extraction);
        assert_eq!(detect_task("write SQL from questions"), Task::Code);
        assert_eq!(detect_task("make it sound like a pirate"), Task::General);
    }

    #[test]
    fn the_recommendation_follows_the_tables_and_the_machine() {
        let cards = catalog();
        // Speed: the smallest model that fits, fewer epochs.
        let speed =
            Brief { goal: "support bot".into(), priority: Priority::Speed, ..Brief::default() };
        let r = recommend(&inputs(&speed, Some(data(1200, 180.0, 400)), laptop(), &cards));
        assert_eq!(r.task, Task::Support);
        assert_eq!(r.model, "smollm2-135m-instruct");
        assert!(r.feasible, "{:?}", r.limits);
        let c = &r.plan.request.config;
        assert_eq!(c.method.kind(), MethodKind::Lora);
        // 1,200 rows: the 1K–10K tier (3 epochs), halved for speed.
        assert_eq!((c.epochs, c.adamw.lr), (2, 5e-4));
        assert_eq!(c.max_len, 448, "p95 400 rounded up to 64");
        // Quality with a night: a larger model, still one that fits in 16 GB.
        let q = Brief { max_hours: Some(12.0), priority: Priority::Quality, ..speed.clone() };
        let r = recommend(&inputs(&q, Some(data(1200, 180.0, 400)), laptop(), &cards));
        let card = cards.iter().find(|c| c.id == r.model).unwrap();
        assert!(card.architecture.parameters > 300_000_000, "{} {:#?}", r.model, r.candidates);
        assert!(r.memory_bytes <= (16e9 * tables::MEMORY_SHARE) as u64);
        assert!(r.feasible);
        // Full fine-tuning, when asked for, takes the table's rate.
        let full = Brief { method: Some(MethodKind::Full), ..speed.clone() };
        let r = recommend(&inputs(&full, Some(data(1200, 180.0, 400)), laptop(), &cards));
        assert_eq!(r.plan.request.config.adamw.lr, 5e-5);
        // Another language than English prefers Qwen.
        let mut d = data(5000, 120.0, 256);
        d.language = Some("German".into());
        let r = recommend(&inputs(
            &Brief { goal: "support".into(), ..Brief::default() },
            Some(d),
            laptop(),
            &cards,
        ));
        assert!(r.model.starts_with("qwen"), "{}", r.model);
    }

    #[test]
    fn a_task_beyond_this_machine_is_said_with_what_would_change_it() {
        let cards = catalog();
        let small = Machine {
            memory_bytes: 2_000_000_000,
            cores: 2,
            gpu: None,
            measured_param_tokens: None,
        };
        let brief = Brief {
            goal: "support".into(),
            model: Some("mistral-7b-instruct-v0.3".into()),
            ..Brief::default()
        };
        let r = recommend(&inputs(&brief, Some(data(50_000, 300.0, 700)), small.clone(), &cards));
        assert!(!r.feasible);
        let all = r.limits.join(" ");
        assert!(all.contains("smaller model") && all.contains("GPU"), "{all}");
        // The same on a 24 GB GPU: QLoRA fits.
        let gpu = Brief { target: Target::Gpu { memory_bytes: 24_000_000_000 }, ..brief };
        let r = recommend(&inputs(&gpu, Some(data(50_000, 300.0, 700)), small, &cards));
        assert_eq!(r.plan.request.config.method.kind(), MethodKind::Qlora);
        assert!(r.memory_bytes < 18_000_000_000, "{}", r.memory_bytes);
    }

    #[test]
    fn edits_that_will_go_wrong_are_warned_with_their_fix() {
        let card = crate::catalog::default_card().unwrap();
        let d = data(300, 150.0, 512);
        let c = TrainConfig {
            epochs: 20,
            max_len: 256,
            batch_size: 64,
            adamw: AdamWConfig { lr: 5e-2, ..AdamWConfig::default() },
            ..TrainConfig::default()
        };
        let w = review(&c, Some(&card), Some(&d), 4_000_000_000);
        let kinds: Vec<_> = w.iter().map(|w| w.kind.as_str()).collect();
        assert_eq!(kinds, ["memory", "overfitting", "truncation", "learning_rate"]);
        assert_eq!(w[0].fix, Some(Change::BatchSize(32)));
        assert_eq!(w[1].fix, Some(Change::Epochs(10)));
        assert_eq!(w[2].fix, Some(Change::MaxLen(512)));
        assert_eq!(w[3].fix, Some(Change::LearningRate(5e-4)));
        let mut fixed = c.clone();
        for f in w.iter().filter_map(|w| w.fix) {
            f.apply(&mut fixed);
        }
        assert_eq!(
            (fixed.batch_size, fixed.epochs, fixed.max_len, fixed.adamw.lr),
            (32, 10, 512, 5e-4)
        );
        // The recommended settings themselves raise nothing.
        let r = recommend(&inputs(
            &Brief::default(),
            Some(d.clone()),
            laptop(),
            std::slice::from_ref(&card),
        ));
        assert_eq!(review(&r.plan.request.config, Some(&card), Some(&d), 16_000_000_000), []);
    }

    #[test]
    fn the_user_s_words_fill_the_brief() {
        let cards = catalog();
        let b = understand(
            "I want a support bot, I have 1,200 examples",
            &Brief::default(),
            &cards,
            "smollm2-135m-instruct",
        );
        assert_eq!(b.goal, "I want a support bot, I have 1,200 examples");
        let b = understand("Speed please, under 30 minutes", &b, &cards, "x");
        assert_eq!((b.priority, b.max_hours), (Priority::Speed, Some(0.5)));
        let b = understand("What if I had a 24 GB GPU?", &b, &cards, "x");
        assert_eq!(b.target, Target::Gpu { memory_bytes: 24_000_000_000 });
        let b = understand("electricity is 0.30 per kWh", &b, &cards, "x");
        assert_eq!(b.price_per_kwh, Some(0.3));
        let b = understand("let's try Qwen2.5-0.5B-Instruct with QLoRA", &b, &cards, "x");
        assert_eq!(
            (b.model.as_deref(), b.method),
            (Some("qwen2.5-0.5b-instruct"), Some(MethodKind::Qlora))
        );
        assert_eq!(b.goal, "I want a support bot, I have 1,200 examples", "the goal stays");
        let b = understand("Use the installed model", &b, &cards, "smollm2-135m-instruct");
        assert_eq!(b.model.as_deref(), Some("smollm2-135m-instruct"));
    }

    /// The assistant never invents a number: across configurations and questions, every
    /// figure in a reply is a fact, and every fact agrees with its source.
    #[test]
    fn every_number_in_a_reply_has_a_source() {
        let cards = catalog();
        let names: Vec<&str> = cards.iter().map(|c| c.name.as_str()).collect();
        let machines = [
            laptop(),
            Machine {
                memory_bytes: 4_000_000_000,
                cores: 2,
                gpu: None,
                measured_param_tokens: Some(3e10),
            },
            Machine {
                memory_bytes: 64_000_000_000,
                cores: 16,
                gpu: Some(("CUDA GPU 0".into(), 24_000_000_000)),
                measured_param_tokens: None,
            },
        ];
        let briefs = [
            Brief::default(),
            Brief {
                goal: "customer support replies".into(),
                priority: Priority::Speed,
                ..Brief::default()
            },
            Brief {
                goal: "extract fields as JSON".into(),
                priority: Priority::Quality,
                max_hours: Some(3.0),
                ..Brief::default()
            },
            Brief {
                goal: "support".into(),
                model: Some("qwen2.5-7b-instruct".into()),
                ..Brief::default()
            },
        ];
        let datasets = [
            None,
            Some(data(80, 60.0, 120)),
            Some(data(1200, 180.0, 400)),
            Some(data(250_000, 900.0, 1900)),
        ];
        let questions = [
            "Recommend a setup",
            "why not full fine-tuning?",
            "what if I had a GPU?",
            "why this model?",
            "how long will it take?",
        ];
        let mut checked = 0;
        for m in &machines {
            for b in &briefs {
                for d in &datasets {
                    let inp = inputs(b, d.clone(), m.clone(), &cards);
                    let r = recommend(&inp);
                    for q in questions {
                        let text = reply(q, &r);
                        let stray = ungrounded(&text, &r.facts, &names);
                        assert!(stray.is_empty(), "{stray:?} in {text:?}");
                        checked += 1;
                    }
                    for reason in &r.plan.reasons {
                        let stray = ungrounded(
                            &format!("{} {}", reason.value, reason.why),
                            &r.facts,
                            &names,
                        );
                        assert!(stray.is_empty(), "{stray:?} in {reason:?}");
                    }
                    for f in &r.facts {
                        let want = match (f.source.as_str(), f.label.as_str()) {
                            ("report", "training rows") => d.as_ref().map(|d| d.train_rows as f64),
                            ("report", "held-out rows") => d.as_ref().map(|d| d.test_rows as f64),
                            ("report", "mean tokens per row") => d.as_ref().map(|d| d.mean_tokens),
                            ("hardware", "memory of the target") => {
                                Some(m.gpu.as_ref().map_or(m.memory_bytes, |g| g.1) as f64)
                            }
                            ("catalog", "parameters") => cards
                                .iter()
                                .find(|c| c.id == r.model)
                                .map(|c| c.architecture.parameters as f64),
                            ("catalog", "context") => cards
                                .iter()
                                .find(|c| c.id == r.model)
                                .map(|c| c.architecture.context as f64),
                            ("catalog", "LoRA rank") => {
                                cards.iter().find(|c| c.id == r.model).map(|c| {
                                    c.tier(d.as_ref().map_or(0, |d| d.train_rows)).lora_r as f64
                                })
                            }
                            _ => None,
                        };
                        if let Some(w) = want {
                            assert_eq!(f.value, w, "{f:?}");
                        }
                        assert!(
                            [
                                "report", "hardware", "catalog", "tables", "probe", "brief",
                                "settings"
                            ]
                            .contains(&f.source.as_str()),
                            "{f:?}"
                        );
                    }
                }
            }
        }
        assert_eq!(checked, 3 * 4 * 4 * 5);
        // And the check itself catches an invented figure.
        let r = recommend(&inputs(&briefs[1], datasets[2].clone(), laptop(), &cards));
        assert_eq!(
            ungrounded("It will take 17 minutes on SmolLM2-135M-Instruct", &r.facts, &names),
            ["17"]
        );
    }

    #[test]
    fn numbers_are_read_as_people_write_them() {
        assert_eq!(numbers("1,200 rows at 2e-4, 0.5 GB, 3 epochs"), [1200.0, 2e-4, 0.5, 3.0]);
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(params(134_515_008), "135M");
        assert_eq!(params(7_615_616_512), "7.6B");
        assert_eq!(hours(0.25), "15 minutes");
        assert_eq!(hours(2.5), "2.5 hours");
    }
}
