//! The host side of ivshmem-doorbell: an ivshmem server speaking QEMU's
//! client-server protocol (docs/specs/ivshmem-spec.rst, protocol 0), with
//! the rig itself as one peer. Debian ships no ivshmem-server, and the host
//! needs its own eventfds anyway to ring the guest and be rung.
//!
//! Peers: QEMU is [`GUEST_PEER_ID`], 0: QEMU saves the device's memory with
//! the guest only as the region's master (`master=on`), and takes that role
//! only as peer 0. The host is [`HOST_PEER_ID`]. The guest
//! rings the host by writing `HOST_PEER_ID << 16 | vector` to its Doorbell
//! register; the host rings the guest by writing to QEMU's eventfd of that
//! vector, which raises the guest's MSI-X vector.
//!
//! A guest restored from a snapshot is a new QEMU that connects anew: it
//! gets the same peer ID (the one its guest read at probe time) and the
//! same eventfds, emptied of the rings its predecessor left unread.

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use std::fs::File;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The host's side of ivshmem-doorbell.
pub trait Doorbell {
    /// Rings the guest on `vector`.
    fn ring_guest(&mut self, vector: u32) -> Result<(), String>;
    /// Waits until the guest rings the host on `vector`.
    fn wait_ring(&mut self, vector: u32, timeout: Duration) -> Result<(), String>;
}

/// The host's peer ID.
pub const HOST_PEER_ID: i64 = 1;
/// The ID given to QEMU (the guest's IVPosition register): 0, as QEMU
/// requires of the master peer.
pub const GUEST_PEER_ID: i64 = 0;
/// The only protocol version QEMU speaks since 2.5.
pub const PROTOCOL_VERSION: i64 = 0;

/// Server failures.
#[derive(Debug, thiserror::Error)]
pub enum DoorbellError {
    /// Setting up the socket or the eventfds failed.
    #[error("ivshmem server: cannot {what}: {source}")]
    Setup { what: String, source: std::io::Error },
}

fn setup(what: &str) -> impl FnOnce(std::io::Error) -> DoorbellError + '_ {
    move |source| DoorbellError::Setup { what: what.to_string(), source }
}

/// One message: an 8-byte little-endian number, maybe with one fd.
pub fn send_msg(sock: RawFd, value: i64, fd: Option<RawFd>) -> std::io::Result<()> {
    let bytes = value.to_le_bytes();
    let iov = [IoSlice::new(&bytes)];
    let fds;
    let cmsgs: &[ControlMessage] = match fd {
        Some(f) => {
            fds = [f];
            &[ControlMessage::ScmRights(&fds)]
        }
        None => &[],
    };
    sendmsg::<UnixAddr>(sock, &iov, cmsgs, MsgFlags::empty(), None).map_err(std::io::Error::from)?;
    Ok(())
}

/// The messages a new client gets, in order (steps 1-5 of the spec).
pub fn handshake(sock: RawFd, shm: RawFd, host_fds: &[RawFd], guest_fds: &[RawFd]) -> std::io::Result<()> {
    send_msg(sock, PROTOCOL_VERSION, None)?;
    send_msg(sock, GUEST_PEER_ID, None)?;
    send_msg(sock, -1, Some(shm))?;
    for &fd in host_fds {
        send_msg(sock, HOST_PEER_ID, Some(fd))?;
    }
    for &fd in guest_fds {
        send_msg(sock, GUEST_PEER_ID, Some(fd))?;
    }
    Ok(())
}

/// Empties a non-blocking eventfd.
fn drain(fd: RawFd) {
    let mut buf = [0u8; 8];
    // SAFETY: reading 8 bytes into a buffer of 8 from a descriptor the
    // server owns; a non-blocking eventfd returns EAGAIN when empty.
    let _ = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
}

/// A running server with the host peer's eventfds.
pub struct DoorbellServer {
    socket: PathBuf,
    /// Rung by the guest (host peer's vectors).
    host_fds: Vec<EventFd>,
    /// Ring the guest (QEMU's vectors).
    guest_fds: Arc<Vec<EventFd>>,
    stop: Arc<AtomicBool>,
    client: Arc<Mutex<Option<UnixStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl DoorbellServer {
    /// Listens on `socket` (before QEMU starts) and serves the one guest.
    pub fn start(socket: &Path, shm_path: &Path, vectors: u32) -> Result<DoorbellServer, DoorbellError> {
        let listener = UnixListener::bind(socket).map_err(setup("listen on the ivshmem socket"))?;
        listener.set_nonblocking(true).map_err(setup("set the socket non-blocking"))?;
        let shm =
            File::options().read(true).write(true).open(shm_path).map_err(setup("open the shared memory file"))?;
        let mk = || EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(std::io::Error::from);
        let host_fds = (0..vectors).map(|_| mk()).collect::<Result<Vec<_>, _>>().map_err(setup("create eventfds"))?;
        let guest_fds =
            Arc::new((0..vectors).map(|_| mk()).collect::<Result<Vec<_>, _>>().map_err(setup("create eventfds"))?);
        let host_raw: Vec<RawFd> = host_fds.iter().map(|f| f.as_raw_fd()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let client = Arc::new(Mutex::new(None));
        let (stop2, client2, guests) = (stop.clone(), client.clone(), guest_fds.clone());
        let host_drain: Vec<RawFd> = host_raw.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let guest_raw: Vec<RawFd> = guests.iter().map(|f| f.as_raw_fd()).collect();
                        // A QEMU after another (a restored guest): no ring
                        // of the one before reaches it or the host.
                        for &fd in host_drain.iter().chain(&guest_raw) {
                            drain(fd);
                        }
                        if let Err(e) = handshake(stream.as_raw_fd(), shm.as_raw_fd(), &host_raw, &guest_raw) {
                            tracing::warn!("ivshmem server: handshake failed: {e}");
                        }
                        // Keep the connection: closing it would look like a server crash.
                        if let Ok(mut c) = client2.lock() {
                            *c = Some(stream);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // QEMU waits for the handshake while it starts: answer at once.
                        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                        let _ = poll(&mut fds, PollTimeout::from(50u16));
                    }
                    Err(e) => {
                        tracing::warn!("ivshmem server: accept failed: {e}");
                        break;
                    }
                }
            }
        });
        Ok(DoorbellServer { socket: socket.to_path_buf(), host_fds, guest_fds, stop, client, thread: Some(thread) })
    }

    /// Whether QEMU has connected.
    pub fn connected(&self) -> bool {
        self.client.lock().map(|c| c.is_some()).unwrap_or(false)
    }
}

impl Doorbell for DoorbellServer {
    fn ring_guest(&mut self, vector: u32) -> Result<(), String> {
        let fd = self.guest_fds.get(vector as usize).ok_or_else(|| format!("vector {vector} is not configured"))?;
        if !self.connected() {
            return Err("QEMU never connected to the ivshmem server".into());
        }
        fd.write(1).map(|_| ()).map_err(|e| format!("ringing vector {vector}: {e}"))
    }

    fn wait_ring(&mut self, vector: u32, timeout: Duration) -> Result<(), String> {
        let fd = self.host_fds.get(vector as usize).ok_or_else(|| format!("vector {vector} is not configured"))?;
        let until = Instant::now() + timeout;
        loop {
            match fd.read() {
                Ok(n) if n > 0 => return Ok(()),
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(format!("reading vector {vector}: {e}")),
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("the guest did not ring vector {vector} within {timeout:?}"));
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
    }
}

impl Drop for DoorbellServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use std::io::IoSliceMut;
    use std::os::fd::{FromRawFd, OwnedFd};

    /// Reads one message the way QEMU does.
    fn recv(sock: RawFd) -> (i64, Option<OwnedFd>) {
        let mut buf = [0u8; 8];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(sock, &mut iov, Some(&mut space), MsgFlags::empty()).expect("recvmsg");
        let mut fd = None;
        for c in msg.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the kernel just handed us this descriptor.
                fd = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
            }
        }
        (i64::from_le_bytes(buf), fd)
    }

    #[test]
    fn speaks_the_protocol_and_rings_both_ways() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shm = dir.path().join("shm");
        std::fs::write(&shm, vec![0u8; 4096]).expect("shm");
        let sock = dir.path().join("ivshmem.sock");
        let mut server = DoorbellServer::start(&sock, &shm, 2).expect("start");
        let client = UnixStream::connect(&sock).expect("connect");
        let fd = client.as_raw_fd();
        assert_eq!(recv(fd).0, PROTOCOL_VERSION);
        let (id, none) = recv(fd);
        assert_eq!(id, GUEST_PEER_ID);
        assert!(none.is_none());
        let (minus_one, shm_fd) = recv(fd);
        assert_eq!(minus_one, -1);
        assert!(shm_fd.is_some());
        let (p0, host_v0) = recv(fd);
        let (p1, _host_v1) = recv(fd);
        assert_eq!((p0, p1), (HOST_PEER_ID, HOST_PEER_ID));
        let (g0, guest_v0) = recv(fd);
        let (g1, _guest_v1) = recv(fd);
        assert_eq!((g0, g1), (GUEST_PEER_ID, GUEST_PEER_ID));
        // Wait until the server has recorded the client.
        let start = Instant::now();
        while !server.connected() && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Host rings the guest: QEMU's vector-0 eventfd becomes readable.
        server.ring_guest(0).expect("ring");
        // SAFETY: an eventfd received from the server.
        let guest0 = unsafe { EventFd::from_owned_fd(guest_v0.expect("fd")) };
        assert_eq!(guest0.read().expect("read"), 1);
        // The guest rings the host: QEMU writes the host's vector-0 eventfd.
        // SAFETY: as above.
        let host0 = unsafe { EventFd::from_owned_fd(host_v0.expect("fd")) };
        host0.write(1).expect("write");
        server.wait_ring(0, Duration::from_secs(2)).expect("rung");
        assert!(server.wait_ring(1, Duration::from_millis(50)).is_err());
        assert!(server.ring_guest(7).is_err());

        // A restored guest: a new QEMU gets the same peer ID and eventfds,
        // without the rings left unread by the one before.
        server.ring_guest(1).expect("ring");
        host0.write(1).expect("write");
        drop(client);
        let again = UnixStream::connect(&sock).expect("connect");
        let fd = again.as_raw_fd();
        assert_eq!(recv(fd).0, PROTOCOL_VERSION);
        assert_eq!(recv(fd).0, GUEST_PEER_ID);
        // The shared memory, the host's two vectors, the guest's first.
        for _ in 0..4 {
            recv(fd);
        }
        let (_, guest_v1) = recv(fd);
        // SAFETY: as above.
        let guest1 = unsafe { EventFd::from_owned_fd(guest_v1.expect("fd")) };
        assert!(matches!(guest1.read(), Err(nix::errno::Errno::EAGAIN)), "a stale ring reached the new guest");
        assert!(server.wait_ring(0, Duration::from_millis(50)).is_err(), "a stale ring reached the host");
    }
}
