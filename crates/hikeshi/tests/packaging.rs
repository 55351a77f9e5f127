//! The systemd unit under `packaging/`: `systemd-analyze verify` accepts
//! it (unknown keys or a missing program would fail), its sandbox keeps
//! only the capabilities the firewall backends need, and `hikeshi watch`
//! speaks the `Type=notify` protocol it declares (READY=1 on a real
//! notification socket once its sources are started, RELOADING=1 and
//! READY=1 again on SIGHUP).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hikeshi::exec;

const BIN: &str = env!("CARGO_BIN_EXE_hikeshi");

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/hikeshi.service");
    std::fs::read_to_string(path).unwrap()
}

fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    unit.lines().filter_map(|l| l.strip_prefix(prefix.as_str())).collect()
}

#[test]
fn the_unit_verifies_and_its_sandbox_is_tight() {
    let unit = unit_text();
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("hikeshi.service");
    std::fs::write(&installed, unit.replace("/usr/local/bin/hikeshi", BIN)).unwrap();
    let out = exec::command("systemd-analyze", ["verify".as_ref(), installed.as_os_str()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");

    assert_eq!(values(&unit, "Type"), ["notify"]);
    assert_eq!(values(&unit, "CapabilityBoundingSet"), ["CAP_NET_ADMIN CAP_NET_RAW"]);
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/hikeshi"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert_eq!(values(&unit, key), [value], "{key}");
    }
    let exec_start = values(&unit, "ExecStart")[0];
    assert!(exec_start.ends_with(" watch"), "{exec_start}");
    assert!(exec_start.contains("--data-dir /var/lib/hikeshi"), "{exec_start}");

    // A typo in a key is caught by the same check.
    std::fs::write(
        &installed,
        unit.replace("ProtectHome=", "ProtectHmoe=").replace("/usr/local/bin/hikeshi", BIN),
    )
    .unwrap();
    let out = exec::command("systemd-analyze", ["verify".as_ref(), installed.as_os_str()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ProtectHmoe"));
}

/// Reads notification datagrams until one contains `want`.
fn wait_for(socket: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while !seen.iter().any(|m| m.lines().any(|l| l == want)) {
        assert!(start.elapsed() < Duration::from_secs(20), "no {want}; got {seen:?}");
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[test]
fn watch_tells_systemd_when_it_is_ready_and_when_it_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path: PathBuf = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let config = dir.path().join("hikeshi.toml");
    std::fs::write(
        &config,
        format!(
            "[contain]\nbackend = \"none\"\n[[watch.files]]\npaths = [\"{}/logs/*.log\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut child = exec::command(
        BIN,
        [
            "--config".as_ref(),
            config.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "watch".as_ref(),
        ],
    )
    .env("NOTIFY_SOCKET", &socket_path)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let mut seen = Vec::new();
    wait_for(&socket, "READY=1", &mut seen);
    seen.clear();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    wait_for(&socket, "RELOADING=1", &mut seen);
    wait_for(&socket, "READY=1", &mut seen);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
