//! `vibeflow serve` as a user runs it: the key made, shown once and revoked; a network address
//! refused without a key; the server answering on loopback until Ctrl-C stops it cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use crate::Home;

#[test]
fn serve_key_then_serve_until_ctrl_c() {
    let Some(home) = Home::with_default_model() else { return };
    let out = home.run(&["serve", "key", "create", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        && stderr.contains("keyring")
        && std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none()
    {
        eprintln!("skipped: {stderr} (`cargo xtask test` provides a keyring)");
        return;
    }
    assert!(out.status.success(), "{stderr}");
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("vf-"), "{key}");
    let status = home.json(&["serve", "key", "show-status", "--json"]);
    assert_eq!(status, serde_json::json!({"key_set": true}));
    assert!(!home.ok(&["serve", "key", "show-status"]).contains(&key), "never shown again");
    home.ok(&["serve", "key", "revoke"]);
    assert_eq!(home.json(&["serve", "key", "show-status", "--json"])["key_set"], false);
    let e = home.err(&["serve", "--host", "0.0.0.0", "--port", "0"]);
    assert!(e.contains("0.0.0.0") && e.contains("vibeflow serve key create"), "{e}");
    let e = home.err(&["serve", "--host", "my-laptop", "--port", "0"]);
    assert!(e.contains("not an IP address"), "{e}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_vibeflow"))
        .args(["serve", "--port", "0"])
        .env("VIBEFLOW_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/v1"), "{first}");
    assert_eq!(lines.next().unwrap().unwrap(), "1 models: smollm2-135m-instruct");
    // A plain HTTP/1.1 request, as any client sends it.
    let addr = url.trim_start_matches("http://").trim_end_matches("/v1").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(s, "GET /v1/models HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""id":"smollm2-135m-instruct""#), "{answer}");

    // SAFETY: a plain signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopping the server"));
}
