//! `vibeflow keys …`: remote OpenAI-compatible endpoints and the Hugging Face token, kept in
//! the OS keyring.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use app::App;
use clap::Subcommand;

use crate::print;

#[derive(Subcommand)]
pub enum KeysCmd {
    /// List endpoints and whether the keyring holds their keys
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Add or replace an endpoint; its key is read from stdin (never from the command line,
    /// where other users and the shell's history would see it) and stored in the OS keyring
    Add {
        /// Name to choose it by (letters, digits, - and _)
        name: String,
        /// Base URL of its API, e.g. https://api.openai.com/v1
        #[arg(long)]
        url: String,
        /// The endpoint needs no key (a server on this machine)
        #[arg(long)]
        no_key: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Ask an endpoint for its models with its key
    Test {
        /// Endpoint name
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Forget an endpoint and delete its key from the keyring
    Rm {
        /// Endpoint name
        name: String,
    },
    /// Save your Hugging Face token (gated and private models, `models pull`) in the OS
    /// keyring; it is read from stdin, never from the command line
    Hf {
        /// Delete the saved token instead
        #[arg(long)]
        remove: bool,
    },
}

/// Runs a `keys` subcommand.
pub fn run(app: &App, cmd: KeysCmd) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::List { json } => {
            let list = app.endpoint_list()?;
            print(json, &list, || {
                if list.is_empty() {
                    return "No endpoints: echo $KEY | vibeflow keys add NAME --url URL".into();
                }
                let w = list.iter().map(|e| e.name.len()).max().unwrap_or(4).max(4);
                let mut s = format!("{:w$}  {:8}  URL", "NAME", "KEY");
                for e in &list {
                    let key = if e.has_key { "keyring" } else { "none" };
                    s += &format!("\n{:w$}  {key:8}  {}", e.name, e.base_url);
                }
                s
            })
        }
        KeysCmd::Add { name, url, no_key, json } => {
            let key = if no_key {
                String::new()
            } else {
                read_secret(
                    "API key",
                    "pipe it in (echo $KEY | vibeflow keys add …), or pass --no-key",
                )?
            };
            let req = api::EndpointAdd { name, base_url: url, key };
            let e = app.endpoint_add(&req)?;
            print(json, &e, || {
                let key = if e.has_key { "its key is in the OS keyring" } else { "no key" };
                format!("Saved endpoint {} ({}): {key}", e.name, e.base_url)
            })
        }
        KeysCmd::Test { name, json } => {
            let t = app.endpoint_test(&name)?;
            print(json, &t, || {
                let mut s = t.message.clone();
                if !t.models.is_empty() {
                    s += &format!(": {}", t.models.join(", "));
                }
                s
            })?;
            if !t.ok {
                bail!("the endpoint did not answer with a model list");
            }
            Ok(())
        }
        KeysCmd::Rm { name } => {
            app.endpoint_remove(&name)?;
            let _ = writeln!(std::io::stdout(), "Removed endpoint {name} and its key");
            Ok(())
        }
        KeysCmd::Hf { remove: true } => {
            app.hf_token_remove()?;
            let _ =
                writeln!(std::io::stdout(), "Deleted the Hugging Face token from the OS keyring");
            Ok(())
        }
        KeysCmd::Hf { remove: false } => {
            let token = read_secret(
                "Hugging Face token",
                "pipe it in (echo $HF_TOKEN | vibeflow keys hf); make one at https://huggingface.co/settings/tokens",
            )?;
            app.hf_token_set(&token)?;
            let _ = writeln!(std::io::stdout(), "Saved the Hugging Face token in the OS keyring");
            Ok(())
        }
    }
}

/// One line from stdin: a key or token, without its line ending. `what` names it on a
/// terminal; `hint` says how to give it when stdin had none.
fn read_secret(what: &str, hint: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let _ = write!(std::io::stderr(), "{what} (then Enter): ");
    }
    let mut key = String::new();
    stdin
        .lock()
        .read_line(&mut key)
        .with_context(|| format!("cannot read the {what} from stdin"))?;
    let key = key.trim().to_string();
    if key.is_empty() {
        bail!("no {what} on stdin: {hint}");
    }
    Ok(key)
}
