//! A private single-node Slurm for tests (Debian's slurm-wlm and munge, started with a
//! generated slurm.conf on free ports), shared by the CLI's and the window's tests.
// Each test crate uses its own part.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private Slurm controller and node (and their munge), stopped when dropped.
pub struct Slurm {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

impl Slurm {
    /// Starts one, or says why it cannot (`None`; under `cargo xtask test` a missing Slurm is a
    /// broken setup: it panics).
    pub fn start() -> Option<Slurm> {
        let missing: Vec<&str> = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel"]
            .into_iter()
            .filter(|p| which(p).is_none())
            .collect();
        if !missing.is_empty() {
            assert!(
                std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none(),
                "{missing:?} not found: the setup of `cargo xtask test` installs slurm-wlm and munge"
            );
            eprintln!("skipped: {missing:?} not found (slurm-wlm and munge)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["state", "spool", "munge"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let key = d.join("munge/munge.key");
        std::fs::write(&key, (0..1024).map(|i| (i * 7 + 13) as u8).collect::<Vec<u8>>()).unwrap();
        set_mode(&key, 0o600);
        let mut daemons = Vec::new();
        let sock = d.join("munge/sock");
        daemons.push(
            Command::new(which("munged").unwrap())
                .arg("-F")
                .arg("--force")
                .arg(format!("--socket={}", sock.display()))
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--log-file={}", d.join("munge/log").display()))
                .arg(format!("--pid-file={}", d.join("munge/pid").display()))
                .arg(format!("--seed-file={}", d.join("munge/seed").display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for(|| sock.exists(), "munged's socket");
        let host = output("hostname", &["-s"]).trim().to_string();
        let user = output("id", &["-un"]).trim().to_string();
        let (ctl, node) = (free_port(), free_port());
        let conf = format!(
            "ClusterName=vibeflowtest\nSlurmctldHost={host}\nSlurmUser={user}\nSlurmdUser={user}\n\
             AuthType=auth/munge\nAuthInfo=socket={sock}\nCredType=cred/munge\n\
             SlurmctldPort={ctl}\nSlurmdPort={node}\nStateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\nSlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\nSlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             SwitchType=switch/none\nMpiDefault=none\nSelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\nSchedulerType=sched/backfill\nReturnToService=2\n\
             MinJobAge=600\nKillWait=30\nJobCompType=jobcomp/none\n\
             AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n\
             NodeName={host} CPUs={cpus} State=UNKNOWN\n\
             PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            sock = sock.display(),
            d = d.display(),
            cpus = std::thread::available_parallelism().map_or(1, |n| n.get()),
        );
        std::fs::write(d.join("slurm.conf"), conf).unwrap();
        for daemon in ["slurmctld", "slurmd"] {
            daemons.push(
                Command::new(which(daemon).unwrap())
                    .args(["-D", "-c"])
                    .env("SLURM_CONF", d.join("slurm.conf"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
        let slurm = Slurm { dir, daemons };
        wait_for(
            || {
                let out = slurm.command("sinfo").args(["-h", "-o", "%T"]).output().unwrap();
                String::from_utf8_lossy(&out.stdout).trim() == "idle"
            },
            "the node to be idle",
        );
        Some(slurm)
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.conf());
        c
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        for d in self.daemons.iter_mut().rev() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(60), "waited 60 s for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A private sshd on a free port of 127.0.0.1 that lets this user in with a key generated here,
/// and the client configuration to reach it as host [`Sshd::HOST`] (`ssh -F`, so the user's own
/// `~/.ssh` is left alone). Its sessions get `env` (the scheduler's configuration).
pub struct Sshd {
    dir: tempfile::TempDir,
    daemon: Child,
}

impl Sshd {
    /// The host name the client configuration gives it.
    pub const HOST: &'static str = "vibeflow-test-login";

    /// Starts one, or says why it cannot (as [`Slurm::start`]).
    pub fn start(env: &[(&str, &Path)]) -> Option<Sshd> {
        let Some(sshd) = which("sshd") else {
            assert!(
                std::env::var_os("VIBEFLOW_REQUIRE_SETUP").is_none(),
                "sshd not found: the setup of `cargo xtask test` installs openssh-server"
            );
            eprintln!("skipped: sshd not found (openssh-server)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host", "user"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .output()
                .unwrap();
            assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::fs::copy(d.join("user.pub"), d.join("authorized_keys")).unwrap();
        let user = output("id", &["-un"]).trim().to_string();
        let port = free_port();
        let set_env: String = env.iter().map(|(k, v)| format!(" {k}={}", v.display())).collect();
        let server = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAllowUsers {user}\n\
             Subsystem sftp internal-sftp\nSetEnv{set_env}\n",
            d = d.display(),
        );
        std::fs::write(d.join("sshd_config"), server).unwrap();
        let host_key = std::fs::read_to_string(d.join("host.pub")).unwrap();
        std::fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {host_key}")).unwrap();
        let client = format!(
            "Host {host}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/user\n\
             \x20 IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n",
            host = Self::HOST,
            d = d.display(),
        );
        std::fs::write(d.join("ssh_config"), client).unwrap();
        // Run as root, sshd wants its privilege-separation folder (systemd makes it when it
        // starts the system's sshd).
        if user == "root" {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let daemon = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let sshd = Sshd { dir, daemon };
        wait_for(
            || {
                Command::new("ssh")
                    .arg("-F")
                    .arg(sshd.config())
                    .args(["-o", "BatchMode=yes", Self::HOST, "true"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
            "sshd to let the test's key in",
        );
        Some(sshd)
    }

    /// The client configuration (`VIBEFLOW_SSH_CONFIG`).
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
