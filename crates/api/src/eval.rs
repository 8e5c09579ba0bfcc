//! Evaluation (metrics, the judge, the overall score and its gate, reports), the arena
//! (models answering one prompt side by side, votes, ratings) and preference pairs.

use serde::{Deserialize, Serialize};

use crate::chat::{ChatModel, Sampling};

/// Corpus BLEU as sacrebleu computes it (its defaults: 13a tokenization, one reference, `exp`
/// smoothing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bleu {
    /// 0–100.
    pub score: f64,
    /// Matching n-grams, n = 1…4, summed over the corpus.
    pub counts: [u64; 4],
    /// n-grams of the predictions, n = 1…4.
    pub totals: [u64; 4],
    /// `counts / totals` × 100, n = 1…4.
    pub precisions: [f64; 4],
    /// Brevity penalty.
    pub bp: f64,
    /// Tokens of the predictions.
    pub sys_len: u64,
    /// Tokens of the references.
    pub ref_len: u64,
}

/// A ROUGE variant as rouge-score computes it, averaged over examples (0–1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rouge {
    /// Mean precision.
    pub precision: f64,
    /// Mean recall.
    pub recall: f64,
    /// Mean F-measure.
    pub f1: f64,
}

/// Where the predictions' length sits against the references' (the PRD's bands: 0.9–1.1
/// ideal, alert below 0.7 or above 1.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthBand {
    /// Below 0.7: answers cut short or missing.
    TooShort,
    /// 0.7–0.9.
    Short,
    /// 0.9–1.1.
    #[default]
    Ideal,
    /// 1.1–1.3.
    Long,
    /// Above 1.3: too verbose.
    TooLong,
}

/// Scores when the outputs are labels (a class per example).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelScores {
    /// Share of examples whose label equals the reference's (0–1).
    pub accuracy: f64,
    /// F1 per class, averaged with equal weight (0–1), over the references' classes.
    pub macro_f1: f64,
    /// The references' classes, sorted.
    pub classes: Vec<String>,
    /// Whether the user declared the outputs labels (else they were detected).
    pub declared: bool,
}

/// Every automatic metric over a set of outputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Examples scored.
    pub count: usize,
    /// Share of outputs equal to their reference after SQuAD normalization (0–1).
    pub exact_match: f64,
    /// Token precision, SQuAD-style, averaged (0–1).
    pub precision: f64,
    /// Token recall, SQuAD-style, averaged (0–1).
    pub recall: f64,
    /// Token F1, SQuAD-style, averaged (0–1).
    pub f1: f64,
    /// Corpus BLEU.
    pub bleu: Bleu,
    /// ROUGE-1.
    pub rouge1: Rouge,
    /// ROUGE-2.
    pub rouge2: Rouge,
    /// ROUGE-L (longest common subsequence, per example).
    pub rouge_l: Rouge,
    /// Prediction tokens over reference tokens (BLEU's 13a tokens: `sys_len / ref_len`).
    pub length_ratio: f64,
    /// The ratio's band.
    pub length_band: LengthBand,
    /// Perplexity of the references under the model (when it was measured).
    pub perplexity: Option<f64>,
    /// Accuracy and macro-F1 when the outputs are labels.
    pub labels: Option<LabelScores>,
}

/// One example's automatic scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ExampleMetrics {
    /// Equal to the reference after normalization.
    pub exact: bool,
    /// Token F1 (0–1).
    pub f1: f64,
    /// ROUGE-L F-measure (0–1).
    pub rouge_l: f64,
}

/// The judge's rubric (the PRD's), each 1–5, and its words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Does it answer the question?
    pub relevance: u8,
    /// Is it logically structured?
    pub coherence: u8,
    /// Are its claims accurate?
    pub factuality: u8,
    /// Does it address every aspect?
    pub completeness: u8,
    /// Does it match the expected tone?
    pub tone_match: u8,
    /// One sentence.
    pub feedback: String,
}

impl Judgement {
    /// Mean of the five criteria (1–5).
    pub fn average(&self) -> f64 {
        f64::from(
            u16::from(self.relevance)
                + u16::from(self.coherence)
                + u16::from(self.factuality)
                + u16::from(self.completeness)
                + u16::from(self.tone_match),
        ) / 5.0
    }
}

/// The judge's means over the examples it scored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeSummary {
    /// Examples judged.
    pub judged: usize,
    /// Examples whose judgement did not parse after the retries (reported, not scored).
    pub failed: usize,
    /// Means, 1–5.
    pub relevance: f64,
    /// Mean coherence.
    pub coherence: f64,
    /// Mean factuality.
    pub factuality: f64,
    /// Mean completeness.
    pub completeness: f64,
    /// Mean tone match.
    pub tone_match: f64,
    /// Mean of the five.
    pub average: f64,
}

/// The PRD's quality gate on the overall score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Above 70: ready to deploy.
    Ready,
    /// 50–70: review examples before deploying.
    Review,
    /// Below 50: retrain.
    Retrain,
}

impl Gate {
    /// The gate of a 0–100 score.
    pub fn of(score: f64) -> Gate {
        if score > 70.0 {
            Gate::Ready
        } else if score >= 50.0 {
            Gate::Review
        } else {
            Gate::Retrain
        }
    }

    /// As the window says it.
    pub fn label(self) -> &'static str {
        match self {
            Gate::Ready => "Ready to deploy",
            Gate::Review => "Review examples before deploying",
            Gate::Retrain => "Retraining recommended",
        }
    }
}

/// The overall score (the PRD's formula: accuracy × 0.4 + judge × 0.4 + length × 0.2, each
/// 0–100; without a judge its weight goes to the other two in proportion).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Overall {
    /// 0–100.
    pub score: f64,
    /// Label accuracy when the outputs are labels, else token F1 (0–100).
    pub accuracy: f64,
    /// The judge's average mapped from 1–5 to 0–100, when there was a judge.
    pub judge: Option<f64>,
    /// 100 inside 0.9–1.1, falling linearly to 0 at 0.5 and 1.5 (0–100).
    pub length: f64,
    /// The gate.
    pub gate: Gate,
}

/// Which model an evaluation or an arena panel runs: the project's base, a run, or any
/// installed model (by id).
pub type ModelChoice = ChatModel;

/// One side of an evaluation: a model and its scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSide {
    /// Which model.
    pub model: ChatModel,
    /// Automatic metrics.
    pub metrics: Metrics,
    /// The judge's means, when there was a judge.
    pub judge: Option<JudgeSummary>,
    /// The overall score and gate.
    pub overall: Overall,
    /// Generated tokens per second over the whole set (batched).
    pub tokens_per_second: f64,
}

/// What a low score might come from, and where the fix is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// In plain words, with the numbers behind it.
    pub text: String,
    /// Where to go.
    pub fix: ReasonFix,
}

/// The pane a reason points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonFix {
    /// The dataset's quality report (Data pane).
    DataReport,
    /// More or better examples (Data pane).
    MoreData,
    /// The training settings (Train pane).
    Settings,
    /// A larger base model (Brainstorm pane / Settings → Models).
    LargerModel,
}

/// Which of two outputs the judge preferred, asked in both orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// The candidate (fine-tuned) both times.
    Candidate,
    /// The baseline both times.
    Baseline,
    /// A tie, or the two orders disagreed (position bias).
    Tie,
}

/// One held-out example, side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalExample {
    /// The row's id in the split (its 1-based line in the test split).
    pub id: String,
    /// The conversation's last user message.
    pub prompt: String,
    /// The dataset's answer.
    pub reference: String,
    /// The candidate's output.
    pub candidate: String,
    /// The baseline's output (when there is one).
    pub baseline: Option<String>,
    /// The candidate's scores.
    pub candidate_scores: ExampleMetrics,
    /// The baseline's scores.
    pub baseline_scores: Option<ExampleMetrics>,
    /// The judge on the candidate.
    pub candidate_judgement: Option<Judgement>,
    /// The judge on the baseline.
    pub baseline_judgement: Option<Judgement>,
    /// The pairwise verdict (both orders).
    pub preference: Option<Preference>,
    /// Why the judge could not score this example (after retries), if it could not.
    pub judge_error: Option<String>,
    /// The candidate scored below the baseline here.
    pub regression: bool,
}

/// A finished evaluation: what `evals/<id>.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// `eval-N`.
    pub id: String,
    /// Project slug.
    pub project: String,
    /// Dataset name evaluated (its test split).
    pub dataset: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// The model judged (usually a run).
    pub candidate: EvalSide,
    /// What it is compared with (usually the base).
    pub baseline: Option<EvalSide>,
    /// The judge used (`local`, a model id, or an endpoint), if any.
    pub judge: Option<String>,
    /// Pairwise verdicts: candidate wins, baseline wins, ties (incl. order disagreements).
    pub pairwise: Option<[usize; 3]>,
    /// Why the judge is missing or partial (down, timed out), in plain words.
    pub judge_note: Option<String>,
    /// When the score is low: possible reasons, each pointing at its fix.
    pub reasons: Vec<Reason>,
    /// Every example.
    pub examples: Vec<EvalExample>,
    /// The commit that recorded it.
    pub commit: Option<String>,
}

/// Evaluate a run of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRequest {
    /// Project slug.
    pub project: String,
    /// The model to judge.
    pub candidate: ChatModel,
    /// What to compare it with (`None`: no comparison).
    pub baseline: Option<ChatModel>,
    /// The judge: `local` (the project's base model), an installed model id, or an endpoint
    /// name (optionally `NAME:MODEL`); `None`: metrics only.
    pub judge: Option<String>,
    /// At most this many held-out examples (in order).
    pub limit: Option<usize>,
    /// Longest output in tokens.
    pub max_tokens: usize,
    /// Declare the outputs labels (classification) instead of detecting it.
    pub labels: bool,
}

/// A saved evaluation as History lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    /// `eval-N`.
    pub id: String,
    /// The model judged.
    pub candidate: ChatModel,
    /// What it was compared with.
    pub baseline: Option<ChatModel>,
    /// Its overall score.
    pub score: f64,
    /// The baseline's overall score.
    pub baseline_score: Option<f64>,
    /// The gate.
    pub gate: Gate,
    /// Examples.
    pub examples: usize,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// The commit.
    pub commit: Option<String>,
}

/// Where an evaluation job is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum EvalProgress {
    /// Generating outputs for `model`: `done` of `total` examples.
    Generating {
        /// Which side.
        model: ChatModel,
        /// Examples done.
        done: usize,
        /// Examples in all.
        total: usize,
    },
    /// The judge: `done` of `total` calls.
    Judging {
        /// Calls done.
        done: usize,
        /// Calls in all.
        total: usize,
    },
    /// Measuring perplexity and writing the report.
    Scoring,
}

/// Reference to an evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalRef {
    /// Project slug.
    pub project: String,
    /// `eval-N`.
    pub id: String,
}

/// Ask 2–4 models one prompt at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArenaRequest {
    /// Project slug (its base and runs); `None`: installed models only.
    pub project: Option<String>,
    /// Continue this session (`None`: a new one with `models`).
    pub session: Option<String>,
    /// The models, 2–4, in panel order (ignored when continuing a session).
    pub models: Vec<ChatModel>,
    /// Hide the names until the vote.
    pub blind: bool,
    /// The user's message.
    pub prompt: String,
    /// Sampling for every panel.
    pub sampling: Sampling,
}

/// A panel's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ArenaEvent {
    /// The session the turn belongs to (first event).
    Session {
        /// Session id.
        id: String,
        /// Turn index.
        turn: usize,
    },
    /// A piece of panel `panel`'s answer.
    Delta {
        /// Panel index.
        panel: usize,
        /// Text.
        text: String,
    },
    /// Panel `panel` finished.
    Done {
        /// Panel index.
        panel: usize,
        /// Its answer and timings.
        answer: ArenaAnswer,
    },
    /// Panel `panel` failed (the others go on).
    Failed {
        /// Panel index.
        panel: usize,
        /// Why.
        message: String,
    },
}

/// One model's answer in a turn, with its timings (milliseconds since the turn started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArenaAnswer {
    /// The whole answer.
    pub text: String,
    /// When its first token arrived (time to first token).
    pub first_token_ms: u64,
    /// When it ended.
    pub end_ms: u64,
    /// When it started (after its model was loaded).
    pub start_ms: u64,
    /// Tokens generated.
    pub tokens: usize,
    /// Tokens per second after the first.
    pub tokens_per_second: f64,
    /// `stop`, `length`, `cancelled`, `failed`.
    pub finish: String,
}

/// A vote on a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "choice", rename_all = "snake_case")]
pub enum VoteChoice {
    /// This panel's answer is better than the others.
    Prefer {
        /// Panel index.
        panel: usize,
    },
    /// All equally good.
    Tie,
    /// All bad.
    BothBad,
}

/// Vote on a session's latest turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    /// Project slug (`None`: a session outside any project).
    pub project: Option<String>,
    /// Session id.
    pub session: String,
    /// Turn index.
    pub turn: usize,
    /// The choice.
    pub choice: VoteChoice,
    /// Why, optionally.
    pub why: Option<String>,
}

/// One turn of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArenaTurn {
    /// The user's message.
    pub prompt: String,
    /// One per panel (a failed panel has `finish: failed` and the error as text).
    pub answers: Vec<ArenaAnswer>,
    /// The vote, once cast.
    pub vote: Option<VoteChoice>,
    /// Its reason.
    pub why: Option<String>,
}

/// An arena session: its models and turns. Later turns continue from the preferred answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArenaSession {
    /// `arena-N`.
    pub id: String,
    /// Project slug (`None`: installed models outside any project).
    pub project: Option<String>,
    /// Panel order.
    pub models: Vec<ChatModel>,
    /// Names hidden until a vote.
    pub blind: bool,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// The turns.
    pub turns: Vec<ArenaTurn>,
}

/// One model's standing from the votes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    /// `base`, a run id, or an installed model id (prefixed by the project when overall).
    pub model: String,
    /// Bradley–Terry strength on an Elo scale (400 per factor of 10, anchored at 1000 mean).
    pub elo: f64,
    /// 95 % bootstrap interval, low end.
    pub low: f64,
    /// 95 % bootstrap interval, high end.
    pub high: f64,
    /// Pairs won.
    pub wins: usize,
    /// Pairs lost.
    pub losses: usize,
    /// Pairs tied.
    pub ties: usize,
    /// `wins + ties / 2` over pairs (0–1).
    pub win_rate: f64,
}

/// One pairwise outcome from a vote: `a` against `b`, `score` 1 (a won), 0.5 (tie), 0 (b won).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Battle {
    /// First model.
    pub a: String,
    /// Second model.
    pub b: String,
    /// 1, 0.5 or 0.
    pub score: f64,
}

/// Ratings of a project or of the home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratings {
    /// The project, or `None` for every project.
    pub project: Option<String>,
    /// Votes counted.
    pub votes: usize,
    /// Best first.
    pub ratings: Vec<Rating>,
}

/// What `prefs export` wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefsExport {
    /// The JSONL file (TRL's conversational preference format).
    pub path: String,
    /// Pairs written.
    pub pairs: usize,
    /// Votes that gave no pair (ties, both bad).
    pub skipped: usize,
    /// The commit that recorded it in the project.
    pub commit: Option<String>,
}
