//! The allowlist: addresses hikeshi never acts against.
//!
//! Loopback is always in it; the host's own addresses and the configured
//! CIDRs are added by the caller (the application reads the interfaces).
//! Detection still records and flags allowlisted sources; only actions
//! (bans) are refused, and the containment layer checks again at the very
//! last step, whoever asked.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::event::canonical_addr;

/// Why an address is allowlisted: said in every refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.check(addr).is_some()
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.networks
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
}
