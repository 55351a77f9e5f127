//! The fail2ban backend: for sites already running fail2ban, bans are
//! delegated to one jail (`fail2ban-client set JAIL banip|unbanip ADDR...`)
//! and fail2ban's ban action does the firewall work.
//!
//! fail2ban applies its jail's own `bantime` (`banip` takes no duration),
//! so a ban can end in fail2ban before or after hikeshi's record of it;
//! reconcile re-bans what fail2ban dropped early and unbans what hikeshi's
//! policy has ended. The jail may hold fail2ban's own bans too: hikeshi
//! only ever lifts the ones it recorded.

use std::collections::BTreeSet;
use std::ffi::OsString;

use hikeshi_core::contain::BanTarget;

use super::config::Fail2banConfig;
use super::{check_name, BackendKind, BanEntry, Firewall, FirewallError};
use crate::exec;

/// A jail of a running fail2ban server.
#[derive(Debug, Clone)]
pub struct Fail2ban {
    config: Fail2banConfig,
}

impl Fail2ban {
    pub fn new(config: &Fail2banConfig) -> Result<Self, FirewallError> {
        check_name("fail2ban.jail", &config.jail, 64)?;
        Ok(Fail2ban { config: config.clone() })
    }

    fn client<I: IntoIterator<Item = String>>(&self, args: I) -> Result<String, FirewallError> {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(socket) = &self.config.socket {
            argv.push("-s".into());
            argv.push(socket.clone().into_os_string());
        }
        argv.extend(args.into_iter().map(OsString::from));
        let out = exec::run(&self.config.client, argv)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn jail_command(&self, verb: &str, addrs: &[BanTarget]) -> Result<(), FirewallError> {
        if addrs.is_empty() {
            return Ok(());
        }
        let args = ["set".to_string(), self.config.jail.clone(), verb.to_string()]
            .into_iter()
            .chain(addrs.iter().map(BanTarget::to_string));
        self.client(args)?;
        Ok(())
    }
}

/// The addresses in `fail2ban-client get JAIL banip` output (separated by
/// spaces, commas or newlines).
pub fn banned_list(output: &str) -> BTreeSet<BanTarget> {
    output
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(|word| word.parse().ok())
        .collect()
}

impl Firewall for Fail2ban {
    fn kind(&self) -> BackendKind {
        BackendKind::Fail2ban
    }

    fn setup(&mut self) -> Result<(), FirewallError> {
        // The jail belongs to the site's fail2ban configuration: hikeshi
        // only checks that it is running.
        self.client(["status".to_string(), self.config.jail.clone()])?;
        Ok(())
    }

    fn ban(&mut self, bans: &[BanEntry]) -> Result<(), FirewallError> {
        let addrs: Vec<BanTarget> = bans
            .iter()
            .filter(|b| b.timeout.map_or(true, |t| t.as_secs() > 0))
            .map(|b| b.target.target())
            .collect();
        // fail2ban-client takes every address on one command line; keep
        // each command line a reasonable length.
        for chunk in addrs.chunks(1000) {
            self.jail_command("banip", chunk)?;
        }
        Ok(())
    }

    fn unban(&mut self, addrs: &[BanTarget]) -> Result<(), FirewallError> {
        for chunk in addrs.chunks(1000) {
            self.jail_command("unbanip", chunk)?;
        }
        Ok(())
    }

    fn list(&mut self) -> Result<BTreeSet<BanTarget>, FirewallError> {
        let out =
            self.client(["get".to_string(), self.config.jail.clone(), "banip".to_string()])?;
        Ok(banned_list(&out))
    }

    fn expires_on_its_own(&self) -> bool {
        true
    }

    fn owns_all_entries(&self) -> bool {
        false
    }

    fn flush(&mut self) -> Result<(), FirewallError> {
        // The jail's bans are not all hikeshi's: `Containment` lifts the
        // ones it recorded with `unban` instead.
        Ok(())
    }

    fn uninstall(&mut self) -> Result<(), FirewallError> {
        // The jail belongs to the site's fail2ban configuration.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banned_list_accepts_any_separator() {
        let got: Vec<String> = banned_list("192.0.2.7 2001:db8::5,192.0.2.8\n")
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["192.0.2.7", "192.0.2.8", "2001:db8::5"]);
        assert!(banned_list("\n").is_empty());
    }
}
