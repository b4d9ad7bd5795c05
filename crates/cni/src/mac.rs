//! MAC addresses as CNI carries them (`runtimeConfig.mac`, `args.cni.mac`, `CNI_ARGS MAC=`,
//! result `interfaces[].mac`): six hex pairs separated by `:`.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = Error;

    /// Strict `aa:bb:cc:dd:ee:ff` (any case); code 7 naming the text otherwise.
    fn from_str(text: &str) -> Result<MacAddr> {
        let bad = || Error::invalid_config(format!("invalid MAC address {text:?}"));
        let mut mac = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut mac {
            // from_str_radix alone would take a sign ("+2").
            let part = parts
                .next()
                .filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(bad)?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        match parts.next() {
            Some(_) => Err(bad()),
            None => Ok(MacAddr(mac)),
        }
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::MacAddr;

    #[test]
    fn parsing_is_strict_and_printing_is_lower_case() {
        let mac: MacAddr = "C2:11:22:33:44:5f".parse().unwrap();
        assert_eq!(mac.0, [0xc2, 0x11, 0x22, 0x33, 0x44, 0x5f]);
        assert_eq!(mac.to_string(), "c2:11:22:33:44:5f");
        for bad in [
            "",
            "c2:11:22:33:44",
            "c2:11:22:33:44:55:66",
            "c2:11:22:33:44:5",
            "zz:11:22:33:44:55",
            "c2-11-22-33-44-55",
            "+2:11:22:33:44:55",
        ] {
            let err = bad.parse::<MacAddr>().unwrap_err();
            assert_eq!(err.code(), 7, "{bad}");
        }
    }
}
