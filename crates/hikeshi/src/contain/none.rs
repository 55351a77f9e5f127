//! The `none` backend: a dry run that records what would be done and
//! changes nothing in the firewall.

use std::collections::BTreeSet;

use hikeshi_core::contain::BanTarget;

use super::{BackendKind, BanEntry, Firewall, FirewallError};

/// Remembers the actions it was asked for, as text, and does nothing.
#[derive(Debug, Default)]
pub struct DryRun {
    log: Vec<String>,
}

impl Firewall for DryRun {
    fn kind(&self) -> BackendKind {
        BackendKind::None
    }

    fn setup(&mut self) -> Result<(), FirewallError> {
        Ok(())
    }

    fn ban(&mut self, bans: &[BanEntry]) -> Result<(), FirewallError> {
        for ban in bans {
            let until = match ban.timeout {
                Some(t) => format!("for {}", hikeshi_core::contain::format_duration(t)),
                None => "permanently".to_string(),
            };
            self.log.push(format!("would ban {} {until}", ban.target.target()));
        }
        Ok(())
    }

    fn unban(&mut self, addrs: &[BanTarget]) -> Result<(), FirewallError> {
        self.log.extend(addrs.iter().map(|a| format!("would unban {a}")));
        Ok(())
    }

    fn list(&mut self) -> Result<BTreeSet<BanTarget>, FirewallError> {
        Ok(BTreeSet::new())
    }

    fn expires_on_its_own(&self) -> bool {
        true
    }

    fn flush(&mut self) -> Result<(), FirewallError> {
        self.log.push("would lift every ban".into());
        Ok(())
    }

    fn uninstall(&mut self) -> Result<(), FirewallError> {
        self.log.push("would remove hikeshi's firewall objects".into());
        Ok(())
    }

    fn dry_run_log(&self) -> &[String] {
        &self.log
    }
}
