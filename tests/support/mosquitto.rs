//! A real MQTT broker for integration tests: Debian's mosquitto (from
//! `scripts/fetch-mosquitto.sh`, in `<repo>/.receivers/mosquitto`), started on 127.0.0.1 with
//! a password file (made by `mosquitto_passwd`), an ACL shaped like The Things Stack's topic
//! rights, a plain listener and a TLS listener whose certificate is signed by a test CA made
//! here with rcgen. A missing mosquitto is a test failure, never a skip.

use super::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// `<repo>/.receivers/mosquitto/root`, or a panic saying how to get it.
fn root() -> PathBuf {
    let r = Path::new(env!("CARGO_MANIFEST_DIR")).join(".receivers/mosquitto/root");
    if !r.join("usr/sbin/mosquitto").is_file() {
        panic!(
            "mosquitto not found in {}: run `scripts/fetch-mosquitto.sh` from the repository root first \
             (it extracts Debian's mosquitto and the libraries it needs into .receivers/mosquitto)",
            r.display()
        );
    }
    r
}

/// The library folders the extracted packages brought (for `LD_LIBRARY_PATH`).
fn lib_path(root: &Path) -> String {
    let mut dirs = Vec::new();
    for base in ["usr/lib", "lib"] {
        if let Ok(rd) = std::fs::read_dir(root.join(base)) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().ends_with("-linux-gnu"))
                {
                    dirs.push(p.display().to_string());
                }
            }
        }
    }
    dirs.push(root.join("usr/lib").display().to_string());
    dirs.join(":")
}

/// A running mosquitto; killed when dropped.
pub struct Mosquitto {
    pub port: u16,
    pub tls_port: u16,
    /// The test CA that signed the TLS listener's certificate (for `tls.ca_file`).
    pub ca_file: PathBuf,
    dir: TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts mosquitto accepting `users` (name, password). Each user may read `v3/<name>/#`
    /// (as on The Things Stack); the user `stack` (password `stack-secret`), the simulated
    /// Application Server, may publish anywhere under `v3/`.
    pub fn start(users: &[(&str, &str)]) -> Mosquitto {
        let root = root();
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let mut acl = String::from("user stack\ntopic readwrite v3/#\n\n");
        let mut all: Vec<(&str, &str)> = users.to_vec();
        all.push(("stack", "stack-secret"));
        for (i, (u, p)) in all.iter().enumerate() {
            let mut cmd = Command::new(root.join("usr/bin/mosquitto_passwd"));
            if i == 0 {
                cmd.arg("-c");
            }
            let out = cmd
                .args(["-b", passwd.to_str().unwrap(), u, p])
                .env("LD_LIBRARY_PATH", lib_path(&root))
                .output()
                .expect("run mosquitto_passwd");
            assert!(
                out.status.success(),
                "mosquitto_passwd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if *u != "stack" {
                acl.push_str(&format!("user {u}\ntopic read v3/{u}/#\n\n"));
            }
        }
        std::fs::write(dir.path().join("acl"), acl).unwrap();

        // A test CA and a certificate for 127.0.0.1 and localhost.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pushrelay test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();

        let mut m = Mosquitto {
            port: free_port(),
            tls_port: free_port(),
            ca_file,
            dir,
            child: None,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let conf = format!(
            "user root\nper_listener_settings false\nallow_anonymous false\npersistence false\n\
             password_file {d}/passwd\nacl_file {d}/acl\n\
             log_dest file {d}/mosquitto.log\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nlog_type subscribe\n\
             connection_messages true\n\
             listener {} 127.0.0.1\n\
             listener {} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n",
            self.port,
            self.tls_port,
            d = d.display()
        );
        std::fs::write(d.join("mosquitto.conf"), conf).unwrap();
        let root = root();
        let child = Command::new(root.join("usr/sbin/mosquitto"))
            .arg("-c")
            .arg(d.join("mosquitto.conf"))
            .env("LD_LIBRARY_PATH", lib_path(&root))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", self.tls_port)).is_err()
        {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("mosquitto exited ({status}):\n{}", self.logs());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "mosquitto did not listen:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker (SIGKILL: clients see the connection drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The broker's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
