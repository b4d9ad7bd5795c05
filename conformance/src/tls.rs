//! Throwaway certificates for tests of TLS clients and servers, made with the `openssl`
//! command-line tool (Debian package `openssl`): a certificate authority of the test's own
//! and the certificates it signs, with EC P-256 keys (made in milliseconds) valid for a day.
//!
//! `openssl` runs with an empty configuration, so the certificates carry exactly the
//! extensions asked for here whatever the machine's `openssl.cnf` adds.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The OpenSSL command-line tool, looked up in `PATH`.
pub const OPENSSL_BIN: &str = "openssl";

/// A certificate and its unencrypted private key, PEM files.
#[derive(Debug, Clone)]
pub(crate) struct CertKey {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// What a certificate is for.
pub(crate) enum Role<'a> {
    /// A TLS server reached at these hosts (IP addresses or DNS names).
    Server(&'a [&'a str]),
    /// A TLS client.
    Client,
}

impl Role<'_> {
    /// The `-addext` values of a leaf certificate in this role.
    fn extensions(&self) -> Vec<String> {
        let mut extensions = vec![
            "basicConstraints=critical,CA:FALSE".to_owned(),
            "keyUsage=critical,digitalSignature".to_owned(),
        ];
        match self {
            Role::Server(hosts) => {
                let names: Vec<String> = hosts.iter().map(|host| subject_alt_name(host)).collect();
                extensions.push(format!("subjectAltName={}", names.join(",")));
                // etcd also dials its own client port with its server certificate (its
                // HTTP gateway), which a server asking for client certificates checks.
                extensions.push("extendedKeyUsage=serverAuth,clientAuth".to_owned());
            }
            Role::Client => extensions.push("extendedKeyUsage=clientAuth".to_owned()),
        }
        extensions
    }
}

/// `IP:` for an address, `DNS:` for a name.
fn subject_alt_name(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(_) => format!("IP:{host}"),
        Err(_) => format!("DNS:{host}"),
    }
}

/// A certificate authority made for one test: its certificate is what clients or servers
/// are told to trust, and it signs the certificates of [`TestCa::issue`].
#[derive(Debug)]
pub struct TestCa {
    own: CertKey,
}

impl TestCa {
    /// Makes a new self-signed CA, `NAME.pem` and `NAME.key` in `dir`.
    ///
    /// # Panics
    /// If `openssl` cannot be run or fails (the message shows its output).
    pub fn create(dir: &Path, name: &str) -> TestCa {
        let own = files(dir, name);
        let ca_extensions = [
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign",
        ];
        openssl(&own, name, &ca_extensions, &[]);
        TestCa { own }
    }

    /// The CA's certificate (PEM).
    pub fn cert(&self) -> &Path {
        &self.own.cert
    }

    /// A certificate for `role` named `name`, signed by this CA: `NAME.pem` and `NAME.key`
    /// in `dir`.
    pub(crate) fn issue(&self, dir: &Path, name: &str, role: &Role<'_>) -> CertKey {
        let issued = files(dir, name);
        let extensions = role.extensions();
        let extensions: Vec<&str> = extensions.iter().map(String::as_str).collect();
        let signer = [
            "-CA".as_ref(),
            self.own.cert.as_os_str(),
            "-CAkey".as_ref(),
            self.own.key.as_os_str(),
        ];
        openssl(&issued, name, &extensions, &signer);
        issued
    }
}

fn files(dir: &Path, name: &str) -> CertKey {
    CertKey {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    }
}

/// `openssl req -x509`: a new key and a certificate for it with common name `name` and
/// `extensions`, self-signed or signed as `signer` says (`-CA`, `-CAkey`).
fn openssl(out: &CertKey, name: &str, extensions: &[&str], signer: &[&std::ffi::OsStr]) {
    let mut command = Command::new(OPENSSL_BIN);
    command
        .args([
            "req",
            "-config",
            "/dev/null",
            "-x509",
            "-noenc",
            "-days",
            "1",
        ])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(&out.key)
        .arg("-out")
        .arg(&out.cert)
        .args(signer);
    for extension in extensions {
        command.args(["-addext", extension]);
    }
    let output = command.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("cannot run {OPENSSL_BIN}: {e}; install the Debian package openssl")
    });
    assert!(
        output.status.success(),
        "{OPENSSL_BIN} could not make certificate {name} ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
}
