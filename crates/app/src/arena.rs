//! The arena: 2–4 models answer one prompt at the same time, each streamed with its timings;
//! the user votes (blind if they like), the session goes on from the preferred answer, and
//! the votes become ratings and a DPO dataset. Sessions and votes live in SQLite.

use std::time::Instant;

use api::chat::{ChatEvent, ChatMessage, ChatModel, ChatRequest};
use api::eval::{
    ArenaAnswer, ArenaEvent, ArenaRequest, ArenaSession, ArenaTurn, Battle, PrefsExport, Ratings,
    VoteChoice, VoteRequest,
};

use crate::{App, Error, Playground, Result};

/// Panels of one session.
const PANELS: std::ops::RangeInclusive<usize> = 2..=4;

/// Bootstrap rounds behind a rating's interval.
const ROUNDS: usize = 1000;

/// Where `prefs export` writes, inside the project (the file `train --method dpo` reads).
pub const PREFS_FILE: &str = "prefs/preferences.jsonl";

impl App {
    /// Asks every panel of a session (new, or `req.session` continued) `req.prompt` at once,
    /// streaming to `on_event` from the panels' threads; records the turn and returns it. A
    /// panel that fails says so and the others go on.
    pub fn arena_turn(
        &self,
        playground: &Playground,
        req: &ArenaRequest,
        on_event: &(dyn Fn(ArenaEvent) + Sync),
    ) -> Result<ArenaTurn> {
        req.sampling.validate().map_err(Error::InvalidInput)?;
        if req.prompt.trim().is_empty() {
            return Err(Error::InvalidInput("the prompt is empty: type a message".into()));
        }
        let project = match &req.project {
            Some(p) => self.project_row(p)?.slug,
            None => String::new(),
        };
        let session = match &req.session {
            Some(id) => self.arena_session(req.project.as_deref(), id)?,
            None => self.arena_new(&project, &req.models, req.blind)?,
        };
        let turn = session.turns.len();
        on_event(ArenaEvent::Session { id: session.id.clone(), turn });
        let history = history(&session);
        let start = Instant::now();
        let ms = || start.elapsed().as_millis() as u64;
        let answers: Vec<ArenaAnswer> = std::thread::scope(|scope| {
            let threads: Vec<_> = session
                .models
                .iter()
                .enumerate()
                .map(|(panel, model)| {
                    let mut messages = history[panel].clone();
                    messages.push(ChatMessage { role: "user".into(), content: req.prompt.clone() });
                    let chat = ChatRequest {
                        id: format!("{}-{}-{turn}-{panel}", project, session.id),
                        project: project.clone(),
                        model: model.clone(),
                        messages,
                        sampling: req.sampling.clone(),
                    };
                    scope.spawn(move || {
                        let begun = ms();
                        let mut first = None::<u64>;
                        let mut text = String::new();
                        let mut done = None;
                        let sent = playground.send(self, &chat, &mut |e| match e {
                            ChatEvent::Delta { text: t } => {
                                first.get_or_insert(ms());
                                text.push_str(&t);
                                on_event(ArenaEvent::Delta { panel, text: t });
                            }
                            ChatEvent::Done { completion_tokens, finish_reason, .. } => {
                                done = Some((completion_tokens, finish_reason));
                            }
                            _ => {}
                        });
                        let end = ms();
                        let outcome = match (sent, done) {
                            (Ok(()), Some(done)) => Ok(done),
                            (Err(e), _) => Err(e.to_string()),
                            (Ok(()), None) => Err("the model ended without an answer".into()),
                        };
                        let answer = match outcome {
                            Ok((tokens, finish)) => {
                                let first_ms = first.unwrap_or(end);
                                // Tokens after the first, over the time after it: the decode
                                // speed, apart from the load and the prompt.
                                let after = (end.saturating_sub(first_ms)) as f64 / 1000.0;
                                let tps = if tokens > 1 && after > 0.0 {
                                    (tokens - 1) as f64 / after
                                } else {
                                    0.0
                                };
                                ArenaAnswer {
                                    text,
                                    first_token_ms: first_ms,
                                    end_ms: end,
                                    start_ms: begun,
                                    tokens,
                                    tokens_per_second: tps,
                                    finish,
                                }
                            }
                            Err(message) => {
                                on_event(ArenaEvent::Failed { panel, message: message.clone() });
                                ArenaAnswer {
                                    text: message,
                                    first_token_ms: end,
                                    end_ms: end,
                                    start_ms: begun,
                                    tokens: 0,
                                    tokens_per_second: 0.0,
                                    finish: "failed".into(),
                                }
                            }
                        };
                        if answer.finish != "failed" {
                            on_event(ArenaEvent::Done { panel, answer: answer.clone() });
                        }
                        answer
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap_or_else(|_| panicked())).collect()
        });
        let turn_row = ArenaTurn { prompt: req.prompt.clone(), answers, vote: None, why: None };
        self.store.upsert_arena_turn(&turn_row_of(&project, &session.id, turn, &turn_row))?;
        Ok(turn_row)
    }

    /// Records a vote on a turn (replacing an earlier one); the session as it now stands.
    pub fn arena_vote(&self, req: &VoteRequest) -> Result<ArenaSession> {
        let session = self.arena_session(req.project.as_deref(), &req.session)?;
        let turn = session.turns.get(req.turn).ok_or_else(|| {
            Error::NotFound(format!("session '{}' has no turn {}", session.id, req.turn + 1))
        })?;
        if let VoteChoice::Prefer { panel } = req.choice {
            match turn.answers.get(panel) {
                None => {
                    return Err(Error::InvalidInput(format!(
                        "there is no answer {} in this turn (it has {})",
                        panel + 1,
                        turn.answers.len()
                    )));
                }
                Some(a) if a.finish == "failed" => {
                    return Err(Error::InvalidInput(format!(
                        "answer {} failed: vote for an answer that exists",
                        panel + 1
                    )));
                }
                Some(_) => {}
            }
        }
        let project = session.project.clone().unwrap_or_default();
        let voted = ArenaTurn {
            vote: Some(req.choice.clone()),
            why: req.why.clone().filter(|w| !w.trim().is_empty()),
            ..turn.clone()
        };
        let mut row = turn_row_of(&project, &session.id, req.turn, &voted);
        row.voted_at = Some(crate::now());
        self.store.upsert_arena_turn(&row)?;
        self.arena_session(req.project.as_deref(), &req.session)
    }

    /// A project's arena sessions (outside any project with `None`), newest first.
    pub fn arena_sessions(&self, project: Option<&str>) -> Result<Vec<ArenaSession>> {
        let slug = match project {
            Some(p) => self.project_row(p)?.slug,
            None => String::new(),
        };
        let turns = self.store.arena_turns(Some(&slug), None)?;
        self.store
            .arena_sessions(Some(&slug))?
            .into_iter()
            .map(|row| session_of(row, &turns))
            .collect()
    }

    /// One session.
    pub fn arena_session(&self, project: Option<&str>, id: &str) -> Result<ArenaSession> {
        let slug = match project {
            Some(p) => self.project_row(p)?.slug,
            None => String::new(),
        };
        let row = self
            .store
            .arena_sessions(Some(&slug))?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::NotFound(format!("no arena session '{id}'")))?;
        let turns = self.store.arena_turns(Some(&slug), Some(id))?;
        session_of(row, &turns)
    }

    /// Win rates and Bradley–Terry ratings from the votes of a project (`Some`) or of every
    /// session (`None`: a project's base and runs are named `project/base`, `project/run-1`).
    pub fn arena_ratings(&self, project: Option<&str>) -> Result<Ratings> {
        let slug = match project {
            Some(p) => Some(self.project_row(p)?.slug),
            None => None,
        };
        let sessions = self.store.arena_sessions(slug.as_deref())?;
        let turns = self.store.arena_turns(slug.as_deref(), None)?;
        let mut battles = Vec::new();
        let mut votes = 0;
        for row in sessions {
            let s = session_of(row, &turns)?;
            let names: Vec<String> = s
                .models
                .iter()
                .map(|m| rating_name(m, s.project.as_deref(), slug.is_none()))
                .collect();
            for t in &s.turns {
                if t.vote.is_some() {
                    votes += 1;
                }
                battles.extend(battles_of(t, &names));
            }
        }
        Ok(Ratings { project: slug, votes, ratings: metrics::ratings(&battles, ROUNDS, 0x5eed) })
    }

    /// Writes a project's votes as preference pairs (TRL's conversational format: prompt,
    /// chosen, rejected) to `prefs/preferences.jsonl` and commits it; a copy at `out` too.
    pub fn prefs_export(
        &self,
        project: &str,
        out: Option<&std::path::Path>,
    ) -> Result<PrefsExport> {
        let slug = self.project_row(project)?.slug;
        let (mut lines, mut skipped) = (Vec::new(), 0);
        for s in self.arena_sessions(Some(&slug))?.into_iter().rev() {
            for (i, t) in s.turns.iter().enumerate() {
                let Some(vote) = &t.vote else { continue };
                let VoteChoice::Prefer { panel } = vote else {
                    skipped += 1;
                    continue;
                };
                let mut prompt = history_until(&s, i)[*panel].clone();
                prompt.push(ChatMessage { role: "user".into(), content: t.prompt.clone() });
                let said =
                    |a: &ArenaAnswer| serde_json::json!([{"role": "assistant", "content": a.text}]);
                for (j, other) in t.answers.iter().enumerate() {
                    if j == *panel || other.finish == "failed" {
                        continue;
                    }
                    let line = serde_json::json!({
                        "prompt": prompt,
                        "chosen": said(&t.answers[*panel]),
                        "rejected": said(other),
                    });
                    lines.push(line.to_string());
                }
            }
        }
        if lines.is_empty() {
            return Err(Error::NotFound(format!(
                "project '{slug}' has no vote preferring one answer yet: vote in the Arena \
                 (vibeflow compare -p {slug} --models A,B --prompt TEXT --prefer N)"
            )));
        }
        let text = lines.join("\n") + "\n";
        let _held = self.lock_project(&slug)?;
        let dir = self.project_dir(&slug);
        let path = dir.join(PREFS_FILE);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let pairs = lines.len();
        // The same votes exported twice change nothing: no second commit.
        let same = std::fs::read(&path).is_ok_and(|old| old == text.as_bytes());
        let commit = if same {
            None
        } else {
            crate::datasets::write_file(&path, text.as_bytes())?;
            let message = format!("Preferences: {pairs} pairs from the arena's votes");
            let rel = std::path::Path::new(PREFS_FILE);
            Some(self.commit_with_rows(&slug, &[rel], &message, |_| Vec::new())?)
        };
        if let Some(out) = out {
            crate::datasets::write_file(out, text.as_bytes())?;
        }
        let shown = out.unwrap_or(&path);
        Ok(PrefsExport { path: shown.display().to_string(), pairs, skipped, commit })
    }

    fn arena_new(&self, project: &str, models: &[ChatModel], blind: bool) -> Result<ArenaSession> {
        if !PANELS.contains(&models.len()) {
            return Err(Error::InvalidInput(format!(
                "the arena compares 2 to 4 models, got {}",
                models.len()
            )));
        }
        for m in models {
            if project.is_empty() && !matches!(m, ChatModel::Installed(_)) {
                return Err(Error::InvalidInput(format!(
                    "'{}' belongs to a project: name it with -p",
                    m.label()
                )));
            }
            // Refuse a model that cannot answer before any panel starts.
            self.chat_model_files(project, m)?;
        }
        let taken = self.store.arena_sessions(Some(project))?;
        let n = taken
            .iter()
            .filter_map(|s| s.id.strip_prefix("arena-")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let row = store::ArenaSessionRow {
            project: project.to_string(),
            id: format!("arena-{}", n + 1),
            models: serde_json::to_string(models).unwrap_or_default(),
            blind,
            created_at: crate::now(),
        };
        self.store.insert_arena_session(&row)?;
        session_of(row, &[])
    }
}

/// The conversation each panel continues: every earlier turn's prompt and its preferred
/// answer (each panel's own where there was no preference).
fn history(s: &ArenaSession) -> Vec<Vec<ChatMessage>> {
    history_until(s, s.turns.len())
}

fn history_until(s: &ArenaSession, turns: usize) -> Vec<Vec<ChatMessage>> {
    let mut out = vec![Vec::new(); s.models.len()];
    for t in &s.turns[..turns] {
        for (panel, msgs) in out.iter_mut().enumerate() {
            let answer = match &t.vote {
                Some(VoteChoice::Prefer { panel: p }) => &t.answers[*p],
                _ => &t.answers[panel],
            };
            msgs.push(ChatMessage { role: "user".into(), content: t.prompt.clone() });
            msgs.push(ChatMessage { role: "assistant".into(), content: answer.text.clone() });
        }
    }
    out
}

/// The pairwise outcomes of a voted turn: the preferred answer beats each other one; a tie
/// or "both bad" ties every pair. Failed answers take no part.
pub(crate) fn battles_of(t: &ArenaTurn, names: &[String]) -> Vec<Battle> {
    let Some(vote) = &t.vote else { return Vec::new() };
    let ok: Vec<usize> = (0..t.answers.len().min(names.len()))
        .filter(|&i| t.answers[i].finish != "failed")
        .collect();
    let mut out = Vec::new();
    for (k, &i) in ok.iter().enumerate() {
        for &j in &ok[k + 1..] {
            let score = match vote {
                VoteChoice::Prefer { panel } if *panel == i => 1.0,
                VoteChoice::Prefer { panel } if *panel == j => 0.0,
                // A third model's win says nothing about these two.
                VoteChoice::Prefer { .. } => continue,
                VoteChoice::Tie | VoteChoice::BothBad => 0.5,
            };
            out.push(Battle { a: names[i].clone(), b: names[j].clone(), score });
        }
    }
    out
}

fn rating_name(m: &ChatModel, project: Option<&str>, overall: bool) -> String {
    let own = match m {
        ChatModel::Base => "base".to_string(),
        ChatModel::Run(r) => r.clone(),
        ChatModel::Installed(id) => return id.clone(),
    };
    match project {
        Some(p) if overall => format!("{p}/{own}"),
        _ => own,
    }
}

fn session_of(row: store::ArenaSessionRow, turns: &[store::ArenaTurnRow]) -> Result<ArenaSession> {
    let bad = |what: &str, e: serde_json::Error| {
        Error::Integrity(format!("arena session '{}': its {what} do not read: {e}", row.id))
    };
    let models: Vec<ChatModel> = serde_json::from_str(&row.models).map_err(|e| bad("models", e))?;
    let mut out = Vec::new();
    for t in turns.iter().filter(|t| t.session == row.id && t.project == row.project) {
        out.push(ArenaTurn {
            prompt: t.prompt.clone(),
            answers: serde_json::from_str(&t.answers).map_err(|e| bad("answers", e))?,
            vote: match &t.vote {
                Some(v) => Some(serde_json::from_str(v).map_err(|e| bad("votes", e))?),
                None => None,
            },
            why: t.why.clone(),
        });
    }
    Ok(ArenaSession {
        id: row.id,
        project: (!row.project.is_empty()).then_some(row.project),
        models,
        blind: row.blind,
        created_at: row.created_at,
        turns: out,
    })
}

fn turn_row_of(project: &str, session: &str, turn: usize, t: &ArenaTurn) -> store::ArenaTurnRow {
    store::ArenaTurnRow {
        project: project.to_string(),
        session: session.to_string(),
        turn: turn as i64,
        prompt: t.prompt.clone(),
        answers: serde_json::to_string(&t.answers).unwrap_or_default(),
        vote: t.vote.as_ref().map(|v| serde_json::to_string(v).unwrap_or_default()),
        why: t.why.clone(),
        voted_at: None,
    }
}

fn panicked() -> ArenaAnswer {
    ArenaAnswer {
        text: "this panel stopped unexpectedly".into(),
        first_token_ms: 0,
        end_ms: 0,
        start_ms: 0,
        tokens: 0,
        tokens_per_second: 0.0,
        finish: "failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three models answer at once (their decoding overlaps in time), votes of each kind
    /// are kept, the next turn continues from the preferred answer, and the votes give
    /// ratings and preference pairs that are committed to the project.
    #[test]
    fn three_models_answer_at_once_and_votes_become_ratings_and_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        let Some(p) = crate::eval::tests::trained(&app, "Arena", 2) else { return };
        let playground = Playground::new();
        let models =
            vec![ChatModel::Base, ChatModel::Run("run-1".into()), ChatModel::Run("run-2".into())];
        let ask = |session: Option<String>, prompt: &str| {
            let req = ArenaRequest {
                project: Some(p.clone()),
                session,
                models: models.clone(),
                blind: true,
                prompt: prompt.into(),
                sampling: api::chat::Sampling {
                    temperature: 0.0,
                    max_tokens: 24,
                    ..Default::default()
                },
            };
            let events = std::sync::Mutex::new(Vec::new());
            let turn =
                app.arena_turn(&playground, &req, &|e| events.lock().unwrap().push(e)).unwrap();
            (turn, events.into_inner().unwrap())
        };
        let (turn, events) = ask(None, "Explain what a mutex is and when to use one.");
        assert_eq!(events[0], ArenaEvent::Session { id: "arena-1".into(), turn: 0 });
        assert_eq!(turn.answers.len(), 3);
        for (i, a) in turn.answers.iter().enumerate() {
            assert_ne!(a.finish, "failed", "{}", a.text);
            let streamed: String = events
                .iter()
                .filter_map(|e| match e {
                    ArenaEvent::Delta { panel, text } if *panel == i => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(streamed, a.text);
            assert!(a.start_ms <= a.first_token_ms && a.first_token_ms <= a.end_ms);
        }
        // At the same time: every panel started before any ended.
        let first_end = turn.answers.iter().map(|a| a.end_ms).min().unwrap();
        let last_start = turn.answers.iter().map(|a| a.start_ms).max().unwrap();
        assert!(last_start < first_end, "{:?}", turn.answers);

        let vote = |turn: usize, choice: VoteChoice| {
            app.arena_vote(&VoteRequest {
                project: Some(p.clone()),
                session: "arena-1".into(),
                turn,
                choice,
                why: Some("more precise".into()),
            })
        };
        let s = vote(0, VoteChoice::Prefer { panel: 1 }).unwrap();
        assert_eq!(s.turns[0].vote, Some(VoteChoice::Prefer { panel: 1 }));
        assert!(matches!(vote(0, VoteChoice::Prefer { panel: 7 }), Err(Error::InvalidInput(_))));
        assert!(matches!(vote(3, VoteChoice::Tie), Err(Error::NotFound(_))));
        // The next turn: every panel continues from run-1's answer.
        let (_, _) = ask(Some("arena-1".into()), "Give an example.");
        let s = app.arena_session(Some(&p), "arena-1").unwrap();
        let h = history_until(&s, 1);
        assert!(h.iter().all(|m| m[1].content == s.turns[0].answers[1].text));
        vote(1, VoteChoice::Tie).unwrap();
        let (_, _) = ask(Some("arena-1".into()), "Thanks.");
        vote(2, VoteChoice::Prefer { panel: 2 }).unwrap();

        let r = app.arena_ratings(Some(&p)).unwrap();
        assert_eq!(r.votes, 3);
        let names: Vec<&str> = r.ratings.iter().map(|x| x.model.as_str()).collect();
        assert_eq!(names.len(), 3);
        let base = r.ratings.iter().find(|x| x.model == "base").unwrap();
        assert_eq!((base.wins, base.losses, base.ties), (0, 2, 2));
        assert!(r.ratings.iter().all(|x| x.elo.is_finite() && x.low <= x.high));
        let overall = app.arena_ratings(None).unwrap();
        assert!(overall.ratings.iter().any(|x| x.model == format!("{p}/run-1")));

        let x = app.prefs_export(&p, None).unwrap();
        assert_eq!((x.pairs, x.skipped), (4, 1));
        assert!(x.commit.is_some());
        let text = std::fs::read_to_string(app.project_dir(&p).join(PREFS_FILE)).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["prompt"][0]["role"], "user");
        assert_eq!(first["chosen"][0]["content"], s.turns[0].answers[1].text.as_str());
        assert_eq!(first["rejected"][0]["content"], s.turns[0].answers[0].text.as_str());
        // The third turn's prompt carries the conversation so far.
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["prompt"].as_array().unwrap().len(), 5);
        // Unchanged votes: no second commit.
        assert_eq!(app.prefs_export(&p, None).unwrap().commit, None);
    }

    #[test]
    fn an_arena_needs_two_to_four_models_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        app.project_new("Empty").unwrap();
        let req = |models: Vec<ChatModel>, project: Option<&str>| ArenaRequest {
            project: project.map(str::to_string),
            session: None,
            models,
            blind: false,
            prompt: "hi".into(),
            sampling: api::chat::Sampling::default(),
        };
        let p = Playground::new();
        let e =
            app.arena_turn(&p, &req(vec![ChatModel::Base], Some("empty")), &|_| {}).unwrap_err();
        assert_eq!(e.to_string(), "the arena compares 2 to 4 models, got 1");
        let two = vec![ChatModel::Base, ChatModel::Run("run-1".into())];
        let e = app.arena_turn(&p, &req(two.clone(), None), &|_| {}).unwrap_err();
        assert_eq!(e.to_string(), "'base model' belongs to a project: name it with -p");
        let e = app.arena_turn(&p, &req(two, Some("empty")), &|_| {}).unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        assert!(app.arena_sessions(Some("empty")).unwrap().is_empty());
        let e = app.prefs_export("empty", None).unwrap_err();
        assert!(e.to_string().contains("no vote preferring one answer yet"), "{e}");
    }
}
