//! Model aliases (Bodhi's YAML presets in the home's `aliases/`) and the names the local server
//! answers as: aliases, finished runs (`<project>/<run>`) and installed models.
//!
//! An alias is `aliases/<name>.yaml`, the name made path-safe (characters other than
//! `[A-Za-z0-9._-]` become `--`, as Bodhi does); the file's `alias` field is the name. The YAML is
//! read and written with `serde_norway` (a maintained fork of the archived `serde_yaml`), so a
//! hand-edited file that is malformed is reported with its file, line and column.
//!
//! Resolution of a request's parameters is [`apply`]: the request's own value, else the alias's,
//! else the model's default ([`context_len`] clamps the context the same way). Two seeds in one
//! alias (`request_params.seed` ≠ `context_params.seed`) are refused: with a fixed order one of
//! them could never take effect, and a preset that says two things is a mistake to point out.

use std::path::{Path, PathBuf};

use api::serve::{Alias, RequestParams, ServedModel};
use engine::generate::Sampling;
use engine::template::{ChatTemplate, Message};

use crate::{App, Error, Result};

/// The context assumed for a model that declares none: generation, the Playground, evaluations
/// and the server share it.
pub const DEFAULT_CONTEXT: usize = 2048;

/// Most sequences an alias may decode together.
pub const MAX_PARALLEL: usize = 64;

/// Longest alias name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// What a model name the server answers to resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The name as asked.
    pub name: String,
    /// The alias it went through, if any.
    pub alias: Option<Alias>,
    /// The model file (or Hugging Face folder).
    pub base: PathBuf,
    /// A finished run's adapter folder.
    pub adapter: Option<PathBuf>,
    /// A chat template replacing the model's own (the alias's), if any.
    pub template: Option<String>,
    /// The context to serve with: the model's declared context (2048 when it declares none),
    /// clamped by the alias's `n_ctx`.
    pub context: usize,
}

/// The sampling a request runs with: each control from the request when it set it, else from
/// the alias, else the model's default (`max_tokens` falls back to the alias's `n_predict`, and
/// the seed to its `context_params.seed`, before the default). A request's `stop` list replaces
/// the alias's (it is one value, not merged). Controls an alias does not have (`top_k`, `min_p`,
/// `repetition_penalty`) are the default's.
pub fn apply(alias: Option<&Alias>, request: &RequestParams, model_default: &Sampling) -> Sampling {
    let none = RequestParams::default();
    let a = alias.map_or(&none, |a| &a.request_params);
    let c = alias.map(|a| &a.context_params);
    let d = model_default;
    let stop = if !request.stop.is_empty() {
        request.stop.clone()
    } else if !a.stop.is_empty() {
        a.stop.clone()
    } else {
        d.stop.clone()
    };
    Sampling {
        temperature: request.temperature.or(a.temperature).unwrap_or(d.temperature),
        top_p: request.top_p.or(a.top_p).unwrap_or(d.top_p),
        frequency_penalty: request
            .frequency_penalty
            .or(a.frequency_penalty)
            .unwrap_or(d.frequency_penalty),
        presence_penalty: request
            .presence_penalty
            .or(a.presence_penalty)
            .unwrap_or(d.presence_penalty),
        max_tokens: request
            .max_tokens
            .or(a.max_tokens)
            .or(c.and_then(|c| c.n_predict))
            .unwrap_or(d.max_tokens),
        seed: request.seed.or(a.seed).or(c.and_then(|c| c.seed)).unwrap_or(d.seed),
        stop,
        ..d.clone()
    }
}

/// The context served: the model's declared context (`None`: [`DEFAULT_CONTEXT`]), clamped by
/// the alias's `n_ctx` (never above what the model declares).
pub fn context_len(alias: Option<&Alias>, declared: Option<usize>) -> usize {
    let model = declared.filter(|&n| n > 0).unwrap_or(DEFAULT_CONTEXT);
    match alias.and_then(|a| a.context_params.n_ctx) {
        Some(n) if n > 0 => n.min(model),
        _ => model,
    }
}

/// The file name of alias `name`: characters other than `[A-Za-z0-9._-]` become `--`.
pub fn file_stem(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            s.push(c);
        } else {
            s.push_str("--");
        }
    }
    s
}

/// An alias as its file holds it.
pub fn to_yaml(alias: &Alias) -> String {
    // Plain data (strings, numbers, lists, maps): serializing it cannot fail.
    serde_norway::to_string(alias).unwrap_or_default()
}

/// Every problem of `alias`'s own values (ranges and conflicts), each naming its field as the
/// YAML does; `declared` is its model's context, when known. Pure: the model's existence and the
/// template are checked by [`App::alias_save`].
pub fn problems(alias: &Alias, declared: Option<usize>) -> Vec<String> {
    let mut out = Vec::new();
    let name = alias.alias.trim();
    if name.is_empty() {
        out.push("alias: the name is empty: give the alias a name".into());
    } else if name != alias.alias {
        out.push(format!("alias: '{}' starts or ends with spaces", alias.alias));
    } else if name.chars().count() > MAX_NAME_CHARS {
        out.push(format!("alias: the name is longer than {MAX_NAME_CHARS} characters"));
    } else if name.chars().any(char::is_control) {
        out.push("alias: the name contains control characters".into());
    }
    if alias.model.trim().is_empty() {
        out.push(
            "model: empty: name an installed model (`vibeflow models list`) or a finished run as <project>/<run>"
                .into(),
        );
    }
    let r = &alias.request_params;
    let range = |out: &mut Vec<String>, field: &str, v: Option<f64>, lo: f64, hi: f64| {
        if let Some(v) = v
            && !(v.is_finite() && (lo..=hi).contains(&v))
        {
            out.push(format!("request_params.{field} must be between {lo} and {hi}, got {v}"));
        }
    };
    range(&mut out, "temperature", r.temperature, 0.0, api::chat::TEMPERATURE_MAX);
    if let Some(p) = r.top_p
        && !(p.is_finite() && p > 0.0 && p <= 1.0)
    {
        out.push(format!("request_params.top_p must be above 0 and at most 1, got {p}"));
    }
    range(&mut out, "frequency_penalty", r.frequency_penalty.map(f64::from), -2.0, 2.0);
    range(&mut out, "presence_penalty", r.presence_penalty.map(f64::from), -2.0, 2.0);
    if r.max_tokens == Some(0) {
        out.push("request_params.max_tokens must be at least 1, got 0".into());
    }
    if r.stop.len() > api::chat::MAX_STOPS {
        out.push(format!(
            "request_params.stop takes at most {} strings, got {}",
            api::chat::MAX_STOPS,
            r.stop.len()
        ));
    }
    if r.stop.iter().any(String::is_empty) {
        out.push("request_params.stop: a stop string is empty".into());
    }
    let c = &alias.context_params;
    if c.n_ctx == Some(0) {
        out.push("context_params.n_ctx must be at least 1, got 0".into());
    }
    if let (Some(n), Some(model)) = (c.n_ctx, declared)
        && n > model
    {
        out.push(format!(
            "context_params.n_ctx is {n} but the model's context is {model}: use at most {model}"
        ));
    }
    // What the others must fit in: the alias's own context, else the model's.
    let ctx = c.n_ctx.filter(|&n| n > 0).or(declared);
    let within = |out: &mut Vec<String>, field: &str, v: Option<usize>| {
        if let (Some(v), Some(ctx)) = (v, ctx)
            && v > ctx
        {
            out.push(format!("{field} is {v} but the context is {ctx} tokens: use at most {ctx}"));
        }
    };
    within(&mut out, "context_params.n_keep", c.n_keep);
    if c.n_predict == Some(0) {
        out.push("context_params.n_predict must be at least 1, got 0".into());
    }
    within(&mut out, "context_params.n_predict", c.n_predict);
    within(&mut out, "request_params.max_tokens", r.max_tokens);
    if let Some(p) = c.n_parallel
        && !(1..=MAX_PARALLEL).contains(&p)
    {
        out.push(format!(
            "context_params.n_parallel must be between 1 and {MAX_PARALLEL}, got {p}"
        ));
    }
    if let (Some(a), Some(b)) = (r.seed, c.seed)
        && a != b
    {
        out.push(format!(
            "request_params.seed ({a}) and context_params.seed ({b}) differ: request_params.seed would always win; keep one"
        ));
    }
    if alias.chat_template.as_deref().is_some_and(|t| t.trim().is_empty()) {
        out.push("chat_template: empty: remove it to use the model's own".into());
    }
    out
}

impl App {
    /// Every alias, by name. A malformed file is an error naming it, its line and column (fix
    /// or remove it: `alias rm` works on it).
    pub fn alias_list(&self) -> Result<Vec<Alias>> {
        let mut out: Vec<Alias> =
            self.alias_files()?.iter().map(|p| read_alias(p)).collect::<Result<_>>()?;
        out.sort_by(|a, b| a.alias.cmp(&b.alias));
        Ok(out)
    }

    /// The alias named `name`.
    pub fn alias_show(&self, name: &str) -> Result<Alias> {
        self.find_alias(name)?
            .ok_or_else(|| Error::NotFound(format!("no alias '{name}': see `vibeflow alias list`")))
    }

    /// Makes finished run `run` of `project` its live version: the alias named after the
    /// project points at it, keeping that alias's other settings (a new one has none).
    pub fn go_live(&self, project: &str, run: &str) -> Result<Alias> {
        let slug = self.project_row(project)?.slug;
        self.run_adapter(&slug, run)?;
        let existing = self.find_alias(&slug)?;
        let replace = existing.is_some();
        let alias = Alias {
            alias: slug.clone(),
            model: format!("{slug}/{run}"),
            ..existing.unwrap_or_default()
        };
        self.alias_save(&alias, replace)
    }

    /// Creates an alias, or with `replace` creates or replaces it (an edit), after checking
    /// it: ranges and conflicts ([`problems`]), its model resolves, its chat template renders.
    /// Every problem is reported at once, each naming its field. Returns the alias as saved.
    pub fn alias_save(&self, alias: &Alias, replace: bool) -> Result<Alias> {
        let mut alias = alias.clone();
        let path = self.alias_path(&alias.alias);
        let mut found = Vec::new();
        // The model first: its context bounds the others.
        let declared = match self.alias_target(&alias.model) {
            Ok((base, _)) => self.declared_context(&base)?,
            Err(e) if !alias.model.trim().is_empty() => {
                found.push(format!("model: {e}"));
                None
            }
            Err(_) => None,
        };
        found.extend(problems(&alias, declared));
        if let Some(src) = alias.chat_template.as_deref().filter(|t| !t.trim().is_empty())
            && let Err(e) = check_template(src)
        {
            found.push(format!("chat_template: {e}"));
        }
        if !found.is_empty() {
            return Err(Error::InvalidInput(format!(
                "alias '{}' is not valid: {}",
                alias.alias,
                found.join("; ")
            )));
        }
        if path.exists() {
            // Two names can share a file ("a:b" and "a/b" are both a--b.yaml).
            let other = read_alias(&path).map(|a| a.alias).unwrap_or_default();
            if !other.is_empty() && other != alias.alias {
                return Err(Error::AlreadyExists(format!(
                    "alias '{}' would be kept as {}, which holds alias '{other}': choose another name",
                    alias.alias,
                    path.display()
                )));
            }
            if !replace {
                return Err(Error::AlreadyExists(format!(
                    "alias '{}' exists already: choose another name, or edit it",
                    alias.alias
                )));
            }
        }
        alias.system = alias.system.filter(|s| !s.is_empty());
        let text = to_yaml(&alias);
        // Written beside and renamed into place: a crash never leaves half a file.
        let tmp = path.with_extension("yaml.tmp");
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&path, e)
        })?;
        Ok(alias)
    }

    /// Copies alias `from` as `to` (checked like a new alias; `to` must be free).
    pub fn alias_clone(&self, from: &str, to: &str) -> Result<Alias> {
        let mut a = self.alias_show(from)?;
        a.alias = to.to_string();
        self.alias_save(&a, false)
    }

    /// Deletes alias `name` (its file; one that no longer parses too).
    pub fn alias_remove(&self, name: &str) -> Result<()> {
        let path = self.located_alias(name)?.ok_or_else(|| {
            Error::NotFound(format!("no alias '{name}': see `vibeflow alias list`"))
        })?;
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))
    }

    /// What the server answers as `name`: an alias first, then a finished run
    /// `<project>/<run>`, then an installed model id. An unknown name is [`Error::NotFound`]
    /// naming the closest names that exist.
    pub fn served_model(&self, name: &str) -> Result<Served> {
        if let Some(alias) = self.find_alias(name)? {
            let (base, adapter) = self.alias_target(&alias.model).map_err(|e| {
                Error::NotFound(format!("alias '{name}' names model '{}': {e}", alias.model))
            })?;
            let context = context_len(Some(&alias), self.declared_context(&base)?);
            let template = alias.chat_template.clone().filter(|t| !t.trim().is_empty());
            return Ok(Served {
                name: name.into(),
                alias: Some(alias),
                base,
                adapter,
                template,
                context,
            });
        }
        match self.alias_target(name) {
            Ok((base, adapter)) => {
                let context = context_len(None, self.declared_context(&base)?);
                Ok(Served {
                    name: name.into(),
                    alias: None,
                    base,
                    adapter,
                    template: None,
                    context,
                })
            }
            Err(Error::NotFound(_)) => Err(Error::NotFound(self.unknown_model(name))),
            Err(e) => Err(e),
        }
    }

    /// Every name the server answers as: aliases, finished runs of every project, installed
    /// models (in that order, each by name). An alias file that does not parse is left out
    /// here (`alias_list` reports it), so one broken file never takes the server's list down.
    pub fn served_models(&self) -> Result<Vec<ServedModel>> {
        let mut aliases: Vec<Alias> =
            self.alias_files()?.iter().filter_map(|p| read_alias(p).ok()).collect();
        aliases.sort_by(|a, b| a.alias.cmp(&b.alias));
        let mut out: Vec<ServedModel> = aliases
            .into_iter()
            .map(|a| ServedModel { id: a.alias, kind: "alias".into(), detail: a.model })
            .collect();
        for p in self.store.projects()? {
            for r in self.store.runs(&p.slug)? {
                let adapter = self.project_dir(&p.slug).join("runs").join(&r.id).join("adapter");
                // `run_adapter`'s test, without reading the runs again per run.
                if matches!(r.status.as_str(), "done" | "stopped")
                    && adapter.join("adapter_model.safetensors").exists()
                {
                    out.push(ServedModel {
                        id: format!("{}/{}", p.slug, r.id),
                        kind: "run".into(),
                        detail: format!("{} + {} adapter", p.base_model, r.method),
                    });
                }
            }
        }
        for m in self.store.models()? {
            out.push(ServedModel { id: m.id, kind: "installed".into(), detail: m.file });
        }
        Ok(out)
    }

    /// The model file and adapter a model reference of an alias (or a request) names: a
    /// finished run `<project>/<run>`, else an installed model id.
    fn alias_target(&self, model: &str) -> Result<(PathBuf, Option<PathBuf>)> {
        if let Some((slug, run)) = model.split_once('/')
            && let Some(row) = self.store.project(slug)?
        {
            let adapter = self.run_adapter(&row.slug, run)?;
            return Ok((self.resolve_model(&row.base_model)?, Some(adapter)));
        }
        if self.store.models()?.iter().any(|m| m.id == model) {
            return Ok((self.model_path(model)?, None));
        }
        Err(Error::NotFound(format!(
            "'{model}' is neither an installed model (`vibeflow models list`) nor a finished run as <project>/<run>"
        )))
    }

    /// The message for a model name nothing answers to: the names that exist, or the closest.
    fn unknown_model(&self, name: &str) -> String {
        let names: Vec<String> = match self.served_models() {
            Ok(list) => list.into_iter().map(|m| m.id).collect(),
            Err(e) => {
                return format!("no model '{name}' (and the served names cannot be read: {e})");
            }
        };
        if names.is_empty() {
            return format!(
                "no model '{name}': nothing is served yet (install a model, train a run or create an alias)"
            );
        }
        if names.len() <= 8 {
            return format!("no model '{name}': the server answers as {}", names.join(", "));
        }
        let mut ranked: Vec<(usize, &String)> =
            names.iter().map(|n| (edit_distance(name, n), n)).collect();
        ranked.sort();
        let close: Vec<&str> = ranked.iter().take(3).map(|(_, n)| n.as_str()).collect();
        format!(
            "no model '{name}': the closest of the {} names served are {} (see `vibeflow alias list`, `vibeflow models list`)",
            names.len(),
            close.join(", ")
        )
    }

    fn aliases_dir(&self) -> PathBuf {
        self.home.join("aliases")
    }

    fn alias_path(&self, name: &str) -> PathBuf {
        self.aliases_dir().join(format!("{}.yaml", file_stem(name)))
    }

    /// The alias whose `alias` is `name`: its own file first (an error when it does not
    /// parse), else any other file that names it (files that do not parse skipped: they are
    /// not this name's).
    fn find_alias(&self, name: &str) -> Result<Option<Alias>> {
        let path = self.alias_path(name);
        if path.is_file() {
            let a = read_alias(&path)?;
            if a.alias == name {
                return Ok(Some(a));
            }
        }
        if name.is_empty() {
            return Ok(None);
        }
        Ok(self
            .alias_files()?
            .iter()
            .filter(|p| **p != path)
            .filter_map(|p| read_alias(p).ok())
            .find(|a| a.alias == name))
    }

    /// The alias files, by file name.
    fn alias_files(&self) -> Result<Vec<PathBuf>> {
        let dir = self.aliases_dir();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            if path.extension().is_some_and(|e| e == "yaml") && path.is_file() {
                out.push(path);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The file holding alias `name`, read or not (a malformed file is found by its name).
    fn located_alias(&self, name: &str) -> Result<Option<PathBuf>> {
        let path = self.alias_path(name);
        if path.is_file() && !matches!(read_alias(&path), Ok(a) if a.alias != name) {
            return Ok(Some(path));
        }
        Ok(self.alias_files()?.into_iter().find(|p| read_alias(p).is_ok_and(|a| a.alias == name)))
    }
}

/// Reads an alias file; an empty `alias` takes the file's name. A malformed file names its
/// path, line and column.
fn read_alias(path: &Path) -> Result<Alias> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut a: Alias = serde_norway::from_str(&text).map_err(|e| {
        let mut msg = e.to_string();
        let at = match e.location() {
            Some(l) => {
                // The message ends with the place again ("… at line 3 column 1"): said once.
                if let Some(i) = msg.rfind(" at line ") {
                    msg.truncate(i);
                }
                format!(":{}:{}", l.line(), l.column())
            }
            None => String::new(),
        };
        Error::InvalidInput(format!("{}{at}: {msg}", path.display()))
    })?;
    if a.alias.is_empty() {
        a.alias = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    }
    Ok(a)
}

/// A model's declared context as read at one size and modification time of its file.
pub(crate) struct DeclaredContext {
    path: PathBuf,
    stamp: (u64, Option<std::time::SystemTime>),
    context: Option<usize>,
}

/// Files whose contexts are remembered.
const CONTEXTS_KEPT: usize = 32;

impl App {
    /// The context a model file or folder declares, read from its header (no weights); a file
    /// read before and unchanged since (same size and time) is not read again.
    fn declared_context(&self, path: &Path) -> Result<Option<usize>> {
        if path.is_dir() {
            return Ok(engine::bundle::Chat::open(path)?.context);
        }
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let stamp = (meta.len(), meta.modified().ok());
        let mut kept = self.contexts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = kept.iter().find(|d| d.path == path && d.stamp == stamp) {
            return Ok(d.context);
        }
        let n = engine::gguf::inspect(path)?.context_length as usize;
        let context = (n > 0).then_some(n);
        kept.retain(|d| d.path != path);
        if kept.len() >= CONTEXTS_KEPT {
            kept.remove(0);
        }
        kept.push(DeclaredContext { path: path.to_path_buf(), stamp, context });
        Ok(context)
    }
}

/// Compiles a chat template and renders a short conversation with it: with a system message,
/// or without one for templates that refuse it (Gemma's raises on a system role).
fn check_template(src: &str) -> std::result::Result<(), String> {
    let t = ChatTemplate::new(src, "<s>", "</s>").map_err(|e| e.to_string())?;
    let turns = [
        Message::new("user", "Hi"),
        Message::new("assistant", "Hello!"),
        Message::new("user", "How are you?"),
    ];
    let with_system: Vec<Message> =
        std::iter::once(Message::new("system", "You are helpful.")).chain(turns.clone()).collect();
    let text = t
        .render(&with_system, true)
        .or_else(|e| t.render(&turns, true).map_err(|_| e))
        .map_err(|e| e.to_string())?;
    if !text.contains("How are you?") {
        return Err(
            "renders without the messages' text: it must print each message's content".into()
        );
    }
    Ok(())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use api::serve::ContextParams;

    use super::*;

    fn alias(name: &str, model: &str) -> Alias {
        Alias { alias: name.into(), model: model.into(), ..Alias::default() }
    }

    /// Each control: the request's value, else the alias's, else the default.
    #[test]
    fn apply_resolves_request_then_alias_then_default() {
        let d = Sampling {
            temperature: 0.7,
            top_k: 40,
            seed: 1,
            max_tokens: 256,
            ..Sampling::default()
        };
        let mut a = alias("a", "m");
        a.request_params = RequestParams {
            temperature: Some(0.2),
            top_p: Some(0.9),
            frequency_penalty: Some(0.5),
            max_tokens: Some(64),
            stop: vec!["<|eot_id|>".into()],
            seed: Some(7),
            ..RequestParams::default()
        };
        let mut only_ctx = alias("c", "m");
        only_ctx.context_params =
            ContextParams { n_predict: Some(32), seed: Some(9), ..Default::default() };
        let req = RequestParams {
            temperature: Some(1.5),
            max_tokens: Some(8),
            stop: vec!["END".into()],
            ..RequestParams::default()
        };
        let none = RequestParams::default();
        // (alias, request) → (temperature, top_p, frequency_penalty, max_tokens, stop, seed)
        type Row<'a> =
            (Option<&'a Alias>, &'a RequestParams, (f64, f64, f32, usize, Vec<&'a str>, u64));
        let cases: Vec<Row> = vec![
            (None, &none, (0.7, 1.0, 0.0, 256, vec![], 1)),
            (Some(&a), &none, (0.2, 0.9, 0.5, 64, vec!["<|eot_id|>"], 7)),
            (Some(&a), &req, (1.5, 0.9, 0.5, 8, vec!["END"], 7)),
            (None, &req, (1.5, 1.0, 0.0, 8, vec!["END"], 1)),
            // n_predict and context_params.seed stand in for the request params an alias lacks.
            (Some(&only_ctx), &none, (0.7, 1.0, 0.0, 32, vec![], 9)),
            (Some(&only_ctx), &req, (1.5, 1.0, 0.0, 8, vec!["END"], 9)),
        ];
        for (i, (a, r, want)) in cases.into_iter().enumerate() {
            let s = apply(a, r, &d);
            let got = (
                s.temperature,
                s.top_p,
                s.frequency_penalty,
                s.max_tokens,
                s.stop.iter().map(String::as_str).collect::<Vec<_>>(),
                s.seed,
            );
            assert_eq!(got, want, "case {i}");
            // What an alias cannot set stays the default's.
            assert_eq!((s.top_k, s.min_p, s.repetition_penalty), (40, 0.0, 1.0), "case {i}");
        }
    }

    #[test]
    fn context_is_the_models_clamped_by_the_alias() {
        let mut a = alias("a", "m");
        assert_eq!(context_len(None, Some(8192)), 8192);
        assert_eq!(context_len(None, None), DEFAULT_CONTEXT);
        assert_eq!(context_len(Some(&a), Some(8192)), 8192);
        a.context_params.n_ctx = Some(1024);
        assert_eq!(context_len(Some(&a), Some(8192)), 1024);
        assert_eq!(context_len(Some(&a), Some(512)), 512);
        assert_eq!(context_len(Some(&a), None), 1024);
    }

    #[test]
    fn file_names_are_path_safe() {
        for (name, stem) in [
            ("llama3:instruct", "llama3--instruct"),
            ("support-bot_v2.1", "support-bot_v2.1"),
            ("a/b", "a--b"),
            ("..\\x", "..--x"),
            ("é t", "----t"),
        ] {
            assert_eq!(file_stem(name), stem, "{name}");
        }
    }

    /// Every range and conflict is reported, naming its field.
    #[test]
    fn problems_name_their_field() {
        let check = |edit: &dyn Fn(&mut Alias), declared: Option<usize>, want: &[&str]| {
            let mut a = alias("bot", "m");
            edit(&mut a);
            let got = problems(&a, declared);
            assert_eq!(got.len(), want.len(), "{got:?}");
            for (g, w) in got.iter().zip(want) {
                assert!(g.starts_with(w), "{g:?} should start with {w:?}");
            }
        };
        check(&|_| {}, Some(8192), &[]);
        check(&|a| a.alias = String::new(), None, &["alias: the name is empty"]);
        check(&|a| a.model = " ".into(), None, &["model: empty"]);
        check(
            &|a| {
                let r = &mut a.request_params;
                r.temperature = Some(2.5);
                r.top_p = Some(0.0);
                r.frequency_penalty = Some(-3.0);
                r.presence_penalty = Some(f32::NAN);
                r.max_tokens = Some(0);
                r.stop = vec!["a".into(), "b".into(), "c".into(), "d".into(), String::new()];
            },
            None,
            &[
                "request_params.temperature must be between 0 and 2, got 2.5",
                "request_params.top_p must be above 0 and at most 1, got 0",
                "request_params.frequency_penalty must be between -2 and 2, got -3",
                "request_params.presence_penalty must be between -2 and 2, got NaN",
                "request_params.max_tokens must be at least 1, got 0",
                "request_params.stop takes at most 4 strings, got 5",
                "request_params.stop: a stop string is empty",
            ],
        );
        check(&|a| a.request_params.top_p = Some(1.0), None, &[]);
        check(
            &|a| a.context_params.n_ctx = Some(9000),
            Some(8192),
            &["context_params.n_ctx is 9000 but the model's context is 8192"],
        );
        check(
            &|a| {
                a.context_params = ContextParams {
                    n_ctx: Some(512),
                    n_keep: Some(600),
                    n_predict: Some(513),
                    n_parallel: Some(65),
                    seed: Some(1),
                };
                a.request_params.max_tokens = Some(1000);
                a.request_params.seed = Some(2);
            },
            Some(8192),
            &[
                "context_params.n_keep is 600 but the context is 512 tokens",
                "context_params.n_predict is 513 but the context is 512 tokens",
                "request_params.max_tokens is 1000 but the context is 512 tokens",
                "context_params.n_parallel must be between 1 and 64, got 65",
                "request_params.seed (2) and context_params.seed (1) differ",
            ],
        );
        // Without n_ctx the model's own context bounds them.
        check(
            &|a| a.request_params.max_tokens = Some(9000),
            Some(8192),
            &["request_params.max_tokens is 9000 but the context is 8192 tokens"],
        );
        check(
            &|a| a.context_params.n_parallel = Some(0),
            None,
            &["context_params.n_parallel must be between 1 and 64, got 0"],
        );
        // The same seed twice is no conflict.
        check(
            &|a| {
                a.request_params.seed = Some(3);
                a.context_params.seed = Some(3);
            },
            None,
            &[],
        );
        check(&|a| a.chat_template = Some("  ".into()), None, &["chat_template: empty"]);
    }

    #[test]
    fn a_template_must_compile_and_print_the_messages() {
        assert!(check_template(engine::template::CHATML).is_ok());
        let e = check_template("{% for m in messages %}{{ m.content }").unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
        let e = check_template("hello").unwrap_err();
        assert!(e.contains("without the messages' text"), "{e}");
        // A template that refuses a system message (as Gemma's does) is still a template.
        let no_system = "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.content }}{% endfor %}";
        assert!(check_template(no_system).is_ok());
        let e = check_template("{{ raise_exception('never') }}").unwrap_err();
        assert!(e.contains("never"), "{e}");
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    /// Aliases saved, listed, shown, cloned and removed as YAML files; bad ones refused with
    /// every problem; a hand-broken file named with its line; names resolved for the server.
    #[test]
    fn aliases_and_served_names_over_a_real_model_and_run() {
        let Some(gguf) = crate::models::tests_default_gguf() else { return };
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        let model = app.model_import(&gguf, None).unwrap();
        let installed = model.id.clone();

        let mut bot = alias("support-bot:v2", &installed);
        bot.system = Some("You answer support questions.".into());
        bot.request_params.temperature = Some(0.2);
        bot.request_params.stop = vec!["<|im_end|>".into()];
        bot.context_params.n_ctx = Some(1024);
        let saved = app.alias_save(&bot, false).unwrap();
        assert_eq!(saved, bot);
        let file = dir.path().join("aliases/support-bot--v2.yaml");
        let yaml = std::fs::read_to_string(&file).unwrap();
        assert!(yaml.starts_with("alias: support-bot:v2\nmodel: "), "{yaml}");
        assert!(yaml.contains("request_params:\n  temperature: 0.2\n"), "{yaml}");
        assert_eq!(app.alias_show("support-bot:v2").unwrap(), bot);

        // Taken names: the same one, and another that maps to the same file.
        let e = app.alias_save(&bot, false).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
        let e = app.alias_save(&alias("support-bot/v2", &installed), true).unwrap_err();
        assert!(e.to_string().contains("which holds alias 'support-bot:v2'"), "{e}");
        // An edit replaces.
        bot.request_params.temperature = Some(0.4);
        app.alias_save(&bot, true).unwrap();
        assert_eq!(app.alias_show("support-bot:v2").unwrap().request_params.temperature, Some(0.4));

        // Every problem at once, each naming its field.
        let mut bad = alias("bad", "no-such-model");
        bad.request_params.top_p = Some(1.5);
        bad.chat_template = Some("{{ messages[0].content }".into());
        let e = app.alias_save(&bad, false).unwrap_err().to_string();
        assert!(
            e.starts_with("alias 'bad' is not valid: model: 'no-such-model' is neither"),
            "{e}"
        );
        assert!(e.contains("; request_params.top_p must be above 0 and at most 1, got 1.5"), "{e}");
        assert!(e.contains("; chat_template: "), "{e}");
        let mut big = alias("big", &installed);
        big.context_params.n_ctx = Some(100_000);
        let e = app.alias_save(&big, false).unwrap_err().to_string();
        assert!(
            e.contains("context_params.n_ctx is 100000 but the model's context is 8192"),
            "{e}"
        );
        assert!(!dir.path().join("aliases/bad.yaml").exists());

        let copy = app.alias_clone("support-bot:v2", "support-bot:v3").unwrap();
        assert_eq!(copy, Alias { alias: "support-bot:v3".into(), ..bot.clone() });
        let names: Vec<String> = app.alias_list().unwrap().into_iter().map(|a| a.alias).collect();
        assert_eq!(names, ["support-bot:v2", "support-bot:v3"]);

        // Served: the alias with its context clamp, the installed model with its own.
        let s = app.served_model("support-bot:v2").unwrap();
        assert_eq!(
            (s.base.clone(), s.adapter.clone(), s.context),
            (PathBuf::from(&model.path), None, 1024)
        );
        assert_eq!(s.alias.as_ref().map(|a| a.alias.as_str()), Some("support-bot:v2"));
        let s = app.served_model(&installed).unwrap();
        assert_eq!((s.alias, s.context, s.template), (None, 8192, None));
        let e = app.served_model("support-bot:v9").unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        assert!(
            e.to_string().contains("the server answers as support-bot:v2, support-bot:v3"),
            "{e}"
        );

        // A finished run of a project, and an alias over it with its own template.
        app.project_new("Serve").unwrap();
        let req = crate::ImportRequest {
            project: "serve".into(),
            source: crate::ImportSource::Sample("tech-qa".into()),
            name: None,
            mapping: None,
            language: None,
        };
        app.data_import(&req).unwrap();
        let config =
            crate::TrainConfig { steps: Some(2), batch_size: 2, max_len: 64, ..Default::default() };
        let run = crate::ProjectTrainRequest {
            project: "serve".into(),
            dataset: None,
            eval_rows: 2,
            config,
            resume: crate::Resume::No,
        };
        app.train_project(&run, &mut |_| true).unwrap();
        let s = app.served_model("serve/run-1").unwrap();
        assert_eq!(s.base, PathBuf::from(&model.path));
        assert_eq!(s.adapter, Some(dir.path().join("projects/serve/runs/run-1/adapter")));
        let mut tuned = alias("tuned", "serve/run-1");
        tuned.chat_template = Some(engine::template::CHATML.into());
        app.alias_save(&tuned, false).unwrap();
        let s = app.served_model("tuned").unwrap();
        assert_eq!(s.adapter, Some(dir.path().join("projects/serve/runs/run-1/adapter")));
        assert_eq!(s.template.as_deref(), Some(engine::template::CHATML));
        assert!(matches!(app.served_model("serve/run-9"), Err(Error::NotFound(_))));
        let listed: Vec<(String, String)> =
            app.served_models().unwrap().into_iter().map(|m| (m.id, m.kind)).collect();
        let want = [
            ("support-bot:v2", "alias"),
            ("support-bot:v3", "alias"),
            ("tuned", "alias"),
            ("serve/run-1", "run"),
            (installed.as_str(), "installed"),
        ];
        assert_eq!(listed, want.map(|(a, b)| (a.to_string(), b.to_string())));

        // A hand-edited file that is broken: named with its line; `rm` still removes it.
        std::fs::write(&file, "alias: support-bot:v2\nmodel: m\nsystem: a: b\n").unwrap();
        let e = app.alias_list().unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:3:", file.display())), "{e}");
        let e = app.alias_show("support-bot:v2").unwrap_err().to_string();
        assert!(e.contains("support-bot--v2.yaml:3:"), "{e}");
        // It takes nothing else down: other names resolve, the server's list leaves it out.
        assert_eq!(app.served_model(&installed).unwrap().context, 8192);
        assert!(app.served_model("tuned").unwrap().adapter.is_some());
        let ids: Vec<String> = app.served_models().unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["support-bot:v3", "tuned", "serve/run-1", installed.as_str()]);
        std::fs::write(&file, "alias: support-bot:v2\nmodel: m\ntemperature: 1\n").unwrap();
        let e = app.alias_show("support-bot:v2").unwrap_err().to_string();
        assert!(e.contains("support-bot--v2.yaml:3:1: unknown field `temperature`"), "{e}");
        app.alias_remove("support-bot:v2").unwrap();
        assert!(!file.exists());
        app.alias_remove("support-bot:v3").unwrap();
        assert!(matches!(app.alias_remove("support-bot:v3"), Err(Error::NotFound(_))));
        let names: Vec<String> = app.alias_list().unwrap().into_iter().map(|a| a.alias).collect();
        assert_eq!(names, ["tuned"]);
    }
}
