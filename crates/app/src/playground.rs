//! The Playground: chat with a project's base model or a finished run, streamed. Models stay
//! loaded between messages (the two most recently used, so base and fine-tuned can answer side
//! by side); conversations are saved per project under `chats/<slug>/`, outside git.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use api::chat::{ChatEvent, ChatModel, ChatRequest, Conversation};
use engine::bundle::{Bundle, Chat};
use engine::generate::{F32Decoder, QuantDecoder};
use engine::template::Message;

use crate::{App, Error, Result};

/// Models kept loaded: the Playground's two, or an arena's four, side by side.
const KEEP: usize = 4;

use crate::aliases::DEFAULT_CONTEXT;

/// Loaded models and the replies in progress. Cheap to clone.
#[derive(Clone, Default)]
pub struct Playground {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Most recently used last.
    models: Mutex<Vec<(Key, Arc<Mutex<Loaded>>)>>,
    stops: Mutex<Vec<(String, Arc<AtomicBool>)>>,
    loads: AtomicUsize,
}

/// The model file and the adapter folder.
type Key = (PathBuf, Option<PathBuf>);

struct Loaded {
    chat: Chat,
    weights: Weights,
}

enum Weights {
    /// A GGUF's quantized blocks on our kernels (the adapter unmerged beside them).
    Quant(QuantDecoder),
    /// f32 weights (Hugging Face folders, and GGUFs our kernels do not run).
    F32(Box<Bundle>),
}

impl Playground {
    /// No model loaded yet.
    pub fn new() -> Playground {
        Playground::default()
    }

    /// How many times a model was loaded (a chat's next turn must not load again).
    pub fn loads(&self) -> usize {
        self.shared.loads.load(Ordering::SeqCst)
    }

    /// Asks reply `id` to stop after its current token; whether it was running.
    pub fn stop(&self, id: &str) -> bool {
        let stops = self.shared.stops.lock().unwrap_or_else(|e| e.into_inner());
        stops.iter().find(|(i, _)| i == id).map(|(_, f)| f.store(true, Ordering::SeqCst)).is_some()
    }

    /// Streams `model`'s reply to `req.messages` to `on_event`; ends with `Done`, or an error
    /// (the caller says it as `Failed`).
    pub fn send(
        &self,
        app: &App,
        req: &ChatRequest,
        on_event: &mut dyn FnMut(ChatEvent),
    ) -> Result<()> {
        req.sampling.validate().map_err(Error::InvalidInput)?;
        if req.messages.last().is_none_or(|m| m.role != "user") {
            return Err(Error::InvalidInput(
                "the conversation must end with the user's message".into(),
            ));
        }
        let (base, adapter) = app.chat_model_files(&req.project, &req.model)?;
        let stop = Arc::new(AtomicBool::new(false));
        self.lock_stops().push((req.id.clone(), stop.clone()));
        let result = (|| {
            let loaded = self.model(app, (base, adapter), on_event)?;
            let mut loaded = loaded.lock().unwrap_or_else(|e| e.into_inner());
            let Loaded { chat, weights } = &mut *loaded;
            let messages: Vec<Message> =
                req.messages.iter().map(|m| Message::new(&m.role, &m.content)).collect();
            let text = chat.template.render(&messages, true)?;
            let ids = engine::tokenizer::encode(&chat.tokenizer, &text)?;
            let context = chat.context.unwrap_or(DEFAULT_CONTEXT);
            let sampling = api::chat::Sampling {
                max_tokens: engine::generate::room(ids.len(), context, req.sampling.max_tokens)
                    .map_err(Error::InvalidInput)?,
                ..req.sampling.clone()
            };
            let mut f32_dec;
            let dec: &mut dyn engine::generate::Decoder = match weights {
                Weights::Quant(q) => {
                    q.reset();
                    q
                }
                Weights::F32(b) => {
                    f32_dec = F32Decoder::new(&b.model, &b.device);
                    &mut f32_dec
                }
            };
            let start = std::time::Instant::now();
            let mut on_text = |t: &str| {
                on_event(ChatEvent::Delta { text: t.to_string() });
                !stop.load(Ordering::SeqCst)
            };
            let out = engine::generate::generate(
                dec,
                &chat.tokenizer,
                &ids,
                &chat.eos,
                &sampling,
                &mut on_text,
            )?;
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            on_event(ChatEvent::Done {
                finish_reason: match out.finish {
                    engine::generate::Finish::Stop => "stop",
                    engine::generate::Finish::Length => "length",
                    engine::generate::Finish::Cancelled => "cancelled",
                }
                .into(),
                prompt_tokens: ids.len(),
                completion_tokens: out.tokens.len(),
                tokens_per_second: out.tokens.len() as f64 / secs,
            });
            Ok(())
        })();
        self.lock_stops().retain(|(i, _)| i != &req.id);
        result
    }

    fn lock_stops(&self) -> std::sync::MutexGuard<'_, Vec<(String, Arc<AtomicBool>)>> {
        self.shared.stops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The loaded model for `key`, loading it (and dropping the least recently used beyond
    /// [`KEEP`]) when it is not.
    fn model(
        &self,
        app: &App,
        key: Key,
        on_event: &mut dyn FnMut(ChatEvent),
    ) -> Result<Arc<Mutex<Loaded>>> {
        {
            let mut models = self.shared.models.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = models.iter().position(|(k, _)| *k == key) {
                let entry = models.remove(i);
                let found = entry.1.clone();
                models.push(entry);
                return Ok(found);
            }
        }
        on_event(ChatEvent::Loading);
        let (path, adapter) = &key;
        let loaded = Arc::new(Mutex::new(load(app, path, adapter.as_deref())?));
        self.shared.loads.fetch_add(1, Ordering::SeqCst);
        let mut models = self.shared.models.lock().unwrap_or_else(|e| e.into_inner());
        models.push((key, loaded.clone()));
        while models.len() > KEEP {
            models.remove(0);
        }
        Ok(loaded)
    }
}

fn load(app: &App, path: &Path, adapter: Option<&Path>) -> Result<Loaded> {
    let device = app.device()?;
    let chat = Chat::open(path)?;
    if !path.is_dir()
        && let Ok(mut q) = QuantDecoder::open(path, &device)
        && adapter.is_none_or(|dir| q.apply_adapter(dir).is_ok())
    {
        return Ok(Loaded { chat, weights: Weights::Quant(q) });
    }
    // Where the quantized path cannot (a folder, another architecture, an adapter our kernels
    // cannot place), the f32 weights with the adapter applied unmerged.
    let mut b = Bundle::open(path, &device)?;
    if let Some(dir) = adapter {
        engine::adapter::load_peft(&mut b.model, dir, &b.device)?;
    }
    Ok(Loaded { chat, weights: Weights::F32(Box::new(b)) })
}

impl App {
    /// The model file and adapter folder that answer as `model` (an installed model needs no
    /// project: `project` may be empty).
    pub(crate) fn chat_model_files(
        &self,
        project: &str,
        model: &ChatModel,
    ) -> Result<(PathBuf, Option<PathBuf>)> {
        if let ChatModel::Installed(id) = model {
            return Ok((self.model_path(id)?, None));
        }
        let row = self.project_row(project)?;
        let base = self.resolve_model(&row.base_model)?;
        match model {
            ChatModel::Run(id) => Ok((base, Some(self.run_adapter(&row.slug, id)?))),
            _ => Ok((base, None)),
        }
    }

    /// The adapter folder of finished run `id` of project `slug`.
    pub(crate) fn run_adapter(&self, slug: &str, id: &str) -> Result<PathBuf> {
        let run = self
            .store
            .runs(slug)?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::NotFound(format!("no run '{id}' in project '{slug}'")))?;
        let dir = self.project_dir(slug).join("runs").join(id).join("adapter");
        if !matches!(run.status.as_str(), "done" | "stopped")
            || !dir.join("adapter_model.safetensors").exists()
        {
            return Err(Error::Conflict(format!(
                "run '{id}' has no saved adapter ({}): chat with a finished run",
                run.status
            )));
        }
        Ok(dir)
    }

    /// Saves a Playground conversation of its project (replacing one with its id).
    pub fn chat_save(&self, c: &Conversation) -> Result<()> {
        let row = self.project_row(&c.project)?;
        let path = self.chat_path(&row.slug, &c.id)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let text = serde_json::to_string_pretty(c).unwrap_or_default();
        crate::datasets::write_file(&path, text.as_bytes())
    }

    /// A project's saved conversations, newest first (unreadable files are skipped).
    pub fn chat_list(&self, project: &str) -> Result<Vec<Conversation>> {
        let row = self.project_row(project)?;
        let dir = self.home.join("chats").join(&row.slug);
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut out: Vec<Conversation> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.updated_at));
        Ok(out)
    }

    fn chat_path(&self, slug: &str, id: &str) -> Result<PathBuf> {
        let safe = !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !safe {
            return Err(Error::InvalidInput(format!(
                "a conversation id is letters, digits, '-' and '_' (at most 64), got {id:?}"
            )));
        }
        Ok(self.home.join("chats").join(slug).join(format!("{id}.json")))
    }
}

#[cfg(test)]
mod tests {
    use api::chat::{ChatMessage, Sampling};

    use super::*;
    use crate::{ProjectTrainRequest, Resume, TrainConfig};

    fn ask(p: &Playground, app: &App, model: ChatModel, text: &str) -> (String, Vec<ChatEvent>) {
        let req = ChatRequest {
            id: format!("{model:?}"),
            project: "chat".into(),
            model,
            messages: vec![ChatMessage { role: "user".into(), content: text.into() }],
            sampling: Sampling { temperature: 0.0, max_tokens: 8, ..Sampling::default() },
        };
        let mut events = Vec::new();
        p.send(app, &req, &mut |e| events.push(e)).unwrap();
        let text = events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::Delta { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        (text, events)
    }

    /// Base and fine-tuned answer from models loaded once; the adapter changes the answer; a
    /// run without an adapter and a bad id are refused.
    #[test]
    fn chat_streams_from_base_and_a_run_and_keeps_models_loaded() {
        let Some(gguf) = crate::models::tests_default_gguf() else { return };
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        app.model_import(&gguf, None).unwrap();
        app.project_new("Chat").unwrap();
        let req = crate::ImportRequest {
            project: "chat".into(),
            source: crate::ImportSource::Sample("tech-qa".into()),
            name: None,
            mapping: None,
            language: None,
        };
        app.data_import(&req).unwrap();
        let mut config =
            TrainConfig { steps: Some(3), batch_size: 2, max_len: 64, ..TrainConfig::default() };
        // Big steps, so three of them visibly change a greedy answer.
        config.adamw.lr = 5e-3;
        let run = ProjectTrainRequest {
            project: "chat".into(),
            dataset: None,
            eval_rows: 2,
            config,
            resume: Resume::No,
        };
        app.train_project(&run, &mut |_| true).unwrap();

        let p = Playground::new();
        let (base, events) = ask(&p, &app, ChatModel::Base, "What is a mutex?");
        assert_eq!(events[0], ChatEvent::Loading);
        assert!(matches!(events.last(), Some(ChatEvent::Done { completion_tokens: 8, .. })));
        assert!(events.iter().filter(|e| matches!(e, ChatEvent::Delta { .. })).count() > 1);
        let (tuned, _) = ask(&p, &app, ChatModel::Run("run-1".into()), "What is a mutex?");
        assert_ne!(base, tuned, "the adapter changes the greedy answer");
        // Next turns: no load, the same greedy answers.
        let (again, events) = ask(&p, &app, ChatModel::Base, "What is a mutex?");
        assert_eq!(again, base);
        assert!(!events.contains(&ChatEvent::Loading));
        assert_eq!(ask(&p, &app, ChatModel::Run("run-1".into()), "What is a mutex?").0, tuned);
        assert_eq!(p.loads(), 2);

        let mut sink = |_| {};
        let mut bad = ChatRequest {
            id: "x".into(),
            project: "chat".into(),
            model: ChatModel::Run("run-9".into()),
            messages: vec![ChatMessage { role: "user".into(), content: "hi".into() }],
            sampling: Sampling::default(),
        };
        let e = p.send(&app, &bad, &mut sink).unwrap_err();
        assert_eq!(e.to_string(), "no run 'run-9' in project 'chat'");
        bad.model = ChatModel::Base;
        bad.sampling.temperature = 9.0;
        let e = p.send(&app, &bad, &mut sink).unwrap_err();
        assert!(e.to_string().starts_with("temperature must be between 0 and 2"), "{e}");

        // Conversations are saved per project, newest first; ids stay file names.
        let mut c = Conversation {
            id: "c-1".into(),
            project: "chat".into(),
            title: "mutex".into(),
            updated_at: 1,
            models: vec![ChatModel::Base, ChatModel::Run("run-1".into())],
            system: String::new(),
            turns: vec![api::chat::Turn {
                user: "What is a mutex?".into(),
                replies: vec![base, tuned],
            }],
            sampling: Sampling::default(),
        };
        app.chat_save(&c).unwrap();
        c.id = "c-2".into();
        c.updated_at = 2;
        app.chat_save(&c).unwrap();
        let ids: Vec<_> = app.chat_list("chat").unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["c-2", "c-1"]);
        c.id = "../evil".into();
        assert!(matches!(app.chat_save(&c), Err(Error::InvalidInput(_))));
    }
}
