//! Context stores shared by the panes: they outlive any one pane, so leaving the Monitor and
//! coming back (or a pane that was never shown) keeps a job's whole history.

use std::collections::HashMap;

use api::train::JobEvent;
use leptos::prelude::*;

use crate::Pane;

/// Which pane the main area shows.
#[derive(Clone, Copy)]
pub struct PaneCtx(pub RwSignal<Pane>);

/// What the Train pane's form starts from next, once: a run's settings (the assistant's "Use
/// this configuration"), or a change to the recommended ones (a Monitor alert's fix), each
/// for one project.
#[derive(Clone, Copy)]
pub struct DraftCtx {
    /// Settings to start from.
    pub request: RwSignal<Option<api::train::ProjectTrainRequest>>,
    /// A change to apply, with its project.
    pub change: RwSignal<Option<(String, api::advisor::Change)>>,
}

/// The brainstorm conversations of this window, by project: (from the user, text), oldest
/// first. They outlive the pane, so a visit to the Data pane mid-conversation loses nothing.
#[derive(Clone, Copy, Default)]
pub struct AssistCtx(pub RwSignal<HashMap<String, Vec<(bool, String)>>>);

/// A trace to re-run in the Playground ("Experiment" in Traces), taken once by the Playground.
#[derive(Clone, Copy)]
pub struct ExperimentCtx(pub RwSignal<Option<Experiment>>);

/// The conversation of a trace, ready to edit and send again.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    /// Its earlier turns, system prompt, models and sampling.
    pub conversation: api::chat::Conversation,
    /// Its last user message, waiting in the composer.
    pub input: String,
    /// What the traced model answered, shown beside it.
    pub note: String,
}

/// The path of a file dropped on the window, for the Data pane to inspect.
#[derive(Clone, Copy)]
pub struct DropCtx(pub RwSignal<Option<String>>);

/// Every event of every job this window has attached to, by job id, and the job the Monitor
/// follows.
#[derive(Clone, Copy)]
pub struct JobsCtx {
    /// Events in order, per job.
    pub events: RwSignal<HashMap<String, Vec<JobEvent>>>,
    /// The job the Monitor shows.
    pub current: RwSignal<Option<String>>,
    /// Jobs that run now (in this process, or in another one read from its log): a job read
    /// from the log of a dead process has no end event and is not among them.
    pub live: RwSignal<Vec<String>>,
    /// Jobs already attached (attaching twice would double their events).
    attached: RwSignal<Vec<String>>,
}

impl JobsCtx {
    /// An empty store.
    pub fn new() -> JobsCtx {
        JobsCtx {
            events: RwSignal::new(HashMap::new()),
            current: RwSignal::new(None),
            live: RwSignal::new(Vec::new()),
            attached: RwSignal::new(Vec::new()),
        }
    }

    /// Streams job `id`'s events into the store (its history first), once per window. A job
    /// this window's process does not run (an earlier session's, the CLI's) is read from its
    /// log, again every second while it runs.
    pub fn attach(self, id: String) {
        if self.attached.get_untracked().contains(&id) {
            return;
        }
        self.attached.update(|a| a.push(id.clone()));
        let (events, live) = (self.events, self.live);
        let key = id.clone();
        leptos::task::spawn_local(async move {
            let streamed = crate::ipc::job_attach(id.clone(), move |e| {
                events.update(|m| m.entry(key.clone()).or_default().push(e));
            })
            .await;
            if streamed == Ok(true) {
                live.update(|l| l.push(id));
                return;
            }
            loop {
                let Ok(all) = crate::ipc::job_events(id.clone()).await else { return };
                let ended = all.iter().any(|e| matches!(e, JobEvent::Ended { .. }));
                events.update(|m| {
                    m.insert(id.clone(), all);
                });
                let running = crate::ipc::job_list().await.is_ok_and(|l| {
                    l.iter().any(|j| j.id == id && j.state == api::train::JobState::Running)
                });
                if ended || !running {
                    live.update(|l| l.retain(|x| x != &id));
                    return;
                }
                if !live.with_untracked(|l| l.contains(&id)) {
                    live.update(|l| l.push(id.clone()));
                }
                sleep(1000).await;
            }
        });
    }
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: i32) {
    let wait = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(wait).await;
}

impl Default for JobsCtx {
    fn default() -> Self {
        JobsCtx::new()
    }
}
