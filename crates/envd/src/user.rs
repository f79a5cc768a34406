//! Users of the sandbox, read from `/etc/passwd` and `/etc/group`.
//!
//! envd is linked statically, so it cannot rely on glibc's NSS (`getpwnam`): it parses the two
//! files itself. Every request names its user through HTTP basic auth (`Authorization: Basic
//! base64("user:")`, what the E2B SDK sends) or a `username` query parameter; without one the
//! default user applies (set by `/init` or `--default-user`, else the user envd runs as).

use std::path::PathBuf;

use base64::Engine;

/// A resolved sandbox user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (relative paths are resolved against it).
    pub home: PathBuf,
    /// Login shell.
    pub shell: String,
}

/// Why a user could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// No entry of that name in `/etc/passwd`.
    #[error("unknown user {0:?}")]
    Unknown(String),
    /// The `Authorization` header is not `Basic base64(user:)`.
    #[error("malformed authorization header")]
    BadHeader,
}

/// Looks `name` up in `/etc/passwd`.
pub fn lookup(name: &str) -> Result<User, UserError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    parse_passwd(&passwd, |u| u.name == name).ok_or_else(|| UserError::Unknown(name.to_owned()))
}

/// Looks a uid up in `/etc/passwd` (for the user envd itself runs as).
pub fn lookup_uid(uid: u32) -> Option<User> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    parse_passwd(&passwd, |u| u.uid == uid)
}

fn parse_passwd(text: &str, pick: impl Fn(&User) -> bool) -> Option<User> {
    text.lines().filter_map(parse_line).find(|u| pick(u))
}

fn parse_line(line: &str) -> Option<User> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 7 || line.starts_with('#') {
        return None;
    }
    Some(User {
        name: f[0].to_owned(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        home: PathBuf::from(if f[5].is_empty() { "/" } else { f[5] }),
        shell: f[6].to_owned(),
    })
}

/// Supplementary group ids of `user` from `/etc/group`.
pub fn groups(user: &User) -> Vec<u32> {
    let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let mut out = vec![user.gid];
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4
            && f[3].split(',').any(|m| m == user.name)
            && let Ok(gid) = f[2].parse()
            && !out.contains(&gid)
        {
            out.push(gid);
        }
    }
    out
}

/// Name of a uid, or the number as text.
pub fn uid_name(uid: u32) -> String {
    lookup_uid(uid)
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Name of a gid, or the number as text.
pub fn gid_name(gid: u32) -> String {
    let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[2].parse() == Ok(gid)).then(|| f[0].to_owned())
        })
        .next()
        .unwrap_or_else(|| gid.to_string())
}

/// The user name carried by an `Authorization: Basic …` header, if any.
pub fn from_basic_auth(value: Option<&str>) -> Result<Option<String>, UserError> {
    let Some(value) = value else { return Ok(None) };
    let encoded = value.strip_prefix("Basic ").ok_or(UserError::BadHeader)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| UserError::BadHeader)?;
    let text = String::from_utf8(raw).map_err(|_| UserError::BadHeader)?;
    let name = text.split(':').next().unwrap_or_default();
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_lines() {
        let text =
            "root:x:0:0:root:/root:/bin/bash\n#c\nbad\nuser:x:1000:1000::/home/user:/bin/sh\n";
        let u = parse_passwd(text, |u| u.name == "user").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.home.to_str().unwrap()),
            (1000, 1000, "/home/user")
        );
        assert!(parse_passwd(text, |u| u.name == "nobody").is_none());
    }

    #[test]
    fn basic_auth_header() {
        let check = |h: Option<&str>, want: Option<&str>| {
            assert_eq!(from_basic_auth(h).unwrap().as_deref(), want, "{h:?}");
        };
        check(None, None);
        check(Some("Basic dXNlcjo="), Some("user"));
        check(Some("Basic cm9vdDo="), Some("root"));
        assert!(from_basic_auth(Some("Bearer x")).is_err());
        assert!(from_basic_auth(Some("Basic !!!")).is_err());
    }
}
