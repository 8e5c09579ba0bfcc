//! `vibeflow bench estimate`: how well the calibrated estimate predicts whole runs on this
//! machine. Each case is estimated and then trained for real, each in a fresh `vibeflow`
//! process over a scratch home (the probe's cache empty, so every estimate measures), and
//! the run's wall time and peak resident memory are compared with the estimate.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use api::train::{Estimate, MethodKind};
use serde::Serialize;

use crate::{App, DEFAULT_MODEL, Error, Result};

/// One configuration to estimate and run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EstimateCase {
    /// Sample dataset id.
    pub sample: String,
    /// Method.
    pub method: MethodKind,
    /// Examples per micro-batch.
    pub batch: usize,
    /// Longest example.
    pub max_len: usize,
    /// Optimizer steps.
    pub steps: usize,
}

impl EstimateCase {
    /// The cases `bench estimate` runs by default: both adapter methods, three batch sizes,
    /// short and long rows.
    pub fn defaults() -> Vec<EstimateCase> {
        let case = |sample: &str, method, batch, max_len, steps| EstimateCase {
            sample: sample.into(),
            method,
            batch,
            max_len,
            steps,
        };
        vec![
            case("customer-support", MethodKind::Lora, 4, 192, 24),
            case("customer-support", MethodKind::Lora, 1, 128, 40),
            case("tech-qa", MethodKind::Lora, 8, 256, 12),
            case("customer-support", MethodKind::Qlora, 4, 192, 24),
            case("tech-qa", MethodKind::Qlora, 2, 512, 20),
            case("review-sentiment", MethodKind::Full, 4, 128, 16),
        ]
    }

    fn args(&self) -> Vec<String> {
        let method = match self.method {
            MethodKind::Lora => "lora",
            MethodKind::Qlora => "qlora",
            MethodKind::Full => "full",
            MethodKind::Dpo => "dpo",
        };
        [
            "--method",
            method,
            "--batch",
            &self.batch.to_string(),
            "--max-len",
            &self.max_len.to_string(),
            "--steps",
            &self.steps.to_string(),
            "--eval-every",
            &(self.steps / 3).max(1).to_string(),
            "--checkpoint-every",
            &(self.steps / 2).max(1).to_string(),
            "--eval-rows",
            "16",
        ]
        .map(String::from)
        .to_vec()
    }
}

/// One case's estimate against its run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EstimateRow {
    /// The configuration.
    pub case: EstimateCase,
    /// The estimate.
    pub estimate: Estimate,
    /// Wall time of the whole `vibeflow train` process, seconds.
    pub actual_seconds: f64,
    /// Its peak resident memory, bytes.
    pub actual_peak_bytes: u64,
    /// (estimate − actual) ÷ actual, time.
    pub time_error: f64,
    /// (estimate − actual) ÷ actual, peak memory.
    pub memory_error: f64,
}

impl App {
    /// Estimates and runs each case with the `vibeflow` binary `exe` (this process's own, from
    /// the CLI) in a scratch home with the default model and the cases' sample datasets.
    pub fn bench_estimate(&self, exe: &Path, cases: &[EstimateCase]) -> Result<Vec<EstimateRow>> {
        let model = self.resolve_model(DEFAULT_MODEL)?;
        let home = self.scratch_path("bench-estimate")?;
        let scratch = App::open(&home)?;
        scratch.model_import(&model, None)?;
        let mut rows = Vec::new();
        for (i, case) in cases.iter().enumerate() {
            let project = format!("case-{}", i + 1);
            scratch.project_new(&project)?;
            scratch.data_import(&crate::ImportRequest {
                project: project.clone(),
                source: crate::ImportSource::Sample(case.sample.clone()),
                name: None,
                mapping: None,
                language: None,
            })?;
            let mut args = vec!["train".to_string(), "-p".into(), project.clone()];
            args.extend(case.args());
            let mut est_args = args.clone();
            est_args.extend(["--estimate", "--dry-run", "--json"].map(String::from));
            let (out, _, _) = run(exe, &home, &est_args)?;
            let estimate: Estimate = serde_json::from_str(out.trim()).map_err(|e| {
                Error::Data(format!("`vibeflow train --estimate` printed {out:?}: {e}"))
            })?;
            args.push("--json".into());
            let (_, actual_seconds, actual_peak_bytes) = run(exe, &home, &args)?;
            rows.push(EstimateRow {
                time_error: estimate.seconds / actual_seconds - 1.0,
                memory_error: estimate.peak_memory_bytes as f64 / actual_peak_bytes as f64 - 1.0,
                case: case.clone(),
                estimate,
                actual_seconds,
                actual_peak_bytes,
            });
        }
        let _ = std::fs::remove_dir_all(&home);
        Ok(rows)
    }
}

/// Runs `exe args` over `home`: its standard output, wall seconds and peak resident memory
/// (polled every 10 ms, as `bench train` polls its own).
fn run(exe: &Path, home: &Path, args: &[String]) -> Result<(String, f64, u64)> {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
    let t = Instant::now();
    let mut child = Command::new(exe)
        .args(args)
        .env(crate::HOME_ENV, home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(exe, e))?;
    let pid = Pid::from_u32(child.id());
    let mut sys = System::new();
    let mut peak = 0u64;
    // Read the output on threads, so a full pipe never blocks the child.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = std::io::Read::read_to_string(o, &mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut s);
        }
        s
    });
    let status = loop {
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_memory(),
        );
        if let Some(p) = sys.process(pid) {
            peak = peak.max(p.memory());
        }
        if let Some(s) = child.try_wait().map_err(|e| Error::io(exe, e))? {
            break s;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let seconds = t.elapsed().as_secs_f64();
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        return Err(Error::Data(format!(
            "`vibeflow {}` failed: {}",
            args.join(" "),
            err.lines().last().unwrap_or_default()
        )));
    }
    Ok((out, seconds, peak))
}
