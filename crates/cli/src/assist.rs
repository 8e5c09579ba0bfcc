//! `vibeflow recommend` and `vibeflow ask`: the brainstorm assistant.

use api::advisor::{AskRequest, Brief, Priority, RecommendRequest, Recommendation, Target};
use app::App;
use clap::Args;

use crate::print;

/// What the user tells the assistant on the command line (each flag answers one of its
/// questions; unset ones keep what the project's earlier conversation said).
#[derive(Args)]
pub struct BriefArgs {
    /// What the model should do, in your words ("reply to customers about billing")
    #[arg(long)]
    goal: Option<String>,
    /// What matters most
    #[arg(long, value_enum)]
    priority: Option<Priority>,
    /// The most hours training may take
    #[arg(long)]
    hours: Option<f64>,
    /// What an hour of this machine costs you (for the cost)
    #[arg(long)]
    price_per_hour: Option<f64>,
    /// What a kWh costs you (for the cost)
    #[arg(long)]
    price_per_kwh: Option<f64>,
    /// Plan for a GPU with this many GB of memory instead of this machine
    #[arg(long, value_name = "GB")]
    gpu: Option<f64>,
    /// A model to use (catalog id, see `models catalog`)
    #[arg(long)]
    model: Option<String>,
    /// A method to use
    #[arg(long, value_enum)]
    method: Option<api::train::MethodKind>,
    /// Forget what earlier conversations said about this project first
    #[arg(long)]
    reset: bool,
}

/// `vibeflow recommend`.
#[derive(Args)]
pub struct RecommendArgs {
    /// Project slug
    #[arg(short, long)]
    project: String,
    #[command(flatten)]
    brief: BriefArgs,
    /// Also measure the estimate on this machine (a short probe of the run's batches, cached)
    #[arg(long)]
    estimate: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `vibeflow ask`.
#[derive(Args)]
pub struct AskArgs {
    /// Project slug
    #[arg(short, long)]
    project: String,
    /// Your message ("I want a support bot", "why not full fine-tuning?", "what if I had a GPU?")
    text: String,
    /// Have the reply reworded by `local` (the project's model), an installed model id, or an
    /// endpoint (`NAME` or `NAME:MODEL`, see `keys`); a wording with a number that has no source
    /// is not shown (the rules' words are, with why)
    #[arg(long, value_name = "MODEL|ENDPOINT")]
    phrase_with: Option<String>,
    #[command(flatten)]
    brief: BriefArgs,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

fn brief(app: &App, project: &str, a: BriefArgs) -> anyhow::Result<Brief> {
    let mut b = if a.reset { Brief::default() } else { app.brief(project)? };
    if let Some(g) = a.goal {
        b.goal = g;
    }
    b.priority = a.priority.unwrap_or(b.priority);
    b.max_hours = a.hours.or(b.max_hours);
    b.price_per_hour = a.price_per_hour.or(b.price_per_hour);
    b.price_per_kwh = a.price_per_kwh.or(b.price_per_kwh);
    if let Some(gb) = a.gpu {
        b.target = Target::Gpu { memory_bytes: (gb * 1e9) as u64 };
    }
    b.model = a.model.or(b.model);
    b.method = a.method.or(b.method);
    Ok(b)
}

/// `vibeflow recommend -p P`: the recommended run with its reasons, trade-offs, warnings,
/// open questions and (with `--estimate`) the measured estimate.
pub fn recommend(app: &App, a: RecommendArgs) -> anyhow::Result<()> {
    let brief = brief(app, &a.project, a.brief)?;
    app.brief_save(&a.project, &brief)?;
    let rec =
        app.recommend(&RecommendRequest { project: a.project, brief, measure: a.estimate })?;
    print(a.json, &rec, || describe(&rec))
}

/// `vibeflow ask -p P TEXT`: one message to the assistant (`App::ask` keeps the brief it leads
/// to for the next message).
pub fn ask(app: &App, a: AskArgs) -> anyhow::Result<()> {
    let brief = brief(app, &a.project, a.brief)?;
    let reply = app.ask(&AskRequest {
        project: a.project.clone(),
        brief,
        text: a.text,
        phrase_with: a.phrase_with,
    })?;
    print(a.json, &reply, || reply.text.clone())
}

fn describe(r: &Recommendation) -> String {
    let c = &r.plan.request.config;
    let mut s = format!(
        "For {}: {} with {}, {} steps over {} training rows{}\n",
        r.task.label(),
        r.model_name,
        c.method.kind().label(),
        r.plan.total_steps,
        r.plan.train_rows,
        if r.feasible { "" } else { " — beyond this machine, see below" }
    );
    s += "Why these settings?\n";
    for x in &r.plan.reasons {
        s += &format!("  {:24} {:>14}  {}\n", x.setting, x.value, x.why);
    }
    if !r.tradeoffs.is_empty() {
        s += "Traded away:\n";
        for t in &r.tradeoffs {
            s += &format!("  - {t}\n");
        }
    }
    for l in &r.limits {
        s += &format!("Beyond this machine: {l}\n");
    }
    for w in &r.warnings {
        let fix = w.fix.map_or(String::new(), |f| format!(" → {}", f.label()));
        s += &format!("Warning: {}{fix}\n", w.message);
    }
    s += "Pre-flight:\n";
    for c in &r.plan.checks {
        s += &format!("  {} {:8} {}\n", if c.ok { "✓" } else { "✗" }, c.id, c.message);
    }
    if let Some(e) = &r.estimate {
        s += &crate::train::estimate_line(e);
        s.push('\n');
    }
    for q in &r.questions {
        s += &format!("? {}\n", q.text);
    }
    s.trim_end().to_string()
}
