//! `models pull`: GGUF files from the Hugging Face hub into the model store, through the
//! Hugging Face cache other tools share (`hf-hub`: blobs named by their etag — the sha256 of
//! an LFS file — snapshots linking to them, partial downloads resumed). A file already in that
//! cache imports without the network.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use api::ModelInfo;
use api::advisor::PullProgress;
use hf_hub::api::Progress;
use hf_hub::api::sync::{ApiBuilder, ApiError};

use crate::models::sha256_file;
use crate::{App, Card, Error, Result, catalog};

/// The hub, unless `$HF_ENDPOINT` names another (a mirror, a test server).
const HF_ENDPOINT: &str = "https://huggingface.co";

/// The shortest time between two progress reports of a download.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Quantizations `OWNER/NAME` picks, best first: the ones the engine's fast path runs.
const PREFERRED: [&str; 3] = ["Q8_0", "Q4_0", "Q4_1"];

impl App {
    /// Installs a GGUF model from the Hugging Face hub. `spec` is a catalog id (its card's
    /// GGUF file), `OWNER/NAME/FILE.gguf`, or `OWNER/NAME` (its GGUF file: Q8_0, else Q4_0,
    /// else Q4_1, else the first). A file in the Hugging Face cache (`$HF_HUB_CACHE`, else
    /// `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
    /// `~/.cache/huggingface/hub`) imports without the network; any other
    /// is downloaded there from `$HF_ENDPOINT`, resuming a partial download, with `on_progress`
    /// told how far it got. Its sha256 must match the hub's and the card's: a damaged file
    /// leaves the cache and nothing is installed.
    pub fn models_pull(
        &self,
        spec: &str,
        on_progress: &mut dyn FnMut(PullProgress),
    ) -> Result<ModelInfo> {
        let hub = Hub::from_vars(&|k| std::env::var(k).ok(), std::env::home_dir())?;
        let want = Want::parse(spec)?;
        let (file, path) = match cached(&hub.cache, &want) {
            Some(found) => found,
            None => self.download(&hub, &want, on_progress)?,
        };
        let sha = verify(&path, &want, &file)?;
        self.model_import(&path, Some(&sha))
    }

    /// Downloads `want` into the cache: its file name and its snapshot path.
    fn download(
        &self,
        hub: &Hub,
        want: &Want,
        on_progress: &mut dyn FnMut(PullProgress),
    ) -> Result<(String, PathBuf)> {
        // A keyring that does not answer must not stop a public model: no token then.
        let token = self.hf_token().unwrap_or(None);
        // The token is the keyring's or none: never the one `huggingface-cli login` wrote
        // beside the cache, which `from_cache` reads.
        let api = ApiBuilder::from_cache(hf_hub::Cache::new(hub.cache.clone()))
            .with_endpoint(hub.endpoint.clone())
            .with_token(token)
            .with_progress(false)
            .build()
            .map_err(|e| hub.error(e, want, None))?;
        let repo = api.model(want.repo.clone());
        let file = match &want.file {
            Some(f) => f.clone(),
            None => {
                let info = repo.info().map_err(|e| hub.error(e, want, None))?;
                let files: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
                pick(&files).cloned().ok_or_else(|| no_gguf(&want.repo, &files))?
            }
        };
        let reporter = Reporter { on_progress, total: 0, bytes: 0, last: None };
        let path = repo
            .download_with_progress(&file, reporter)
            .map_err(|e| hub.error(e, want, Some(&file)))?;
        Ok((file, path))
    }
}

/// Where the hub and the Hugging Face cache are.
struct Hub {
    /// `$HF_ENDPOINT` or [`HF_ENDPOINT`], without a trailing slash.
    endpoint: String,
    /// The cache's `hub` folder, holding `models--OWNER--NAME/`.
    cache: PathBuf,
}

impl Hub {
    /// From the variables Hugging Face's own tools read (`var`), and the user's home.
    fn from_vars(var: &dyn Fn(&str) -> Option<String>, home: Option<PathBuf>) -> Result<Hub> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| HF_ENDPOINT.into());
        let cache = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
            .or_else(|| var("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("huggingface/hub")))
            .or_else(|| home.map(|h| h.join(".cache/huggingface/hub")))
            .ok_or_else(|| {
                Error::InvalidInput(
                    "cannot find the Hugging Face cache: set HF_HUB_CACHE to a folder".into(),
                )
            })?;
        Ok(Hub { endpoint: endpoint.trim().trim_end_matches('/').to_string(), cache })
    }

    /// The endpoint's host, as messages name it.
    fn host(&self) -> &str {
        let rest = self.endpoint.split_once("://").map_or(self.endpoint.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }

    /// What a failure of hf-hub means for the user, and what to do.
    fn error(&self, e: ApiError, want: &Want, file: Option<&str>) -> Error {
        let (host, repo) = (self.host(), &want.repo);
        let offline = || {
            Error::Network(format!(
                "cannot reach {host}: you appear to be offline; models already in the Hugging Face cache ({}) import without network, or import a .gguf with `vibeflow models import FILE`",
                self.cache.display()
            ))
        };
        let broke_off = |why: &dyn std::fmt::Display| {
            Error::Network(format!(
                "the download from {host} broke off ({why}): run the pull again to resume it"
            ))
        };
        let no_repo = || {
            Error::NotFound(format!(
                "{host} has no model repository {repo} (a private one needs your token: `vibeflow keys hf`)"
            ))
        };
        match e {
            ApiError::RequestError(e) => match *e {
                ureq2::Error::Status(status, response) => {
                    let code = response.header("x-error-code").unwrap_or_default().to_string();
                    let url = format!("{}/{repo}", self.endpoint);
                    match (status, code.as_str()) {
                        (_, "GatedRepo") => Error::Unauthorized(format!(
                            "{repo} is gated: accept its license at {url}, then save your token with `vibeflow keys hf` (kept in the OS keyring)"
                        )),
                        (_, "RepoNotFound") => no_repo(),
                        (_, "EntryNotFound") | (404, _) => match file {
                            Some(f) => Error::NotFound(format!(
                                "{repo} has no file {f} on {host}: see its files at {url}/tree/main"
                            )),
                            None => no_repo(),
                        },
                        (401 | 403, _) => Error::Unauthorized(format!(
                            "{host} refused {repo} (HTTP {status}): if it is gated or private, accept its license at {url}, then save your token with `vibeflow keys hf` (kept in the OS keyring)"
                        )),
                        // A `.part` file as long as the file: the rename after the transfer
                        // never happened.
                        (416, _) => Error::Integrity(format!(
                            "the partial download of {} cannot be resumed: delete the *.part files in {} and run the pull again",
                            file.unwrap_or_default(),
                            self.cache.join(repo_folder(repo)).join("blobs").display()
                        )),
                        (429, _) => Error::Network(format!(
                            "{host} is limiting downloads (HTTP 429): wait a few minutes and run the pull again"
                        )),
                        _ => Error::Network(format!(
                            "{host} answered HTTP {status} for {repo}: run the pull again later"
                        )),
                    }
                }
                ureq2::Error::Transport(t) => match t.kind() {
                    ureq2::ErrorKind::Dns
                    | ureq2::ErrorKind::ConnectionFailed
                    | ureq2::ErrorKind::ProxyConnect => offline(),
                    ureq2::ErrorKind::Io => broke_off(&t),
                    _ => Error::Network(format!("cannot download from {host}: {t}")),
                },
            },
            ApiError::TooManyRetries(e) => self.error(*e, want, file),
            ApiError::IoError(e) => {
                use std::io::ErrorKind as K;
                match e.kind() {
                    K::ConnectionReset
                    | K::ConnectionAborted
                    | K::UnexpectedEof
                    | K::TimedOut
                    | K::BrokenPipe => broke_off(&e),
                    _ => Error::io(&self.cache, e),
                }
            }
            ApiError::MissingHeader(h) | ApiError::InvalidHeader(h) => Error::Network(format!(
                "{host} answered without a usable {h} header: is HF_ENDPOINT ({}) a Hugging Face hub?",
                self.endpoint
            )),
            ApiError::ParseIntError(_) => Error::Network(format!(
                "{host} answered with a malformed file size: is HF_ENDPOINT ({}) a Hugging Face hub?",
                self.endpoint
            )),
            ApiError::InvalidResume => Error::Integrity(format!(
                "a partial download of {} is longer than the file: delete the *.part files in {} and run the pull again",
                file.unwrap_or_default(),
                self.cache.join(repo_folder(repo)).join("blobs").display()
            )),
            ApiError::LockAcquisition(lock) => Error::Conflict(format!(
                "another process is downloading {} into the Hugging Face cache ({}): wait for it to end, then run the pull again",
                file.unwrap_or_default(),
                lock.display()
            )),
            #[allow(unreachable_patterns)]
            e => Error::Network(format!("cannot download from {host}: {e}")),
        }
    }
}

/// What a spec asks for.
#[derive(Debug, Clone, PartialEq)]
struct Want {
    /// `OWNER/NAME`.
    repo: String,
    /// The file in it; none: pick one.
    file: Option<String>,
    /// What a catalog card says the file's sha256 is.
    sha256: Option<String>,
}

impl Want {
    fn parse(spec: &str) -> Result<Want> {
        let spec = spec.trim();
        if let Some(c) = crate::card(spec) {
            return Ok(Want {
                sha256: card_sha256(&c),
                repo: c.hub.gguf_repo,
                file: Some(c.hub.gguf_file),
            });
        }
        let parts: Vec<&str> = spec.split('/').collect();
        let name_ok = |p: &str| p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if parts.len() < 2 || !parts[..2].iter().all(|p| name_ok(p) && component_ok(p)) {
            return Err(Error::InvalidInput(format!(
                "'{spec}' is neither a catalog id (see `vibeflow models catalog`) nor a Hugging Face repository (OWNER/NAME, or OWNER/NAME/FILE.gguf)"
            )));
        }
        let repo = format!("{}/{}", parts[0], parts[1]);
        let file = (parts.len() > 2).then(|| parts[2..].join("/"));
        if let Some(f) = &file {
            if !file_ok(f) {
                return Err(Error::InvalidInput(format!("'{f}' is not a file name in {repo}")));
            }
            if !is_gguf(f) {
                return Err(Error::InvalidInput(format!(
                    "{f} is not a .gguf file: only GGUF files can be pulled for now"
                )));
            }
        }
        let sha256 = catalog()
            .iter()
            .find(|c| c.hub.gguf_repo == repo && Some(&c.hub.gguf_file) == file.as_ref())
            .and_then(card_sha256);
        Ok(Want { repo, file, sha256 })
    }
}

/// The sha256 a card vouches for: its source's, when that is the file the hub serves.
fn card_sha256(c: &Card) -> Option<String> {
    c.source.as_ref().filter(|s| s.file == c.hub.gguf_file).map(|s| s.sha256.clone())
}

/// One path component that stays inside its folder.
fn component_ok(p: &str) -> bool {
    !p.is_empty()
        && p != "."
        && p != ".."
        && !p.contains(['\\', ':'])
        && !p.contains(char::is_control)
}

/// A relative file path of a repository that stays inside its snapshot folder.
fn file_ok(f: &str) -> bool {
    f.split('/').all(component_ok)
}

fn is_gguf(f: &str) -> bool {
    f.rsplit('.').next().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// The GGUF file `OWNER/NAME` means: the first of [`PREFERRED`]'s quantizations there is,
/// else the first. Vision projectors and split files are no models the store imports.
fn pick(files: &[String]) -> Option<&String> {
    let models: Vec<&String> = files
        .iter()
        .filter(|f| file_ok(f) && is_gguf(f))
        .filter(|f| {
            let name = f.rsplit('/').next().unwrap_or(f).to_ascii_lowercase();
            !name.starts_with("mmproj") && !name.contains("-of-0")
        })
        .collect();
    PREFERRED
        .iter()
        .find_map(|q| models.iter().find(|f| has_quant(f, q)))
        .or(models.first())
        .copied()
}

/// Whether file name `f` names quantization `q` as a word (`….Q4_0.gguf`, `…-q4_0.gguf`, not
/// `…-Q4_0_4_4.gguf`).
fn has_quant(f: &str, q: &str) -> bool {
    let upper = f.to_ascii_uppercase();
    upper.match_indices(q).any(|(i, _)| {
        let before = upper[..i].chars().next_back();
        let after = upper[i + q.len()..].chars().next();
        before.is_none_or(|c| !c.is_ascii_alphanumeric()) && matches!(after, Some('.' | '-'))
    })
}

fn no_gguf(repo: &str, files: &[String]) -> Error {
    let mut shown: Vec<&str> = files.iter().take(8).map(String::as_str).collect();
    if files.len() > shown.len() {
        shown.push("…");
    }
    let has = if shown.is_empty() { "no files".into() } else { shown.join(", ") };
    Error::InvalidInput(format!(
        "{repo} has no GGUF file (it has {has}): only GGUF files can be pulled for now; look for a GGUF version of the model (often {repo}-GGUF)"
    ))
}

/// `models--OWNER--NAME`, the cache's folder of a model repository.
fn repo_folder(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// The file `want` names in the cache, and its path: the snapshot `refs/main` points to
/// first, then the newest snapshot holding it.
fn cached(cache: &Path, want: &Want) -> Option<(String, PathBuf)> {
    let dir = cache.join(repo_folder(&want.repo));
    let mut snapshots: Vec<(std::time::SystemTime, PathBuf)> =
        std::fs::read_dir(dir.join("snapshots"))
            .ok()?
            .flatten()
            .map(|e| {
                (e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), e.path())
            })
            .collect();
    snapshots.sort_by_key(|s| std::cmp::Reverse(s.0));
    let file = match &want.file {
        Some(f) => f.clone(),
        None => {
            let mut files = Vec::new();
            for (_, s) in &snapshots {
                files_under(s, "", &mut files);
            }
            pick(&files)?.clone()
        }
    };
    let by_ref = hf_hub::Cache::new(cache.to_path_buf()).model(want.repo.clone()).get(&file);
    // `is_file` follows the link: a link whose blob is gone is no file.
    let found = by_ref
        .into_iter()
        .chain(snapshots.iter().map(|(_, s)| s.join(&file)))
        .find(|p| p.is_file())?;
    Some((file, found))
}

/// The files under `dir`, as repository paths prefixed by `prefix`.
pub(crate) fn files_under(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
        let path = format!("{prefix}{name}");
        if e.path().is_dir() {
            files_under(&e.path(), &format!("{path}/"), out);
        } else {
            out.push(path);
        }
    }
}

/// The sha256 of the file at `path` (a snapshot link), checked against the hub's (the name
/// of an LFS file's blob) and the card's. A mismatch removes the blob and its link, so the
/// next pull downloads the file again.
fn verify(path: &Path, want: &Want, file: &str) -> Result<String> {
    let blob = match std::fs::read_link(path) {
        Ok(target) => path.parent().unwrap_or(path).join(target),
        Err(_) => path.to_path_buf(),
    };
    let sha = sha256_file(path)?;
    let from_hub = blob.file_name().and_then(|n| n.to_str()).filter(|n| is_sha256(n));
    let expected = [from_hub, want.sha256.as_deref()].into_iter().flatten();
    if let Some(wrong) = expected.into_iter().find(|w| !w.eq_ignore_ascii_case(&sha)) {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(&blob);
        return Err(Error::Integrity(format!(
            "the download of {file} from {} was damaged (sha256 {sha}, expected {wrong}): it was removed from the Hugging Face cache; run the pull again",
            want.repo
        )));
    }
    Ok(sha)
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// hf-hub's progress, throttled, as [`PullProgress`].
struct Reporter<'a> {
    on_progress: &'a mut dyn FnMut(PullProgress),
    total: u64,
    bytes: u64,
    /// When the last report was, and what it said.
    last: Option<(Instant, u64)>,
}

impl Reporter<'_> {
    fn report(&mut self) {
        self.last = Some((Instant::now(), self.bytes));
        (self.on_progress)(PullProgress { bytes: self.bytes, total: self.total });
    }
}

impl Progress for Reporter<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        // Told again when the transfer starts, followed by the bytes a resume starts from.
        (self.total, self.bytes) = (size as u64, 0);
    }

    fn update(&mut self, size: usize) {
        self.bytes += size as u64;
        if self.last.is_none_or(|(t, _)| t.elapsed() >= PROGRESS_EVERY) {
            self.report();
        }
    }

    fn finish(&mut self) {
        if self.last.is_none_or(|(_, bytes)| bytes != self.bytes) {
            self.report();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(repo: &str, file: Option<&str>) -> Want {
        Want { repo: repo.into(), file: file.map(Into::into), sha256: None }
    }

    #[test]
    fn specs_name_a_card_a_repository_or_a_file() {
        let c = crate::card("smollm2-135m-instruct").unwrap();
        let w = Want::parse(" smollm2-135m-instruct ").unwrap();
        assert_eq!(
            (w.repo.as_str(), w.file.as_deref()),
            (&*c.hub.gguf_repo, Some(&*c.hub.gguf_file))
        );
        // The card's sha256 is its setup file's (Q4_1), not the Q8_0 file the hub serves.
        assert_eq!(w.sha256, None);
        assert_eq!(Want::parse("a-b/C.d_e").unwrap(), want("a-b/C.d_e", None));
        assert_eq!(Want::parse("o/r/sub/m.GGUF").unwrap(), want("o/r", Some("sub/m.GGUF")));
        for bad in ["", "nope", "o/", "/r", "../r", "o/r r", "o/r/../m.gguf", "o/r//m.gguf"] {
            let err = Want::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{bad}: {err}");
        }
        let err = Want::parse("o/r/model.safetensors").unwrap_err();
        assert!(err.to_string().contains("only GGUF files"), "{err}");
    }

    #[test]
    fn a_repository_means_its_best_gguf_file() {
        let check = |files: &[&str], expect: Option<&str>| {
            let files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
            assert_eq!(pick(&files).map(String::as_str), expect, "{files:?}");
        };
        check(&["a-Q4_K_M.gguf", "a-Q4_0.gguf", "a-Q8_0.gguf", "a-f16.gguf"], Some("a-Q8_0.gguf"));
        check(&["a.Q4_1.gguf", "a.q4_0.gguf"], Some("a.q4_0.gguf"));
        check(&["a-Q4_0_4_4.gguf", "a-Q4_1.gguf"], Some("a-Q4_1.gguf"));
        check(&["mmproj-Q8_0.gguf", "README.md", "a-Q6_K.gguf"], Some("a-Q6_K.gguf"));
        check(&["a-Q8_0-00001-of-00002.gguf"], None);
        check(&["config.json", "model.safetensors"], None);
        let err = no_gguf("o/r", &["config.json".into(), "model.safetensors".into()]);
        assert_eq!(
            err.to_string(),
            "o/r has no GGUF file (it has config.json, model.safetensors): only GGUF files can be pulled for now; look for a GGUF version of the model (often o/r-GGUF)"
        );
    }

    #[test]
    fn the_cache_is_where_hugging_face_tools_put_it() {
        let at = |vars: &[(&str, &str)], home: Option<&str>| {
            let vars: Vec<(String, String)> =
                vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let var = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            Hub::from_vars(&var, home.map(PathBuf::from)).map(|h| (h.endpoint, h.cache))
        };
        let home = Some("/home/u");
        let (endpoint, cache) = at(&[], home).unwrap();
        assert_eq!(endpoint, "https://huggingface.co");
        assert_eq!(cache, PathBuf::from("/home/u/.cache/huggingface/hub"));
        let xdg = at(&[("XDG_CACHE_HOME", "/x")], home).unwrap().1;
        assert_eq!(xdg, PathBuf::from("/x/huggingface/hub"));
        let hf_home = at(&[("HF_HOME", "/h"), ("XDG_CACHE_HOME", "/x")], home).unwrap().1;
        assert_eq!(hf_home, PathBuf::from("/h/hub"));
        let vars = [("HF_HUB_CACHE", "/c"), ("HF_HOME", "/h"), ("HF_ENDPOINT", "http://m:8/ ")];
        assert_eq!(at(&vars, None).unwrap(), ("http://m:8".into(), PathBuf::from("/c")));
        assert_eq!(
            at(&[("HF_HUB_CACHE", " ")], home).unwrap().1,
            PathBuf::from("/home/u/.cache/huggingface/hub")
        );
        assert!(matches!(at(&[], None), Err(Error::InvalidInput(_))));
        let hub = Hub { endpoint: "http://127.0.0.1:9/x".into(), cache: "/c".into() };
        assert_eq!(hub.host(), "127.0.0.1:9");
    }

    /// The layout `hf-hub` and `huggingface_hub` write: `refs/main` names the snapshot, whose
    /// files link to blobs. A snapshot without a ref is found too; a dangling link is not.
    #[test]
    fn cached_files_are_found_by_ref_or_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path();
        let repo = cache.join("models--o--r");
        std::fs::create_dir_all(repo.join("snapshots/old")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots/main-commit/sub")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "main-commit").unwrap();
        std::fs::write(repo.join("snapshots/old/m.Q4_0.gguf"), "old").unwrap();
        std::fs::write(repo.join("snapshots/main-commit/sub/m.Q8_0.gguf"), "new").unwrap();
        let (file, path) = cached(cache, &want("o/r", None)).unwrap();
        assert_eq!(
            (file.as_str(), path),
            ("sub/m.Q8_0.gguf", repo.join("snapshots/main-commit/sub/m.Q8_0.gguf"))
        );
        let (_, path) = cached(cache, &want("o/r", Some("m.Q4_0.gguf"))).unwrap();
        assert_eq!(path, repo.join("snapshots/old/m.Q4_0.gguf"));
        assert_eq!(cached(cache, &want("o/r", Some("x.gguf"))), None);
        assert_eq!(cached(cache, &want("o/other", None)), None);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("../../blobs/gone", repo.join("snapshots/old/l.gguf"))
                .unwrap();
            assert_eq!(cached(cache, &want("o/r", Some("l.gguf"))), None);
        }
    }

    /// A blob named by its sha256 (an LFS file's etag) must hold those bytes; a damaged one
    /// leaves the cache with its link.
    #[cfg(unix)]
    #[test]
    fn damaged_blobs_leave_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        let snap = dir.path().join("snapshots/c");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::create_dir_all(&snap).unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        std::fs::write(blobs.join(abc), "abc").unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{abc}"), snap.join("good.gguf")).unwrap();
        assert_eq!(verify(&snap.join("good.gguf"), &want("o/r", None), "good.gguf").unwrap(), abc);
        let mut card = want("o/r", None);
        card.sha256 = Some("0".repeat(64));
        assert!(matches!(
            verify(&snap.join("good.gguf"), &card, "good.gguf"),
            Err(Error::Integrity(_))
        ));
        assert!(!blobs.join(abc).exists() && !snap.join("good.gguf").exists());
        let bad = "0".repeat(64);
        std::fs::write(blobs.join(&bad), "abd").unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{bad}"), snap.join("bad.gguf")).unwrap();
        let err = verify(&snap.join("bad.gguf"), &want("o/r", None), "bad.gguf").unwrap_err();
        assert!(
            err.to_string().contains("was damaged")
                && err.to_string().contains("run the pull again"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 0);
    }
}
