//! The client's address: the TCP peer, unless the peer is a trusted proxy that forwarded the
//! request; then the last address that is not itself trusted in the one header the operator
//! named (`client_ip_header`: `X-Forwarded-For` by default, or `Forwarded`, `X-Real-IP`...).
//! Other forwarding headers are ignored: a client can add them, and a proxy that does not
//! overwrite them passes them on.

use std::net::IpAddr;

use super::LimitsError;

/// An address block such as `10.0.0.0/8` or a single address.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Block {
    net: IpAddr,
    prefix: u8,
}

impl Block {
    fn parse(s: &str) -> Option<Block> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Block { net, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) count as their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address a per-address budget (connections, failed logins, share requests) counts
/// `ip` under: an IPv6 client's whole /64, which one household or one attacker gets and
/// hops through freely (as many addresses as it likes), and an IPv4 address as it is.
pub fn budget_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(net))
        }
        v4 => v4,
    }
}

/// A list of addresses and CIDR blocks (trusted proxies, who may scrape `/metrics`).
#[derive(Clone, Debug)]
pub struct AddressSet(Vec<Block>);

impl AddressSet {
    /// Parses addresses and CIDR blocks; `Err` names the first entry that is neither.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        list.iter()
            .map(|s| Block::parse(s).ok_or_else(|| s.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map(AddressSet)
    }

    /// Whether `ip` is in one of the blocks (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|b| b.contains(ip))
    }
}

/// The proxies whose forwarding header is believed (none by default), and that header.
#[derive(Clone, Debug)]
pub struct TrustedProxies {
    blocks: AddressSet,
    header: http::HeaderName,
}

impl TrustedProxies {
    /// Parses addresses and CIDR blocks, and the name of the header they set.
    pub fn parse(list: &[String], header: &str) -> Result<Self, LimitsError> {
        let header = http::HeaderName::from_bytes(header.trim().as_bytes())
            .map_err(|_| LimitsError::BadHeader(header.to_string()))?;
        let blocks = AddressSet::parse(list).map_err(LimitsError::BadProxy)?;
        Ok(TrustedProxies { blocks, header })
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.blocks.contains(ip)
    }

    /// The client address of a request that arrived from `peer`.
    pub fn client_ip(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        // hops in order, nearest last; walk back from the peer over trusted proxies
        let hops = if self.header == http::header::FORWARDED {
            forwarded_for(headers)
        } else {
            address_list(headers, &self.header)
        };
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Some(ip) = hop else {
                // an unparsable hop ends the chain: the last believable address stands
                break;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// A comma-separated list of addresses, over all lines of the header, nearest last.
fn address_list(headers: &http::HeaderMap, name: &http::HeaderName) -> Vec<Option<IpAddr>> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| parse_node(s.trim()))
        .collect()
}

/// RFC 7239 `Forwarded: for=...` values.
fn forwarded_for(headers: &http::HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|elem| {
            elem.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(v.trim().trim_matches('"')))
            })
        })
        .collect()
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`, `::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn headers_count_only_from_trusted_proxies() {
        let t =
            TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()], "X-Forwarded-For").unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.1.1")]);
        assert_eq!(t.client_ip(ip("10.2.2.2"), &h), ip("203.0.113.9"));
        assert_eq!(t.client_ip(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        // a client cannot pretend to be further away than the last untrusted hop
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9")]);
        assert_eq!(t.client_ip(ip("10.2.2.2"), &h), ip("203.0.113.9"));
        // only the named header counts: a client-supplied Forwarded is ignored
        let h = headers(&[
            ("forwarded", "for=198.51.100.7"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(t.client_ip(ip("10.2.2.2"), &h), ip("203.0.113.9"));
        let f = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()], "Forwarded").unwrap();
        let h = headers(&[("forwarded", "for=\"[2001:db8::1]:443\";proto=https")]);
        assert_eq!(f.client_ip(ip("::1"), &h), ip("2001:db8::1"));
        let h = headers(&[
            ("forwarded", "for=192.0.2.60:8080, for=10.0.0.3"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(f.client_ip(ip("::ffff:10.0.0.1"), &h), ip("192.0.2.60"));
        // no header: the proxy itself
        assert_eq!(t.client_ip(ip("10.0.0.1"), &headers(&[])), ip("10.0.0.1"));
        assert!(TrustedProxies::parse(&["nonsense".into()], "X-Forwarded-For").is_err());
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()], "X-Forwarded-For").is_err());
        assert!(TrustedProxies::parse(&[], "bad header").is_err());
    }
}
