//! A throwaway Dovecot (Debian's `dovecot-imapd`) on loopback: the reference IMAP server the
//! FETCH and SEARCH oracle tests and the Dovecot benchmark compare the bridge with. One user,
//! `tester` / `secret`, with a Maildir in a temporary folder; stopped on drop.
//!
//! Dovecot must be started as root (as in CI) or as the user owning the files; as root, its mail
//! processes run as the `dovecot` system user the package creates.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub const DOVECOT: &str = "/usr/sbin/dovecot";
pub const USER: &str = "tester";
pub const PASSWORD: &str = "secret";

pub struct Dovecot {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Dovecot {
    /// Starts an instance named `graphbridge-<purpose>-<port>`; `extra` is appended to the
    /// configuration (limits for a benchmark, say).
    pub fn start(purpose: &str, extra: &str) -> Dovecot {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path();
        for sub in ["run", "state", "mail", "home"] {
            fs::create_dir_all(base.join(sub)).expect("mkdir");
        }
        fs::set_permissions(base, fs::Permissions::from_mode(0o755)).expect("chmod");
        let port = free_port();
        let (user, uid, gid) = mail_user();
        for sub in ["mail", "home"] {
            chown(base.join(sub), Some(uid), Some(gid)).expect("chown mail dirs");
        }
        fs::write(
            base.join("passwd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
        )
        .expect("passwd");
        let instance = format!("graphbridge-{purpose}-{port}");
        let config = config(base, port, &instance, &user, uid, gid) + extra;
        fs::write(base.join("dovecot.conf"), config).expect("config");
        // INTERNALDATE searches compare dates in the server's zone; the bridge uses UTC.
        let status = Command::new(DOVECOT)
            .arg("-c")
            .arg(base.join("dovecot.conf"))
            .env("TZ", "UTC")
            .status()
            .expect("run dovecot");
        assert!(status.success(), "dovecot failed to start: {}", log(base));
        let server = Dovecot { dir, port };
        server.wait_until_listening();
        server
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The master process, whose children serve the connections.
    pub fn master_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.path().join("run/master.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    fn wait_until_listening(&self) {
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "dovecot never listened on {}: {}",
            self.port,
            log(self.dir.path())
        );
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("dovecot log:\n{}", log(self.dir.path()));
        }
        let _ = Command::new(DOVECOT)
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .arg("stop")
            .status();
    }
}

fn log(base: &Path) -> String {
    fs::read_to_string(base.join("log")).unwrap_or_default()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The account Dovecot runs mail processes as: ourselves, or as root (which Dovecot
/// refuses for mail access) the `dovecot` system user the package creates.
fn mail_user() -> (String, u32, u32) {
    let me = fs::metadata("/proc/self").expect("/proc/self");
    let wanted = if me.uid() == 0 { Some("dovecot") } else { None };
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let (uid, gid) = (
            f[2].parse().unwrap_or(u32::MAX),
            f[3].parse().unwrap_or(u32::MAX),
        );
        if wanted.map_or(uid == me.uid(), |w| f[0] == w) {
            return (f[0].to_string(), uid, gid);
        }
    }
    panic!("no suitable user for dovecot's mail processes");
}

fn config(base: &Path, port: u16, instance: &str, user: &str, uid: u32, gid: u32) -> String {
    let b = base.display();
    // As non-root, every internal service runs as ourselves.
    let own_users = if uid == 0 || user == "dovecot" {
        String::new()
    } else {
        format!("default_internal_user = {user}\ndefault_login_user = {user}\ndefault_internal_group = {user}\n")
    };
    format!(
        "base_dir = {b}/run
state_dir = {b}/state
log_path = {b}/log
instance_name = {instance}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
login_trusted_networks = 127.0.0.0/8
auth_mechanisms = plain
first_valid_uid = {uid}
mail_location = maildir:{b}/mail/%u
{own_users}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {b}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={b}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"
    )
}
