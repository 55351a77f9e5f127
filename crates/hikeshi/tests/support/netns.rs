//! A network namespace of a test's own: created with its loopback up,
//! deleted (with its rules, sets and sockets) when the guard is dropped,
//! also when the test fails. NEEDS ROOT. Needs `support/command.rs` as
//! the test's `mod command`.
#![allow(dead_code)]

use std::process::{Command, Output};

use hikeshi::exec;

use super::command::must;

/// A network namespace, deleted on drop.
pub struct Netns {
    /// Unique per test: it names the helper and the process id.
    pub name: String,
}

impl Netns {
    /// Creates the namespace `name` and brings its loopback up.
    pub fn new(name: String) -> Netns {
        must("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        must("ip", &["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// `program args` inside the namespace.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut argv = vec!["netns", "exec", &self.name, program];
        argv.extend_from_slice(args);
        exec::command("ip", argv)
    }

    /// Runs `program args` inside the namespace to completion.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args).output().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace drops its ruleset and sockets with it.
        let _ = exec::run("ip", ["netns", "del", &self.name]);
    }
}
