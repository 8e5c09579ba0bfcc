//! Remote OpenAI-compatible endpoints: the name and URL in SQLite, the key in the OS keyring
//! (`keyring`: Keychain, Credential Manager, Secret Service) and nowhere else — not in files,
//! SQLite, logs or errors. The Hugging Face token (`models pull`) lives beside those keys.

use std::time::Duration;

use api::{Endpoint, EndpointAdd, EndpointTest};

use crate::{App, Error, Result, now};

/// The keyring account of the Hugging Face token, beside the endpoints' keys under the same
/// service: the ':' keeps it apart from every endpoint name (letters, digits, '-' and '_').
const HF_TOKEN_ACCOUNT: &str = "huggingface:token";

/// How long a test of an endpoint waits for its answer.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

impl App {
    /// Every endpoint, with whether the keyring holds its key.
    pub fn endpoint_list(&self) -> Result<Vec<Endpoint>> {
        let rows = self.store.endpoints()?;
        rows.into_iter()
            .map(|r| {
                let has_key = self.endpoint_key(&r.name)?.is_some();
                Ok(Endpoint { name: r.name, base_url: r.base_url, has_key, added_at: r.added_at })
            })
            .collect()
    }

    /// Adds endpoint `req.name` (or replaces its URL and key): the key goes to the keyring
    /// first, so a keyring that refuses leaves nothing behind.
    pub fn endpoint_add(&self, req: &EndpointAdd) -> Result<Endpoint> {
        let name = req.name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::InvalidInput(format!(
                "'{name}' is not a usable endpoint name: use letters, digits, '-' and '_' (at most 64)"
            )));
        }
        let base_url = req.base_url.trim().trim_end_matches('/');
        let host = base_url.strip_prefix("https://").or_else(|| base_url.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.contains(char::is_whitespace)) {
            return Err(Error::InvalidInput(format!(
                "'{base_url}' is not an API address: write it whole, e.g. https://api.openai.com/v1"
            )));
        }
        let entry = self.keyring_entry(name)?;
        let key = req.key.trim();
        if key.is_empty() {
            forget(&entry)?;
        } else {
            entry.set_password(key).map_err(keyring_error)?;
        }
        let row =
            store::EndpointRow { name: name.into(), base_url: base_url.into(), added_at: now() };
        self.store.upsert_endpoint(&row)?;
        let added = self.endpoint_list()?.into_iter().find(|e| e.name == name);
        added.ok_or_else(|| Error::NotFound(format!("endpoint '{name}' vanished while added")))
    }

    /// Forgets endpoint `name`: its key leaves the keyring, its row the index.
    pub fn endpoint_remove(&self, name: &str) -> Result<()> {
        self.endpoint_row(name)?;
        forget(&self.keyring_entry(name)?)?;
        self.store.delete_endpoint(name)?;
        Ok(())
    }

    /// Asks endpoint `name` for its models (`GET {base_url}/models`) with its key, and says
    /// what it answered. Never fails for what the endpoint does: that is the answer.
    pub fn endpoint_test(&self, name: &str) -> Result<EndpointTest> {
        let row = self.endpoint_row(name)?;
        let key = self.endpoint_key(name)?;
        let url = format!("{}/models", row.base_url);
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TEST_TIMEOUT))
            .http_status_as_error(false)
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let mut req = agent.get(&url);
        if let Some(key) = &key {
            req = req.header("Authorization", &format!("Bearer {key}"));
        }
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(e) => {
                return Ok(EndpointTest {
                    ok: false,
                    status: None,
                    models: Vec::new(),
                    message: format!("no answer from {url}: {e}"),
                });
            }
        };
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let models: Vec<String> = json["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        let ok = status == 200 && json["data"].is_array();
        let message = if ok {
            format!("{url} answered with {} models", models.len())
        } else {
            let said = json["error"]["message"].as_str().map(str::to_string);
            let hint = match status {
                401 | 403 => ": the key was refused; add the endpoint again with the right key",
                404 => ": check the base URL (it usually ends in /v1)",
                _ => "",
            };
            match said {
                Some(m) => format!("{url} answered {status}: {m}{hint}"),
                None => format!("{url} answered {status} without a model list{hint}"),
            }
        };
        Ok(EndpointTest { ok, status: Some(status), models, message })
    }

    /// The key of endpoint `name`, when the keyring holds one. For the code that calls the
    /// endpoint; never shown, logged or written.
    pub fn endpoint_key(&self, name: &str) -> Result<Option<String>> {
        match self.keyring_entry(name)?.get_password() {
            Ok(k) => Ok(Some(k)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keyring_error(e)),
        }
    }

    /// Saves the Hugging Face access token (gated and private models) in the OS keyring,
    /// replacing the one there. Nothing else keeps it.
    pub fn hf_token_set(&self, token: &str) -> Result<()> {
        let token = token.trim();
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_graphic()) {
            // The token itself stays out of the message.
            return Err(Error::InvalidInput(
                "that is not a Hugging Face token: copy it whole (one word, usually starting with hf_) from https://huggingface.co/settings/tokens".into(),
            ));
        }
        self.keyring_entry(HF_TOKEN_ACCOUNT)?.set_password(token).map_err(keyring_error)
    }

    /// Deletes the Hugging Face token from the OS keyring; none saved is already deleted.
    pub fn hf_token_remove(&self) -> Result<()> {
        forget(&self.keyring_entry(HF_TOKEN_ACCOUNT)?)
    }

    /// The Hugging Face token, when the keyring holds one: for the hub's requests only.
    pub(crate) fn hf_token(&self) -> Result<Option<String>> {
        match self.keyring_entry(HF_TOKEN_ACCOUNT)?.get_password() {
            Ok(k) => Ok(Some(k)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keyring_error(e)),
        }
    }

    pub(crate) fn endpoint_row(&self, name: &str) -> Result<store::EndpointRow> {
        let rows = self.store.endpoints()?;
        rows.into_iter().find(|r| r.name == name).ok_or_else(|| {
            Error::NotFound(format!("no endpoint '{name}': see Settings → API keys"))
        })
    }

    /// The keyring entry of endpoint `name`. Homes other than `~/.vibeflow` (tests, a second
    /// install, `VIBEFLOW_HOME`) keep their keys apart: the service name carries the home's
    /// path.
    pub(crate) fn keyring_entry(&self, name: &str) -> Result<keyring::Entry> {
        let default = std::env::home_dir().and_then(|h| h.join(".vibeflow").canonicalize().ok());
        let home = self.home.canonicalize().unwrap_or_else(|_| self.home.clone());
        let service = if default.as_ref() == Some(&home) {
            "vibeflow".to_string()
        } else {
            format!("vibeflow {}", home.display())
        };
        keyring::Entry::new(&service, name).map_err(keyring_error)
    }
}

/// Deletes `entry`'s key; one that is not there is already forgotten.
pub(crate) fn forget(entry: &keyring::Entry) -> Result<()> {
    match entry.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(keyring_error(e)),
    }
}

pub(crate) fn keyring_error(e: keyring::Error) -> Error {
    let hint = match e {
        keyring::Error::NoDefaultStore | keyring::Error::NoStorageAccess(_) => {
            ": no OS keyring answered (on Linux, start a Secret Service such as GNOME Keyring or KWallet, and unlock it); VibeFlow never keeps keys in files"
        }
        _ => "",
    };
    Error::Keyring(format!("the OS keyring failed: {e}{hint}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;

    /// Stands in for a remote OpenAI-compatible API: `GET /v1/models` answers the model list
    /// to `Bearer sk-right` and OpenAI's 401 error body to any other key.
    fn openai_like() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let (mut path, mut auth) = (String::new(), String::new());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if path.is_empty() {
                        path = line.split(' ').nth(1).unwrap_or_default().to_string();
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("authorization:") {
                        auth = v.trim().to_string();
                    }
                    line.clear();
                }
                let (status, body) = match (path.as_str(), auth.as_str()) {
                    ("/v1/models", "bearer sk-right") => (
                        "200 OK",
                        r#"{"object":"list","data":[{"id":"gpt-x","object":"model"},{"id":"gpt-y","object":"model"}]}"#,
                    ),
                    ("/v1/models", _) => (
                        "401 Unauthorized",
                        r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#,
                    ),
                    _ => ("404 Not Found", r#"{"error":{"message":"Unknown path"}}"#),
                };
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}")
    }

    /// Add, list, test, replace and remove, with the key in the real OS keyring (under
    /// `cargo xtask test` a private Secret Service on Linux) and nowhere in the home.
    #[test]
    fn keys_live_in_the_keyring_and_are_tested_against_the_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        let base = openai_like();
        let add = |key: &str, url: &str| EndpointAdd {
            name: "remote".into(),
            base_url: url.into(),
            key: key.into(),
        };
        let e = match app.endpoint_add(&add("sk-right", &format!("{base}/v1/"))) {
            Ok(e) => e,
            Err(Error::Keyring(m)) if std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none() => {
                eprintln!("skipped: {m} (`cargo xtask test` provides one)");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!((e.base_url.clone(), e.has_key), (format!("{base}/v1"), true));
        assert_eq!(app.endpoint_list().unwrap(), vec![e]);
        let t = app.endpoint_test("remote").unwrap();
        assert!(t.ok && t.status == Some(200), "{t:?}");
        assert_eq!(t.models, ["gpt-x", "gpt-y"]);
        // A wrong key: the endpoint's own message and what to do.
        app.endpoint_add(&add("sk-wrong", &format!("{base}/v1"))).unwrap();
        let t = app.endpoint_test("remote").unwrap();
        assert_eq!((t.ok, t.status), (false, Some(401)));
        assert!(t.message.contains("Incorrect API key provided") && t.message.contains("refused"));
        // The key is nowhere in the home (SQLite, logs, projects).
        for f in walk(dir.path()) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(!bytes.windows(8).any(|w| w == b"sk-wrong"), "key in {}", f.display());
        }
        // A bad URL or name changes nothing; a dead address is an answer, not an error.
        assert!(matches!(
            app.endpoint_add(&add("k", "api.openai.com")),
            Err(Error::InvalidInput(_))
        ));
        let bad = EndpointAdd { name: "a b".into(), ..add("k", &base) };
        assert!(matches!(app.endpoint_add(&bad), Err(Error::InvalidInput(_))));
        app.endpoint_add(&add("", "http://127.0.0.1:9")).unwrap();
        assert!(!app.endpoint_list().unwrap()[0].has_key, "an empty key forgets the old one");
        let t = app.endpoint_test("remote").unwrap();
        assert!(!t.ok && t.status.is_none() && t.message.starts_with("no answer"), "{t:?}");
        // Removal takes the key out of the keyring too.
        app.endpoint_add(&add("sk-right", &base)).unwrap();
        app.endpoint_remove("remote").unwrap();
        assert!(app.endpoint_list().unwrap().is_empty());
        assert_eq!(app.endpoint_key("remote").unwrap(), None);
        assert!(matches!(app.endpoint_remove("remote"), Err(Error::NotFound(_))));
    }

    /// The Hugging Face token: saved, read back for the hub, replaced and deleted, in the
    /// keyring only; a malformed one is refused without being repeated.
    #[test]
    fn hf_token_lives_in_the_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        match app.hf_token_set("hf_first") {
            Ok(()) => {}
            Err(Error::Keyring(m)) if std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none() => {
                eprintln!("skipped: {m} (`cargo xtask test` provides one)");
                return;
            }
            Err(e) => panic!("{e}"),
        }
        app.hf_token_set(" hf_second\n").unwrap();
        assert_eq!(app.hf_token().unwrap().as_deref(), Some("hf_second"));
        let err = app.hf_token_set("hf_a secret").unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if !m.contains("secret")), "{err}");
        assert!(app.endpoint_list().unwrap().is_empty(), "the token is no endpoint");
        for f in walk(dir.path()) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(!bytes.windows(9).any(|w| w == b"hf_second"), "token in {}", f.display());
        }
        app.hf_token_remove().unwrap();
        app.hf_token_remove().unwrap();
        assert_eq!(app.hf_token().unwrap(), None);
    }

    /// Every file under `dir` (a secret must be in none of them).
    pub(crate) fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
        out
    }
}
