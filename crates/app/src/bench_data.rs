//! `vibeflow bench data`: import + full quality report (tokenization included) of a generated
//! JSONL file, against pandas doing the comparable work (`scripts/bench/pandas_data.py`) on the
//! same file in the same run; at several sizes, to show that memory stays bounded.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::{App, Error, Result};

/// One side's measurement at one size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataMeasure {
    /// Rows in the file.
    pub rows: usize,
    /// Wall time.
    pub seconds: f64,
    /// Rows per second.
    pub rows_per_second: f64,
    /// Peak resident memory while it ran, bytes.
    pub peak_rss_bytes: u64,
}

/// One file size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataSize {
    /// Rows.
    pub rows: usize,
    /// File size, bytes.
    pub bytes: u64,
    /// Ours (import + report): the fastest round.
    pub ours: DataMeasure,
    /// pandas, when asked: its fastest round.
    pub peer: Option<DataMeasure>,
    /// Our rows/s in each round.
    pub ours_rounds: Vec<f64>,
    /// pandas' rows/s in each round.
    pub peer_rounds: Vec<f64>,
    /// Ours ÷ pandas, rows/s (higher is better).
    pub speed_ratio: Option<f64>,
}

/// The benchmark.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataBench {
    /// One entry per size (1×, 4×, …).
    pub sizes: Vec<DataSize>,
}

impl App {
    /// Generates `rows × scale` rows for each scale, imports and reports them with `model`'s
    /// tokenizer, and runs pandas on the same file when `vs_peer`: `rounds` times, ours and
    /// pandas alternating (this machine's speed drifts), the fastest round of each counting.
    pub fn bench_data(
        &self,
        model: &str,
        rows: usize,
        scales: &[usize],
        rounds: usize,
        vs_peer: bool,
    ) -> Result<DataBench> {
        let dir = self.temp_dir("bench-data")?;
        let tmp = dir.path();
        let mut out = Vec::new();
        for &scale in scales {
            let n = rows * scale;
            let file = tmp.join(format!("bench-{n}.jsonl"));
            generate(&file, n)?;
            let bytes = std::fs::metadata(&file).map_err(|e| Error::io(&file, e))?.len();
            let (mut ours, mut peer) = (Vec::new(), Vec::new());
            for _ in 0..rounds.max(1) {
                ours.push(self.bench_data_ours(model, &file, tmp)?);
                if vs_peer {
                    peer.push(pandas(&file)?);
                }
            }
            let speeds = |v: &[DataMeasure]| v.iter().map(|m| m.rows_per_second).collect();
            let (ours_rounds, peer_rounds) = (speeds(&ours), speeds(&peer));
            let fastest = |v: Vec<DataMeasure>| {
                v.into_iter().max_by(|a, b| a.rows_per_second.total_cmp(&b.rows_per_second))
            };
            let ours = fastest(ours).ok_or_else(|| Error::InvalidInput("no round ran".into()))?;
            let peer = fastest(peer);
            let speed_ratio = peer.as_ref().map(|p| ours.rows_per_second / p.rows_per_second);
            out.push(DataSize {
                rows: n,
                bytes,
                ours,
                peer,
                ours_rounds,
                peer_rounds,
                speed_ratio,
            });
            let _ = std::fs::remove_file(&file);
        }
        Ok(DataBench { sizes: out })
    }

    fn bench_data_ours(&self, model: &str, file: &Path, tmp: &Path) -> Result<DataMeasure> {
        let tokens = self.model_tokens(model)?;
        // Each round starts cold, as an import of a new file does (pandas keeps nothing).
        engine::tokenizer::forget_counts();
        let sampler = RssSampler::start();
        let t = Instant::now();
        let sniffed = data::read::sniff(file)?;
        let (columns, sample) = data::pipeline::sample(file, &sniffed)?;
        let detection = data::shape::detect(&columns, &sample).map_err(Error::Data)?;
        let out = tmp.join("out.jsonl");
        let how = crate::datasets::PipelineRun {
            detection: &detection,
            transforms: &[],
            expected_language: None,
            on_rows: None,
        };
        let outcome = crate::datasets::run_pipeline(file, &sniffed, &how, &tokens, &out)?;
        let seconds = t.elapsed().as_secs_f64();
        let peak = sampler.stop();
        let _ = std::fs::remove_file(&out);
        let rows = outcome.report.rows;
        Ok(DataMeasure {
            rows,
            seconds,
            rows_per_second: rows as f64 / seconds,
            peak_rss_bytes: peak,
        })
    }
}

/// Samples this process's resident memory every 50 ms (portable: `memory-stats`; reading it is
/// not free, so not more often).
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let rss = memory_stats::memory_stats().map_or(0, |m| m.physical_mem as u64);
                p.fetch_max(rss, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        RssSampler { stop, peak, thread: Some(thread) }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

fn pandas(file: &Path) -> Result<DataMeasure> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/pandas_data.py");
    let mut c = Command::new("python3");
    c.arg(&script).arg(file);
    crate::bench::run_peer(c, "pandas")
}

/// A deterministic instruction/response JSONL of `rows` rows, ~600 bytes each: English-like
/// text from a word list plus invented words (so the tokenizer's cache does not see only a few
/// hundred words), 2 % exact duplicates and 0.5 % empty responses.
fn generate(path: &Path, rows: usize) -> Result<()> {
    const WORDS: &[&str] = &[
        "the", "a", "to", "of", "and", "in", "is", "for", "on", "with", "your", "you", "can",
        "how", "what", "why", "when", "does", "do", "I", "my", "we", "our", "it", "this", "that",
        "account", "password", "invoice", "billing", "sync", "notes", "export", "settings",
        "server", "request", "error", "file", "folder", "update", "version", "install", "login",
        "email", "team", "share", "project", "data", "model", "train", "report", "column",
        "download", "upload", "plan", "refund", "device", "mobile", "offline", "backup", "restore",
        "delete", "create", "open", "close", "choose", "select", "click", "menu", "page",
        "security", "privacy", "reset", "change", "works", "again", "please", "thanks", "because",
        "before", "after", "every", "day", "week", "time", "first", "then", "also",
    ];
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ren", "sto", "vel", "qua", "dri", "po", "nex", "tal", "bri", "sor",
        "fen", "gu", "lim", "zar", "ok", "tem", "ul",
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        // xorshift64*: deterministic and dependency-free.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let sentence = |words: usize, next: &mut dyn FnMut() -> u64| {
        let mut s = String::new();
        for i in 0..words {
            if i > 0 {
                s.push(' ');
            }
            let r = next();
            if r % 10 < 7 {
                s.push_str(WORDS[(r >> 8) as usize % WORDS.len()]);
            } else {
                for k in 0..2 + (r >> 20) as usize % 3 {
                    s.push_str(SYLLABLES[(r >> (24 + 4 * k)) as usize % SYLLABLES.len()]);
                }
            }
        }
        s
    };
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(file);
    let mut previous: Vec<String> = Vec::new();
    for i in 0..rows {
        let r = next();
        let line = if i > 0 && r % 100 < 2 {
            previous[(r >> 8) as usize % previous.len()].clone()
        } else {
            let q = sentence(12 + (r >> 8) as usize % 20, &mut next) + "?";
            let a = if r % 1000 < 5 {
                String::new()
            } else {
                sentence(60 + (r >> 16) as usize % 40, &mut next) + "."
            };
            serde_json::json!({ "id": i, "instruction": q, "response": a }).to_string()
        };
        if previous.len() < 1000 {
            previous.push(line.clone());
        }
        w.write_all(line.as_bytes()).map_err(|e| Error::io(path, e))?;
        w.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}
