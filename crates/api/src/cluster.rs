//! Clusters a project's runs can be sent to (`vibeflow cluster`, `train --on slurm:NAME`).

use serde::{Deserialize, Serialize};

/// A registered cluster: `clusters/<name>.toml` in the home. Nothing secret: SSH logs in with
/// the user's agent or keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Its name (`train --on slurm:NAME`).
    pub name: String,
    /// The scheduler: `slurm`.
    pub scheduler: String,
    /// `user@login-host` to reach it over SSH; none: the scheduler's commands run on this
    /// machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<String>,
    /// Work folder on the cluster, seen from its nodes (jobs, staged models and binary).
    pub workdir: String,
    /// Slurm partition (default: the cluster's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// GPUs per job (0: CPU).
    #[serde(default)]
    pub gpus: u32,
    /// CPU cores per job (default: the scheduler's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory per job, GiB (default: the scheduler's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_gb: Option<u32>,
    /// Longest a job may run, minutes (default: three times the run's estimate, at least 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_minutes: Option<u32>,
    /// An installed `vibeflow` on the cluster; none: this machine's is copied there (same OS
    /// and architecture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vibeflow: Option<String>,
}

/// What following a cluster job reports besides the training's own progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    /// The scheduler's job id.
    pub job_id: String,
    /// Its state as the scheduler names it: `PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED`,
    /// `TIMEOUT`, `PREEMPTED`, `FAILED`…
    pub state: String,
}
