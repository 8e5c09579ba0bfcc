//! `vibeflow alias …`: model aliases, the server's named presets (YAML in the home's
//! `aliases/`).

use std::io::Write;
use std::path::PathBuf;

use api::serve::{Alias, ContextParams, RequestParams};
use app::App;
use clap::{Args, Subcommand};

use crate::print;

#[derive(Subcommand)]
pub enum AliasCmd {
    /// Every alias: its name, model and what it sets
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// One alias (its YAML file's content)
    Show {
        /// The alias name
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Create an alias (checked before it is saved: ranges, the model, the template)
    Create(Box<CreateArgs>),
    /// Copy an alias under a new name
    Clone {
        /// The alias copied
        from: String,
        /// The new name
        to: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete an alias
    Rm {
        /// The alias name
        name: String,
    },
}

/// `vibeflow alias create`.
#[derive(Args)]
pub struct CreateArgs {
    /// The name requests use, e.g. support-bot:v2
    name: String,
    /// An installed model id, or a finished run as PROJECT/RUN
    #[arg(long, short)]
    model: String,
    /// 0–2 (0: greedy)
    #[arg(long)]
    temperature: Option<f64>,
    /// Nucleus sampling, above 0 and at most 1
    #[arg(long)]
    top_p: Option<f64>,
    /// −2–2
    #[arg(long, allow_negative_numbers = true)]
    frequency_penalty: Option<f32>,
    /// −2–2
    #[arg(long, allow_negative_numbers = true)]
    presence_penalty: Option<f32>,
    /// Default longest reply, in tokens
    #[arg(long)]
    max_tokens: Option<usize>,
    /// A stop string (repeat for more, at most 4)
    #[arg(long)]
    stop: Vec<String>,
    /// Sampler seed
    #[arg(long)]
    seed: Option<u64>,
    /// A system message put first when a request has none
    #[arg(long)]
    system: Option<String>,
    /// Context length (at most the model's)
    #[arg(long)]
    n_ctx: Option<usize>,
    /// Sequences decoded together (1–64)
    #[arg(long)]
    n_parallel: Option<usize>,
    /// Default most tokens to predict (a request's max_tokens wins)
    #[arg(long)]
    n_predict: Option<usize>,
    /// Prompt tokens kept when the context overflows
    #[arg(long)]
    n_keep: Option<usize>,
    /// A chat template file (Jinja) replacing the model's own
    #[arg(long, value_name = "FILE")]
    template: Option<PathBuf>,
    /// Replace an alias of that name (an edit) instead of refusing
    #[arg(long)]
    replace: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Runs an `alias` subcommand.
pub fn run(app: &App, cmd: AliasCmd) -> anyhow::Result<()> {
    match cmd {
        AliasCmd::List { json } => {
            let list = app.alias_list()?;
            print(json, &list, || {
                if list.is_empty() {
                    return "No aliases: create one with `vibeflow alias create NAME --model M`"
                        .into();
                }
                let w = list.iter().map(|a| a.alias.len()).max().unwrap_or(5).max(5);
                let m = list.iter().map(|a| a.model.len()).max().unwrap_or(5).max(5);
                let mut s = format!("{:w$}  {:m$}  SETS", "ALIAS", "MODEL");
                for a in &list {
                    s += &format!("\n{:w$}  {:m$}  {}", a.alias, a.model, sets(a));
                }
                s
            })
        }
        AliasCmd::Show { name, json } => {
            let a = app.alias_show(&name)?;
            print(json, &a, || app::aliases::to_yaml(&a).trim_end().to_string())
        }
        AliasCmd::Create(c) => {
            let template = match &c.template {
                Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                    anyhow::anyhow!("cannot read the template {}: {e}", p.display())
                })?),
                None => None,
            };
            let alias = Alias {
                alias: c.name,
                model: c.model,
                chat_template: template,
                system: c.system,
                request_params: RequestParams {
                    temperature: c.temperature,
                    top_p: c.top_p,
                    frequency_penalty: c.frequency_penalty,
                    presence_penalty: c.presence_penalty,
                    max_tokens: c.max_tokens,
                    stop: c.stop,
                    seed: c.seed,
                    user: None,
                },
                context_params: ContextParams {
                    n_ctx: c.n_ctx,
                    n_parallel: c.n_parallel,
                    n_predict: c.n_predict,
                    n_keep: c.n_keep,
                    seed: None,
                },
            };
            let a = app.alias_save(&alias, c.replace)?;
            print(c.json, &a, || format!("Saved alias {} ({})", a.alias, a.model))
        }
        AliasCmd::Clone { from, to, json } => {
            let a = app.alias_clone(&from, &to)?;
            print(json, &a, || format!("Copied alias {from} as {}", a.alias))
        }
        AliasCmd::Rm { name } => {
            app.alias_remove(&name)?;
            out!("Removed alias {name}");
            Ok(())
        }
    }
}

/// What an alias sets, in one line: `temperature=0.2 n_ctx=1024 template system`.
fn sets(a: &Alias) -> String {
    let mut parts = Vec::new();
    for v in [serde_json::to_value(&a.request_params), serde_json::to_value(&a.context_params)] {
        if let Ok(serde_json::Value::Object(map)) = v {
            for (k, v) in map {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    v => v.to_string(),
                };
                parts.push(format!("{k}={v}"));
            }
        }
    }
    if a.chat_template.is_some() {
        parts.push("template".into());
    }
    if a.system.is_some() {
        parts.push("system".into());
    }
    if parts.is_empty() { "-".into() } else { parts.join(" ") }
}
