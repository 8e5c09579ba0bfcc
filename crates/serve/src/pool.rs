//! The models the server has loaded: each a [`Batcher`] with its tokenizer and template,
//! loaded on first use and kept within the memory budget — the least recently used model with
//! no request running is unloaded first; one with running requests never is.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use app::App;
use engine::batcher::{Backend, Batcher};
use engine::bundle::{Bundle, Chat};
use engine::generate::QuantDecoder;

use crate::error::ApiError;

/// The model file and the adapter folder: what makes two names one loaded model.
pub(crate) type Key = (PathBuf, Option<PathBuf>);

/// A loaded model.
pub(crate) struct Loaded {
    pub key: Key,
    /// The name that loaded it (for the status).
    pub label: String,
    pub chat: Chat,
    pub batcher: Batcher,
    /// Estimated memory, bytes.
    pub bytes: u64,
    /// Requests using it now.
    active: AtomicUsize,
    /// A decoding step frees and reallocates its buffers every few milliseconds: kept in the
    /// allocator, not faulted in and zeroed again (~15 % of a batched step's CPU time).
    _pages: app::HoldPages,
}

/// A model in use by one request: while it lives the model is not unloaded.
pub(crate) struct Lease(Arc<Loaded>);

impl std::ops::Deref for Lease {
    type Target = Loaded;
    fn deref(&self) -> &Loaded {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lease(m: &Arc<Loaded>) -> Lease {
    m.active.fetch_add(1, Ordering::SeqCst);
    Lease(m.clone())
}

/// Loaded models, least recently used first.
pub(crate) struct Pool {
    models: Mutex<Vec<Arc<Loaded>>>,
    /// One load at a time (two requests for a cold model load it once).
    loading: tokio::sync::Mutex<()>,
    budget: u64,
    max_batch: usize,
}

impl Pool {
    /// An empty pool.
    pub fn new(budget_mb: u64, max_batch: usize) -> Pool {
        Pool {
            models: Mutex::new(Vec::new()),
            loading: tokio::sync::Mutex::new(()),
            budget: budget_mb.saturating_mul(1 << 20),
            max_batch: max_batch.max(1),
        }
    }

    /// Names of the loaded models, most recently used last.
    pub fn loaded(&self) -> Vec<String> {
        self.lock().iter().map(|m| m.label.clone()).collect()
    }

    /// Drops every model (their decoding threads end).
    pub fn clear(&self) {
        let all = std::mem::take(&mut *self.lock());
        drop(all);
    }

    /// The model for `served`, loading it first when it is not loaded.
    pub async fn get(&self, app: &Arc<App>, served: &app::Served) -> Result<Lease, ApiError> {
        let key: Key = (served.base.clone(), served.adapter.clone());
        if let Some(m) = self.touch(&key) {
            return Ok(m);
        }
        let _one = self.loading.lock().await;
        if let Some(m) = self.touch(&key) {
            return Ok(m);
        }
        let need = estimate(&key);
        if need > self.budget {
            return Err(ApiError {
                status: axum::http::StatusCode::INSUFFICIENT_STORAGE,
                message: format!(
                    "model '{}' needs about {} MB, more than the server's memory budget of {} MB: start the server with a larger --memory-budget",
                    served.name,
                    need >> 20,
                    self.budget >> 20
                ),
                kind: "server_error",
                param: None,
                code: Some("memory_budget_exceeded"),
            });
        }
        self.evict(need);
        let app = app.clone();
        let (label, max_batch) = (served.name.clone(), self.max_batch);
        let k = key.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&app, k, label, max_batch))
            .await
            .map_err(|e| ApiError::internal(format!("loading the model failed: {e}")))?
            .map_err(ApiError::from_app)?;
        let loaded = Arc::new(loaded);
        let lease = lease(&loaded);
        self.lock().push(loaded);
        // Its real size is known now.
        self.evict(0);
        Ok(lease)
    }

    /// The loaded model for `key`, marked most recently used and leased.
    fn touch(&self, key: &Key) -> Option<Lease> {
        let mut models = self.lock();
        let i = models.iter().position(|m| m.key == *key)?;
        let m = models.remove(i);
        let l = lease(&m);
        models.push(m);
        Some(l)
    }

    /// Unloads idle models, least recently used first, until `extra` more bytes fit.
    fn evict(&self, extra: u64) {
        let mut gone = Vec::new();
        {
            let mut models = self.lock();
            loop {
                let used: u64 = models.iter().map(|m| m.bytes).sum();
                if used + extra <= self.budget {
                    break;
                }
                let Some(i) = models.iter().position(|m| m.active.load(Ordering::SeqCst) == 0)
                else {
                    break;
                };
                gone.push(models.remove(i));
            }
        }
        // Joining the decoding threads outside the lock.
        drop(gone);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Loaded>>> {
        self.models.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Memory a model will take before it is loaded: its file (a GGUF stays quantized; a folder's
/// safetensors as they are) and its adapter.
fn estimate(key: &Key) -> u64 {
    size_of(&key.0) + key.1.as_deref().map(size_of).unwrap_or(0)
}

fn size_of(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

fn rss() -> u64 {
    memory_stats::memory_stats().map(|m| m.physical_mem as u64).unwrap_or(0)
}

fn load(app: &App, key: Key, label: String, max_batch: usize) -> app::Result<Loaded> {
    let (path, adapter) = (&key.0, key.1.as_deref());
    let device = app.device()?;
    let before = rss();
    let chat = Chat::open(path)?;
    let mut quant = None;
    if !path.is_dir()
        && let Ok(mut q) = QuantDecoder::open(path, &device)
        && adapter.is_none_or(|dir| q.apply_adapter(dir).is_ok())
    {
        quant = Some(q);
    }
    let backend = match quant {
        Some(q) => Backend::Quant(q),
        None => {
            // Where the quantized path cannot (a folder, another architecture, an adapter our
            // kernels cannot place): the f32 weights with the adapter unmerged.
            let mut b = Bundle::open(path, &device)?;
            if let Some(dir) = adapter {
                engine::adapter::load_peft(&mut b.model, dir, &b.device)?;
            }
            Backend::F32(Box::new(b))
        }
    };
    // What loading took (the f32 path dequantizes: several times the file), at least the file.
    let bytes = rss().saturating_sub(before).max(estimate(&key));
    // The model's own context: an alias's shorter one clamps each request's tokens instead.
    let context = app::aliases::context_len(None, chat.context);
    let batcher =
        Batcher::start(backend, chat.tokenizer.clone(), chat.eos.clone(), context, max_batch);
    Ok(Loaded {
        key,
        label,
        chat,
        batcher,
        bytes,
        active: AtomicUsize::new(0),
        _pages: app::HoldPages::new(),
    })
}
