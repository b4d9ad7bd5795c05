//! `ipam.resolvConf`: a resolv.conf file turned into the result's `dns`, exactly as the
//! reference's `parseResolvConf` reads it (PL:plugins/ipam/host-local/dns.go).

use cni::Dns;

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
