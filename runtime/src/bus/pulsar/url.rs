//! Checking a Pulsar service URL before handing it to the client, whose own errors for a
//! bad URL are a parse failure deep inside a retry loop.

use super::PulsarError;

/// `pulsar://host:port` or `pulsar+ssl://host:port` (port defaults apply when omitted).
///
/// # Errors
/// [`PulsarError::Url`] saying what is wrong.
pub fn check_url(url: &str) -> Result<(), PulsarError> {
    let bad = |reason: &str| PulsarError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("pulsar://")
        .or_else(|| url.strip_prefix("pulsar+ssl://"))
        .ok_or_else(|| bad("expected a URL starting with `pulsar://` or `pulsar+ssl://`"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.contains('/') {
        return Err(bad("expected only a host and port, without a path"));
    }
    for host_port in authority.split(',') {
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if let Some(p) = port {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => {}
                _ => return Err(bad(&format!("port `{p}` is not a number in 1..=65535"))),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn urls() {
        assert!(check_url("pulsar://127.0.0.1:6650").is_ok());
        assert!(check_url("pulsar+ssl://broker.example:6651/").is_ok());
        assert!(check_url("pulsar://localhost").is_ok());
        let msg = |u: &str| check_url(u).unwrap_err().to_string();
        assert_eq!(
            msg("http://127.0.0.1:8080"),
            "invalid Pulsar URL `http://127.0.0.1:8080`: expected a URL starting with `pulsar://` or `pulsar+ssl://`"
        );
        assert_eq!(
            msg("pulsar://127.0.0.1:66500"),
            "invalid Pulsar URL `pulsar://127.0.0.1:66500`: port `66500` is not a number in 1..=65535"
        );
        assert_eq!(msg("pulsar://"), "invalid Pulsar URL `pulsar://`: no host");
        assert_eq!(
            msg("pulsar://h:1/x"),
            "invalid Pulsar URL `pulsar://h:1/x`: expected only a host and port, without a path"
        );
    }
}
