//! This host's own addresses (every interface, IPv4 and IPv6), read with
//! `getifaddrs(3)`: hikeshi never bans them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every address configured on this host's interfaces (in the current
/// network namespace), deduplicated and sorted.
pub fn own_addresses() -> std::io::Result<Vec<IpAddr>> {
    let mut addrs = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we own until freeifaddrs;
    // each `ifa_addr` is either null or points to a sockaddr whose
    // `sa_family` says which struct it is. We only read the list, and free
    // it exactly once.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut cursor = head;
        while !cursor.is_null() {
            let sa = (*cursor).ifa_addr;
            if !sa.is_null() {
                match i32::from((*sa).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(sa as *const libc::sockaddr_in);
                        addrs.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(sa as *const libc::sockaddr_in6);
                        addrs.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cursor = (*cursor).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_among_the_host_addresses() {
        let addrs = own_addresses().unwrap();
        assert!(addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{addrs:?}");
    }
}
