//! The key layout under `<prefix>/<network>/`, and the JSON values kept there
//! (README.md, "cluster-ipam"):
//!
//! - `ips/<address>`: one reservation, value [`Reservation`];
//! - `blocks/<first>-<prefixlen>`: one claimed block, value [`BlockOwner`];
//! - `attachments/<containerID>/<ifname>`: the index by attachment, value [`AttachmentRecord`].
//!
//! An ADD writes its reservations and its attachment key in one transaction, so they share
//! a `mod_revision`: that is how DEL and CHECK tell the attachment's own reservations.

use crate::block::Block;
use cni::Attachment;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A reservation's value: who holds the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    /// The node that allocated it.
    pub node: String,
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface.
    pub ifname: String,
}

/// A claimed block's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOwner {
    /// The node the block is affine to.
    pub node: String,
}

/// An attachment's value: its addresses, one per range set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    /// The node that allocated them.
    pub node: String,
    /// The addresses.
    pub ips: Vec<IpAddr>,
}

/// The keys of one network.
#[derive(Debug, Clone)]
pub struct Keys {
    base: String,
}

impl Keys {
    /// The keys of `network` under `prefix` (no trailing `/`).
    pub fn new(prefix: &str, network: &str) -> Keys {
        Keys {
            base: format!("{prefix}/{network}/"),
        }
    }

    /// `…/ips/<ip>`.
    pub fn ip(&self, ip: IpAddr) -> String {
        format!("{}ips/{ip}", self.base)
    }

    /// The address a key under `…/ips/` reserves.
    pub fn parse_ip(&self, key: &str) -> Option<IpAddr> {
        key.strip_prefix(&self.base)?
            .strip_prefix("ips/")?
            .parse()
            .ok()
    }

    /// `[start, end)`: a key range holding every reservation key of `block`, when the
    /// block lies within one IPv4 /24. Every text between the lowest and the highest of
    /// its addresses' texts then begins with the same `a.b.c.`, so the range holds no key
    /// from outside that /24: at most 256. `None` otherwise (the texts of a larger block's
    /// or an IPv6 block's addresses can span much of the pool).
    pub fn ip_span(&self, block: Block) -> Option<(String, String)> {
        if !block.within_ipv4_slash24() {
            return None;
        }
        let texts: Vec<String> = block.addresses().map(|ip| ip.to_string()).collect();
        let lowest = texts.iter().min()?;
        let highest = texts.iter().max()?;
        // The key just after the highest one: the range end is exclusive.
        Some((
            format!("{}ips/{lowest}", self.base),
            format!("{}ips/{highest}\0", self.base),
        ))
    }

    /// `…/blocks/`, the prefix of every block key.
    pub fn blocks(&self) -> String {
        format!("{}blocks/", self.base)
    }

    /// `…/blocks/<block>`.
    pub fn block(&self, block: Block) -> String {
        format!("{}{block}", self.blocks())
    }

    /// `…/attachments/`, the prefix of every attachment key.
    pub fn attachments(&self) -> String {
        format!("{}attachments/", self.base)
    }

    /// `…/attachments/<containerID>/<ifname>`.
    pub fn attachment(&self, attachment: &Attachment) -> String {
        format!(
            "{}{}/{}",
            self.attachments(),
            attachment.container_id,
            attachment.ifname
        )
    }

    /// The block named by a key under [`Keys::blocks`].
    pub fn parse_block(&self, key: &str) -> Option<Block> {
        Block::parse(key.strip_prefix(&self.blocks())?)
    }

    /// The attachment named by a key under [`Keys::attachments`].
    pub fn parse_attachment(&self, key: &str) -> Option<Attachment> {
        let (container_id, ifname) = key.strip_prefix(&self.attachments())?.split_once('/')?;
        Some(Attachment {
            container_id: container_id.into(),
            ifname: ifname.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let keys = Keys::new("/cni/cluster-ipam", "pool");
        assert_eq!(
            keys.ip("10.97.8.5".parse().unwrap()),
            "/cni/cluster-ipam/pool/ips/10.97.8.5"
        );
        let block = Block::parse("10.97.8.64-26").unwrap();
        assert_eq!(
            keys.block(block),
            "/cni/cluster-ipam/pool/blocks/10.97.8.64-26"
        );
        assert_eq!(keys.parse_block(&keys.block(block)), Some(block));
        let ip = "10.97.8.70".parse().unwrap();
        assert_eq!(keys.parse_ip(&keys.ip(ip)), Some(ip));
        // .64 to .127: the texts sort from "10.97.8.100" to "10.97.8.99".
        let (start, end) = keys.ip_span(block).unwrap();
        assert_eq!(start, "/cni/cluster-ipam/pool/ips/10.97.8.100");
        assert_eq!(end, "/cni/cluster-ipam/pool/ips/10.97.8.99\0");
        for ip in block.addresses() {
            let key = keys.ip(ip);
            assert!(start <= key && key < end, "{key}");
        }
        assert_eq!(keys.ip_span(Block::parse("10.97.8.0-23").unwrap()), None);
        assert_eq!(keys.ip_span(Block::parse("fd00::-120").unwrap()), None);
        let attachment = Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        };
        let key = keys.attachment(&attachment);
        assert_eq!(key, "/cni/cluster-ipam/pool/attachments/c1/eth0");
        assert_eq!(keys.parse_attachment(&key), Some(attachment));
        let value = serde_json::to_string(&Reservation {
            node: "n".into(),
            container_id: "c1".into(),
            ifname: "eth0".into(),
        })
        .unwrap();
        assert_eq!(value, r#"{"node":"n","containerID":"c1","ifname":"eth0"}"#);
    }
}
