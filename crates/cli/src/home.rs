//! `vibeflow doctor`: the home's health.

use anyhow::bail;
use app::App;

use crate::print;

/// `vibeflow doctor`.
#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Repair what can be repaired without losing anything
    #[arg(long)]
    repair: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `vibeflow doctor`: checks the home, repairs with --repair; fails while problems remain.
pub fn doctor(app: &App, DoctorArgs { repair, json }: DoctorArgs) -> anyhow::Result<()> {
    let r = app.doctor(repair)?;
    print(json, &r, || {
        let n = |n: usize, what: &str| {
            if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
        };
        let mut s = format!(
            "Checked {}: {}, {}, {}\n",
            r.home,
            n(r.projects, "project"),
            n(r.versions, "version"),
            n(r.objects, "content object")
        );
        if r.findings.is_empty() {
            s += "No problems found";
        }
        for f in &r.findings {
            let mark = if f.repaired { "repaired" } else { "found" };
            let project = f.project.as_ref().map(|p| format!("[{p}] ")).unwrap_or_default();
            s += &format!("\n  {mark:8} {project}{}", f.message);
        }
        let open = r.findings.iter().filter(|f| !f.repaired).count();
        if open > 0 && !repair {
            s += "\n\nRun `vibeflow doctor --repair` to repair what can be repaired safely";
        }
        s
    })?;
    let open = r.findings.iter().filter(|f| !f.repaired).count();
    if open > 0 {
        bail!(
            "{open} problem{} remain{}",
            if open == 1 { "" } else { "s" },
            if open == 1 { "s" } else { "" }
        );
    }
    Ok(())
}
