//! Every request leaves a trace: a [`Traced`] goes with the request from its arrival, and is
//! recorded once, when the answer ends — or when it is dropped unfinished (the client left, a
//! panic unwound), so no request is lost. A [`Recorder`] thread writes them to SQLite through
//! the app, off the async workers.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use api::serve::Trace;

/// Status recorded for a request whose client left before its answer ended (nginx's 499).
pub(crate) const CLIENT_CLOSED: u16 = 499;

/// Writes traces on its own thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Recorder {
    tx: mpsc::Sender<Trace>,
}

impl Recorder {
    /// The recorder and its thread (which ends once every clone is dropped and the queue is
    /// written).
    pub fn start(app: Arc<app::App>) -> std::io::Result<(Recorder, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Trace>();
        let thread =
            std::thread::Builder::new().name("vibeflow-traces".into()).spawn(move || {
                for t in rx {
                    // A trace that cannot be written (a full disk) must not stop the server.
                    let _ = app.trace_record(&t);
                }
            })?;
        Ok((Recorder { tx }, thread))
    }

    fn record(&self, t: Trace) {
        let _ = self.tx.send(t);
    }
}

/// A request's trace in the making.
pub(crate) struct Traced {
    pub trace: Trace,
    start: Instant,
    first: Option<Instant>,
    recorder: Option<Recorder>,
}

impl Traced {
    /// A request to `endpoint` arrives now.
    pub fn new(recorder: Option<Recorder>, endpoint: &str) -> Traced {
        Traced {
            trace: Trace {
                created_at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0),
                endpoint: endpoint.into(),
                ..Trace::default()
            },
            start: Instant::now(),
            first: None,
            recorder,
        }
    }

    /// The first token came now (later calls change nothing).
    pub fn first_token(&mut self) {
        if self.first.is_none() {
            self.first = Some(Instant::now());
        }
    }

    /// Records the trace with `status`.
    pub fn finish(mut self, status: u16) {
        self.record(status);
    }

    fn record(&mut self, status: u16) {
        let Some(recorder) = self.recorder.take() else { return };
        let mut t = std::mem::take(&mut self.trace);
        t.status = status;
        t.latency_ms = self.start.elapsed().as_millis() as u64;
        t.ttft_ms = self.first.map(|f| (f - self.start).as_millis() as u64).unwrap_or(0);
        recorder.record(t);
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let status = if std::thread::panicking() { 500 } else { CLIENT_CLOSED };
        self.record(status);
    }
}
