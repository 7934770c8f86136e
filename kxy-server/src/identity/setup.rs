//! The first-run setup token: who may create the first administrator.
//!
//! `POST /api/auth/init-user` makes its caller the administrator of an empty
//! system. On a loopback bind only local users can reach it, so being first
//! is enough. On any other bind, being first would be a race anyone on the
//! network could win, so the server requires a one-time token that only the
//! operator sees: `--setup-token` (`KXY_SETUP_TOKEN`) if given, which then
//! holds on every bind, or else one generated at start and printed to the
//! server's console. The token is compared in constant time, and it is of
//! no use once the first user exists.

use std::net::{IpAddr, SocketAddr};

use subtle::ConstantTimeEq;

use crate::Error;

/// Shortest configured token accepted.
pub const MIN_LEN: usize = 16;

/// The token a first-run `init-user` must present.
#[derive(Clone)]
pub struct SetupToken(String);

impl SetupToken {
    /// The token for a server bound to `bind`: the configured one, or a
    /// fresh one unless the bind is loopback (then `None`: none needed).
    /// The second value says whether it was generated (and must be shown).
    /// A configured token shorter than [`MIN_LEN`] is refused: an empty or
    /// guessable one would open the init to anyone again.
    pub fn for_bind(
        bind: SocketAddr,
        configured: Option<&str>,
    ) -> Result<Option<(SetupToken, bool)>, Error> {
        Ok(match configured {
            Some(token) if token.len() < MIN_LEN => {
                return Err(Error::Startup(format!(
                    "--setup-token (KXY_SETUP_TOKEN) must be at least {MIN_LEN} characters"
                )));
            }
            Some(token) => Some((SetupToken(token.to_owned()), false)),
            None if bind.ip().is_loopback() => None,
            None => Some((SetupToken(hex::encode(rand::random::<[u8; 16]>())), true)),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Refuses unless `presented` is the token.
    pub fn check(&self, presented: Option<&str>) -> Result<(), Error> {
        let right = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.0.as_bytes())));
        if right {
            Ok(())
        } else {
            Err(Error::SetupTokenRequired)
        }
    }
}

/// Whether a request's `Host` names this machine's loopback: `localhost`, or
/// a loopback address (`127.0.0.0/8`, `[::1]`), with any port. The first-run
/// init needs no token on a loopback bind only because no other machine can
/// reach it; but a browser can, on another site's page that points its own
/// name at 127.0.0.1 (DNS rebinding), and it then sends that name as `Host`.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_are_local() {
        for host in [
            "127.0.0.1:5801",
            "127.0.0.1",
            "127.9.8.7:1",
            "localhost:5801",
            "LOCALHOST",
            "[::1]:5801",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:5801",
            "127.0.0.1.evil.example:5801",
            "localhost.evil.example",
            "0.0.0.0:5801",
            "10.0.0.1:5801",
            "[::ffff:7f00:1]:5801",
            "[fe80::1]:5801",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
