//! The allowlist: addresses hikeshi never acts against.
//!
//! Loopback is always in it; the host's own addresses and the configured
//! CIDRs are added by the caller (the application reads the interfaces).
//! Detection still records and flags allowlisted sources; only actions
//! (bans) are refused, and the containment layer checks again at the very
//! last step, whoever asked.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::contain::BanTarget;
use crate::event::canonical_addr;

/// Why an address is allowlisted: said in every refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "network", rename_all = "snake_case")]
pub enum AllowReason {
    Loopback,
    /// One of this host's own addresses.
    HostAddress,
    /// A configured network.
    Configured(IpNet),
    /// Unspecified (`0.0.0.0`, `::`), multicast or broadcast: never a
    /// real peer, and banning it would be meaningless or harmful.
    NotAPeer,
}

impl std::fmt::Display for AllowReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllowReason::Loopback => f.write_str("loopback address"),
            AllowReason::HostAddress => f.write_str("one of this host's own addresses"),
            AllowReason::Configured(net) => write!(f, "in the configured allowlist ({net})"),
            AllowReason::NotAPeer => f.write_str("not a peer address (unspecified/multicast)"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    networks: Vec<IpNet>,
    host_addrs: Vec<IpAddr>,
}

impl Allowlist {
    /// An allowlist of `networks` plus the host's own `host_addrs`.
    /// Loopback needs no entry: it is always allowlisted.
    pub fn new(networks: Vec<IpNet>, host_addrs: Vec<IpAddr>) -> Self {
        let networks = networks.into_iter().map(|n| n.trunc()).collect();
        let host_addrs = host_addrs.into_iter().map(canonical_addr).collect();
        Allowlist { networks, host_addrs }
    }

    /// Why `addr` must never be acted on, or `None` if it may be.
    pub fn check(&self, addr: IpAddr) -> Option<AllowReason> {
        let addr = canonical_addr(addr);
        if addr.is_loopback() {
            return Some(AllowReason::Loopback);
        }
        if addr.is_unspecified()
            || addr.is_multicast()
            || addr == IpAddr::from([255, 255, 255, 255])
        {
            return Some(AllowReason::NotAPeer);
        }
        if self.host_addrs.contains(&addr) {
            return Some(AllowReason::HostAddress);
        }
        self.networks.iter().find(|n| n.contains(&addr)).map(|n| AllowReason::Configured(*n))
    }

    /// Why a ban of the whole network `net` must never happen, or `None`
    /// if it may: `net` overlaps loopback, holds one of the host's own
    /// addresses, overlaps a configured network, or starts with a non-peer
    /// address.
    pub fn check_net(&self, net: IpNet) -> Option<AllowReason> {
        let net = BanTarget::net(net).network();
        if let Some(reason) = self.check(net.network()) {
            return Some(reason);
        }
        let loopback: IpNet = match net {
            IpNet::V4(_) => IpNet::from(IpAddr::from([127, 0, 0, 0])).supernet_of_len(8),
            IpNet::V6(_) => IpNet::from(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        };
        if overlaps(net, loopback) {
            return Some(AllowReason::Loopback);
        }
        if self.host_addrs.iter().any(|a| net.contains(a)) {
            return Some(AllowReason::HostAddress);
        }
        self.networks.iter().find(|n| overlaps(net, **n)).map(|n| AllowReason::Configured(*n))
    }

    /// Why a ban of `target` must never happen: [`Allowlist::check`] for
    /// one address, [`Allowlist::check_net`] for a network.
    pub fn check_target(&self, target: BanTarget) -> Option<AllowReason> {
        match target.single() {
            Some(addr) => self.check(addr),
            None => self.check_net(target.network()),
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.check(addr).is_some()
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.networks
    }
}

/// Two CIDR blocks overlap iff one contains the other's first address.
fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Widens a single-address network to `len` bits.
trait SupernetOfLen {
    fn supernet_of_len(self, len: u8) -> IpNet;
}

impl SupernetOfLen for IpNet {
    fn supernet_of_len(self, len: u8) -> IpNet {
        IpNet::new(self.addr(), len).expect("len fits the family").trunc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_is_always_allowlisted_in_every_form() {
        let list = Allowlist::default();
        for a in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(list.check(ip(a)), Some(AllowReason::Loopback), "{a}");
        }
    }

    #[test]
    fn host_addresses_and_networks() {
        let list = Allowlist::new(
            vec!["192.0.2.0/24".parse().unwrap(), "2001:db8:1::/48".parse().unwrap()],
            vec![ip("198.51.100.10")],
        );
        assert_eq!(list.check(ip("198.51.100.10")), Some(AllowReason::HostAddress));
        assert_eq!(list.check(ip("::ffff:198.51.100.10")), Some(AllowReason::HostAddress));
        assert!(list.contains(ip("192.0.2.77")));
        assert!(list.contains(ip("2001:db8:1:ffff::1")));
        assert!(!list.contains(ip("198.51.100.11")));
        assert!(!list.contains(ip("2001:db8:2::1")));
        assert!(!list.contains(ip("203.0.113.5")));
    }

    #[test]
    fn non_peer_addresses_are_refused() {
        let list = Allowlist::default();
        for a in ["0.0.0.0", "::", "255.255.255.255", "224.0.0.1", "ff02::1"] {
            assert_eq!(list.check(ip(a)), Some(AllowReason::NotAPeer), "{a}");
        }
    }

    #[test]
    fn networks_that_touch_the_allowlist_are_refused() {
        let list = Allowlist::new(
            vec!["192.0.2.0/24".parse().unwrap(), "2001:db8:1::/48".parse().unwrap()],
            vec![ip("198.51.100.10"), ip("2001:db8:9:9::5")],
        );
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        assert_eq!(list.check_net(net("127.0.0.0/16")), Some(AllowReason::Loopback));
        assert_eq!(list.check_net(net("126.0.0.0/7")), Some(AllowReason::Loopback));
        assert_eq!(list.check_net(net("198.51.100.0/24")), Some(AllowReason::HostAddress));
        assert_eq!(list.check_net(net("2001:db8:9:9::/64")), Some(AllowReason::HostAddress));
        assert_eq!(
            list.check_net(net("192.0.2.128/25")),
            Some(AllowReason::Configured(net("192.0.2.0/24")))
        );
        assert_eq!(
            list.check_net(net("192.0.0.0/16")),
            Some(AllowReason::Configured(net("192.0.2.0/24")))
        );
        assert_eq!(
            list.check_net(net("2001:db8:1:5::/64")),
            Some(AllowReason::Configured(net("2001:db8:1::/48")))
        );
        assert_eq!(list.check_net(net("::/64")), Some(AllowReason::NotAPeer));
        assert_eq!(list.check_net(net("::ffff:127.0.0.0/104")), Some(AllowReason::Loopback));
        assert_eq!(list.check_net(net("203.0.113.0/24")), None);
        assert_eq!(list.check_net(net("2001:db8:2::/64")), None);
        assert_eq!(list.check_net(net("198.51.101.0/24")), None);
    }
}
