//! `vibeflow project …`, `history`, `diff`, `rollback`: projects and their versions.

use std::io::Write;

use anyhow::bail;
use app::App;
use clap::Subcommand;

use crate::{confirm, print};

#[derive(Subcommand)]
pub enum ProjectCmd {
    /// Create a project (a git repository under the home's projects/)
    New {
        /// Project name; its folder name (slug) is derived from it
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List projects
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one project
    Show {
        /// Project slug
        slug: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a project and its history
    Rm {
        /// Project slug
        slug: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}

/// `vibeflow history`.
#[derive(clap::Args)]
pub struct HistoryArgs {
    /// Project slug
    #[arg(short, long)]
    project: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `vibeflow diff`.
#[derive(clap::Args)]
pub struct DiffArgs {
    /// Project slug
    #[arg(short, long)]
    project: String,
    /// The older version: a tag (v1) or a commit id
    from: String,
    /// The newer version (default: the current one)
    to: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `vibeflow rollback`.
#[derive(clap::Args)]
pub struct RollbackArgs {
    /// Project slug
    #[arg(short, long)]
    project: String,
    /// The version: a tag (v1, v2 …) or a commit id from `vibeflow history`
    to: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Runs a `project` subcommand.
pub fn run(app: &App, cmd: ProjectCmd) -> anyhow::Result<()> {
    match cmd {
        ProjectCmd::New { name, json } => {
            let p = app.project_new(&name)?;
            print(json, &p, || format!("Created project {} ({}) at {}", p.name, p.slug, p.path))
        }
        ProjectCmd::List { json } => {
            let list = app.project_list()?;
            print(json, &list, || {
                if list.is_empty() {
                    return "No projects yet: create one with `vibeflow project new NAME`".into();
                }
                let w = list.iter().map(|p| p.slug.len()).max().unwrap_or(4).max(4);
                let mut s = format!("{:w$}  {:20}  NAME", "SLUG", "BASE MODEL");
                for p in &list {
                    s += &format!("\n{:w$}  {:20}  {}", p.slug, p.base_model, p.name);
                }
                s
            })
        }
        ProjectCmd::Show { slug, json } => {
            let p = app.project_show(&slug)?;
            print(json, &p, || {
                format!(
                    "name:       {}\nslug:       {}\nbase model: {}\npath:       {}\ncommits:    {}\nhead:       {}",
                    p.name, p.slug, p.base_model, p.path, p.commits, p.head
                )
            })
        }
        ProjectCmd::Rm { slug, yes } => {
            let p = app.project_show(&slug)?;
            if !yes
                && !confirm(&format!(
                    "Delete project '{}' and its history ({} commits)?",
                    p.name, p.commits
                ))?
            {
                bail!("not deleted: answer 'y', or pass --yes to skip the question");
            }
            app.project_rm(&slug)?;
            out!("Deleted project {}", p.slug);
            Ok(())
        }
    }
}

/// `vibeflow history`: the versions, newest first.
pub fn history(app: &App, HistoryArgs { project, json }: HistoryArgs) -> anyhow::Result<()> {
    let h = app.history(&project)?;
    print(json, &h, || {
        h.iter()
            .map(|c| {
                let tags = if c.tags.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.tags.join(", "))
                };
                format!("{}{}  {}", &c.id[..c.id.len().min(10)], tags, c.summary)
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `vibeflow diff`.
pub fn diff(app: &App, DiffArgs { project, from, to, json }: DiffArgs) -> anyhow::Result<()> {
    let d = app.diff(&project, &from, to.as_deref())?;
    print(json, &d, || {
        if d.files.is_empty() {
            return "No changes to the configuration, datasets or runs.".into();
        }
        d.files
            .iter()
            .map(|f| format!("{} ({})\n{}", f.path, f.status, f.patch.trim_end()))
            .collect::<Vec<_>>()
            .join("\n\n")
    })
}

/// `vibeflow rollback`: a new commit restoring an earlier version.
pub fn rollback(app: &App, RollbackArgs { project, to, json }: RollbackArgs) -> anyhow::Result<()> {
    let r = app.rollback(&project, &to)?;
    print(json, &r, || {
        format!(
            "Rolled back to {to} in a new version {}: {}",
            &r.commit[..10],
            r.restored.join(", ")
        )
    })
}
