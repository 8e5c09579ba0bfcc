//! One import: source file → normalized chat JSONL, its measures, the report and the previews.
//! One streaming pass over the source — read, measured in parallel batches, written and hashed
//! — whose output is the result when the fixes drop nothing; else a cheap second pass over our
//! own JSONL keeps the rows the fixes keep.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::chat::Conversation;
use crate::quality::{self, Languages, Measured, Report, RowQuality, Tokens};
pub use api::dataset::{Outcome, RowPreview};

use crate::read::{self, Loc, Sniffed};
use crate::shape::Detection;
use crate::thresholds::DETECTION_SAMPLE_ROWS;
use crate::transform::{self, Transform};
use crate::{Error, Result};

/// What [`run`] needs besides the file.
pub struct Options<'a> {
    /// The mapping to apply (detected or confirmed).
    pub detection: &'a Detection,
    /// Fixes, in order.
    pub transforms: &'a [Transform],
    /// The base model's tokenizer.
    pub tokens: &'a dyn Tokens,
    /// Context, cutoff, expected language.
    pub quality: quality::Config,
    /// Told the rows read so far after each batch; `false` stops the import
    /// ([`Error::Cancelled`]), which leaves nothing behind.
    pub on_rows: Option<&'a (dyn Fn(usize) -> bool + Sync)>,
}

/// Rows shown in each preview list.
pub const PREVIEW_ROWS: usize = 10;

/// Rows measured per parallel batch (bounds memory: a few batches of rows are held at a time).
const BATCH: usize = 2048;

/// Rows of the first batch, whose languages are looked for among all of whatlang's.
const FIRST_BATCH: usize = 256;

/// Batches measured at once (see [`run_inner`]).
const IN_FLIGHT: usize = 3;

/// Column names in file order and the first rows, for [`crate::shape::detect`].
pub fn sample(path: &Path, sniffed: &Sniffed) -> Result<(Vec<String>, Vec<read::Fields>)> {
    let mut rows = Vec::new();
    let res = read::read(path, sniffed, &mut |rec| {
        rows.push(rec.fields);
        if rows.len() >= DETECTION_SAMPLE_ROWS { Err(Error::Invalid(STOP.into())) } else { Ok(()) }
    });
    match res {
        Err(Error::Invalid(m)) if m == STOP => {}
        other => other?,
    }
    let columns = if sniffed.format == read::Format::Csv {
        read::csv_header(path, sniffed)?
    } else {
        let mut cols: Vec<String> = Vec::new();
        for r in &rows {
            for k in r.keys() {
                if !cols.contains(k) {
                    cols.push(k.clone());
                }
            }
        }
        cols
    };
    Ok((columns, rows))
}

const STOP: &str = "\u{0}stop";

/// Reads `path` with the chosen mapping, writes the kept rows to `out` as chat JSONL, and
/// reports. On error nothing is left at `out`.
pub fn run(path: &Path, sniffed: &Sniffed, opts: &Options, out: &Path) -> Result<Outcome> {
    let all = temp_path(out, "all");
    let res = run_inner(path, sniffed, opts, out, &all);
    let _ = std::fs::remove_file(&all);
    if res.is_err() {
        let _ = std::fs::remove_file(out);
    }
    res
}

fn run_inner(
    path: &Path,
    sniffed: &Sniffed,
    opts: &Options,
    out: &Path,
    all: &Path,
) -> Result<Outcome> {
    let mapping = &opts.detection.mapping;
    let mut measures: Vec<Measured> = Vec::new();
    let mut locs: Vec<Loc> = Vec::new();
    let every_language = opts.transforms.iter().any(Transform::needs_every_language);
    // One row: its conversation, JSONL line and measures.
    let one = |index: usize, fields: read::Fields, langs: &Languages| {
        let c = mapping.conversation(fields);
        let mut line = c.to_line();
        let check = quality::check_language(index, every_language);
        let m = quality::measure(&c, &line, opts.tokens, check.then_some(langs));
        line.push('\n');
        (m, line)
    };
    // A batch, in parallel; the first error in file order stops the import.
    let measure = |rows: &mut Rows, first: usize, langs: &Languages| -> Result<Measures> {
        let done: Vec<Result<(Loc, (Measured, String))>> = if rows.lines.is_empty() {
            (rows.records.par_drain(..).enumerate())
                .map(|(i, r)| Ok((r.loc, one(first + i, r.fields, langs))))
                .collect()
        } else {
            let Rows { text, lines, .. } = &*rows;
            (0..lines.len())
                .into_par_iter()
                .map(|i| {
                    let (line, end) = lines[i];
                    let start = if i == 0 { 0 } else { lines[i - 1].1 };
                    let r = read::jsonl_record(path, line, &text[start..end])?;
                    Ok((r.loc, one(first + i, r.fields, langs)))
                })
                .collect()
        };
        let mut out = Measures::default();
        for row in done {
            let (loc, (m, line)) = row?;
            out.locs.push(loc);
            out.measures.push(m);
            out.lines.push(line);
        }
        Ok(out)
    };
    // Three stages, each on its own thread, with two batches in flight between them (memory
    // stays bounded by the batch size): reading (JSON Lines are only split into lines there);
    // parsing and measuring (on rayon's threads); writing and hashing the lines.
    let (written, (quality, report)) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Rows>(2);
        // Batches measured go back to the reader, emptied: their buffers are reused, not
        // allocated (and zeroed by the system) again.
        let (give_back, used) = std::sync::mpsc::channel::<Rows>();
        let reader = scope.spawn(move || {
            // A small first batch: it picks the languages to look for, at whatlang's full cost.
            let mut size = FIRST_BATCH;
            let read_rows = std::cell::Cell::new(0usize);
            let hand_over = |batch: &mut Rows, size: &mut usize| -> Result<()> {
                if batch.len() == *size {
                    *size = BATCH;
                    read_rows.set(read_rows.get() + batch.len());
                    if opts.on_rows.is_some_and(|go_on| !go_on(read_rows.get())) {
                        return Err(Error::Cancelled);
                    }
                    let full = std::mem::replace(batch, used.try_recv().unwrap_or_default());
                    // The receiver only goes away after an error, reported below.
                    tx.send(full).map_err(|_| Error::Invalid(STOP.into()))?;
                }
                Ok(())
            };
            let mut batch = Rows::default();
            let res = if sniffed.format == read::Format::Jsonl {
                read::jsonl_lines(path, sniffed, &mut |line, text| {
                    batch.text.extend_from_slice(text);
                    batch.lines.push((line, batch.text.len()));
                    hand_over(&mut batch, &mut size)
                })
            } else {
                read::read(path, sniffed, &mut |rec| {
                    batch.records.push(rec);
                    hand_over(&mut batch, &mut size)
                })
            };
            // The rows before an error are still measured: an earlier row's own error wins.
            if batch.len() > 0 {
                let _ = tx.send(batch);
            }
            res
        });
        let (to_writer, lines) = std::sync::mpsc::sync_channel::<Vec<String>>(2);
        // Without fixes every row is kept: the rows as written are the result, made durable
        // while the rows are analyzed.
        let sync = opts.transforms.is_empty();
        let writer = scope.spawn(move || write_lines(all, lines, sync));
        let mut failed = None;
        let mut duplicates = quality::Duplicates::default();
        // The first batch's rows are checked against every language; later ones against the
        // languages it showed plus the most written ones (the same answers where it matters,
        // far cheaper): it is measured alone.
        let every = Languages::all();
        let focused = std::sync::OnceLock::new();
        let mut batches = rx.into_iter();
        // Then a few batches are measured at once, each one a task of rayon's whose rows are
        // spread over its threads, and taken in file order as they are done: their rows kept,
        // their duplicates found, their lines to the writer. (One batch at a time, the threads
        // that had finished their share of it waited for the last one, and for the batch to be
        // taken: on 8 and 16 threads, batches four times as large had made the import 2–15 %
        // faster.)
        rayon::in_place_scope(|tasks| {
            let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, Result<Measures>)>();
            let mut waiting = std::collections::BTreeMap::new();
            let (mut spawned, mut taken, mut start, mut first_bytes) = (0, 0, 0, 0);
            let mut reading = true;
            loop {
                while let Ok((seq, measured)) = done_rx.try_recv() {
                    waiting.insert(seq, measured);
                }
                while let Some(measured) = waiting.remove(&taken) {
                    let done = match measured {
                        Ok(done) => done,
                        Err(e) => {
                            failed = Some(e);
                            return;
                        }
                    };
                    if taken == 0 {
                        let _ = focused
                            .set(Languages::focused(done.measures.iter().filter_map(|m| m.lang)));
                        // JSON Lines: the rows to come, estimated from the first rows' bytes,
                        // are reserved at once. Grown by doubling, the measures were copied into
                        // fresh memory again and again, which the kernel zeroes first (~3 % of a
                        // 400,000-row import). Memory reserved and not used is never touched.
                        let rows = (done.measures.len() as u64 * sniffed.bytes)
                            .checked_div(first_bytes)
                            .map_or(0, |rows| (rows + rows / 8).min(sniffed.bytes / 2) as usize);
                        measures.reserve(rows);
                        locs.reserve(rows);
                        duplicates.reserve(rows);
                    }
                    taken += 1;
                    duplicates.add(&done.measures);
                    locs.extend(done.locs);
                    measures.extend(done.measures);
                    if to_writer.send(done.lines).is_err() {
                        return; // The writer failed: its error is reported below.
                    }
                }
                let alone = spawned == 1 && taken == 0;
                if reading && spawned - taken < IN_FLIGHT && !alone {
                    if let Some(mut batch) = batches.next() {
                        let (seq, first) = (spawned, start);
                        (spawned, start) = (spawned + 1, start + batch.len());
                        if seq == 0 {
                            first_bytes = batch.text.len() as u64;
                        }
                        let langs = focused.get().unwrap_or(&every);
                        let (done_tx, give_back) = (done_tx.clone(), give_back.clone());
                        let measure = &measure;
                        tasks.spawn(move |_| {
                            // A panic is an error of this import, not a hang of its thread.
                            let run =
                                std::panic::AssertUnwindSafe(|| measure(&mut batch, first, langs));
                            let measured = std::panic::catch_unwind(run).unwrap_or_else(|_| {
                                Err(Error::file(path, "measuring rows crashed"))
                            });
                            batch.clear();
                            let _ = give_back.send(batch);
                            let _ = done_tx.send((seq, measured));
                        });
                        continue;
                    }
                    reading = false;
                }
                if spawned == taken {
                    return;
                }
                // Each task sends its batch's result, and this end holds a sender.
                let Ok((seq, measured)) = done_rx.recv() else { return };
                waiting.insert(seq, measured);
            }
        });
        drop(batches);
        drop(to_writer);
        // Analyzed while the writer finishes and syncs.
        let analyzed = (failed.is_none() && !measures.is_empty())
            .then(|| quality::analyze_found(&measures, &opts.quality, &duplicates));
        let wrote = writer.join().unwrap_or_else(|_| Err(Error::file(all, "the writer crashed")));
        let read = reader.join().unwrap_or_else(|_| Err(Error::file(path, "the reader crashed")));
        if let Some(e) = failed {
            return Err(e);
        }
        // A writer's error stops the reader too: report the writer's then.
        let written = match read {
            Ok(()) => wrote,
            Err(e) => wrote.and(Err(e)),
        }?;
        // Nothing failed and nothing was analyzed: there were no rows.
        let analyzed = analyzed.ok_or_else(|| {
            Error::file(path, "no rows: the file has a header or brackets but no data")
        })?;
        Ok((written, analyzed))
    })?;

    let keep = transform::apply(opts.transforms, &measures, &quality);
    let kept = keep.iter().filter(|&&k| k).count();
    if kept == 0 {
        return Err(Error::file(path, "the fixes leave no rows: relax them"));
    }
    let dropped = measures.len() - kept;
    let result = if dropped == 0 {
        report.clone()
    } else {
        let kept_measures: Vec<Measured> =
            measures.iter().zip(&keep).filter(|(_, k)| **k).map(|(m, _)| *m).collect();
        quality::analyze(&kept_measures, &opts.quality).1
    };

    // Which source rows to preview: the first ones, and the worst ones.
    let mut order: Vec<usize> = (0..quality.len()).filter(|&i| quality[i].score < 100).collect();
    order.sort_by_key(|&i| (quality[i].score, i));
    order.truncate(PREVIEW_ROWS);
    let first: Vec<usize> = (0..quality.len().min(PREVIEW_ROWS)).collect();
    let mut shown: Vec<usize> = first.iter().chain(&order).copied().collect();
    shown.sort_unstable();
    shown.dedup();
    let lines = read_lines(all, &written.offsets, &shown)?;
    let previews: Vec<(usize, RowPreview)> = shown
        .iter()
        .zip(lines)
        .map(|(&i, line)| {
            let conv: Conversation = serde_json::from_str(&line).unwrap_or_default();
            (i, preview(i, locs[i], &conv, &measures[i], &quality[i], &report, !keep[i]))
        })
        .collect();

    let (sha256, bytes) = if dropped == 0 {
        // Nothing dropped: the rows as written are the result.
        let done = written.finish()?;
        std::fs::rename(all, out).map_err(|e| Error::io(out, e))?;
        done
    } else {
        drop(written);
        keep_rows(all, out, &keep)?
    };
    let pick = |idx: &[usize]| -> Vec<RowPreview> {
        idx.iter()
            .filter_map(|i| previews.iter().find(|(j, _)| j == i).map(|(_, p)| p.clone()))
            .collect()
    };
    Ok(Outcome {
        preview: pick(&first),
        worst: pick(&order),
        kept,
        dropped,
        report,
        result,
        sha256,
        bytes,
    })
}

/// A batch of rows as the reader hands them over: records it parsed (CSV, JSON arrays,
/// Parquet), or JSON Lines not parsed yet — their text one after another, and each line's
/// number and where its text ends.
#[derive(Default)]
struct Rows {
    records: Vec<read::Record>,
    text: Vec<u8>,
    lines: Vec<(u64, usize)>,
}

impl Rows {
    fn len(&self) -> usize {
        self.records.len() + self.lines.len()
    }

    fn clear(&mut self) {
        self.records.clear();
        self.text.clear();
        self.lines.clear();
    }
}

/// A batch's rows, measured.
#[derive(Default)]
struct Measures {
    locs: Vec<Loc>,
    measures: Vec<Measured>,
    lines: Vec<String>,
}

/// A JSONL file being written: its lines' starts, size and sha256.
struct Lines {
    path: PathBuf,
    writer: BufWriter<File>,
    /// Where each line starts.
    offsets: Vec<u64>,
    hasher: Sha256,
    bytes: u64,
    /// Syncs the file while it is written, when it is to be made durable.
    syncer: Option<Syncer>,
    /// On disk already.
    synced: bool,
}

/// Bytes written between two background syncs (see [`Syncer`]).
const SYNC_EVERY: u64 = 8 << 20;

/// A thread of its own that syncs a file being written every [`SYNC_EVERY`] bytes, so that the
/// writer never waits for the disk and the last sync only for the rest (a 60 MB result had
/// waited 40 ms for its one sync at the end, a 240 MB one up to 200 ms).
struct Syncer {
    wanted: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
    /// Bytes written when the last sync was asked for.
    asked_at: u64,
}

impl Syncer {
    fn start(file: File) -> Syncer {
        let (wanted, requests) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while requests.recv().is_ok() {
                // Requests that came in meanwhile are served by this one.
                while requests.try_recv().is_ok() {}
                file.sync_data()?;
            }
            Ok(())
        });
        Syncer { wanted, thread, asked_at: 0 }
    }

    /// Waits for the syncs asked for; the first error of any.
    fn stop(self) -> std::io::Result<()> {
        drop(self.wanted);
        self.thread.join().unwrap_or_else(|_| Err(std::io::Error::other("the syncer crashed")))
    }
}

impl Lines {
    /// Creates `path`; when `durable`, it is synced while written (see [`Lines::sync`]).
    fn create(path: &Path, durable: bool) -> Result<Lines> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let syncer = match durable {
            true => Some(Syncer::start(file.try_clone().map_err(|e| Error::io(path, e))?)),
            false => None,
        };
        Ok(Lines {
            path: path.to_path_buf(),
            // Written in large blocks: few system calls.
            writer: BufWriter::with_capacity(1 << 18, file),
            offsets: Vec::new(),
            hasher: Sha256::new(),
            bytes: 0,
            syncer,
            synced: false,
        })
    }

    /// Appends `line`, which ends with its newline.
    fn push(&mut self, line: &str) -> Result<()> {
        self.hasher.update(line.as_bytes());
        self.push_unhashed(line)
    }

    /// [`Lines::push`] for a line that is hashed elsewhere (whose hasher then replaces
    /// [`Lines::hasher`] before [`Lines::finish`]).
    fn push_unhashed(&mut self, line: &str) -> Result<()> {
        self.offsets.push(self.bytes);
        self.bytes += line.len() as u64;
        self.writer.write_all(line.as_bytes()).map_err(|e| Error::io(&self.path, e))?;
        if let Some(s) = &mut self.syncer
            && self.bytes - s.asked_at >= SYNC_EVERY
        {
            self.writer.flush().map_err(|e| Error::io(&self.path, e))?;
            s.asked_at = self.bytes;
            // The syncer only stops after an error, which `sync` reports.
            let _ = s.wanted.send(());
        }
        Ok(())
    }

    /// Flushes, waits for the background syncs and syncs the rest.
    fn sync(&mut self) -> Result<()> {
        self.writer.flush().map_err(|e| Error::io(&self.path, e))?;
        if let Some(s) = self.syncer.take() {
            s.stop().map_err(|e| Error::io(&self.path, e))?;
        }
        self.writer.get_ref().sync_all().map_err(|e| Error::io(&self.path, e))?;
        self.synced = true;
        Ok(())
    }

    /// Flushes and syncs the file (unless done); its sha256 and size.
    fn finish(mut self) -> Result<(String, u64)> {
        if !self.synced {
            self.sync()?;
        }
        Ok((format!("{:x}", std::mem::take(&mut self.hasher).finalize()), self.bytes))
    }
}

impl Drop for Lines {
    /// A file given up (after an error) is no longer held open by its syncer once this returns:
    /// it can be removed, on Windows too.
    fn drop(&mut self) {
        if let Some(s) = self.syncer.take() {
            let _ = s.stop();
        }
    }
}

/// Writes the batches of lines to `all` (created), flushed so that it can be read back, and
/// synced to disk when `sync` (while it is written: [`Syncer`]). The lines are hashed on a
/// thread of their own meanwhile: on many cores, writing and hashing on one thread was the
/// import's slowest stage (16 threads, 400,000 rows: the measured rows waited 60–70 ms for it).
fn write_lines(
    all: &Path,
    batches: std::sync::mpsc::Receiver<Vec<String>>,
    sync: bool,
) -> Result<Lines> {
    let mut lines = Lines::create(all, sync)?;
    let (to_hasher, hashed) = std::sync::mpsc::sync_channel::<Arc<Vec<String>>>(2);
    let hasher = std::thread::spawn(move || {
        let mut sha = Sha256::new();
        for batch in hashed {
            batch.iter().for_each(|line| sha.update(line.as_bytes()));
        }
        sha
    });
    for batch in batches {
        let batch = Arc::new(batch);
        // The hasher only stops once every batch is sent.
        let _ = to_hasher.send(Arc::clone(&batch));
        for line in batch.iter() {
            lines.push_unhashed(line)?;
        }
    }
    drop(to_hasher);
    lines.hasher = hasher.join().map_err(|_| Error::file(all, "the hasher crashed"))?;
    if sync {
        lines.sync()?;
    } else {
        lines.writer.flush().map_err(|e| Error::io(all, e))?;
    }
    Ok(lines)
}

/// The lines of `file` that start at `offsets[i]` for each `i` in `rows` (ascending).
fn read_lines(file: &Path, offsets: &[u64], rows: &[usize]) -> Result<Vec<String>> {
    use std::io::{Seek, SeekFrom};
    let mut src = BufReader::new(File::open(file).map_err(|e| Error::io(file, e))?);
    let mut out = Vec::with_capacity(rows.len());
    for &i in rows {
        src.seek(SeekFrom::Start(offsets[i])).map_err(|e| Error::io(file, e))?;
        let mut line = String::new();
        src.read_line(&mut line).map_err(|e| Error::io(file, e))?;
        out.push(line);
    }
    Ok(out)
}

/// Copies the lines of `all` that `keep` keeps to `out`; their sha256 and size.
fn keep_rows(all: &Path, out: &Path, keep: &[bool]) -> Result<(String, u64)> {
    let mut dst = Lines::create(out, true)?;
    let src = BufReader::new(File::open(all).map_err(|e| Error::io(all, e))?);
    for (line, &k) in src.lines().zip(keep) {
        let mut line = line.map_err(|e| Error::io(all, e))?;
        if k {
            line.push('\n');
            dst.push(&line)?;
        }
    }
    dst.finish()
}

fn preview(
    i: usize,
    loc: Loc,
    conv: &Conversation,
    m: &Measured,
    q: &RowQuality,
    report: &Report,
    dropped: bool,
) -> RowPreview {
    RowPreview {
        row: i + 1,
        loc,
        input: shorten(&conv.text_of("user")),
        output: shorten(&conv.text_of("assistant")),
        score: q.score,
        reasons: quality::reasons(m, q, report),
        dropped,
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    if s.chars().count() <= MAX {
        return s.to_string();
    }
    let mut t: String = s.chars().take(MAX - 1).collect();
    t.push('…');
    t
}

fn temp_path(out: &Path, tag: &str) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    out.with_file_name(format!(".{name}.{tag}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A durable file is synced in the background while written (here three times) and ends as
    /// written, with the sha256 and offsets of its lines.
    #[test]
    fn lines_are_synced_while_written_and_kept_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        let mut lines = Lines::create(&path, true).unwrap();
        let mut expected = String::new();
        for i in 0..200_000 {
            let line = format!("{{\"row\": {i}, \"text\": \"{}\"}}\n", "x".repeat(i % 200));
            lines.push(&line).unwrap();
            expected.push_str(&line);
        }
        let asked = lines.syncer.as_ref().map(|s| s.asked_at);
        assert!(asked.is_some_and(|at| at >= 3 * SYNC_EVERY), "{asked:?}");
        let offsets = lines.offsets.clone();
        let (sha, bytes) = lines.finish().unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written, expected);
        assert_eq!((bytes, offsets.len()), (expected.len() as u64, 200_000));
        assert_eq!(sha, format!("{:x}", Sha256::digest(expected.as_bytes())));
        assert!(written[offsets[12_345] as usize..].starts_with("{\"row\": 12345,"));
        // A file given up after an error can be removed at once.
        let mut gone = Lines::create(&dir.path().join("gone.jsonl"), true).unwrap();
        gone.push("{}\n").unwrap();
        drop(gone);
        std::fs::remove_file(dir.path().join("gone.jsonl")).unwrap();
    }
}
