//! The network syslog receiver (`[[watch.syslog]]`): a central log server
//! for `hikeshi watch`. It owns the listening sockets (UDP and TCP, IPv4 and
//! IPv6), TCP framing (RFC 6587: octet counting and newline framing,
//! detected per message as rsyslog does), the sender allowlist, the size
//! and connection limits, and the threads that run them.
//!
//! Every byte from the network is hostile. The receiver never interprets a
//! message (that is `hikeshi_core::parse::LineParser`'s job): it hands each
//! one, as one line of bytes, to the daemon as an [`Incoming`] over the
//! shared bounded channel.
//!
//! `lines` and `bytes` of the listener's [`SourceStats`] count every
//! message read (bytes without framing), delivered or not. What it does
//! with what it cannot keep, each counted in those stats:
//! - `rejected`: a datagram or frame longer than `max_message_bytes`, a
//!   sender outside `allowed_senders`, a connection beyond
//!   `max_connections`, a malformed octet count (that connection is
//!   closed: its stream cannot be resynchronised), a frame cut off by the
//!   peer closing the connection.
//! - `dropped`: messages the daemon had no room for. UDP never waits: a
//!   full channel drops the datagram at once (the sender cannot be slowed
//!   down anyway). TCP waits up to [`TCP_BACKPRESSURE_LIMIT`] per message
//!   for room, which pushes back through the kernel's buffers to the
//!   sender (rsyslog then queues on its side and loses nothing), then drops
//!   the message and reads on, so a stalled daemon costs each connection
//!   at most one message per limit and never hangs a thread or `stop`.
//!   Each connection has its own thread, so one slow or silent peer never
//!   delays the others.
//! - `errors`: socket errors (each also logged, rate-limited).
//!
//! Messages become single lines: the trailing `LF`/`CR`/`NUL` bytes of a
//! datagram or octet-counted frame are removed, and a line break inside a
//! message (possible in a datagram or an octet-counted frame) is written
//! as rsyslog writes it to files, `#012` for LF and `#015` for CR, so the
//! line reads the same as in rsyslog's own log files. Other bytes (NUL,
//! invalid UTF-8) are passed on untouched: the parser counts and skips
//! what it cannot use.
//!
//! Threads: one per UDP listener, one accept thread per TCP listener, one
//! per TCP connection (bounded by `max_connections`). [`SyslogServer::stop`]
//! (also run on drop) sets a flag the listener threads notice within
//! [`POLL_INTERVAL`], shuts the open connections down so their blocked reads
//! return at once, and joins every thread.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use jiff::Timestamp;
use serde::Deserialize;

use super::{Incoming, Payload, SourceStats};

/// The port of the default listen addresses (514 needs privileges and is
/// usually taken by the system's own syslog daemon).
pub const DEFAULT_PORT: u16 = 5514;
/// Longest message accepted by default (rsyslog's default `maxMessageSize`).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8192;
/// RFC 5424 §6.1: receivers must accept messages of 480 bytes.
pub const MIN_MAX_MESSAGE_BYTES: usize = 480;
/// Upper bound of `max_message_bytes`: a message is buffered whole.
pub const MAX_MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// TCP connections open at once by default (per `[[watch.syslog]]` entry).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Upper bound of `max_connections`: each connection is a thread.
pub const MAX_MAX_CONNECTIONS: usize = 16_384;
/// A TCP connection silent for this long is closed by default.
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 600;
/// How long a TCP connection waits for room in the daemon's channel before
/// it drops the message (counted) and reads on.
pub const TCP_BACKPRESSURE_LIMIT: Duration = Duration::from_secs(5);
/// How often listener threads check whether they must stop.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Kernel receive buffer asked for UDP sockets, to absorb bursts while the
/// receiving thread is busy (the kernel may grant less).
pub const UDP_RECEIVE_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Largest UDP payload (IPv4: 65535 - 20 - 8).
const MAX_DATAGRAM: usize = 65_535;
/// At most one warning of each listener per this interval: a hostile
/// sender must not flood the daemon's log.
const WARN_INTERVAL_SECONDS: u64 = 10;

/// UDP or TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// A listen address: `udp://127.0.0.1:5514`, `tcp://[::1]:5514`. Only IP
/// literals: a host name could resolve to an address nobody meant to
/// expose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr {
    pub transport: Transport,
    /// Port 0 asks the kernel for a free port (see [`Listener::local_addr`]).
    pub addr: SocketAddr,
}

impl ListenAddr {
    pub fn udp(addr: SocketAddr) -> ListenAddr {
        ListenAddr { transport: Transport::Udp, addr }
    }

    pub fn tcp(addr: SocketAddr) -> ListenAddr {
        ListenAddr { transport: Transport::Tcp, addr }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.transport.as_str(), self.addr)
    }
}

/// Why a listen address was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a listen address: expected \"udp://IP:PORT\" or \"tcp://IP:PORT\" \
     with an IP address (\"udp://127.0.0.1:5514\", \"tcp://[::1]:5514\")"
)]
pub struct BadListenAddr {
    pub text: String,
}

impl FromStr for ListenAddr {
    type Err = BadListenAddr;

    fn from_str(text: &str) -> Result<ListenAddr, BadListenAddr> {
        let bad = || BadListenAddr { text: text.to_string() };
        let (scheme, addr) = text.split_once("://").ok_or_else(bad)?;
        let transport = match scheme {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            _ => return Err(bad()),
        };
        let addr = addr.parse::<SocketAddr>().map_err(|_| bad())?;
        Ok(ListenAddr { transport, addr })
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `[[watch.syslog]]`: one syslog receiver. Validated when deserialized
/// (and again by [`SyslogServer::start`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SyslogConfigFields")]
pub struct SyslogConfig {
    /// Where to listen. Default: UDP and TCP on 127.0.0.1, port
    /// [`DEFAULT_PORT`]. Any other address must be written here.
    pub listen: Vec<ListenAddr>,
    /// Networks senders must be in; empty: any sender.
    pub allowed_senders: Vec<IpNet>,
    /// Longest message in bytes (without its framing); longer datagrams and
    /// frames are dropped and counted as rejected.
    pub max_message_bytes: usize,
    /// TCP connections open at once across this entry's TCP listeners;
    /// further connections are closed at once and counted as rejected.
    pub max_connections: usize,
    /// A TCP connection silent for this many seconds is closed.
    pub idle_timeout_seconds: u64,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            listen: default_listen(),
            allowed_senders: Vec::new(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout_seconds: DEFAULT_IDLE_TIMEOUT_SECONDS,
        }
    }
}

/// The default listen addresses: loopback only.
pub fn default_listen() -> Vec<ListenAddr> {
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT));
    vec![ListenAddr::udp(loopback), ListenAddr::tcp(loopback)]
}

/// The configuration as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyslogConfigFields {
    #[serde(default = "default_listen")]
    listen: Vec<ListenAddr>,
    #[serde(default)]
    allowed_senders: Vec<String>,
    #[serde(default = "default_max_message_bytes")]
    max_message_bytes: usize,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_idle_timeout_seconds")]
    idle_timeout_seconds: u64,
}

fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

fn default_idle_timeout_seconds() -> u64 {
    DEFAULT_IDLE_TIMEOUT_SECONDS
}

impl TryFrom<SyslogConfigFields> for SyslogConfig {
    type Error = SyslogConfigError;

    fn try_from(fields: SyslogConfigFields) -> Result<SyslogConfig, SyslogConfigError> {
        let allowed_senders = fields
            .allowed_senders
            .iter()
            .map(|text| {
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| SyslogConfigError::BadSender(text.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let config = SyslogConfig {
            listen: fields.listen,
            allowed_senders,
            max_message_bytes: fields.max_message_bytes,
            max_connections: fields.max_connections,
            idle_timeout_seconds: fields.idle_timeout_seconds,
        };
        config.validate()?;
        Ok(config)
    }
}

/// What is wrong with a `[[watch.syslog]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyslogConfigError {
    #[error(
        "watch.syslog: listen is empty: give at least one \"udp://IP:PORT\" or \"tcp://IP:PORT\""
    )]
    NoListen,
    #[error("watch.syslog: listen: {0} is given twice")]
    DuplicateListen(ListenAddr),
    #[error(
        "watch.syslog: allowed_senders: {0:?} is not a network: expected a CIDR block such as \
         \"192.0.2.0/24\" or \"2001:db8::/32\", or an address"
    )]
    BadSender(String),
    #[error(
        "watch.syslog: max_message_bytes = {0} is out of range \
         ({MIN_MAX_MESSAGE_BYTES}..={MAX_MAX_MESSAGE_BYTES})"
    )]
    MaxMessageBytes(usize),
    #[error("watch.syslog: max_connections = {0} is out of range (1..={MAX_MAX_CONNECTIONS})")]
    MaxConnections(usize),
    #[error("watch.syslog: idle_timeout_seconds must be at least 1")]
    IdleTimeout,
}

impl SyslogConfig {
    /// Checks the limits and that no address is listed twice.
    pub fn validate(&self) -> Result<(), SyslogConfigError> {
        if self.listen.is_empty() {
            return Err(SyslogConfigError::NoListen);
        }
        for (i, listen) in self.listen.iter().enumerate() {
            let twice = self.listen[..i].iter().any(|earlier| {
                earlier.transport == listen.transport
                    && earlier.addr == listen.addr
                    && listen.addr.port() != 0
            });
            if twice {
                return Err(SyslogConfigError::DuplicateListen(*listen));
            }
        }
        if !(MIN_MAX_MESSAGE_BYTES..=MAX_MAX_MESSAGE_BYTES).contains(&self.max_message_bytes) {
            return Err(SyslogConfigError::MaxMessageBytes(self.max_message_bytes));
        }
        if !(1..=MAX_MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(SyslogConfigError::MaxConnections(self.max_connections));
        }
        if self.idle_timeout_seconds == 0 {
            return Err(SyslogConfigError::IdleTimeout);
        }
        Ok(())
    }

    fn allows(&self, ip: IpAddr) -> bool {
        self.allowed_senders.is_empty() || self.allowed_senders.iter().any(|net| net.contains(&ip))
    }
}

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error(transparent)]
    Config(#[from] SyslogConfigError),
    #[error("watch.syslog: cannot listen on {listen}: {source}")]
    Bind {
        listen: ListenAddr,
        #[source]
        source: io::Error,
    },
    #[error("watch.syslog: cannot start a thread: {0}")]
    Thread(#[source] io::Error),
}

/// One bound socket of a running receiver.
#[derive(Debug, Clone)]
pub struct Listener {
    /// As configured.
    pub listen: ListenAddr,
    /// As bound (the real port when the configuration said 0).
    pub local_addr: SocketAddr,
    /// The source name carried by its messages: `syslog-udp:127.0.0.1:5514`,
    /// `syslog-tcp:[::1]:5514`.
    pub source: Arc<str>,
    /// Its counters (shared by all connections of a TCP listener).
    pub stats: Arc<SourceStats>,
}

/// A running syslog receiver. Dropping it stops it, like [`SyslogServer::stop`].
pub struct SyslogServer {
    listeners: Vec<Listener>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// What every thread of one receiver shares.
struct Shared {
    config: SyslogConfig,
    stop: AtomicBool,
    /// Open TCP connections, by id: a handle to shut each down on stop,
    /// and its thread to join.
    connections: Mutex<Connections>,
}

#[derive(Default)]
struct Connections {
    next_id: u64,
    open: HashMap<u64, (TcpStream, Option<JoinHandle<()>>)>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        // A connection thread holds the lock only for map updates and
        // cannot panic there; recover anyway rather than cascade.
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a listener thread needs.
#[derive(Clone)]
struct ListenerContext {
    shared: Arc<Shared>,
    source: Arc<str>,
    stats: Arc<SourceStats>,
    tx: SyncSender<Incoming>,
    warnings: Arc<WarnLimiter>,
}

impl SyslogServer {
    /// Validates `config`, binds every listen address (all or none) and
    /// starts the threads. Messages go to `tx`.
    pub fn start(
        config: &SyslogConfig,
        tx: SyncSender<Incoming>,
    ) -> Result<SyslogServer, SyslogError> {
        config.validate()?;
        let mut sockets = Vec::with_capacity(config.listen.len());
        for &listen in &config.listen {
            let bind_error = |source| SyslogError::Bind { listen, source };
            let socket = match listen.transport {
                Transport::Udp => Socket::Udp(bind_udp(listen.addr).map_err(bind_error)?),
                Transport::Tcp => Socket::Tcp(bind_tcp(listen.addr).map_err(bind_error)?),
            };
            sockets.push((listen, socket));
        }
        let shared = Arc::new(Shared {
            config: config.clone(),
            stop: AtomicBool::new(false),
            connections: Mutex::new(Connections::default()),
        });
        let mut server = SyslogServer { listeners: Vec::new(), shared, threads: Vec::new() };
        for (listen, socket) in sockets {
            let local_addr =
                socket.local_addr().map_err(|source| SyslogError::Bind { listen, source })?;
            let source: Arc<str> =
                format!("syslog-{}:{}", listen.transport.as_str(), local_addr).into();
            if !local_addr.ip().is_loopback() && config.allowed_senders.is_empty() {
                tracing::warn!(
                    "{source}: listening on a non-loopback address and accepting any sender \
                     (set allowed_senders to restrict who may send)"
                );
            }
            let stats = SourceStats::new();
            let context = ListenerContext {
                shared: Arc::clone(&server.shared),
                source: Arc::clone(&source),
                stats: Arc::clone(&stats),
                tx: tx.clone(),
                warnings: Arc::new(WarnLimiter::default()),
            };
            let thread = std::thread::Builder::new().name(format!("{source}"));
            let spawned = match socket {
                Socket::Udp(socket) => thread.spawn(move || run_udp(socket, context)),
                Socket::Tcp(listener) => thread.spawn(move || run_accept(listener, context)),
            };
            // On error, `server` is dropped here, which stops the threads
            // already started.
            server.threads.push(spawned.map_err(SyslogError::Thread)?);
            server.listeners.push(Listener { listen, local_addr, source, stats });
        }
        Ok(server)
    }

    /// The bound sockets, in configuration order.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// TCP connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.connections().open.len()
    }

    /// Stops every thread and closes every socket; returns once all threads
    /// have exited (within about [`POLL_INTERVAL`]).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Listener threads first, so no connection is added after the
        // drain below.
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let open: Vec<_> = self.shared.connections().open.drain().collect();
        for (_, (stream, _)) in &open {
            // Wakes the connection's blocked read at once.
            let _ = stream.shutdown(Shutdown::Both);
        }
        for (_, (_, thread)) in open {
            if let Some(thread) = thread {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for SyslogServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for SyslogServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyslogServer").field("listeners", &self.listeners).finish_non_exhaustive()
    }
}

enum Socket {
    Udp(UdpSocket),
    Tcp(TcpListener),
}

impl Socket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Socket::Udp(s) => s.local_addr(),
            Socket::Tcp(s) => s.local_addr(),
        }
    }
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    // Root may exceed net.core.rmem_max; others get what the kernel allows.
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, UDP_RECEIVE_BUFFER_BYTES)
        .is_err()
    {
        let _ =
            rustix::net::sockopt::set_socket_recv_buffer_size(&socket, UDP_RECEIVE_BUFFER_BYTES);
    }
    socket.set_read_timeout(Some(POLL_INTERVAL))?;
    Ok(socket)
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // Accepting is driven by poll(2) with a timeout, so the thread can
    // notice `stop`; a non-blocking accept never hangs after a spurious
    // wake-up.
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The sender's address, with IPv4-mapped IPv6 addresses (a dual-stack
/// `[::]` socket) written as IPv4, so allowlists and evidence see one form.
fn canonical(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

fn run_udp(socket: UdpSocket, cx: ListenerContext) {
    let max = cx.shared.config.max_message_bytes;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !cx.shared.stopping() {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                SourceStats::add(&cx.stats.errors);
                cx.warnings.warn(&cx.source, format_args!("receive failed: {e}"));
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
        };
        let peer = canonical(peer);
        if !cx.shared.config.allows(peer.ip()) {
            SourceStats::add(&cx.stats.rejected);
            cx.warnings.warn(
                &cx.source,
                format_args!("ignored a datagram from {peer}: not in allowed_senders"),
            );
            continue;
        }
        let message = trim_terminators(&buf[..len]);
        if message.len() > max {
            SourceStats::add(&cx.stats.rejected);
            cx.warnings.warn(
                &cx.source,
                format_args!("dropped a {len}-byte datagram from {peer}: longer than max_message_bytes ({max})"),
            );
            continue;
        }
        if message.is_empty() {
            continue;
        }
        cx.stats.read(message.len(), Timestamp::now());
        match cx.tx.try_send(incoming(&cx.source, message, peer)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => SourceStats::add(&cx.stats.dropped),
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

fn incoming(source: &Arc<str>, message: &[u8], peer: SocketAddr) -> Incoming {
    Incoming {
        source: Arc::clone(source),
        payload: Payload::Line {
            bytes: one_line(message),
            position: None,
            host_hint: None,
            peer: Some(peer),
            backlog: None,
        },
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn run_accept(listener: TcpListener, cx: ListenerContext) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let timeout = Timespec { tv_sec: 0, tv_nsec: POLL_INTERVAL.as_nanos() as _ };
    let idle = Duration::from_secs(cx.shared.config.idle_timeout_seconds);
    while !cx.shared.stopping() {
        let mut fds = [PollFd::new(&listener, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                SourceStats::add(&cx.stats.errors);
                cx.warnings.warn(&cx.source, format_args!("poll failed: {e}"));
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
        }
        // Take every pending connection before polling again.
        loop {
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if is_timeout(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // EMFILE and the like: back off rather than spin.
                    SourceStats::add(&cx.stats.errors);
                    cx.warnings.warn(&cx.source, format_args!("accept failed: {e}"));
                    std::thread::sleep(POLL_INTERVAL);
                    break;
                }
            };
            admit(stream, canonical(peer), idle, &cx);
        }
    }
}

/// Refuses the connection (closing it) or starts its thread.
fn admit(stream: TcpStream, peer: SocketAddr, idle: Duration, cx: &ListenerContext) {
    let config = &cx.shared.config;
    if !config.allows(peer.ip()) {
        SourceStats::add(&cx.stats.rejected);
        cx.warnings.warn(
            &cx.source,
            format_args!("refused a connection from {peer}: not in allowed_senders"),
        );
        return;
    }
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(idle)))
        .and_then(|()| stream.try_clone());
    let handle = match setup {
        Ok(handle) => handle,
        Err(e) => {
            SourceStats::add(&cx.stats.errors);
            cx.warnings.warn(&cx.source, format_args!("connection from {peer}: {e}"));
            return;
        }
    };
    let id = {
        let mut connections = cx.shared.connections();
        if connections.open.len() >= config.max_connections {
            drop(connections);
            SourceStats::add(&cx.stats.rejected);
            cx.warnings.warn(
                &cx.source,
                format_args!(
                    "refused a connection from {peer}: {} connections already open (max_connections)",
                    config.max_connections
                ),
            );
            return;
        }
        let id = connections.next_id;
        connections.next_id += 1;
        connections.open.insert(id, (handle, None));
        id
    };
    let thread_cx = cx.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("{}<-{peer}", cx.source))
        .stack_size(256 * 1024)
        .spawn(move || {
            run_connection(stream, peer, &thread_cx);
            thread_cx.shared.connections().open.remove(&id);
        });
    let mut connections = cx.shared.connections();
    match spawned {
        // The thread may already have finished and removed its entry.
        Ok(thread) => {
            if let Some(entry) = connections.open.get_mut(&id) {
                entry.1 = Some(thread);
            }
        }
        Err(e) => {
            connections.open.remove(&id);
            drop(connections);
            SourceStats::add(&cx.stats.errors);
            cx.warnings.warn(
                &cx.source,
                format_args!("connection from {peer}: cannot start a thread: {e}"),
            );
        }
    }
}

fn run_connection(mut stream: TcpStream, peer: SocketAddr, cx: &ListenerContext) {
    let mut framer = Framer::new(cx.shared.config.max_message_bytes);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let len = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                tracing::debug!("{}: closed the idle connection from {peer}", cx.source);
                break;
            }
            Err(e) => {
                if !cx.shared.stopping() {
                    tracing::debug!("{}: connection from {peer}: {e}", cx.source);
                }
                break;
            }
        };
        let mut keep_going = true;
        let result = framer.push(&buf[..len], &mut |frame| {
            if keep_going {
                keep_going = deliver_frame(frame, peer, cx);
            }
        });
        if let Err(e) = result {
            SourceStats::add(&cx.stats.rejected);
            cx.warnings.warn(&cx.source, format_args!("closed the connection from {peer}: {e}"));
            return;
        }
        if !keep_going || cx.shared.stopping() {
            return;
        }
    }
    framer.finish(&mut |frame| {
        deliver_frame(frame, peer, cx);
    });
}

/// Hands one frame on; false when the connection should end (the daemon
/// is gone or the receiver is stopping).
fn deliver_frame(frame: Frame<'_>, peer: SocketAddr, cx: &ListenerContext) -> bool {
    let max = cx.shared.config.max_message_bytes;
    let message = match frame {
        Frame::Message(message) => message,
        Frame::Oversized => {
            SourceStats::add(&cx.stats.rejected);
            cx.warnings.warn(
                &cx.source,
                format_args!(
                    "dropped a message from {peer}: longer than max_message_bytes ({max})"
                ),
            );
            return true;
        }
        Frame::Truncated => {
            SourceStats::add(&cx.stats.rejected);
            cx.warnings.warn(
                &cx.source,
                format_args!("{peer} closed the connection in the middle of a message"),
            );
            return true;
        }
    };
    let message = trim_terminators(message);
    if message.is_empty() {
        return true;
    }
    cx.stats.read(message.len(), Timestamp::now());
    let mut item = incoming(&cx.source, message, peer);
    let deadline = Instant::now() + TCP_BACKPRESSURE_LIMIT;
    let mut pause = Duration::from_millis(1);
    loop {
        match cx.tx.try_send(item) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(back)) => {
                if cx.shared.stopping() {
                    SourceStats::add(&cx.stats.dropped);
                    return false;
                }
                if Instant::now() >= deadline {
                    SourceStats::add(&cx.stats.dropped);
                    cx.warnings.warn(
                        &cx.source,
                        format_args!(
                            "dropped a message from {peer}: the daemon had no room for {}s",
                            TCP_BACKPRESSURE_LIMIT.as_secs()
                        ),
                    );
                    return true;
                }
                item = back;
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }
}

/// Removes the trailing `LF`, `CR` and `NUL` bytes senders put after a
/// message.
fn trim_terminators(message: &[u8]) -> &[u8] {
    let end = message.iter().rposition(|&b| !matches!(b, b'\n' | b'\r' | 0)).map_or(0, |i| i + 1);
    &message[..end]
}

/// The message as one line: LF and CR written `#012` and `#015`, as
/// rsyslog writes control characters to its files.
fn one_line(message: &[u8]) -> Vec<u8> {
    if memchr::memchr2(b'\n', b'\r', message).is_none() {
        return message.to_vec();
    }
    let mut line = Vec::with_capacity(message.len() + 16);
    for &b in message {
        match b {
            b'\n' => line.extend_from_slice(b"#012"),
            b'\r' => line.extend_from_slice(b"#015"),
            _ => line.push(b),
        }
    }
    line
}

/// One unit the framer found in a TCP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A message (possibly still with a trailing CR or, when octet-counted,
    /// LF/NUL, which the receiver trims).
    Message(&'a [u8]),
    /// A message longer than the limit, skipped without being buffered.
    Oversized,
    /// The stream ended inside a message.
    Truncated,
}

/// A stream that cannot be framed any further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("bad octet count: a frame starting with a digit must be `LENGTH SP MESSAGE`")]
    BadOctetCount,
}

/// Splits a TCP byte stream into syslog messages (RFC 6587), deciding per
/// message as rsyslog does: a frame that starts with a digit is
/// octet-counted (`LENGTH SP MESSAGE`), any other is terminated by LF (or
/// NUL, which some senders use). Memory is bounded by the message limit:
/// longer messages are skipped, not buffered.
#[derive(Debug)]
pub struct Framer {
    max: usize,
    state: FrameState,
    buf: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameState {
    /// Between frames.
    Start,
    /// Reading the decimal length of an octet-counted frame.
    Length { value: u64, digits: u8 },
    /// Reading this many more bytes of an octet-counted message into `buf`.
    Counted { remaining: usize },
    /// Skipping this many more bytes of an oversized octet-counted message.
    SkipCounted { remaining: u64 },
    /// Reading a newline-terminated message into `buf`.
    Line,
    /// Skipping an oversized newline-terminated message up to its end.
    SkipLine,
}

/// More digits than any length below `MAX_MAX_MESSAGE_BYTES` needs, and
/// far more than a real sender writes.
const MAX_LENGTH_DIGITS: u8 = 10;

impl Framer {
    /// A framer for messages of at most `max_message_bytes` bytes.
    pub fn new(max_message_bytes: usize) -> Framer {
        Framer { max: max_message_bytes, state: FrameState::Start, buf: Vec::new() }
    }

    /// Feeds the next bytes of the stream; calls `out` for each complete
    /// frame. After an error the stream must be abandoned.
    pub fn push(
        &mut self,
        mut data: &[u8],
        out: &mut dyn FnMut(Frame<'_>),
    ) -> Result<(), FramingError> {
        while let Some(&first) = data.first() {
            match self.state {
                FrameState::Start => {
                    data = &data[1..];
                    match first {
                        // Empty frames (blank lines, CRLF leftovers).
                        b'\n' | b'\r' | 0 => {}
                        b'0'..=b'9' => {
                            self.state =
                                FrameState::Length { value: u64::from(first - b'0'), digits: 1 }
                        }
                        _ => {
                            self.buf.clear();
                            self.buf.push(first);
                            self.state = FrameState::Line;
                        }
                    }
                }
                FrameState::Length { value, digits } => {
                    data = &data[1..];
                    match first {
                        b'0'..=b'9' if digits < MAX_LENGTH_DIGITS => {
                            self.state = FrameState::Length {
                                value: value * 10 + u64::from(first - b'0'),
                                digits: digits + 1,
                            };
                        }
                        b' ' if value > 0 => {
                            if value > self.max as u64 {
                                out(Frame::Oversized);
                                self.state = FrameState::SkipCounted { remaining: value };
                            } else {
                                self.buf.clear();
                                self.state = FrameState::Counted { remaining: value as usize };
                            }
                        }
                        _ => return Err(FramingError::BadOctetCount),
                    }
                }
                FrameState::Counted { remaining } => {
                    let take = remaining.min(data.len());
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if take == remaining {
                        out(Frame::Message(&self.buf));
                        self.state = FrameState::Start;
                    } else {
                        self.state = FrameState::Counted { remaining: remaining - take };
                    }
                }
                FrameState::SkipCounted { remaining } => {
                    let take = remaining.min(data.len() as u64);
                    data = &data[take as usize..];
                    self.state = if take == remaining {
                        FrameState::Start
                    } else {
                        FrameState::SkipCounted { remaining: remaining - take }
                    };
                }
                FrameState::Line => {
                    let end = memchr::memchr2(b'\n', 0, data);
                    let chunk = &data[..end.unwrap_or(data.len())];
                    if self.buf.len() + chunk.len() > self.max {
                        out(Frame::Oversized);
                        self.buf.clear();
                        self.state = FrameState::SkipLine;
                        continue;
                    }
                    self.buf.extend_from_slice(chunk);
                    match end {
                        Some(end) => {
                            data = &data[end + 1..];
                            out(Frame::Message(&self.buf));
                            self.state = FrameState::Start;
                        }
                        None => data = &[],
                    }
                }
                FrameState::SkipLine => match memchr::memchr2(b'\n', 0, data) {
                    Some(end) => {
                        data = &data[end + 1..];
                        self.state = FrameState::Start;
                    }
                    None => data = &[],
                },
            }
        }
        Ok(())
    }

    /// The stream ended: a newline-framed message without its final LF is
    /// still a message (some senders omit it); anything else cut short is
    /// reported as [`Frame::Truncated`].
    pub fn finish(&mut self, out: &mut dyn FnMut(Frame<'_>)) {
        match std::mem::replace(&mut self.state, FrameState::Start) {
            FrameState::Start | FrameState::SkipLine => {}
            FrameState::Line => out(Frame::Message(&self.buf)),
            FrameState::Length { .. }
            | FrameState::Counted { .. }
            | FrameState::SkipCounted { .. } => out(Frame::Truncated),
        }
        self.buf.clear();
    }
}

/// Logs at most one warning per [`WARN_INTERVAL_SECONDS`] for a listener;
/// the counters keep the full tally.
#[derive(Debug, Default)]
struct WarnLimiter {
    last_unix: AtomicU64,
}

impl WarnLimiter {
    fn warn(&self, source: &str, what: fmt::Arguments<'_>) {
        let now = Timestamp::now().as_second().max(0) as u64;
        let last = self.last_unix.load(Ordering::Relaxed);
        let due = last == 0 || now >= last + WARN_INTERVAL_SECONDS;
        if due
            && self
                .last_unix
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!("{source}: {what} (further warnings of this listener are held back for {WARN_INTERVAL_SECONDS}s; its counters keep the tally)");
        } else {
            tracing::debug!("{source}: {what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> (Vec<String>, Result<(), FramingError>) {
        let mut framer = Framer::new(max);
        let mut seen = Vec::new();
        let mut record = |frame: Frame<'_>| {
            seen.push(match frame {
                Frame::Message(m) => String::from_utf8_lossy(m).into_owned(),
                Frame::Oversized => "<oversized>".into(),
                Frame::Truncated => "<truncated>".into(),
            })
        };
        for chunk in chunks {
            if let Err(e) = framer.push(chunk, &mut record) {
                return (seen, Err(e));
            }
        }
        framer.finish(&mut record);
        (seen, Ok(()))
    }

    #[test]
    fn newline_framing_with_lf_crlf_and_nul_terminators() {
        let (seen, result) = frames(100, &[b"<38>a b\n<38>c\r\n\n<38>d\0<38>e"]);
        assert_eq!(result, Ok(()));
        assert_eq!(seen, ["<38>a b", "<38>c\r", "<38>d", "<38>e"]);
    }

    #[test]
    fn octet_counting_and_newline_framing_mix_per_message() {
        let (seen, result) = frames(100, &[b"5 <1>ab3 xyz<2>line\n11 <3>two\nline"]);
        assert_eq!(result, Ok(()));
        assert_eq!(seen, ["<1>ab", "xyz", "<2>line", "<3>two\nline"]);
    }

    #[test]
    fn frames_split_across_reads_at_every_byte() {
        let stream: &[u8] = b"12 <38>abc\ndefg<38>line one\n7 <1>x yz";
        for split in 0..stream.len() {
            let (seen, result) = frames(100, &[&stream[..split], &stream[split..]]);
            assert_eq!(result, Ok(()), "split {split}");
            assert_eq!(seen, ["<38>abc\ndefg", "<38>line one", "<1>x yz"], "split {split}");
        }
    }

    #[test]
    fn oversized_frames_are_skipped_and_the_stream_resumes() {
        let long_line = [b'x'; 20];
        let mut stream = long_line.to_vec();
        stream.extend_from_slice(b"\n30 ");
        stream.extend_from_slice(&[b'y'; 30]);
        stream.extend_from_slice(b"<1>ok\n");
        let (seen, result) = frames(10, &[&stream[..7], &stream[7..]]);
        assert_eq!(result, Ok(()));
        assert_eq!(seen, ["<oversized>", "<oversized>", "<1>ok"]);
    }

    #[test]
    fn a_message_of_exactly_the_limit_passes() {
        let (seen, _) = frames(5, &[b"5 abcdexyzuvw\n"]);
        assert_eq!(seen, ["abcde", "<oversized>"]);
    }

    #[test]
    fn bad_octet_counts_abandon_the_stream() {
        for bad in
            [&b"12x <1>a"[..], b"0 <1>", b"12345678901 x", b"2026-01-01T00:00:00Z host sshd: x"]
        {
            let (_, result) = frames(100, &[bad]);
            assert_eq!(
                result,
                Err(FramingError::BadOctetCount),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_stream_cut_inside_a_counted_frame_is_truncated() {
        assert_eq!(frames(100, &[b"10 <1>ab"]).0, ["<truncated>"]);
        assert_eq!(frames(100, &[b"10"]).0, ["<truncated>"]);
    }

    #[test]
    fn memory_stays_bounded_by_the_limit() {
        let mut framer = Framer::new(1000);
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..64 {
            framer.push(&chunk, &mut |_| {}).unwrap();
        }
        assert!(framer.buf.capacity() <= 64 * 1024, "{}", framer.buf.capacity());
        assert_eq!(framer.state, FrameState::SkipLine);
    }

    #[test]
    fn lines_are_trimmed_and_line_breaks_escaped() {
        assert_eq!(trim_terminators(b"<1>a\r\n\0\0"), b"<1>a");
        assert_eq!(trim_terminators(b"\n\r\0"), b"");
        assert_eq!(one_line(b"<1>a\nb\rc\0d"), b"<1>a#012b#015c\0d");
    }

    #[test]
    fn listen_addresses_parse_and_print() {
        let udp: ListenAddr = "udp://127.0.0.1:5514".parse().unwrap();
        assert_eq!(udp, ListenAddr::udp("127.0.0.1:5514".parse().unwrap()));
        let tcp: ListenAddr = "tcp://[::1]:514".parse().unwrap();
        assert_eq!(tcp.to_string(), "tcp://[::1]:514");
        for bad in
            ["127.0.0.1:5514", "udp://localhost:5514", "sctp://127.0.0.1:1", "tcp://[::1]", ""]
        {
            let err = bad.parse::<ListenAddr>().unwrap_err().to_string();
            assert!(err.contains("is not a listen address"), "{err}");
        }
    }

    fn config_of(text: &str) -> Result<SyslogConfig, String> {
        #[derive(Deserialize)]
        struct Wrapper {
            syslog: SyslogConfig,
        }
        toml::from_str::<Wrapper>(text).map(|w| w.syslog).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_listen_on_loopback_only() {
        let config = config_of("[syslog]\n").unwrap();
        assert_eq!(config, SyslogConfig::default());
        assert!(config.listen.iter().all(|l| l.addr.ip().is_loopback()));
        assert_eq!(config.max_message_bytes, 8192);
    }

    #[test]
    fn a_full_entry_parses() {
        let config = config_of(
            "[syslog]\nlisten = [\"udp://0.0.0.0:514\", \"tcp://[::]:514\"]\n\
             allowed_senders = [\"192.0.2.0/24\", \"2001:db8::1\"]\nmax_message_bytes = 4096\n\
             max_connections = 10\nidle_timeout_seconds = 60\n",
        )
        .unwrap();
        assert_eq!(config.listen.len(), 2);
        assert!(config.allows("192.0.2.9".parse().unwrap()));
        assert!(config.allows("2001:db8::1".parse().unwrap()));
        assert!(!config.allows("198.51.100.1".parse().unwrap()));
        assert_eq!(
            (config.max_message_bytes, config.max_connections, config.idle_timeout_seconds),
            (4096, 10, 60)
        );
    }

    #[test]
    fn bad_entries_name_the_field() {
        let cases = [
            ("listen = [\"localhost:514\"]", "is not a listen address"),
            ("listen = []", "listen is empty"),
            ("listen = [\"udp://127.0.0.1:9\", \"udp://127.0.0.1:9\"]", "given twice"),
            ("allowed_senders = [\"example.com\"]", "allowed_senders"),
            ("max_message_bytes = 10", "max_message_bytes"),
            ("max_message_bytes = 100000000", "max_message_bytes"),
            ("max_connections = 0", "max_connections"),
            ("idle_timeout_seconds = 0", "idle_timeout_seconds"),
            ("max_mesage_bytes = 10", "unknown field"),
        ];
        for (body, expected) in cases {
            let err = config_of(&format!("[syslog]\n{body}\n")).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }
}
