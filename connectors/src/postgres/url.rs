//! `postgresql://user:password@host:port/dbname?sslmode=…`, as libpq reads it.
//!
//! Error messages never quote the URL or its parts: a malformed one may put
//! the password anywhere.

/// The parts a URL gave; `None` for those it left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PgUrl {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
}

const PARAMS: &str = "sslmode, sslrootcert, sslcert, sslkey";

fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

pub(crate) fn parse(url: &str) -> Result<PgUrl, String> {
    let scheme_end = url.find("://").ok_or_else(|| {
        "expected postgresql://user:password@host:port/dbname?sslmode=… (or postgres://)"
            .to_string()
    })?;
    let scheme = &url[..scheme_end];
    if !scheme.eq_ignore_ascii_case("postgresql") && !scheme.eq_ignore_ascii_case("postgres") {
        return Err(
            "the scheme must be postgresql:// or postgres:// (other databases are datastore types of their own)"
                .to_string(),
        );
    }
    let rest = &url[scheme_end + 3..];
    if rest.contains('#') {
        return Err(percent_hint("a '#'"));
    }
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    if query.is_some_and(|q| q.contains('@')) {
        return Err(percent_hint("an '@' after the '?'"));
    }
    // The last '@' ends the credentials, so an unencoded '/' or '@' in a
    // password still parses as libpq's users expect.
    let (userinfo, hostpath) = match before_query.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, before_query),
    };
    let (hostport, path) = match hostpath.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (hostpath, None),
    };
    let mut out = PgUrl::default();
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        out.user = non_empty(decode(user, "user name")?);
        out.password = match password {
            Some(p) => non_empty(decode(p, "password")?),
            None => None,
        };
    }
    if hostport.contains(',') {
        return Err("several hosts are not supported; give one host".to_string());
    }
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (h, after) = bracketed
            .split_once(']')
            .ok_or_else(|| "an IPv6 host needs its closing ']'".to_string())?;
        match after {
            "" => (h.to_string(), None),
            p => match p.strip_prefix(':') {
                Some(p) => (h.to_string(), Some(p)),
                None => return Err("expected ':port' after the IPv6 host's ']'".to_string()),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (decode(h, "host")?, Some(p)),
            None => (decode(hostport, "host")?, None),
        }
    };
    out.host = non_empty(host);
    out.port = match port {
        None | Some("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => {
                return Err(format!(
                    "the port must be a number from 1 to 65535{}",
                    if userinfo.is_none() {
                        "; if the password holds a '/', '?' or '#', percent-encode it (%2F, %3F, %23)"
                    } else {
                        ""
                    }
                ))
            }
        },
    };
    if let Some(path) = path {
        out.dbname = non_empty(decode(path, "database name")?);
    }
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = Some(decode(value, "parameter")?);
        match key {
            "sslmode" => out.sslmode = value,
            "sslrootcert" => out.sslrootcert = value,
            "sslcert" => out.sslcert = value,
            "sslkey" => out.sslkey = value,
            "application_name" => {
                return Err(format!(
                    "parameter \"application_name\" is not taken: SyncHub names its sessions \"synchub\"; supported: {PARAMS}"
                ))
            }
            other => {
                let shown = decode(other, "parameter").unwrap_or_default();
                let shown: String = shown.chars().filter(|c| !c.is_control()).take(40).collect();
                return Err(format!(
                    "unknown parameter \"{shown}\"; supported: {PARAMS} (give the others as connection fields)"
                ));
            }
        }
    }
    Ok(out)
}

fn percent_hint(what: &str) -> String {
    format!(
        "{what} must be percent-encoded: in the user name and password write '@' as %40, '/' as %2F, '?' as %3F and '#' as %23"
    )
}

/// `%XX` escapes decoded; the result must be UTF-8.
fn decode(s: &str, what: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => out.push(b),
                None => {
                    return Err(format!(
                        "bad percent-encoding in the {what}: a '%' must be followed by two hex digits (write '%' itself as %25)"
                    ))
                }
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the {what}'s percent-encoded bytes are not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_part() {
        let u = parse("postgresql://app:p%40ss%2Fw%3Ard@db.example:6543/shop%20db?sslmode=verify-full&sslrootcert=ca.pem&sslcert=c.pem&sslkey=k.pem").unwrap();
        assert_eq!(
            u,
            PgUrl {
                user: Some("app".into()),
                password: Some("p@ss/w:rd".into()),
                host: Some("db.example".into()),
                port: Some(6543),
                dbname: Some("shop db".into()),
                sslmode: Some("verify-full".into()),
                sslrootcert: Some("ca.pem".into()),
                sslcert: Some("c.pem".into()),
                sslkey: Some("k.pem".into()),
            }
        );
        let u = parse("postgres://[::1]:5433/test").unwrap();
        assert_eq!(u.host.as_deref(), Some("::1"));
        assert_eq!(u.port, Some(5433));
        assert_eq!(u.user, None);
        assert_eq!(parse("POSTGRESQL://").unwrap(), PgUrl::default());
        // Unencoded '/' and '@' in a password: the last '@' ends it.
        let u = parse("postgresql://u:a/b@c@h/db").unwrap();
        assert_eq!(u.password.as_deref(), Some("a/b@c"));
        assert_eq!(u.host.as_deref(), Some("h"));
        assert_eq!(parse("postgresql://u:@h").unwrap().password, None);
    }

    #[test]
    fn refuses_what_it_cannot_take_without_quoting_it() {
        let cases = [
            ("mysql://u:pw@h/db", "the scheme must be postgresql:// or postgres:// (other databases are datastore types of their own)"),
            ("u:pw@h/db", "expected postgresql://user:password@host:port/dbname?sslmode=… (or postgres://)"),
            ("postgresql://u:pw@h:54x2/db", "the port must be a number from 1 to 65535"),
            ("postgresql://u:pw?x@h/db", "an '@' after the '?' must be percent-encoded: in the user name and password write '@' as %40, '/' as %2F, '?' as %3F and '#' as %23"),
            ("postgresql://u:pw#x@h/db", "a '#' must be percent-encoded: in the user name and password write '@' as %40, '/' as %2F, '?' as %3F and '#' as %23"),
            ("postgresql://u:p%zzw@h/db", "bad percent-encoding in the password: a '%' must be followed by two hex digits (write '%' itself as %25)"),
            ("postgresql://u:p%ffw@h/db", "the password's percent-encoded bytes are not UTF-8"),
            ("postgresql://h1,h2/db", "several hosts are not supported; give one host"),
            ("postgresql://h/db?application_name=x", "parameter \"application_name\" is not taken: SyncHub names its sessions \"synchub\"; supported: sslmode, sslrootcert, sslcert, sslkey"),
            ("postgresql://h/db?password=pw", "unknown parameter \"password\"; supported: sslmode, sslrootcert, sslcert, sslkey (give the others as connection fields)"),
        ];
        for (url, message) in cases {
            let err = parse(url).unwrap_err();
            assert_eq!(err, message, "{url}");
            assert!(!err.contains("pw"), "{err}");
        }
    }
}
