//! Extractors whose rejections are [`ApiError`]s, so that every error the API answers is JSON.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::conn::ClientAddr;
use crate::error::ApiError;

/// [`Path`], answering 400 `bad_path` (JSON) when a segment cannot be decoded, e.g. a percent-encoded
/// byte sequence that is not UTF-8.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_path", e.body_text())),
        }
    }
}

/// The client a request comes from, as per-client limits count it: the peer's IP address — or, when the
/// peer is one of the deployment's trusted proxies ([`TrustedProxies`], `--trusted-proxy`), the address
/// that proxy saw, from `X-Forwarded-For`. `"unknown"` when the server runs without connection info, as
/// in-process tests do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client(pub String);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<ClientAddr>>().map(|c| c.0.0.ip());
        let client = peer.map(|ip| state.trusted_proxies().client_of(ip, &parts.headers));
        Ok(Client(client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())))
    }
}

/// The proxies whose `X-Forwarded-For` names the client (`more-server --trusted-proxy CIDR[,CIDR…]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `CIDR[,CIDR…]`; a bare address is a /32 (or /128).
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("{item:?} is not an address or CIDR block (e.g. 10.0.0.0/8)"))?,
            };
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`: `peer` itself unless it is trusted; then the right-most address of
    /// `X-Forwarded-For` (every header line, in order) that is not a trusted proxy — the address the
    /// outermost trusted proxy saw. Entries left of it are the client's own claims and are not believed. A
    /// trusted peer without a usable header is the client.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) else {
                // A malformed entry: nothing left of it can be trusted; the last proxy is the client.
                break;
            };
            if !self.contains(ip) {
                return ip;
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8,::1").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(trusted.client_of(ip("203.0.113.9"), &xff(&["198.51.100.1"])), ip("203.0.113.9"));
        // Trusted peer: the address it saw.
        assert_eq!(trusted.client_of(ip("127.0.0.1"), &xff(&["198.51.100.1"])), ip("198.51.100.1"));
        // A chain: the client's own claim (left) is ignored, trusted hops (right) are skipped.
        assert_eq!(
            trusted.client_of(ip("127.0.0.1"), &xff(&["6.6.6.6, 198.51.100.1", "10.1.2.3"])),
            ip("198.51.100.1")
        );
        // IPv4-mapped IPv6 peers count as their IPv4 address.
        assert_eq!(trusted.client_of(ip("::ffff:127.0.0.1"), &xff(&["198.51.100.2"])), ip("198.51.100.2"));
        // No header, or garbage: the proxy itself.
        assert_eq!(trusted.client_of(ip("127.0.0.1"), &HeaderMap::new()), ip("127.0.0.1"));
        assert_eq!(trusted.client_of(ip("127.0.0.1"), &xff(&["not an ip"])), ip("127.0.0.1"));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("").unwrap().0.is_empty());
    }
}
