//! `models pull` against a stand-in Hugging Face hub on this machine (never the network): the
//! download into the Hugging Face cache, resume, a damaged download, a gated model, no
//! network, and a model already in the cache.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Home, default_gguf, one_line_error};

/// The real default model's sha256 (its catalog card's).
const DEFAULT_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A file a stand-in repository serves, and the sha256 the hub claims for it.
struct HubFile {
    name: String,
    bytes: Arc<Vec<u8>>,
    linked_etag: String,
}

/// A stand-in repository.
struct HubRepo {
    id: &'static str,
    files: Vec<HubFile>,
    gated: bool,
}

/// The hub's layout on 127.0.0.1: `GET|HEAD /{repo}/resolve/main/{file}` honouring `Range`
/// (206 and `Content-Range`), with `etag`, `x-linked-etag` and `x-repo-commit`; a gated
/// repository's 401 with `X-Error-Code: GatedRepo`; `GET /api/models/{repo}` with siblings.
struct FakeHub {
    url: String,
    /// Bytes of files sent, every request together.
    served: Arc<AtomicU64>,
    server: Arc<tiny_http::Server>,
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn serve(repos: Vec<HubRepo>) -> FakeHub {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    let served = Arc::new(AtomicU64::new(0));
    let (s, count) = (server.clone(), served.clone());
    std::thread::spawn(move || {
        for rq in s.incoming_requests() {
            let _ = respond(rq, &repos, &count);
        }
    });
    FakeHub { url, served, server }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
}

fn respond(rq: tiny_http::Request, repos: &[HubRepo], served: &AtomicU64) -> std::io::Result<()> {
    let path = rq.url().to_string();
    let json = |status: u16, body: serde_json::Value| {
        tiny_http::Response::from_string(body.to_string())
            .with_status_code(status)
            .with_header(header("Content-Type", "application/json"))
    };
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let id = rest.trim_end_matches("/revision/main");
        return match repos.iter().find(|r| r.id == id) {
            Some(r) => {
                let siblings: Vec<_> =
                    r.files.iter().map(|f| serde_json::json!({"rfilename": f.name})).collect();
                rq.respond(json(
                    200,
                    serde_json::json!({"id": id, "sha": COMMIT, "siblings": siblings}),
                ))
            }
            None => rq.respond(
                json(401, serde_json::json!({"error": "Repository not found"}))
                    .with_header(header("X-Error-Code", "RepoNotFound")),
            ),
        };
    }
    let found = repos.iter().find_map(|r| {
        let name = path.strip_prefix(&format!("/{}/resolve/main/", r.id))?;
        Some((r, r.files.iter().find(|f| f.name == name)))
    });
    let (repo, file) = match found {
        Some((repo, Some(file))) => (repo, file),
        Some(_) => {
            return rq.respond(
                json(404, serde_json::json!({"error": "Entry not found"}))
                    .with_header(header("X-Error-Code", "EntryNotFound")),
            );
        }
        None => {
            return rq.respond(
                json(401, serde_json::json!({"error": "Repository not found"}))
                    .with_header(header("X-Error-Code", "RepoNotFound")),
            );
        }
    };
    if repo.gated {
        return rq.respond(
            json(401, serde_json::json!({"error": "Access to model is restricted"}))
                .with_header(header("X-Error-Code", "GatedRepo")),
        );
    }
    let size = file.bytes.len();
    let range = rq.headers().iter().find(|h| h.field.equiv("Range")).and_then(|h| {
        let (a, b) = h.value.as_str().strip_prefix("bytes=")?.split_once('-')?;
        let start: usize = a.parse().ok()?;
        let end = if b.is_empty() { size - 1 } else { b.parse::<usize>().ok()?.min(size - 1) };
        Some((start, end))
    });
    let (status, start, end) = match range {
        Some((start, end)) => (206, start, end + 1),
        None => (200, 0, size),
    };
    let mut headers = vec![
        header("ETag", &format!("\"{}\"", file.linked_etag)),
        header("X-Linked-Etag", &format!("\"{}\"", file.linked_etag)),
        header("X-Linked-Size", &size.to_string()),
        header("X-Repo-Commit", COMMIT),
        header("Accept-Ranges", "bytes"),
    ];
    if status == 206 {
        headers.push(header("Content-Range", &format!("bytes {start}-{}/{size}", end - 1)));
    }
    if rq.method() != &tiny_http::Method::Head {
        served.fetch_add((end - start) as u64, Ordering::SeqCst);
    }
    let body = Slice { bytes: file.bytes.clone(), at: start, end };
    rq.respond(tiny_http::Response::new(status.into(), headers, body, Some(end - start), None))
}

/// Part of a file, read without copying it.
struct Slice {
    bytes: Arc<Vec<u8>>,
    at: usize,
    end: usize,
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.end - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// An address nothing listens on: a port just bound and closed.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// `vibeflow models pull SPEC` over `home`, with its own Hugging Face cache and hub.
fn pull(home: &Home, cache: &Path, endpoint: &str, spec: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vibeflow"));
    cmd.args(["models", "pull", spec])
        .env("VIBEFLOW_HOME", home.path())
        .env("HF_HUB_CACHE", cache)
        .env("HF_ENDPOINT", endpoint)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null());
    for proxy in
        ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]
    {
        cmd.env_remove(proxy);
    }
    cmd.output().unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

/// The default model, served by `owner/repo` with its true sha256, or `None` (skipped).
fn default_model_repo(linked_etag: &str) -> Option<(Arc<Vec<u8>>, HubRepo)> {
    let bytes = Arc::new(std::fs::read(default_gguf()?).unwrap());
    let file = HubFile { name: FILE.into(), bytes: bytes.clone(), linked_etag: linked_etag.into() };
    let readme = HubFile {
        name: "README.md".into(),
        bytes: Arc::new(b"# a model".to_vec()),
        linked_etag: "not-lfs".into(),
    };
    Some((bytes, HubRepo { id: "owner/repo", files: vec![readme, file], gated: false }))
}

fn repo_dir(cache: &Path) -> PathBuf {
    cache.join("models--owner--repo")
}

/// Files under `dir`, as paths relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            let name = e.file_name().to_string_lossy().to_string();
            out.extend(files(&p).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            out.push(e.file_name().to_string_lossy().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn pull_downloads_into_the_hf_cache_with_progress_and_installs() {
    let Some((bytes, repo)) = default_model_repo(DEFAULT_SHA256) else { return };
    let hub = serve(vec![repo]);
    let (home, cache) = (Home::new(), tempfile::tempdir().unwrap());
    let out = pull(&home, cache.path(), &hub.url, &format!("owner/repo/{FILE}"));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        stderr.lines().all(|l| l.starts_with("pulled ") && l.ends_with(" of 98.4 MB")),
        "{stderr}"
    );
    assert_eq!(last, "pulled 98.4 MB of 98.4 MB");
    assert!(stdout.starts_with("Installed smollm2-135m-instruct at "), "{stdout}");
    let list = home.json(&["models", "list", "--json"]);
    assert_eq!(list[0]["id"], "smollm2-135m-instruct");
    assert_eq!(list[0]["sha256"], DEFAULT_SHA256);
    assert_eq!(list[0]["size_bytes"], bytes.len());
    // The Hugging Face cache's own layout, shared with other tools.
    let dir = repo_dir(cache.path());
    assert_eq!(std::fs::read_to_string(dir.join("refs/main")).unwrap(), COMMIT);
    let snapshot = dir.join("snapshots").join(COMMIT).join(FILE);
    assert_eq!(std::fs::metadata(&snapshot).unwrap().len(), bytes.len() as u64);
    assert!(dir.join("blobs").join(DEFAULT_SHA256).is_file());
    assert!(!files(&dir.join("blobs")).iter().any(|f| f.ends_with(".part")));

    // Pulled again, by repository: the cache answers, the hub sends nothing.
    let sent = hub.served.load(Ordering::SeqCst);
    let out = pull(&home, cache.path(), &hub.url, "owner/repo");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(hub.served.load(Ordering::SeqCst), sent);
    assert_eq!(home.json(&["models", "list", "--json"]).as_array().unwrap().len(), 1);
}

#[test]
fn pull_of_a_repository_picks_its_gguf_file_from_the_hub() {
    let Some((_, repo)) = default_model_repo(DEFAULT_SHA256) else { return };
    let only_weights = HubRepo {
        id: "owner/safetensors",
        files: vec![HubFile {
            name: "model.safetensors".into(),
            bytes: Arc::new(vec![0; 8]),
            linked_etag: "x".into(),
        }],
        gated: false,
    };
    let hub = serve(vec![repo, only_weights]);
    let (home, cache) = (Home::new(), tempfile::tempdir().unwrap());
    let out = pull(&home, cache.path(), &hub.url, "owner/repo");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("smollm2-135m-instruct"));
    let out = pull(&home, cache.path(), &hub.url, "owner/safetensors");
    let e = one_line_error(&out);
    assert!(e.contains("has no GGUF file (it has model.safetensors)"), "{e}");
    assert!(e.contains("only GGUF files can be pulled"), "{e}");
    let out = pull(&home, cache.path(), &hub.url, "owner/repo/missing.gguf");
    let e = one_line_error(&out);
    assert!(e.contains("owner/repo has no file missing.gguf"), "{e}");
    let e = one_line_error(&pull(&home, cache.path(), &hub.url, "nobody/nothing"));
    assert!(e.contains("no model repository nobody/nothing"), "{e}");
}

#[test]
fn pull_resumes_a_partial_download() {
    let Some((bytes, repo)) = default_model_repo(DEFAULT_SHA256) else { return };
    let hub = serve(vec![repo]);
    let (home, cache) = (Home::new(), tempfile::tempdir().unwrap());
    // Where hf-hub keeps an unfinished download: the blob's path (its etag) + `.part`.
    let blobs = repo_dir(cache.path()).join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let had = 60_000_000;
    std::fs::write(blobs.join(format!("{DEFAULT_SHA256}.part")), &bytes[..had]).unwrap();
    let out = pull(&home, cache.path(), &hub.url, &format!("owner/repo/{FILE}"));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The first report starts where the partial file ended.
    assert!(stderr.starts_with("pulled 60.0 MB of 98.4 MB"), "{stderr}");
    let sent = hub.served.load(Ordering::SeqCst);
    assert!(sent <= (bytes.len() - had + 1) as u64, "served {sent} of {}", bytes.len());
    assert_eq!(home.json(&["models", "list", "--json"])[0]["sha256"], DEFAULT_SHA256);
}

#[test]
fn pull_removes_a_damaged_download_and_installs_nothing() {
    let wrong = "0".repeat(64);
    let Some((_, repo)) = default_model_repo(&wrong) else { return };
    let hub = serve(vec![repo]);
    let (home, cache) = (Home::new(), tempfile::tempdir().unwrap());
    let out = pull(&home, cache.path(), &hub.url, &format!("owner/repo/{FILE}"));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "error: the download of SmolLM2-135M-Instruct.Q4_1.gguf from owner/repo was damaged"
        ),
        "{stderr}"
    );
    assert!(
        last.contains(&format!("expected {wrong}")) && last.ends_with("run the pull again"),
        "{last}"
    );
    assert_eq!(home.json(&["models", "list", "--json"]), serde_json::json!([]));
    assert_eq!(std::fs::read_dir(home.path().join("models")).unwrap().count(), 0);
    // Neither the blob nor its snapshot link stays (hf-hub's lock file may).
    let dir = repo_dir(cache.path());
    let left: Vec<String> =
        files(&dir.join("blobs")).into_iter().filter(|f| !f.ends_with(".lock")).collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(files(&dir.join("snapshots")), Vec::<String>::new());
}

#[test]
fn pull_of_a_gated_model_says_to_accept_the_license_and_save_a_token() {
    let gated = HubRepo {
        id: "meta/gated",
        files: vec![HubFile {
            name: "m.Q8_0.gguf".into(),
            bytes: Arc::new(b"not a model".to_vec()),
            linked_etag: "0".repeat(64),
        }],
        gated: true,
    };
    let hub = serve(vec![gated]);
    let (home, cache) = (Home::new(), tempfile::tempdir().unwrap());
    let e = one_line_error(&pull(&home, cache.path(), &hub.url, "meta/gated/m.Q8_0.gguf"));
    assert_eq!(
        e,
        format!(
            "error: meta/gated is gated: accept its license at {}/meta/gated, then save your token with `vibeflow keys hf` (kept in the OS keyring)",
            hub.url
        )
    );
    assert_eq!(hub.served.load(Ordering::SeqCst), 0);
    assert!(!repo_dir(cache.path()).join("snapshots").exists());
}

#[test]
fn pull_without_network_says_what_still_works() {
    let (home, cache) = (Home::new(), tempfile::tempdir().unwrap());
    let endpoint = closed_port();
    let e = one_line_error(&pull(&home, cache.path(), &endpoint, "owner/repo/m.gguf"));
    let host = endpoint.trim_start_matches("http://");
    assert_eq!(
        e,
        format!(
            "error: cannot reach {host}: you appear to be offline; models already in the Hugging Face cache ({}) import without network, or import a .gguf with `vibeflow models import FILE`",
            cache.path().display()
        )
    );
    assert_eq!(home.json(&["models", "list", "--json"]), serde_json::json!([]));
}

#[test]
fn pull_installs_a_model_already_in_the_hf_cache_without_network() {
    let Some(gguf) = default_gguf() else { return };
    let (home, cache) = (Home::new(), tempfile::tempdir().unwrap());
    // A snapshot as another tool left it, without `refs/main`.
    let snapshot = repo_dir(cache.path()).join("snapshots/abc123");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::copy(&gguf, snapshot.join(FILE)).unwrap();
    let endpoint = closed_port();
    let out = pull(&home, cache.path(), &endpoint, &format!("owner/repo/{FILE}"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "nothing downloaded");
    let list = home.json(&["models", "list", "--json"]);
    assert_eq!(
        (list[0]["id"].as_str(), list[0]["sha256"].as_str()),
        (Some("smollm2-135m-instruct"), Some(DEFAULT_SHA256))
    );
    // By repository too: its one GGUF file.
    let other = Home::new();
    let out = pull(&other, cache.path(), &endpoint, "owner/repo");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The cache is left as it was.
    assert_eq!(files(&repo_dir(cache.path())), vec![format!("snapshots/abc123/{FILE}")]);
}

#[test]
fn models_catalog_lists_the_cards_and_what_is_installed() {
    let home = Home::new();
    let list = home.json(&["models", "catalog", "--json"]);
    let list = list.as_array().unwrap();
    assert!(list.len() >= 9, "{list:?}");
    let small = list.iter().find(|c| c["id"] == "smollm2-135m-instruct").unwrap();
    assert_eq!(
        (small["gated"].as_bool(), small["installed"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(list.iter().any(|c| c["gated"] == true), "the Llama cards are gated");
    let text = home.ok(&["models", "catalog"]);
    assert!(
        text.starts_with("ID")
            && text.contains("smollm2-135m-instruct")
            && text.contains("Apache-2.0"),
        "{text}"
    );
    for args in [
        &["models", "pull", "--help"][..],
        &["models", "catalog", "--help"],
        &["keys", "hf", "--help"],
    ] {
        assert!(home.ok(args).contains("Usage: vibeflow"), "{args:?}");
    }
    // The token comes from stdin, never the command line; none given is a clear error.
    let out = home.run_with_input(&["keys", "hf"], "\n");
    let e = one_line_error(&out);
    assert!(e.contains("no Hugging Face token on stdin"), "{e}");
}
