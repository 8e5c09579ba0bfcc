//! Context stores shared by the panes: they outlive any one pane, so leaving the Monitor and
//! coming back (or a pane that was never shown) keeps a job's whole history.

use std::collections::HashMap;

use api::train::JobEvent;
use leptos::prelude::*;

use crate::Pane;

/// Which pane the main area shows.
#[derive(Clone, Copy)]
pub struct PaneCtx(pub RwSignal<Pane>);

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
    /// Jobs already attached (attaching twice would double their events).
    attached: RwSignal<Vec<String>>,
}

impl JobsCtx {
    /// An empty store.
    pub fn new() -> JobsCtx {
        JobsCtx {
            events: RwSignal::new(HashMap::new()),
            current: RwSignal::new(None),
            attached: RwSignal::new(Vec::new()),
        }
    }

    /// Streams job `id`'s events into the store (its history first), once per window.
    pub fn attach(self, id: String) {
        if self.attached.get_untracked().contains(&id) {
            return;
        }
        self.attached.update(|a| a.push(id.clone()));
        let events = self.events;
        let key = id.clone();
        leptos::task::spawn_local(async move {
            let _ = crate::ipc::job_attach(id, move |e| {
                events.update(|m| m.entry(key.clone()).or_default().push(e));
            })
            .await;
        });
    }
}

impl Default for JobsCtx {
    fn default() -> Self {
        JobsCtx::new()
    }
}
