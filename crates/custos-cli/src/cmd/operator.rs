//! Who runs an offline command: the operating-system user and host, for
//! the actor of the entries it writes (`custos export`, `custos token`,
//! `custos audit scrub` with the service stopped). Whoever can open the
//! ledger's directory acts without a token, so the record names the
//! account and the machine instead: `local:<user>@<host>`.

use std::os::unix::fs::MetadataExt as _;

/// `local:<user>@<host>`: the login name of the process's real user (from
/// `/etc/passwd`, else `$USER`, else `uid<N>`) and the host name.
pub(crate) fn local_actor_id() -> String {
    format!("local:{}@{}", user(), host())
}

fn user() -> String {
    // The owner of /proc/self is the process's user, whatever $USER says
    // (systemd and CI leave it unset; anyone can set it).
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if let Some(uid) = uid {
        if let Some(name) = passwd_name(uid) {
            return name;
        }
    }
    match (std::env::var("USER").ok().filter(|u| !u.is_empty()), uid) {
        (_, Some(uid)) => format!("uid{uid}"),
        (Some(user), None) => user,
        (None, None) => "unknown".into(),
    }
}

/// The login name of `uid` in `/etc/passwd`.
fn passwd_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let uid_field = fields.nth(1)?;
        (uid_field.parse::<u32>().ok()? == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

fn host() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            let h = std::fs::read_to_string(p).ok()?;
            let h = h.trim();
            (!h.is_empty()).then(|| h.to_owned())
        })
        .unwrap_or_else(|| "unknown-host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_real_user_and_host() {
        let id = local_actor_id();
        let (user, host) = id
            .strip_prefix("local:")
            .and_then(|r| r.split_once('@'))
            .unwrap();
        assert!(!user.is_empty() && user != "unknown", "{id}");
        assert!(!host.is_empty(), "{id}");
        // The same answer whatever $USER claims.
        let uid = std::fs::metadata("/proc/self").unwrap().uid();
        assert_eq!(passwd_name(uid).as_deref().unwrap_or(user), user);
    }
}
