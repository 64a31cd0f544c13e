//! A throwaway OpenLDAP server (Debian's `slapd`) on a loopback port, with its own
//! configuration directory (`tests/ldap/config.ldif`) and the people of
//! `tests/ldap/fixture.ldif`, loaded with `ldapadd` after start so that the memberof
//! overlay fills `memberOf` (`../shared/ldap-notes.md`). With TLS, a test CA (EC P-256)
//! and a certificate for 127.0.0.1 made by `openssl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The root DN and its password (the tests' own edits to the directory).
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=com";
const ADMIN_PW: &str = "admin-secret";
/// Autoland's bind.
pub const BIND_DN: &str = "cn=autoland,ou=services,dc=example,dc=com";
pub const BIND_PW: &str = "autoland-bind-secret";

/// A running slapd.
pub struct Slapd {
    pub port: u16,
    pub url: String,
    /// The test CA's certificate (with TLS).
    pub ca: Option<PathBuf>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ldap")
        .join(name)
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Slapd {
    /// Configures and starts a server (with StartTLS when `tls`) and loads the fixture.
    pub fn start(tls: bool) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("slapd.d")).unwrap();
        std::fs::create_dir_all(d.join("db")).unwrap();
        let (tls_lines, ca) = if tls {
            let key = |name: &str| {
                run(
                    "openssl",
                    &[
                        "ecparam",
                        "-genkey",
                        "-name",
                        "prime256v1",
                        "-noout",
                        "-out",
                        d.join(name).to_str().unwrap(),
                    ],
                )
            };
            key("ca.key");
            run(
                "openssl",
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-key",
                    d.join("ca.key").to_str().unwrap(),
                    "-subj",
                    "/CN=Autoland test CA",
                    "-days",
                    "2",
                    "-out",
                    d.join("ca.pem").to_str().unwrap(),
                ],
            );
            key("server.key");
            run(
                "openssl",
                &[
                    "req",
                    "-new",
                    "-key",
                    d.join("server.key").to_str().unwrap(),
                    "-subj",
                    "/CN=127.0.0.1",
                    "-out",
                    d.join("server.csr").to_str().unwrap(),
                ],
            );
            std::fs::write(
                d.join("ext.cnf"),
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
            )
            .unwrap();
            run(
                "openssl",
                &[
                    "x509",
                    "-req",
                    "-in",
                    d.join("server.csr").to_str().unwrap(),
                    "-CA",
                    d.join("ca.pem").to_str().unwrap(),
                    "-CAkey",
                    d.join("ca.key").to_str().unwrap(),
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    d.join("ext.cnf").to_str().unwrap(),
                    "-out",
                    d.join("server.pem").to_str().unwrap(),
                ],
            );
            (
                format!(
                    "olcTLSCACertificateFile: {0}/ca.pem\nolcTLSCertificateFile: {0}/server.pem\n\
                     olcTLSCertificateKeyFile: {0}/server.key",
                    d.display()
                ),
                Some(d.join("ca.pem")),
            )
        } else {
            (String::new(), None)
        };
        let config = std::fs::read_to_string(repo_file("config.ldif"))
            .unwrap()
            .replace("@DIR@", &d.display().to_string())
            .replace("@ROOTPW@", ADMIN_PW)
            .replace("@TLS@", &tls_lines);
        std::fs::write(d.join("config.ldif"), config).unwrap();
        run(
            "slapadd",
            &[
                "-n0",
                "-F",
                d.join("slapd.d").to_str().unwrap(),
                "-l",
                d.join("config.ldif").to_str().unwrap(),
            ],
        );
        let port = super::free_port();
        let mut slapd = Slapd {
            port,
            url: format!("ldap://127.0.0.1:{port}"),
            ca,
            dir,
            child: None,
        };
        slapd.run();
        slapd.ldap_modify(
            "ldapadd",
            &std::fs::read_to_string(repo_file("fixture.ldif")).unwrap(),
        );
        slapd
    }

    /// Starts the server process (again) and waits until it answers.
    pub fn run(&mut self) {
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("slapd.log")).unwrap();
        let child = Command::new("slapd")
            .args([
                "-h",
                &format!("ldap://127.0.0.1:{}/", self.port),
                "-F",
                d.join("slapd.d").to_str().unwrap(),
                "-d",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("slapd starts (apt-get install slapd ldap-utils)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answered = Command::new("ldapsearch")
                .args([
                    "-x",
                    "-H",
                    &self.url,
                    "-D",
                    ADMIN_DN,
                    "-w",
                    ADMIN_PW,
                    "-b",
                    "",
                    "-s",
                    "base",
                    "(objectClass=*)",
                ])
                .output()
                .is_ok_and(|o| o.status.success());
            if answered {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not answer: {}",
                std::fs::read_to_string(d.join("slapd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (kill; `run` starts it again on the same port and data).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.dir.path().join("slapd.pid"));
    }

    /// Applies `ldif` as the root DN with `ldapadd` or `ldapmodify`.
    pub fn ldap_modify(&self, program: &str, ldif: &str) {
        let path = self.dir.path().join("change.ldif");
        std::fs::write(&path, ldif).unwrap();
        run(
            program,
            &[
                "-x",
                "-H",
                &self.url,
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PW,
                "-f",
                path.to_str().unwrap(),
            ],
        );
    }

    /// The `[permissions]` section for this server (bind password read from `password_file`).
    pub fn permissions_toml(&self, password_file: &Path, extra: &str) -> String {
        let tls = match &self.ca {
            Some(ca) => format!("starttls = true\nca_file = \"{}\"\n", ca.display()),
            None => String::new(),
        };
        format!(
            "\n[permissions]\nsource = \"ldap\"\n\n[permissions.ldap]\nurl = \"{url}\"\n{tls}bind_dn = \"{BIND_DN}\"\n\
             bind_password_file = \"{file}\"\nbase_dn = \"ou=people,dc=example,dc=com\"\n\
             login_attribute = \"bugzillaEmail\"\ntimeout_seconds = 2\nhealth_seconds = 1\n{extra}\n\
             groups = {{ \"cn=scm_level_1,ou=groups,dc=example,dc=com\" = \"scm_level_1\", \
             scm_level_2 = \"scm_level_2\", \"cn=scm_level_3,ou=groups,dc=example,dc=com\" = \"scm_level_3\" }}\n",
            url = self.url,
            file = password_file.display(),
        )
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
