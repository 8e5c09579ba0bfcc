//! The local server's API key: created (and shown) once, regenerated, revoked; kept in the OS
//! keyring beside the endpoints' keys and nowhere else.

use api::serve::ApiKey;
use rand::Rng;

use crate::endpoints::{forget, keyring_error};
use crate::{App, Result};

/// The keyring account of the server's key (the ':' keeps it apart from endpoint names).
const SERVE_KEY_ACCOUNT: &str = "serve:api-key";

/// Characters of a key after its `vf-` prefix (62 symbols: about 238 bits).
const KEY_CHARS: usize = 40;

impl App {
    /// Creates the server's API key, replacing any earlier one (which stops working), and
    /// returns it: the only time it is shown.
    pub fn serve_key_create(&self) -> Result<ApiKey> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        // rand's thread generator is a CSPRNG seeded from the OS.
        let mut rng = rand::rng();
        let body: String =
            (0..KEY_CHARS).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
        let key = format!("vf-{body}");
        self.keyring_entry(SERVE_KEY_ACCOUNT)?.set_password(&key).map_err(keyring_error)?;
        Ok(ApiKey { key })
    }

    /// Deletes the server's API key; none is already revoked.
    pub fn serve_key_revoke(&self) -> Result<()> {
        forget(&self.keyring_entry(SERVE_KEY_ACCOUNT)?)
    }

    /// The server's API key, when one exists: for the server to compare requests with; never
    /// shown, logged or written.
    pub fn serve_key(&self) -> Result<Option<String>> {
        match self.keyring_entry(SERVE_KEY_ACCOUNT)?.get_password() {
            Ok(k) => Ok(Some(k)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keyring_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{App, Error};

    /// Create shows a fresh key each time (the old one gone), revoke deletes it; the key is
    /// nowhere in the home.
    #[test]
    fn server_key_is_created_regenerated_and_revoked_in_the_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path()).unwrap();
        let first = match app.serve_key_create() {
            Ok(k) => k.key,
            Err(Error::Keyring(m)) if std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none() => {
                eprintln!("skipped: {m} (`cargo xtask test` provides one)");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(first.starts_with("vf-") && first.len() == 43, "{first}");
        assert_eq!(app.serve_key().unwrap().as_deref(), Some(first.as_str()));
        let second = app.serve_key_create().unwrap().key;
        assert_ne!(first, second);
        assert_eq!(app.serve_key().unwrap(), Some(second.clone()));
        for f in crate::endpoints::tests::walk(dir.path()) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(
                !bytes.windows(second.len()).any(|w| w == second.as_bytes()),
                "key in {}",
                f.display()
            );
        }
        app.serve_key_revoke().unwrap();
        app.serve_key_revoke().unwrap();
        assert_eq!(app.serve_key().unwrap(), None);
    }
}
