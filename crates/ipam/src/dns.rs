//! `ipam.resolvConf`: a resolv.conf file turned into the result's `dns`, exactly as the
//! reference's `parseResolvConf` reads it (PL:plugins/ipam/host-local/dns.go).

use cni::Dns;
use nix::fcntl::OFlag;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The longest line read, as the reference's `bufio.Scanner` (`MaxScanTokenSize`, 64 KiB):
/// a longer line fails the read there too.
pub const MAX_LINE: usize = 64 * 1024;

/// The most read from the file: a real resolv.conf is a few hundred bytes, and without a
/// bound a path like `/dev/zero` would grow the plugin until the OOM killer stops it.
pub const MAX_SIZE: u64 = 1024 * 1024;

/// Reads and parses the resolv.conf at `path`, refusing a FIFO or socket (reading one could
/// wait forever), more than [`MAX_SIZE`] bytes or a line longer than [`MAX_LINE`].
///
/// The open is non-blocking too: opening a FIFO for reading would otherwise wait for a
/// writer before the type could be checked.
pub fn read_resolv_conf(path: &Path) -> io::Result<Dns> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)?;
    let file_type = file.metadata()?.file_type();
    if file_type.is_fifo() || file_type.is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file (a FIFO or socket)",
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_SIZE} bytes"),
        ));
    }
    if bytes
        .split(|&b| b == b'\n')
        .any(|line| line.len() > MAX_LINE)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a line is longer than {MAX_LINE} bytes"),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))?;
    Ok(parse_resolv_conf(&text))
}

/// Parses resolv.conf text: `nameserver` appends its first word, `domain` keeps the last one
/// seen, `search` and `options` append all their words; blank lines, `#`/`;` comments and
/// lines with fewer than two words are skipped.
pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(keyword), Some(first)) = (words.next(), words.next()) else {
            continue;
        };
        let all = std::iter::once(first).chain(words).map(str::to_owned);
        match keyword {
            "nameserver" => dns.nameservers.push(first.to_owned()),
            "domain" => dns.domain = Some(first.to_owned()),
            "search" => dns.search.extend(all),
            "options" => dns.options.extend(all),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_input_and_fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let long_line = dir.path().join("long-line");
        std::fs::write(&long_line, vec![b'x'; MAX_LINE + 1]).unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        for path in [Path::new("/dev/zero"), &long_line, &fifo] {
            let err = read_resolv_conf(path).unwrap_err();
            assert_ne!(err.kind(), io::ErrorKind::NotFound, "{path:?}: {err}");
        }
        let ok = dir.path().join("ok");
        std::fs::write(
            &ok,
            format!("# {}\nnameserver 192.0.2.1\n", "y".repeat(MAX_LINE - 2)),
        )
        .unwrap();
        assert_eq!(read_resolv_conf(&ok).unwrap().nameservers, ["192.0.2.1"]);
    }

    #[test]
    fn simple_file_gives_nameservers_and_search() {
        let dns = parse_resolv_conf("nameserver 10.1.2.123\nsearch example.com\n");
        assert_eq!(dns.nameservers, ["10.1.2.123"]);
        assert_eq!(dns.search, ["example.com"]);
        assert_eq!(dns.domain, None);
        assert!(dns.options.is_empty());
    }

    #[test]
    fn comments_and_short_lines_are_skipped() {
        let dns = parse_resolv_conf(
            "# nameserver 1.1.1.1\n; nameserver 2.2.2.2\n   \nnameserver\nnameserver 10.1.2.123 # tail\n",
        );
        assert_eq!(dns.nameservers, ["10.1.2.123"]);
    }

    #[test]
    fn all_fields_follow_the_reference_rules() {
        let dns = parse_resolv_conf(
            "nameserver 10.1.2.123\nnameserver 10.1.2.124\ndomain first.example\ndomain example.com\n\
             search example.com example.net\nsearch other.example\noptions ndots:5 attempts:2\noptions debug\n",
        );
        assert_eq!(dns.nameservers, ["10.1.2.123", "10.1.2.124"]);
        assert_eq!(dns.domain.as_deref(), Some("example.com"));
        assert_eq!(dns.search, ["example.com", "example.net", "other.example"]);
        assert_eq!(dns.options, ["ndots:5", "attempts:2", "debug"]);
    }
}
