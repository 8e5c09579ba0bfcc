//! `vibeflow cluster …`: clusters a project's runs can be sent to (`train -p P --on
//! slurm:NAME`), and the command their jobs run.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use api::cluster::Cluster;
use app::App;
use clap::{Args, Subcommand};

use crate::{STOP, TRAINING, print};

#[derive(Subcommand)]
pub enum ClusterCmd {
    /// Register a cluster (or change one): where its jobs go and what they ask for
    Add(AddArgs),
    /// The registered clusters
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Forget a cluster (its jobs' folders stay on it)
    Rm {
        /// The cluster's name
        name: String,
    },
    /// Run a staged job (what the cluster's batch script runs)
    #[command(hide = true)]
    RunJob {
        /// The job's folder (job.json)
        dir: PathBuf,
    },
}

#[derive(Args)]
pub struct AddArgs {
    /// Its name, as `train --on slurm:NAME` names it
    name: String,
    /// The scheduler is Slurm (sbatch, squeue, scancel)
    #[arg(long, required = true)]
    slurm: bool,
    /// user@login-host to reach it over SSH (your agent or keys log in); without it the
    /// scheduler's commands run on this machine
    #[arg(long)]
    ssh: Option<String>,
    /// Work folder on the cluster, seen from its nodes (absolute)
    #[arg(long)]
    workdir: String,
    /// Slurm partition (default: the cluster's)
    #[arg(long)]
    partition: Option<String>,
    /// GPUs per job (0: CPU)
    #[arg(long, default_value_t = 0)]
    gpus: u32,
    /// CPU cores per job
    #[arg(long)]
    cpus: Option<u32>,
    /// Memory per job, GiB
    #[arg(long)]
    mem_gb: Option<u32>,
    /// Time limit per job, minutes (default: three times the run's estimate, at least 10)
    #[arg(long)]
    time_minutes: Option<u32>,
    /// A vibeflow installed on the cluster (default: this one is copied there)
    #[arg(long)]
    vibeflow: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn run(app: &App, cmd: ClusterCmd) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Add(a) => {
            let c = Cluster {
                name: a.name,
                scheduler: if a.slurm { "slurm".into() } else { String::new() },
                ssh: a.ssh,
                workdir: a.workdir,
                partition: a.partition,
                gpus: a.gpus,
                cpus: a.cpus,
                mem_gb: a.mem_gb,
                time_minutes: a.time_minutes,
                vibeflow: a.vibeflow,
            };
            app.cluster_add(&c)?;
            print(a.json, &c, || {
                format!(
                    "Cluster {} added: jobs go to {} via {}; train on it with `vibeflow train -p PROJECT --on slurm:{}`",
                    c.name,
                    c.workdir,
                    c.ssh.as_deref().unwrap_or("this machine's sbatch"),
                    c.name
                )
            })
        }
        ClusterCmd::List { json } => {
            let all = app.clusters()?;
            print(json, &all, || {
                if all.is_empty() {
                    return "No clusters: add one with `vibeflow cluster add NAME --slurm --workdir PATH`".into();
                }
                let mut s = format!(
                    "{:<16} {:<24} {:<28} {:>4}  LIMITS",
                    "NAME", "HOST", "WORKDIR", "GPUS"
                );
                for c in &all {
                    let limits: Vec<String> = [
                        c.partition.as_ref().map(|p| format!("partition {p}")),
                        c.cpus.map(|n| format!("{n} cpus")),
                        c.mem_gb.map(|g| format!("{g} GiB")),
                        c.time_minutes.map(|m| format!("{m} min")),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    s += &format!(
                        "\n{:<16} {:<24} {:<28} {:>4}  {}",
                        c.name,
                        c.ssh.as_deref().unwrap_or("local"),
                        c.workdir,
                        c.gpus,
                        if limits.is_empty() { "-".into() } else { limits.join(", ") }
                    );
                }
                s
            })
        }
        ClusterCmd::Rm { name } => {
            app.cluster_remove(&name)?;
            err!("Cluster {name} removed");
            Ok(())
        }
        // Answered before a home is opened (`main::run`): a node has none.
        ClusterCmd::RunJob { dir } => run_job(None, &dir),
    }
}

/// A staged job on a cluster node: a signal (the scheduler's time limit, `scancel`) stops it
/// after its step with a checkpoint, as a local run.
pub fn run_job(device: Option<&str>, dir: &std::path::Path) -> anyhow::Result<()> {
    TRAINING.store(true, Ordering::SeqCst);
    let device = app::select_device(device.unwrap_or("auto"))?;
    let finished = app::run_cluster_job(dir, &device, &mut |p| {
        crate::train::print_step(p);
        !STOP.load(Ordering::SeqCst)
    })?;
    if !finished {
        err!("stopped with a checkpoint: the job can be submitted again to resume");
    }
    Ok(())
}
