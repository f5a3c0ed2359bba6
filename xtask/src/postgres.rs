//! `cargo xtask postgres start|stop|url|status`: a throw-away PostgreSQL cluster for
//! the PostgreSQL store's tests and benchmarks, from Debian's `postgresql` package.
//!
//! The cluster lives in a directory of the system's temporary directory named after
//! the user and the project (so `start`, `url` and `stop` find it again): `initdb`
//! with trust authentication, then `pg_ctl start` listening on 127.0.0.1 at a free
//! port and on a Unix socket in the same directory. The URL
//! (`postgres://postgres@127.0.0.1:PORT/postgres`) is what the tests read from
//! `FLOCK_TEST_POSTGRES_URL`.
//!
//! PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres`
//! user (Debian's package creates it; else a system user `flock-postgres` is
//! created) and every server command runs through `runuser`. As anyone else the
//! commands run as that user, and only installing the package needs `sudo`.

use std::{
    env, fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// The variable the PostgreSQL tests read the server's URL from.
pub(crate) const URL_VAR: &str = "FLOCK_TEST_POSTGRES_URL";

/// Where Debian's packages put each major version's server programs.
const DEBIAN_BIN_ROOT: &str = "/usr/lib/postgresql";

/// The system user that owns the cluster when xtask runs as root.
const SERVICE_USERS: [&str; 2] = ["postgres", "flock-postgres"];

pub(crate) fn postgres(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("start") => {
            let url = start()?;
            println!("{url}");
            Ok(())
        }
        Some("stop") => stop(),
        Some("url") => match running_url()? {
            Some(url) => {
                println!("{url}");
                Ok(())
            }
            None => bail!(
                "no throw-away PostgreSQL is running; start one with `cargo xtask postgres start`"
            ),
        },
        Some("status") => {
            match running_url()? {
                Some(url) => println!("running: {url} (in {})", cluster_dir()?.display()),
                None => println!("stopped"),
            }
            Ok(())
        }
        _ => bail!(
            "usage: cargo xtask postgres start|stop|url|status\n  \
             start   start a throw-away cluster (installs Debian's postgresql if needed); prints its URL\n  \
             stop    stop it and delete its data\n  \
             url     print the URL of the running cluster\n  \
             status  say whether it runs"
        ),
    }
}

/// A cluster `cargo xtask test` (or `bench`) started for its own run, stopped when
/// dropped; `None` inside when the URL came from the environment or from a cluster
/// `cargo xtask postgres start` left running.
pub(crate) struct ForRun {
    started: bool,
    url: String,
}

impl ForRun {
    /// The URL to hand the tests in [`URL_VAR`].
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ForRun {
    fn drop(&mut self) {
        if self.started
            && let Err(err) = stop()
        {
            eprintln!("xtask: could not stop the throw-away PostgreSQL: {err:#}");
        }
    }
}

/// The PostgreSQL the tests use: `FLOCK_TEST_POSTGRES_URL` when set, else the
/// running throw-away cluster, else one started now (and stopped when the returned
/// value is dropped).
pub(crate) fn for_run() -> Result<ForRun> {
    if let Some(url) = env::var(URL_VAR).ok().filter(|u| !u.is_empty()) {
        return Ok(ForRun {
            started: false,
            url,
        });
    }
    if let Some(url) = running_url()? {
        eprintln!("xtask: using the running throw-away PostgreSQL at {url}");
        return Ok(ForRun {
            started: false,
            url,
        });
    }
    let url = start().context(
        "could not start a throw-away PostgreSQL for the tests; set FLOCK_TEST_POSTGRES_URL \
         to a server's URL instead (postgres://user@host:port/database)",
    )?;
    Ok(ForRun { started: true, url })
}

// === the cluster's directory ===

fn cluster_dir() -> Result<PathBuf> {
    let root = crate::project_root();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in root.to_string_lossy().bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(env::temp_dir().join(format!("flock-rs-postgres-{}-{hash:016x}", uid()?)))
}

fn uid() -> Result<u32> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .context("cannot run `id -u`")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("`id -u` printed no number")
}

/// The URL of the cluster when its server answers `pg_ctl status`.
fn running_url() -> Result<Option<String>> {
    let dir = cluster_dir()?;
    let Ok(url) = fs::read_to_string(dir.join("url")) else {
        return Ok(None);
    };
    let Ok(bin) = fs::read_to_string(dir.join("bin")) else {
        return Ok(None);
    };
    let status = server_command(Path::new(bin.trim()), "pg_ctl")?
        .args(["status", "-D"])
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    Ok(status
        .is_ok_and(|s| s.success())
        .then(|| url.trim().to_owned()))
}

// === start and stop ===

fn start() -> Result<String> {
    if let Some(url) = running_url()? {
        eprintln!("xtask: the throw-away PostgreSQL already runs");
        return Ok(url);
    }
    let bin = server_bin_dir()?;
    let dir = cluster_dir()?;
    if dir.exists() {
        // A cluster whose server is gone (a killed run): start afresh.
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::write(dir.join("bin"), bin.to_string_lossy().as_bytes())?;
    if let Some(user) = service_user()? {
        run(Command::new("chown").arg("-R").arg(&user).arg(&dir))?;
    }
    let data = dir.join("data");
    eprintln!("xtask: initdb {}", data.display());
    run(server_command(&bin, "initdb")?
        .arg("-D")
        .arg(&data)
        .args([
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdout(Stdio::null()))?;
    let mut last_error = None;
    // A free port may be taken between looking and listening: try a few.
    for _ in 0..3 {
        let port = free_port()?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            dir.display()
        );
        let status = server_command(&bin, "pg_ctl")?
            .arg("start")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-t", "60", "-o", &options])
            .stdout(Stdio::null())
            .status()
            .context("cannot run pg_ctl")?;
        if status.success() {
            let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
            fs::write(dir.join("url"), &url)?;
            eprintln!("xtask: PostgreSQL listens at {url}");
            return Ok(url);
        }
        last_error = Some(format!("pg_ctl start failed ({status})"));
    }
    let log = fs::read_to_string(dir.join("log")).unwrap_or_default();
    bail!(
        "{}; the server's log ({}):\n{log}",
        last_error.unwrap_or_default(),
        dir.join("log").display()
    )
}

fn stop() -> Result<()> {
    let dir = cluster_dir()?;
    if !dir.exists() {
        eprintln!("xtask: no throw-away PostgreSQL to stop");
        return Ok(());
    }
    if let Ok(bin) = fs::read_to_string(dir.join("bin"))
        && dir.join("data/postmaster.pid").exists()
    {
        let status = server_command(Path::new(bin.trim()), "pg_ctl")?
            .arg("stop")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-m", "fast", "-w"])
            .stdout(Stdio::null())
            .status()
            .context("cannot run pg_ctl")?;
        if !status.success() {
            bail!(
                "pg_ctl stop failed ({status}); its data stays in {}",
                dir.display()
            );
        }
    }
    fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    eprintln!("xtask: the throw-away PostgreSQL stopped");
    Ok(())
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("no free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

// === the server's programs and who runs them ===

/// The directory of `initdb` and `pg_ctl`: Debian's newest
/// `/usr/lib/postgresql/<version>/bin`, else `PATH`; installs Debian's `postgresql`
/// when neither has them. `FLOCK_POSTGRES_BIN` names another directory.
fn server_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = env::var_os("FLOCK_POSTGRES_BIN") {
        let dir = PathBuf::from(dir);
        if !dir.join("initdb").exists() {
            bail!("FLOCK_POSTGRES_BIN={} has no initdb", dir.display());
        }
        return Ok(dir);
    }
    if let Some(dir) = find_bin_dir() {
        return Ok(dir);
    }
    eprintln!("xtask: initdb and pg_ctl not found; installing Debian's postgresql package");
    install_postgresql()?;
    find_bin_dir().context(
        "Debian's postgresql package is installed but no initdb was found under \
         /usr/lib/postgresql/<version>/bin or on PATH",
    )
}

fn find_bin_dir() -> Option<PathBuf> {
    let debian = fs::read_dir(DEBIAN_BIN_ROOT).ok().and_then(|entries| {
        entries
            .flatten()
            .filter_map(|e| {
                let version: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                (bin.join("initdb").exists() && bin.join("pg_ctl").exists())
                    .then_some((version, bin))
            })
            .max()
            .map(|(_, bin)| bin)
    });
    debian.or_else(|| {
        env::split_paths(&env::var_os("PATH")?)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

fn install_postgresql() -> Result<()> {
    let sudo = uid()? != 0;
    let apt = |args: &[&str]| -> Result<()> {
        let mut cmd = if sudo {
            let mut cmd = Command::new("sudo");
            cmd.arg("--non-interactive").arg("apt-get");
            cmd
        } else {
            Command::new("apt-get")
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd).with_context(|| {
            format!(
                "`{}apt-get {}` failed; install PostgreSQL's server (Debian: `apt-get install \
                 postgresql`) or set FLOCK_POSTGRES_BIN to the directory of its initdb",
                if sudo { "sudo " } else { "" },
                args.join(" ")
            )
        })
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "postgresql"])
}

/// The user the server runs as when xtask runs as root (`None` otherwise): Debian's
/// `postgres`, else `flock-postgres`, created as a system user.
fn service_user() -> Result<Option<String>> {
    if uid()? != 0 {
        return Ok(None);
    }
    for user in SERVICE_USERS {
        let exists = Command::new("id")
            .arg("-u")
            .arg(user)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if exists {
            return Ok(Some(user.to_owned()));
        }
    }
    let user = SERVICE_USERS[1];
    run(Command::new("useradd").args([
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        user,
    ]))
    .context("running as root, and no `postgres` user to run PostgreSQL as")?;
    Ok(Some(user.to_owned()))
}

/// `program` of the server's `bin` directory, run as the service user when root.
fn server_command(bin: &Path, program: &str) -> Result<Command> {
    let path = bin.join(program);
    Ok(match service_user()? {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", &user, "--"]).arg(path);
            // The server's user may not read the caller's working directory.
            cmd.current_dir(env::temp_dir());
            cmd
        }
        None => Command::new(path),
    })
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}
